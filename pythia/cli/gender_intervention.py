"""``pythia gender-intervention``: section 03, the gender intervention.

train      an intervened run (:mod:`pythia.train.intervention`)
map        the pronoun map of the suite's tokenizer (:mod:`pythia.data.pronouns`)
view       a training batch row before and after the swap
tasks      the offline lm-eval tasks (:func:`pythia.evaluate.bias.write_tasks`)
evaluate   the measures of a run's window checkpoints (:mod:`pythia.evaluate.gender_intervention`)
published  EleutherAI's published bias evaluations as a table (:mod:`pythia.published.bias`)
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from pythia import paths
from pythia.cli import options
from pythia.config import load_suite
from pythia.data.pronouns import suite_map, view_batch
from pythia.errors import require_device
from pythia.evaluate.bias import write_tasks
from pythia.evaluate.gender_intervention import evaluate_run
from pythia.published import bias as published
from pythia.train.intervention import train_intervention
from pythia.train.loop import TrainOptions

log = logging.getLogger("pythia.cli.gender_intervention")

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


# ------------------------------------------------------------------------------ commands


def _cmd_train(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    opts = TrainOptions(
        suite=args.suite,
        model=args.model,
        out=args.out,
        resume=args.resume,
        replace_stale=args.replace_stale,
        threads=args.threads,
        device=args.device,
        deepspeed=args.deepspeed,
        progress=False if args.no_progress else None,
    )
    summary = train_intervention(opts, args.variant)
    if summary.get("finished"):
        log.info("finished: %s", json.dumps(summary, sort_keys=True))
    return 0


def _cmd_map(args: argparse.Namespace) -> int:
    print(json.dumps(suite_map(args.suite).to_json(), indent=2, ensure_ascii=False))
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    v = view_batch(args.suite, args.step, args.row, args.dataset)
    print(
        f"step {v['step']} row {v['row']}: {v['swaps_in_row']} tokens swapped in the row, {v['swaps_in_batch']} "
        f"in the batch (pairs: {', '.join(v['pairs'])})"
    )
    print(f"positions: {v['positions']}")
    print("--- before\n" + v["before"] + "\n--- after\n" + v["after"])
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    print(write_tasks(args.out, suite, args.examples or suite.analysis.benchmarks_examples))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    suite = load_suite(args.suite)
    paths.parse_run(args.run)
    suite.model(args.model)
    if args.threads:
        torch.set_num_threads(args.threads)
    catalogue = options.catalogue(args, suite)
    require_device(args.device)
    evaluate_run(
        suite,
        catalogue,
        args.run,
        args.model,
        args.tasks,
        args.out,
        device=args.device,
        dtype=args.dtype,
        online=args.online,
        progress=not args.no_progress,
        validation=args.validation,
    )
    return 0


def _cmd_published(args: argparse.Namespace) -> int:
    for p in published.convert(args.reference, args.out):
        print(p)
    return 0


# ------------------------------------------------------------------------------ the parser


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gender-intervention", help="the gender intervention (section 03): train, evaluate, inspect"
    )
    s = options.subcommands(p, "subcommand")
    _add_train(s)
    q = s.add_parser("map", help="print the pronoun map of the suite's tokenizer")
    options.add_suite(q)
    q.set_defaults(func=_cmd_map)
    _add_view(s)
    _add_tasks(s)
    _add_evaluate(s)
    q = s.add_parser(
        "published",
        help="convert EleutherAI's published bias evals into the project's compact table",
    )
    q.add_argument(
        "--reference",
        type=Path,
        required=True,
        help="the pythia-evals folder (bias-evals/, pythia-v0/)",
    )
    q.add_argument("--out", type=Path, default=published.TABLE.parent)
    q.set_defaults(func=_cmd_published)


def _add_model(q: argparse.ArgumentParser) -> None:
    """``--model`` alone: the dataset is the suite's ``intervention.dataset`` or the run's."""
    q.add_argument("--model", required=True, help="model size, as the suite names it (e.g. 1.8M)")


def _add_train(s: argparse._SubParsersAction) -> None:
    q = s.add_parser(
        "train",
        help="train an intervened run: the baseline's saved state, then pronoun-swapped batches",
    )
    options.add_suite(q)
    _add_model(q)
    q.add_argument(
        "--variant",
        default="intervention",
        choices=list(paths.VARIANTS),
        help="the run variant (its window is the suite's intervention.runs.<variant>.fraction)",
    )
    q.add_argument(
        "--out",
        type=Path,
        help="run directory (default work/<suite>/models/<dataset>-<variant>/<model>)",
    )
    options.add_resume(q)
    options.add_threads(q)
    options.add_device(q)
    q.add_argument("--deepspeed", action="store_true", help="train through DeepSpeed (GPU)")
    options.add_progress(q)
    q.set_defaults(func=_cmd_train)


def _add_view(s: argparse._SubParsersAction) -> None:
    q = s.add_parser("view", help="a training batch row before and after the swap")
    options.add_suite(q)
    q.add_argument("--step", type=int, required=True)
    q.add_argument("--row", type=int, default=0)
    q.add_argument(
        "--dataset", choices=paths.DATASETS, help="default: the suite's intervention.dataset"
    )
    q.set_defaults(func=_cmd_view)


def _add_tasks(s: argparse._SubParsersAction) -> None:
    q = s.add_parser(
        "tasks",
        help="write the offline lm-eval tasks (CrowS-Pairs gender, WinoBias, the suite's "
        "in-corpus cloze, from its held-out documents) into a folder",
    )
    options.add_suite(q)
    q.add_argument(
        "--examples",
        type=int,
        help="cloze passages / 2 (default: the suite's analysis.benchmarks_examples)",
    )
    q.add_argument("--out", type=Path, required=True)
    q.set_defaults(func=_cmd_tasks)


def _add_evaluate(s: argparse._SubParsersAction) -> None:
    q = s.add_parser(
        "evaluate", help="bias, pronoun log-odds and validation loss of a run's window checkpoints"
    )
    options.add_suite(q)
    q.add_argument("--run", required=True, help="a dataset or <dataset>-<variant>")
    _add_model(q)
    q.add_argument(
        "--tasks",
        type=Path,
        help="the folder of `pythia gender-intervention tasks` (offline tasks)",
    )
    q.add_argument(
        "--online",
        action="store_true",
        help="lm-eval's hub tasks crows_pairs_english_gender and lambada_openai "
        "instead of the offline CrowS-Pairs and cloze",
    )
    q.add_argument("--out", type=Path, required=True, help="CSV of the measures")
    options.add_validation(q)
    options.add_device(q)
    options.add_dtype(q)
    options.add_threads(q)
    options.add_progress(q)
    options.add_checkpoints(q)
    q.set_defaults(func=_cmd_evaluate)
