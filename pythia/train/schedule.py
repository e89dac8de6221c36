"""The learning-rate schedule of GPT-NeoX (``megatron/learning_rates.py``, ``AnnealingLR``).

What the GPT-NeoX code does (read from EleutherAI/gpt-neox ``megatron/learning_rates.py``,
``AnnealingLR.get_lr`` with ``decay_style="cosine"``), with t = the scheduler's iteration,
W = warmup_iters and T = train_iters:

    t' = min(t, T - W)
    t <= W (and W > 0):  lr = peak * t' / W                       # linear warmup from 0
    otherwise:           lr = peak / 2 * (cos(pi * (t' - W) / T) + 1)
    lr = max(lr, min_lr)                                           # min_lr is a floor, not an offset

So the cosine's denominator is the *total* step count T (not T - W), the decay argument is
capped at (T - 2W) / T, and ``min_lr`` only clips from below: for Pythia (T = 143,000,
W = 1,430, min = 0.1 peak) the floor is reached at t ~ 115,000 and holds to the end.

Which t an update uses: GPT-NeoX builds the scheduler with ``last_iter = 0`` (setting the lr for
t = 0) and DeepSpeed calls ``lr_scheduler.step()`` *after* each optimizer step. So the update
that consumes batch s (s = 0, 1, ...; it produces checkpoint ``step{s+1}``) runs at
``lr_at(s)``: the very first update has lr 0 when W > 0. This module keeps that convention.
"""

from __future__ import annotations

import math

from pythia.config import ModelSpec, Suite


def lr_at(step: int, peak: float, min_lr: float, warmup_iters: int, train_iters: int) -> float:
    """Learning rate of GPT-NeoX AnnealingLR (cosine) at scheduler iteration ``step``."""
    if train_iters <= 0:
        raise ValueError("train_iters must be positive")
    t = min(step, train_iters - warmup_iters)
    if warmup_iters > 0 and step <= warmup_iters:
        return float(peak) * t / warmup_iters
    t -= warmup_iters
    lr = peak / 2.0 * (math.cos(math.pi * t / train_iters) + 1.0)
    return max(lr, min_lr)


def suite_lr(suite: Suite, spec: ModelSpec, step: int) -> float:
    """``lr_at`` with a suite's warmup and length and a model's peak and floor."""
    t = suite.training
    return lr_at(step, spec.peak_lr, spec.min_lr, t.warmup_iters, t.train_iters)


def floor_step(peak: float, min_lr: float, warmup_iters: int, train_iters: int) -> int:
    """First step at which the schedule sits on the ``min_lr`` floor (Pythia: ~115k)."""
    if min_lr <= 0:
        return train_iters
    # peak/2 (cos(pi x / T) + 1) = min  <=>  x = T/pi * acos(2 min / peak - 1)
    x = train_iters / math.pi * math.acos(2.0 * min_lr / peak - 1.0)
    s = max(warmup_iters + 1, int(math.floor(x + warmup_iters)) - 2)
    while s < train_iters and lr_at(s, peak, min_lr, warmup_iters, train_iters) > min_lr:
        s += 1
    return s
