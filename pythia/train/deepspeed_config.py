"""The DeepSpeed configuration of a suite, as ``pythia train --deepspeed`` uses it.

Batch arithmetic: ``train_batch_size`` = the suite's global batch (Pythia: 1024) =
``train_micro_batch_size_per_gpu`` x ``gradient_accumulation_steps`` x world size. The
micro batch is the suite's ``micro_batch`` (Pythia: 16), lowered to the largest divisor of
the per-rank batch when it does not fit.

Optimizer and schedule are not in the config: the trainer hands DeepSpeed its own
``torch.optim.AdamW`` (Pythia's weight-decay groups; fused kernel) and sets GPT-NeoX v1.0's
AnnealingLR value on every step, so the plain loop and the DeepSpeed engine run the same
update rule. ``zero_allow_untested_optimizer`` lets ZeRO wrap that client optimizer (it is
needed because DS_BUILD_OPS=0 installs no fused DeepSpeed Adam).

Precision: on GPUs the model's precision on the run's dataset (``ModelSpec.precision_for``:
bf16 -> ``bf16``, fp16 -> ``fp16`` with dynamic loss scaling as in Pythia's configs: initial
scale 2^12, window 1000, hysteresis 2, min 1); on CPU fp32 (DeepSpeed's fp16 does not run on
CPU). When the fp16 scaler skips a step, the trainer holds the LR schedule back as DeepSpeed
does with its scheduler (``precision.py``).
"""

from __future__ import annotations

from pythia.config import ModelSpec, Precision, Suite
from pythia.errors import UsageError
from pythia.train.precision import (
    HYSTERESIS,
    INITIAL_SCALE_POWER,
    LOSS_SCALE_WINDOW,
    MIN_LOSS_SCALE,
    training_precision,
)


def micro_and_accum(suite: Suite, world_size: int) -> tuple[int, int]:
    """(micro batch per rank, accumulation steps) with micro * accum * world = global batch."""
    t = suite.training
    if t.global_batch % world_size:
        raise UsageError(
            f"global batch {t.global_batch} is not divisible by world size {world_size}; use a world size that divides it"
        )
    per_rank = t.global_batch // world_size
    micro = min(t.micro_batch or per_rank, per_rank)
    while per_rank % micro:
        micro -= 1
    return micro, per_rank // micro


def deepspeed_config(
    suite: Suite,
    spec: ModelSpec | str,
    world_size: int = 1,
    device: str = "cuda",
    dataset: str = "standard",
) -> dict:
    """The DeepSpeed JSON config for one model of a suite, trained on ``dataset``, on ``world_size`` ranks."""
    if isinstance(spec, str):
        spec = suite.model(spec)
    t = suite.training
    micro, accum = micro_and_accum(suite, world_size)
    gpu = device.startswith("cuda")
    precision = training_precision(spec, dataset, device)
    zero_stage = t.zero_stage
    # ZeRO's flat buffers are this many elements: more than the model is wasted memory
    # (on CPU, allocating 2 GB buckets for a 1M-parameter model dominates the step).
    bucket = int(min(500_000_000, max(suite.total_params(spec), 1_000_000)))
    cfg: dict = {
        "train_batch_size": t.global_batch,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": t.grad_clip,
        "zero_optimization": {
            "stage": zero_stage,
            "allgather_partitions": True,
            "allgather_bucket_size": bucket,
            "overlap_comm": gpu,
            "reduce_scatter": True,
            "reduce_bucket_size": bucket,
            "contiguous_gradients": True,
        },
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": precision is Precision.bf16},
        "fp16": {
            "enabled": precision is Precision.fp16,
            "loss_scale": 0,
            "loss_scale_window": LOSS_SCALE_WINDOW,
            "hysteresis": HYSTERESIS,
            "min_loss_scale": MIN_LOSS_SCALE,
            "initial_scale_power": INITIAL_SCALE_POWER,
        },
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if not gpu:
        cfg["zero_optimization"]["overlap_comm"] = False
    return cfg
