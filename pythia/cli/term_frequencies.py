"""``pythia term-frequencies count|evaluate|first-seen``: section 05, operand counts in the
training data and few-shot arithmetic on the checkpoints (:mod:`pythia.evaluate.term_frequencies`),
and the steps at which any text occurs in the training order (:mod:`pythia.evaluate.ngram_index`)."""

from __future__ import annotations

import argparse
import json

from pythia import paths
from pythia.cli import options
from pythia.config import load_suite
from pythia.errors import UsageError, require_device
from pythia.evaluate.ngram_index import build_index, first_seen_text
from pythia.evaluate.term_frequencies import count_dataset, evaluate


def _cmd_count(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    paths.check_dataset(args.dataset)
    spec = suite.analysis.term_frequencies
    split = list(args.steps or []) + list(
        spec.steps if spec.steps is not None else suite.analysis_steps()
    )
    out = count_dataset(
        suite,
        args.dataset,
        args.out,
        steps=split,
        workers=args.workers,
        progress=not args.no_progress,
        suite_file=args.suite if args.suite.endswith((".yaml", ".yml")) else None,
        index=build_index(suite, args.dataset, root=args.index_cache, progress=not args.no_progress)
        if args.index
        else None,
    )
    info = json.loads(out.with_suffix(".json").read_text())
    print(
        f"{out}: {info['ranges']} step ranges ({info['counted_ranges']} counted now, "
        f"{info['counted_tokens']:,} tokens, {info['tokens_per_s'] or 0:,.0f} tokens/s on "
        f"{args.workers} workers)"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    cat = options.catalogue(args)
    require_device(args.device)
    if args.device == "cpu" and args.dtype != "float32":
        raise UsageError(f"--dtype {args.dtype} needs --device cuda (CPU evaluation is float32)")
    out = evaluate(
        cat,
        args.model,
        args.dataset,
        args.out,
        device=args.device,
        dtype=None if args.dtype == "float32" else args.dtype,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    info = json.loads(out.with_suffix(".json").read_text())
    print(f"{out}: {info['prompts']:,} prompts on steps {info['steps']} in {info['seconds']:.1f} s")
    return 0


def _cmd_first_seen(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    paths.check_dataset(args.dataset)
    found = first_seen_text(
        suite, args.dataset, args.text, root=args.index_cache, progress=not args.no_progress
    )
    if args.json:
        print(json.dumps(found))
        return 0
    where = (
        f"first seen at step {found['first_step']}"
        if found["first_step"] is not None
        else "never seen"
    )
    print(
        f"{found['text']!r} (tokens {found['tokens']}): {where}; {found['count']:,} occurrences "
        f"in {len(found['steps']):,} of {found['steps_covered']:,} steps of {suite.name}/{args.dataset}"
    )
    if found["steps"]:
        print("steps: " + " ".join(map(str, found["steps"])))
    return 0


def _add_index_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index-cache",
        default=None,
        help="folder of the n-gram indexes (default work/<suite>/cache/ngram)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "term-frequencies",
        help="section 05: operand counts in the training data, few-shot arithmetic",
    )
    s = options.subcommands(p, "subcommand")
    c = s.add_parser(
        "count", help="count numbers in the numeric windows of the training order, per step range"
    )
    options.add_suite(c)
    c.add_argument("--dataset", required=True, help="standard or deduped")
    c.add_argument(
        "--out", required=True, help="the .npz array file (its ranges go to the folder beside it)"
    )
    c.add_argument(
        "--workers", type=int, default=1, help="processes decoding and counting (default 1)"
    )
    c.add_argument(
        "--steps", type=int, nargs="*", default=None, help="also end step ranges at these steps"
    )
    c.add_argument(
        "--index",
        action="store_true",
        help="decode only the rows the n-gram index finds holding a digit (the same counts)",
    )
    _add_index_cache(c)
    options.add_progress(c)
    c.set_defaults(func=_cmd_count)
    e = s.add_parser(
        "evaluate",
        help="few-shot arithmetic through lm-eval on every evaluated checkpoint of a model",
    )
    options.add_suite(e)
    options.add_run(e, model_help="a model of the suite")
    e.add_argument("--out", required=True, help="the .parquet file of per-prompt results")
    options.add_device(e)
    options.add_dtype(e)
    e.add_argument("--batch-size", type=int, default=64)
    options.add_progress(e)
    options.add_checkpoints(e)
    e.set_defaults(func=_cmd_evaluate)
    f = s.add_parser(
        "first-seen",
        help="the training steps at which a text occurs (the n-gram index of the training order)",
    )
    options.add_suite(f)
    f.add_argument("--dataset", required=True, help="standard or deduped")
    f.add_argument(
        "text", help="the text, tokenized as given (a leading space belongs to the first token)"
    )
    f.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_index_cache(f)
    options.add_progress(f)
    f.set_defaults(func=_cmd_first_seen)
