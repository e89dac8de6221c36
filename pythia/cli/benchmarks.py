"""``pythia benchmarks``: section 02, lm-eval tasks over every checkpoint, published numbers
(:mod:`pythia.evaluate.benchmarks`, :mod:`pythia.published.evals`).

    pythia benchmarks tasks --suite S [--tasks offline|paper|NAME|YAML ...] [--examples N] [--out DIR]
    pythia benchmarks evaluate --suite S --model M --dataset D [--run D-seedN] --tasks-json FILE --out CSV ...
    pythia benchmarks published --source DIR [--out CSV]

(``pythia bench harness`` times the adapter against lm-eval's command line.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pythia import paths
from pythia.cli import options
from pythia.config import load_suite
from pythia.errors import UsageError, require_device
from pythia.evaluate import benchmarks
from pythia.published import evals


def _set_threads(n: int | None) -> None:
    """``--threads``: torch's CPU threads (unset or 0: torch's own)."""
    if n:
        import torch  # heavy: only a command that runs a model needs it

        torch.set_num_threads(n)


def _cmd_tasks(args: argparse.Namespace) -> int:
    load_suite(args.suite)
    m = benchmarks.write_tasks(args.suite, args.tasks, args.out, args.examples)
    print(json.dumps({t: m["offline"].get(t, {}).get("examples", "lm-eval") for t in m["tasks"]}))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    require_device(args.device)
    run = args.dataset
    if args.run:
        if paths.parse_run(args.run)[0] != args.dataset or paths.parse_seed(args.run) is None:
            raise UsageError(
                f"--run {args.run} is not a seed run of --dataset {args.dataset}; "
                f"give e.g. --run {args.dataset}-seed1"
            )
        run = args.run
    cat = options.catalogue(args)
    cat.check_model(args.model)
    manifest = benchmarks.read_manifest(args.tasks_json)
    df = benchmarks.evaluate_run(
        cat,
        run,
        args.model,
        manifest,
        num_fewshot=args.num_fewshot,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        samples_dir=args.samples,
        progress=not args.no_progress,
    )
    benchmarks.write_csv(df, args.out)
    print(f"{len(df)} rows -> {args.out}")
    return 0


def _cmd_published(args: argparse.Namespace) -> int:
    path = evals.write(args.source, args.out or evals.TABLE)
    print(f"{len(evals.load(path))} rows -> {path}")
    return 0


def _add_tasks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="write the offline task YAMLs and data, check every task")
    options.add_suite(p)
    p.add_argument(
        "--tasks",
        nargs="+",
        default=["offline"],
        help="lm-eval task names, task YAMLs, 'offline', 'paper'",
    )
    p.add_argument(
        "--examples",
        type=int,
        default=benchmarks.DEFAULT_EXAMPLES,
        help="examples per offline multiple-choice task (the cloze: twice as many)",
    )
    p.add_argument("--out", type=Path, help="task folder (default work/<suite>/benchmarks/tasks)")
    p.set_defaults(func=_cmd_tasks)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="the tasks on every selected checkpoint of one model and dataset"
    )
    options.add_suite(p)
    options.add_run(p)
    p.add_argument(
        "--run",
        help="a seed run of --dataset (suite key seeds; the hub's PolyPythias runs), e.g. "
        "standard-seed1: its checkpoints instead of the baseline's",
    )
    p.add_argument(
        "--tasks-json",
        type=Path,
        required=True,
        help="tasks.json written by `pythia benchmarks tasks`",
    )
    p.add_argument("--num-fewshot", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, required=True, help="the tidy CSV")
    p.add_argument(
        "--samples", type=Path, help="folder for lm-eval's per-sample logs of the final checkpoint"
    )
    options.add_device(p)
    options.add_dtype(p, default=None)  # None: float32, as the checkpoint loads by default
    p.add_argument("--batch-size", type=int, default=32)
    options.add_threads(p)
    options.add_progress(p)
    options.add_checkpoints(p)
    p.set_defaults(func=_cmd_evaluate)


def _add_published(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "published", help="regenerate the committed table of Pythia's published results"
    )
    p.add_argument(
        "--source",
        type=Path,
        required=True,
        help="the pythia-v1 folder of EleutherAI/pythia's evals",
    )
    p.add_argument("--out", type=Path, help="default: pythia/published/tables/pythia_evals.csv")
    p.set_defaults(func=_cmd_published)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmarks", help="section 02: lm-eval tasks over every checkpoint, published numbers"
    )
    bsub = options.subcommands(p, "subcommand")
    _add_tasks(bsub)
    _add_evaluate(bsub)
    _add_published(bsub)
