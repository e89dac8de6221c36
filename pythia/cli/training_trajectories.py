"""``pythia training-trajectories``: section 06, per-token loss trajectories, hallucination-like
sequences and in-context accuracy (:mod:`pythia.evaluate.training_trajectories`), each step of
``rules/training_trajectories.smk``:

    tasks     --suite S --out DIR                  lm-eval YAML + JSONL of the multiple-choice ICL tasks
    generate  --suite S --dataset D --out FILE      contrastive decoding of hallucination-like sequences
    evaluate  --suite S --dataset D --model M --hallucination FILE --tasks DIR --out-dir DIR
              [--validation FILE]                  per-token losses, sequence losses and ICL at every checkpoint
"""

from __future__ import annotations

import argparse

from pythia.cli import options
from pythia.config import load_suite
from pythia.errors import UsageError, require_device
from pythia.evaluate import training_trajectories as trajectories


def _check_device(args: argparse.Namespace) -> None:
    """``--threads`` set (at least 1), ``--device`` present, a dtype the device runs."""
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {args.threads}")
        import torch  # heavy: only the commands that run a model need it

        torch.set_num_threads(args.threads)
    require_device(args.device)
    if args.device == "cpu" and args.dtype == "float16":
        raise UsageError("--dtype float16 is for CUDA; on CPU use float32 or bfloat16")


def _cmd_tasks(args: argparse.Namespace) -> int:
    names = trajectories.write_tasks(load_suite(args.suite), args.out)
    print(f"{len(names)} lm-eval tasks in {args.out}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    _check_device(args)
    suite = load_suite(args.suite)
    out = trajectories.generate(
        suite,
        options.catalogue(args, suite),
        args.dataset,
        args.out,
        args.small,
        args.large,
        args.device,
        args.dtype,
    )
    print(f"wrote {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _check_device(args)
    suite = load_suite(args.suite)
    suite.model(args.model)
    out = trajectories.evaluate(
        suite,
        options.catalogue(args, suite),
        args.dataset,
        args.model,
        args.hallucination,
        args.tasks,
        args.out_dir,
        args.device,
        args.dtype,
        args.batch_size,
        progress=not args.no_progress,
        validation=args.validation,
    )
    print(f"wrote {out}/losses.npz, {out}/icl.csv")
    return 0


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """Where the checkpoints come from and how they run (``generate`` and ``evaluate``)."""
    options.add_device(p)
    options.add_threads(p)
    options.add_dtype(p)  # bfloat16/float16 on CUDA; scores are accumulated in float32
    options.add_checkpoints(p)


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="contrastive decoding of hallucination-like sequences")
    options.add_suite(p)
    p.add_argument("--dataset", required=True, choices=options.DATASETS)
    p.add_argument("--small", default=None, help="the small model (default: the suite's smallest)")
    p.add_argument("--large", default=None, help="the large model (default: the suite's largest)")
    p.add_argument("--out", required=True, help=".npz file to write")
    _add_model_options(p)
    p.set_defaults(func=_cmd_generate)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="per-token losses, sequence losses and ICL at every checkpoint of a model"
    )
    options.add_suite(p)
    options.add_run(p)
    p.add_argument("--hallucination", required=True, help="the .npz written by `generate`")
    p.add_argument("--tasks", required=True, help="the folder written by `tasks`")
    p.add_argument("--out-dir", required=True)
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="sequences per forward pass (default: ~8k tokens)",
    )
    options.add_validation(p)
    options.add_progress(p)
    _add_model_options(p)
    p.set_defaults(func=_cmd_evaluate)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "training-trajectories",
        help="section 06: per-token loss trajectories, hallucination-like sequences, ICL",
    )
    cmds = options.subcommands(p, "subcommand")
    t = cmds.add_parser("tasks", help="write the multiple-choice in-context lm-eval tasks")
    options.add_suite(t)
    t.add_argument("--out", required=True, help="folder for the YAML and JSONL files")
    t.set_defaults(func=_cmd_tasks)
    _add_generate(cmds)
    _add_evaluate(cmds)
