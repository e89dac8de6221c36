"""``pythia memorization``: section 04, (k, l)-memorization scans of the training sequences
(:mod:`pythia.evaluate.memorization`).

    pythia memorization scan --suite S --dataset D --model M [--steps N ...] [--prompt K]
        [--continuation L] [--score-stride N] [--data-start N] [--data-stop N] [--data-stride N]
        [--device cpu|cuda] [--dtype T] [--duplicates FILE] [--out FILE] ...
    pythia memorization duplicates --suite S --dataset D --model M [--per-bin N] [--seed N] ...
    pythia memorization released --suite S --dataset D --model M [--source HUB_ID|PATH]
        [--cache-dir DIR] [--allow-missing-split] [--out FILE]

(``pythia bench memorization`` times the scan against ``model.generate``.)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from pythia.cli import options
from pythia.config import load_suite
from pythia.data.batches import open_sequences
from pythia.errors import require_device
from pythia.evaluate import memorization_released as released
from pythia.evaluate.memorization import TF_PER_BIN, duplicates_model, scan_model
from pythia.evaluate.memorization_files import duplicates_file, read_scan, scan_file, summary_file
from pythia.evaluate.memorization_kernels import ScanOptions


def _start(args: argparse.Namespace) -> None:
    """What both commands do first: log lines, the device checked, torch's threads."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    require_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)


def _cmd_scan(args: argparse.Namespace) -> int:
    scan_options = ScanOptions(args.prompt, args.continuation, args.score_stride)
    _start(args)
    suite = load_suite(args.suite)
    cat = options.catalogue(args, suite)
    rec = scan_model(
        suite,
        args.dataset,
        args.model,
        cat,
        scan_options,
        data_start=args.data_start,
        data_stop=args.data_stop,
        data_stride=args.data_stride,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        out=args.out,
        progress=not args.no_progress,
    )
    for c in rec["checkpoints"]:
        print(f"{c['checkpoint']}: {c['sequences']} sequences, {c['memorized']} memorized")
    print(f"wrote {args.out or summary_file(suite.name, args.dataset, args.model)}")
    if args.duplicates:  # in this process: the model classes are imported already (seconds per job)
        dup = duplicates_model(
            suite,
            args.dataset,
            args.model,
            cat,
            scan_options,
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            scan=args.out,
            out=args.duplicates,
        )
        done = dup.get("skipped") or f"{dup['teacher_forced']} teacher-forced"
        print(f"wrote {args.duplicates} ({done})")
    return 0


def _cmd_duplicates(args: argparse.Namespace) -> int:
    scan_options = ScanOptions(args.prompt, args.continuation)
    _start(args)
    suite = load_suite(args.suite)
    rec = duplicates_model(
        suite,
        args.dataset,
        args.model,
        options.catalogue(args, suite),
        scan_options,
        per_bin=args.per_bin,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        scan=args.scan,
        out=args.out,
    )
    if rec.get("skipped"):
        print(f"{args.dataset}/{args.model}: skipped ({rec['skipped']})")
    else:
        print(
            f"{args.dataset}/{args.model} step {rec['step']}: {rec['rows']} sequences by duplicate count "
            f"{rec['per_bin_rows']}, {rec['teacher_forced']} teacher-forced, {rec['runs_differing']} runs differing "
            f"from the scan's"
        )
    print(f"wrote {args.out or duplicates_file(suite.name, args.dataset, args.model)}")
    return 0


def _load_released(args: argparse.Namespace) -> released.ReleasedSet:
    """The released set of the asked model, or (``--allow-missing-split``) an absent one."""
    try:
        return released.load_released(
            args.source, args.model, args.dataset, cache_dir=args.cache_dir
        )
    except released.SplitMissing as e:
        if not args.allow_missing_split:
            raise
        return released.absent_set(args.source, args.model, args.dataset, str(e))


def _cmd_released(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    suite.model(args.model)  # an unknown model fails here, naming the suite's
    step = suite.training.train_iters  # the release is of the fully trained model
    out = args.out or released.released_file(suite.name, args.dataset, args.model)
    rel = _load_released(args)
    rows = None if rel.absent else open_sequences(suite, args.dataset)
    meta = released.write_released(out, rel, rows, step)
    if rel.absent:
        print(f"{args.dataset}/{args.model}: no released set ({rel.absent})")
    else:
        print(
            f"{rel.split} from {rel.origin['where']}: {meta['rows']} memorized sequences, "
            f"{meta['in_data']} in our data; tokens of {meta['tokens_differ']} of "
            f"{meta['tokens_checked']} differ from our rows"
        )
        scan = scan_file(suite.name, args.dataset, args.model, step)
        if scan.is_file():
            df = read_scan(scan)
            a = released.agreement(df["seq"], df.loc[df["memorized"], "seq"], rel.indices)
            print(
                f"against our scan of step {step} ({scan}): {a['rows_compared']} rows, ours "
                f"{a['flagged_ours']}, released {a['flagged_released']}, both {a['both']}, only ours "
                f"{a['only_ours']}, only released {a['only_released']}"
            )
    print(f"wrote {out}")
    return 0


def _add_released(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "released",
        help="load Pythia's released memorized sequences of a model (EleutherAI/pythia-memorized-evals "
        "or a local copy), check them against our data and compare them with our scan",
    )
    options.add_suite(r)
    options.add_run(r, model_help="a model of the suite (the release has 70M-12B)")
    r.add_argument(
        "--source",
        default=released.HUB_DATASET,
        help=f"a hub dataset id [@revision] (default {released.HUB_DATASET}) or a local folder or "
        "Parquet/CSV file in its shape (index, tokens)",
    )
    r.add_argument(
        "--cache-dir", type=Path, default=None, help="hub download cache (default: the hub's)"
    )
    r.add_argument(
        "--allow-missing-split",
        action="store_true",
        help="a model the source has no split for gets an empty set saying so (the workflow's "
        "14M and 31M), instead of an error",
    )
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Parquet file (default work/<suite>/memorization/<dataset>/<model>/released.parquet)",
    )
    r.set_defaults(func=_cmd_released)


def _add_scan_target(p: argparse.ArgumentParser) -> None:
    """The options ``scan`` and ``duplicates`` share: which run, which checkpoints, k and l, and
    how the model runs."""
    options.add_suite(p)
    options.add_run(p, model_help="a model of the suite")
    options.add_checkpoints(p)
    p.add_argument("--prompt", type=int, default=32, help="k: prompt tokens (default 32)")
    p.add_argument(
        "--continuation", type=int, default=32, help="l: tokens to reproduce (default 32)"
    )
    options.add_device(p)
    # the default (None) is float32; a GPU scan may ask for bf16/fp16, as Pythia's ran in fp16
    options.add_dtype(p, default=None)
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="sequences per forward pass (default: the engine's)",
    )
    options.add_threads(p)


def _add_scan(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "scan",
        help="memorized flags, match runs and scores of every sequence each checkpoint has seen",
    )
    _add_scan_target(s)
    s.add_argument(
        "--score-stride",
        type=int,
        default=1,
        help="fractional score of every n-th sequence (default 1: all; 0: flags and match runs only)",
    )
    s.add_argument(
        "--data-start", type=int, default=None, help="first data step to scan (default 0)"
    )
    s.add_argument(
        "--data-stop",
        type=int,
        default=None,
        help="data step to stop before (default: the checkpoint's step, i.e. every sequence it has seen)",
    )
    s.add_argument(
        "--data-stride", type=int, default=1, help="scan every n-th data step (default 1)"
    )
    s.add_argument(
        "--out",
        type=Path,
        default=None,
        help="summary JSON (default work/<suite>/memorization/<dataset>/<model>/scan.json; "
        "step<N>.parquet files go beside it)",
    )
    s.add_argument(
        "--duplicates",
        type=Path,
        default=None,
        help="then also write the final checkpoint's duplicate counts and teacher-forced accuracies "
        "here (what `pythia memorization duplicates` writes, with its defaults)",
    )
    options.add_progress(s)
    s.set_defaults(func=_cmd_scan)


def _add_duplicates(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "duplicates",
        help="duplicate count, leading run and teacher-forced accuracy of each "
        "scanned sequence's memorization window at the final checkpoint",
    )
    _add_scan_target(d)
    d.add_argument(
        "--per-bin",
        type=int,
        default=TF_PER_BIN,
        help=f"teacher-forced rows per duplicate-count bin, a seeded sample beyond (default {TF_PER_BIN})",
    )
    d.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    d.add_argument(
        "--scan",
        type=Path,
        default=None,
        help="the scan's summary JSON (default work/<suite>/memorization/<dataset>/<model>/scan.json)",
    )
    d.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Parquet file (default work/<suite>/memorization/<dataset>/<model>/duplicates.parquet)",
    )
    d.set_defaults(func=_cmd_duplicates)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "memorization", help="(k, l)-memorization scans of the training sequences (section 04)"
    )
    msub = options.subcommands(p, "subcommand")
    _add_scan(msub)
    _add_duplicates(msub)
    _add_released(msub)
