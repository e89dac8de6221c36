"""Pythia's checkpoint steps and GPT-NeoX's learning-rate schedule."""

import math

import pytest

from pythia.config import load_suite
from pythia.train.schedule import floor_step, lr_at, suite_lr


def test_pythia_checkpoint_steps_are_the_154_released_revisions():
    suite = load_suite("pythia")
    steps = suite.checkpoint_steps()
    expected = [0] + [2**i for i in range(10)] + list(range(1000, 143001, 1000))
    assert len(steps) == 154
    assert steps == expected
    assert suite.state_steps() == [113000, 133000, 143000]  # 21 %, 7 % before the end, and the end


PEAK, MIN, W, T = 1e-3, 1e-4, 1430, 143000


def test_warmup_is_linear_from_zero():
    assert lr_at(0, PEAK, MIN, W, T) == 0.0  # GPT-NeoX: the first update runs at lr 0
    assert lr_at(715, PEAK, MIN, W, T) == pytest.approx(PEAK / 2, rel=1e-12)
    assert lr_at(1, PEAK, MIN, W, T) == pytest.approx(PEAK / W, rel=1e-12)
    assert lr_at(W, PEAK, MIN, W, T) == pytest.approx(PEAK, rel=1e-12)  # peak at the end of warmup


def test_cosine_uses_total_steps_as_denominator():
    # half-way through the cosine measured in *total* steps: cos(pi/2) = 0 -> peak / 2
    assert lr_at(W + T // 2, PEAK, MIN, W, T) == pytest.approx(PEAK / 2, rel=1e-12)
    t = 30000
    assert lr_at(t, PEAK, MIN, W, T) == pytest.approx(
        PEAK / 2 * (math.cos(math.pi * (t - W) / T) + 1), rel=1e-12
    )
    # not (t - W) / (T - W):
    assert lr_at(t, PEAK, MIN, W, T) != pytest.approx(
        PEAK / 2 * (math.cos(math.pi * (t - W) / (T - W)) + 1), rel=1e-6
    )


def test_min_lr_is_a_floor_reached_near_115k():
    assert lr_at(130000, PEAK, MIN, W, T) == MIN
    assert lr_at(T, PEAK, MIN, W, T) == MIN
    s = floor_step(PEAK, MIN, W, T)
    assert 114000 < s < 116500
    assert lr_at(s - 1, PEAK, MIN, W, T) > MIN and lr_at(s, PEAK, MIN, W, T) == MIN
    # a floor, not an offset: above the floor the value is the bare cosine
    t = 100000
    assert lr_at(t, PEAK, MIN, W, T) == pytest.approx(
        PEAK / 2 * (math.cos(math.pi * (t - W) / T) + 1), rel=1e-12
    )


def test_cosine_argument_is_capped_at_total_minus_warmup():
    # GPT-NeoX: t' = min(t, T - W); visible with min_lr = 0 at the last step
    got = lr_at(T, PEAK, 0.0, W, T)
    assert got == pytest.approx(PEAK / 2 * (math.cos(math.pi * (T - 2 * W) / T) + 1), rel=1e-12)
    assert got == lr_at(T - W, PEAK, 0.0, W, T)


def test_suite_lr_uses_the_model_and_suite():
    suite = load_suite("pythia")
    spec = suite.model("160M")
    assert suite.training.warmup_iters == 1430
    assert suite_lr(suite, spec, 1430) == pytest.approx(6e-4)
    assert suite_lr(suite, spec, 143000) == pytest.approx(6e-5)


def _neox_lr(t, peak, min_lr, warmup, total):
    """GPT-NeoX v1.0 AnnealingLR (cosine), written out from the formula in schedule.py's docstring."""
    t_capped = min(t, total - warmup)
    if warmup > 0 and t <= warmup:
        return peak * t_capped / warmup
    return max(peak / 2 * (math.cos(math.pi * (t_capped - warmup) / total) + 1), min_lr)


def test_fractional_warmup_is_exact_on_the_micro_suite():
    suite = load_suite("micro")
    spec = suite.model("1.8M")
    peak, floor, total = spec.peak_lr, spec.min_lr, suite.training.train_iters
    w = 0.01 * 640  # 6.4: GPT-NeoX never rounds warmup * train_iters
    assert suite.training.warmup_iters == w
    for s in (0, 1, 3, 6):  # warmup: t / 6.4 of the peak; step 6 is still below the peak
        assert suite_lr(suite, spec, s) == pytest.approx(peak * s / w, rel=1e-15)
    assert suite_lr(suite, spec, 6) == pytest.approx(
        0.9375 * peak, rel=1e-15
    )  # truncating W to 6 gave the peak
    for s in (7, 8, 100, 320, 500, 633, 634, 640):  # cosine from t - 6.4, over the total 640 steps
        want = max(peak / 2 * (math.cos(math.pi * (min(s, total - w) - w) / total) + 1), floor)
        assert suite_lr(suite, spec, s) == pytest.approx(want, rel=1e-15), s
        assert suite_lr(suite, spec, s) == _neox_lr(s, peak, floor, w, total)
    assert suite_lr(suite, spec, 7) == pytest.approx(
        peak / 2 * (math.cos(math.pi * 0.6 / 640) + 1), rel=1e-15
    )


@pytest.mark.parametrize(
    "warmup,total", [(2.4000000000000004, 24), (6.4, 640), (0.5, 10), (1430.0, 143000)]
)
def test_fractional_warmup_at_every_step_and_the_cap(warmup, total):
    for s in range(0, total + 1, max(1, total // 500)):
        assert lr_at(s, PEAK, 0.0, warmup, total) == _neox_lr(s, PEAK, 0.0, warmup, total)
    # the cosine's argument stops at T - W (visible with no floor): the last steps share one lr
    assert lr_at(total, PEAK, 0.0, warmup, total) == pytest.approx(
        PEAK / 2 * (math.cos(math.pi * (total - 2 * warmup) / total) + 1), rel=1e-12
    )
    s = floor_step(PEAK, MIN, warmup, total)
    assert lr_at(s, PEAK, MIN, warmup, total) == MIN and (
        s == total or lr_at(s - 1, PEAK, MIN, warmup, total) > MIN
    )
