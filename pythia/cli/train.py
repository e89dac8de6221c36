"""``pythia train`` and ``pythia deepspeed-config``.

pythia train --suite micro --model 1.8M [--dataset standard|deduped] [--resume] [--replace-stale]
             [--out DIR] [--threads N] [--max-steps K] [--state-every K] [--deepspeed]
             [--seed N [--vary both|data|weight]] [--device cpu|cuda] [--cpu-precision fp32|bf16]
             [--no-progress]
torchrun --nproc_per_node 2 -m pythia.cli train ...     data parallel (gloo on CPU, nccl on GPUs)
pythia deepspeed-config --suite pythia --model 410M [--world-size 64] [--dataset deduped]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from pythia.cli import options
from pythia.config import load_suite
from pythia.paths import SEED_VARIES
from pythia.train.deepspeed_config import deepspeed_config
from pythia.train.loop import TrainOptions, train


def _cmd_train(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    opts = TrainOptions(
        suite=args.suite,
        model=args.model,
        dataset=args.dataset,
        out=args.out,
        resume=args.resume,
        replace_stale=args.replace_stale,
        max_steps=args.max_steps,
        threads=args.threads,
        device=args.device,
        deepspeed=args.deepspeed,
        state_every=args.state_every,
        progress=False if args.no_progress else None,
        seed=args.seed,
        vary=args.vary,
        overrides={"training": {"cpu_precision": args.cpu_precision}} if args.cpu_precision else {},
    )
    summary = train(opts)
    if summary.get("finished"):
        logging.getLogger("pythia.train").info("finished: %s", json.dumps(summary, sort_keys=True))
    return 0


def _cmd_deepspeed_config(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    config = deepspeed_config(suite, args.model, args.world_size, args.device, args.dataset)
    print(json.dumps(config, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train one model of a suite on its pre-shuffled data (batch s at step s)"
    )
    options.add_suite(p)
    options.add_run(p, dataset_default="standard")
    p.add_argument(
        "--out",
        type=Path,
        help="run directory (default work/<suite>/models/<dataset>/<model>, pythia.paths.run_dir)",
    )
    options.add_resume(p)
    options.add_threads(p)
    p.add_argument(
        "--max-steps", type=int, help="stop after this many optimizer steps (state is saved there)"
    )
    p.add_argument(
        "--state-every", type=int, help="also save training state every K steps (for resumption)"
    )
    p.add_argument(
        "--deepspeed", action="store_true", help="train through deepspeed.initialize (ZeRO)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="a seed run (suite key seeds): seed N >= 1 trains work/<suite>/models/<dataset>-seed<N>/ "
        "(default 0: the baseline)",
    )
    p.add_argument(
        "--vary",
        choices=list(SEED_VARIES),
        default="both",
        help="what --seed changes: both (init and data order, <dataset>-seed<N>), data "
        "(<dataset>-data-seed<N>) or weight (<dataset>-weight-seed<N>); default both",
    )
    options.add_device(p)  # GPU: the model's precision on --dataset
    p.add_argument(
        "--cpu-precision",
        choices=["fp32", "bf16"],
        help="CPU training precision, overriding the suite's training.cpu_precision (default "
        "fp32): bf16 = bf16 compute with fp32 master weights and AdamW state; fast only on CPUs "
        "with native bf16 (AVX512-BF16/AMX). A bf16 run is another run (its own run digest): "
        "give it its own --out",
    )
    options.add_progress(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "deepspeed-config", help="print the DeepSpeed JSON config of a suite's model"
    )
    options.add_suite(p)
    # the dataset matters: precision can differ (Pythia 1B: standard bf16, deduped fp16)
    options.add_run(p, dataset_default="standard")
    p.add_argument("--world-size", type=int, default=1, help="data-parallel ranks (default 1)")
    options.add_device(p, default="cuda")  # cuda: the model's precision; cpu: fp32
    p.set_defaults(func=_cmd_deepspeed_config)
