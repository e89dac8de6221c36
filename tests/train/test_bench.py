"""``pythia bench train`` on the tiny suite (fast), and the GPU MFU check (skipped on CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from pythia.bench import bench_train, flops_per_token, matmul_peak
from pythia.config import load_suite

from .helpers import run_cli


def test_flops_formula_counts_blocks_output_layer_and_attention():
    suite = load_suite("micro")
    spec = suite.model("1.8M")
    d, L, T, V = 128, 4, 256, 4096
    assert flops_per_token(suite, spec) == 6 * (L * (12 * d * d + 13 * d) + 2 * d + V * d) + 12 * L * d * T


def test_matmul_peak_is_positive():
    p = matmul_peak(1, n=256, repeats=2)
    assert p["flops_per_s"] > 1e8 and p["threads"] == 1


def test_bench_cli_writes_json_comparing_with_the_trainer(tiny, tmp_path):
    _, path, env = tiny
    out = tmp_path / "bench.json"
    proc = run_cli(["bench", "train", "--suite", str(path), "--model", "t1", "--steps", "2", "--warmup", "1",
                    "--threads", "1", "--rounds", "1", "--matmul-n", "256", "--out", str(out)], env)
    res = json.loads(out.read_text())
    m = res["models"][0]
    assert m["data"] == "get_batch" and m["model"] == "t1"
    for key in ("ours", "hf_trainer"):
        assert m[key]["tokens_per_s"] > 0 and 0 < m[key]["mfu"] < 1.5
        assert m[key]["timed_steps"] == 2
    assert m["ours_over_trainer"] == pytest.approx(m["ours"]["tokens_per_s"] / m["hf_trainer"]["tokens_per_s"])
    assert "ours/Trainer" in proc.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_160m_bf16_trains_at_a_useful_mfu(tmp_path, monkeypatch):
    """160M with Pythia's shapes (seq 2048) in bf16 (flash-attn when installed): MFU >= 25 %
    of the measured dense bf16 matmul peak, and the loss is finite."""
    import time

    from pythia.model import attention_backend
    from pythia.train.loop import TrainOptions, Trainer

    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    suite = load_suite("pythia", {"training": {"global_batch": 8, "micro_batch": 8, "train_iters": 10},
                                  "models": {"160M": {"precision": "bf16"}}})
    tr = Trainer(TrainOptions(suite=suite, model="160M", out=tmp_path / "run", device="cuda"))
    assert attention_backend() in ("flash_attention_2", "sdpa")
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 50277, (8, 2049), generator=g).numpy()
    for s in range(2):
        tr.train_step(s, batch)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(2, 7):
        out = tr.train_step(s, batch)
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / 5
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    torch.mm(a, a)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(5):
        torch.mm(a, a)
    torch.cuda.synchronize()
    peak = 2 * 8192**3 / ((time.perf_counter() - t0) / 5)
    mfu = flops_per_token(suite, suite.model("160M")) * 8 * 2048 / dt / peak
    assert torch.isfinite(torch.tensor(out["loss"])) and mfu >= 0.25, mfu
