"""``pythia bench train`` on the tiny suite (fast), and the GPU MFU check (skipped on CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from pythia.bench import flops_per_token, matmul_peak
from pythia.config import load_suite

from .helpers import run_cli


def test_flops_formula_counts_blocks_output_layer_and_attention():
    suite = load_suite("micro")
    spec = suite.model("1.8M")
    d, L, T, V = 128, 4, 256, 4096
    assert (
        flops_per_token(suite, spec)
        == 6 * (L * (12 * d * d + 13 * d) + 2 * d + V * d) + 12 * L * d * T
    )


def test_matmul_peak_is_positive():
    p = matmul_peak(1, n=256, repeats=2)
    assert p["flops_per_s"] > 1e8 and p["threads"] == 1


def test_bench_cli_writes_json_comparing_with_the_trainer(tiny, tmp_path):
    _, path, env = tiny
    out = tmp_path / "bench.json"
    proc = run_cli(
        [
            "bench",
            "train",
            "--suite",
            str(path),
            "--model",
            "t1",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--rounds",
            "1",
            "--matmul-n",
            "256",
            "--out",
            str(out),
        ],
        env,
    )
    res = json.loads(out.read_text())
    m = res["models"][0]
    assert m["data"] == "get_batch" and m["model"] == "t1"
    for key in ("ours", "hf_trainer"):
        assert m[key]["tokens_per_s"] > 0 and 0 < m[key]["mfu"] < 1.5
        assert m[key]["timed_steps"] == 2
    assert m["ours_over_trainer"] == pytest.approx(
        m["ours"]["tokens_per_s"] / m["hf_trainer"]["tokens_per_s"]
    )
    assert "ours/Trainer" in proc.stdout


# Issue 15's goal for 160M bf16 is 45% of the measured bf16 matmul peak. The eager trainer
# (autocast over fp32 weights, SDPA flash attention, fp32 cross-entropy over the 50,304 logits)
# measured 29-31% at micro batch 16 on an H100 (torch 2.11, transformers 5.17; 25% at micro
# batch 8): a third of its CUDA time goes to dtype casts, the fp32 softmax over the logits and
# rotary concatenations rather than matmuls. The floor guards that level against regressions;
# it does not claim the goal.
MFU_FLOOR = 0.25


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_160m_bf16_trains_at_a_useful_mfu(tmp_path, monkeypatch):
    """160M with Pythia's shapes (seq 2048, micro batch 16 as in its configs) in bf16: the trainer's
    step time (best of 5, after 2 warm-up steps) against the dense bf16 matmul peak measured in the
    same process (best of 3 rounds of 10 products of 8192^3), and the loss is finite."""
    import time

    from pythia.model import attention_backend
    from pythia.train.loop import Trainer, TrainOptions

    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    suite = load_suite(
        "pythia",
        {
            "training": {"global_batch": 16, "micro_batch": 16, "train_iters": 10},
            "models": {"160M": {"precision": "bf16"}},
        },
    )
    tr = Trainer(TrainOptions(suite=suite, model="160M", out=tmp_path / "run", device="cuda"))
    assert attention_backend(torch.bfloat16) in ("flash_attention_2", "sdpa")
    batch = torch.randint(0, 50277, (16, 2049), generator=torch.Generator().manual_seed(0)).numpy()
    for s in range(2):
        tr.train_step(s, batch)
    times = []
    for s in range(2, 7):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = tr.train_step(s, batch)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    torch.mm(a, a)
    peak = 0.0
    for _ in range(3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            torch.mm(a, a)
        torch.cuda.synchronize()
        peak = max(peak, 10 * 2 * 8192**3 / (time.perf_counter() - t0))
    mfu = flops_per_token(suite, suite.model("160M")) * 16 * 2048 / min(times) / peak
    assert torch.isfinite(torch.tensor(out["loss"])) and mfu >= MFU_FLOOR, (mfu, min(times), peak)


def test_bench_score_cli_compares_scoring_with_training(tiny, tmp_path):
    _, path, env = tiny
    out = tmp_path / "score.json"
    proc = run_cli(
        [
            "bench",
            "score",
            "--suite",
            str(path),
            "--model",
            "t1",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--rounds",
            "1",
            "--out",
            str(out),
        ],
        env,
    )
    m = json.loads(out.read_text())["models"][0]
    assert m["data"] == "get_batch" and m["model"] == "t1" and m["tokens_per_batch"] == 8 * 32
    for key in ("train", "score", "plain_forward"):
        assert m[key]["tokens_per_s"] > 0 and m[key]["timed_batches"] == 2
    assert m["score_over_train_best"] == pytest.approx(
        m["score"]["tokens_per_s"] / m["train"]["tokens_per_s"]
    )
    assert m["score_over_train"] > 0 and m["score_over_plain_forward"] > 0
    assert "x training" in proc.stdout
