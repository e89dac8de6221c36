"""The learning-rate schedule of GPT-NeoX v1.0 (``megatron/learning_rates.py``, ``AnnealingLR``).

What the GPT-NeoX v1.0 code does (EleutherAI/gpt-neox at tag v1.0, the version Pythia's README
names: ``AnnealingLR.get_lr`` with ``decay_style="cosine"``; the scheduler is built in
``megatron/training.py``, ``get_learning_rate_scheduler``), with t = the scheduler's iteration,
T = train_iters (= ``lr-decay-iters``, 143,000 for Pythia) and W = ``warmup * T``:

    W = warmup_fraction * T                                        # a float, never rounded
    t' = min(t, T - W)
    t <= W (and W > 0):  lr = peak * t' / W                       # linear warmup from 0
    otherwise:           lr = peak / 2 * (cos(pi * (t' - W) / T) + 1)
    lr = max(lr, min_lr)                                           # min_lr is a floor, not an offset

So the cosine's denominator is the *total* step count T (not T - W), the decay argument is
capped at (T - 2W) / T, and ``min_lr`` only clips from below: for Pythia (T = 143,000,
W = 1,430.0, min = 0.1 peak) the floor is reached at t ~ 115,000 and holds to the end. W stays
fractional: micro's 0.01 x 640 = 6.4 gives lr(6) = 6/6.4 peak and a cosine from t = 7 on
(truncating W to 6 would put the peak at t = 6). The expressions below evaluate in the same order
as GPT-NeoX's, so they give its floats bit for bit.

Which t an update uses: GPT-NeoX builds the scheduler with ``last_iter = 0`` (setting the lr for
t = 0) and DeepSpeed calls ``lr_scheduler.step()`` *after* each optimizer step that was applied.
So the update that consumes batch s (s = 0, 1, ...; it produces checkpoint ``step{s+1}``) runs at
``lr_at(s - k)``, k = the updates before s that fp16's dynamic loss scaler skipped (an overflow
skips the update and the scheduler step; the data moves on): the very first update has lr 0 when
W > 0, and an fp16 run lags the schedule by its skipped steps. The trainer counts k
(``pythia.train.precision``); bf16 and fp32 never skip, so there k = 0.
"""

from __future__ import annotations

import math

from pythia.config import ModelSpec, Suite


def lr_at(step: int, peak: float, min_lr: float, warmup_iters: float, train_iters: int) -> float:
    """Learning rate of GPT-NeoX v1.0 AnnealingLR (cosine) at scheduler iteration ``step``
    (``warmup_iters`` may be fractional, as GPT-NeoX keeps it)."""
    if train_iters <= 0:
        raise ValueError("train_iters must be positive")
    t = min(step, train_iters - warmup_iters)
    if warmup_iters > 0 and step <= warmup_iters:
        return float(peak) * t / warmup_iters
    t = t - warmup_iters
    lr = peak / 2.0 * (math.cos(math.pi * t / train_iters) + 1)
    return max(lr, min_lr)


def suite_lr(suite: Suite, spec: ModelSpec, step: int) -> float:
    """``lr_at`` with a suite's warmup and length and a model's peak and floor."""
    t = suite.training
    return lr_at(step, spec.peak_lr, spec.min_lr, t.warmup_iters, t.train_iters)


def floor_step(peak: float, min_lr: float, warmup_iters: float, train_iters: int) -> int:
    """First step at which the schedule sits on the ``min_lr`` floor (Pythia: ~115k)."""
    if min_lr <= 0:
        return train_iters
    # peak/2 (cos(pi x / T) + 1) = min  <=>  x = T/pi * acos(2 min / peak - 1)
    x = train_iters / math.pi * math.acos(2.0 * min_lr / peak - 1.0)
    s = max(math.floor(warmup_iters) + 1, math.floor(x + warmup_iters) - 2)
    while s < train_iters and lr_at(s, peak, min_lr, warmup_iters, train_iters) > min_lr:
        s += 1
    return s
