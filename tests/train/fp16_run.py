"""Train a suite model in fp16 with forced gradient overflows, in its own process (the tests'
driver for the loss scaler's skipped steps; DeepSpeed needs a process group of its own).

    python -m tests.train.fp16_run --suite tiny.yaml --model t1 --out DIR --overflow 1 [--deepspeed]
        [--device cpu|cuda] [--max-steps K] [--resume]

On CPU the trainer always runs fp32, and DeepSpeed refuses fp16 where oneDNN has no fp16
kernels; ``--device cpu --deepspeed`` lifts both (the run's precision is the model's, fp16, and
DeepSpeed's capability check says yes): everything else, the ZeRO-1 fp16 optimizer with its
fp32 master weights and dynamic loss scaler, runs as on a GPU, only slower. ``--overflow B`` makes
every gradient of the update on batch B infinite, which the loss scaler must skip.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pythia.config import Precision
from pythia.train import deepspeed_config, engine, loop


def fp16_everywhere() -> None:
    """Let a CPU run train in the model's precision (fp16) as a GPU run would."""

    def model_precision(spec, dataset, device, cpu=None):
        return spec.precision_for(dataset)

    engine.training_precision = model_precision
    deepspeed_config.training_precision = model_precision
    from deepspeed.accelerator import get_accelerator

    get_accelerator().is_fp16_supported = lambda: True


def force_overflow(trainer: loop.Trainer, batches: set[int]) -> None:
    """Infinite gradients for the updates on ``batches`` (the trainer's step is the batch index
    while it trains on that batch)."""
    for p in trainer.model.parameters():
        p.register_hook(
            lambda g: torch.full_like(g, float("inf")) if trainer.step in batches else g
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--overflow", type=int, nargs="*", default=[])
    ap.add_argument("--deepspeed", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    if args.device == "cpu":
        fp16_everywhere()
    opts = loop.TrainOptions(
        suite=args.suite,
        model=args.model,
        out=args.out,
        device=args.device,
        threads=1,
        deepspeed=args.deepspeed,
        max_steps=args.max_steps,
        resume=args.resume,
        progress=False,
    )
    trainer = loop.Trainer(opts)
    assert trainer.precision is Precision.fp16, trainer.precision
    if not args.deepspeed and args.device == "cpu":
        raise SystemExit(
            "the plain loop's fp16 (autocast) runs on CUDA; on CPU test its loss scaler in-process"
        )
    force_overflow(trainer, set(args.overflow))
    summary = trainer.run()
    print(
        json.dumps(
            {
                **{k: v for k, v in summary.items() if k in ("step", "finished")},
                "skipped_steps": trainer.skipped_steps,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
