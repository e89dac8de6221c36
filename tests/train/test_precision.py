"""fp16's skipped steps: a forced gradient overflow skips the update, holds GPT-NeoX's LR schedule
back by one step (as DeepSpeed does not step the scheduler), is logged and saved, and a resumed
run continues exactly. Torch's GradScaler in-process on CPU, DeepSpeed ZeRO-1 fp16 in a process
of its own (on CPU with its capability check lifted, and on a GPU as a ``gpu`` test); plus the
GPU kernels the bf16 path must get."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from pythia.config import Precision
from pythia.train import checkpoint as ckpt
from pythia.train.loop import Trainer, TrainOptions
from pythia.train.precision import grad_scaler, scaler_step
from pythia.train.schedule import suite_lr

from .fp16_run import force_overflow
from .helpers import assert_same_weights, read_log, weights

SKIP = 1  # the update on batch 1 (checkpoint step2) overflows


def _scaled_run(suite, out, **kw) -> Trainer:
    """The plain loop with torch's fp16 loss scaler (over CPU fp32 arithmetic: scaling by a power
    of two is exact, so only the skipped step differs from an unscaled run)."""
    tr = Trainer(TrainOptions(suite=suite, model="t1", out=out, threads=1, **kw))
    tr.engine.scaler = grad_scaler(Precision.fp16, "cpu")
    force_overflow(tr, {SKIP})
    tr.run()
    return tr


def _check_lagging_log(suite, records: list[dict]) -> None:
    spec = suite.model("t1")
    for r in records[1:]:
        b = r["batch"]
        assert r["skipped"] == (b == SKIP) and r["skipped_steps"] == int(b >= SKIP), r
        # the overflowing update was given lr(1); every later one runs one schedule step behind
        assert r["lr"] == suite_lr(suite, spec, b - int(b > SKIP)), r
    assert records[-1]["lr"] != suite_lr(suite, spec, records[-1]["batch"])


def _strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


def test_scaler_step_reports_skipped_updates():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    scaler = grad_scaler(Precision.fp16, "cpu")
    assert scaler.get_scale() == 2.0**12  # Pythia's initial_scale_power

    def step(weight: torch.Tensor, s=scaler) -> bool:
        s.scale((p * weight).sum()).backward()
        applied = scaler_step(s, opt)
        opt.zero_grad()
        return applied

    assert step(torch.ones(3)) and not torch.equal(p.detach(), torch.ones(3))
    before = p.detach().clone()
    assert not step(torch.tensor([1.0, float("inf"), 1.0]))
    assert torch.equal(p.detach(), before) and scaler.get_scale() == 2.0**11
    assert step(
        torch.ones(3), grad_scaler(Precision.bf16, "cpu")
    )  # disabled (bf16/fp32): always steps


def test_gradscaler_overflow_lags_the_schedule_and_resumes_exactly(tiny, tmp_path):
    suite, _, _ = tiny
    full = tmp_path / "full"
    tr = _scaled_run(suite, full)
    assert tr.skipped_steps == 1
    records = read_log(full)
    _check_lagging_log(suite, records)
    assert_same_weights(full / "step1", full / "step2")  # the skipped update changed nothing
    plain = tmp_path / "plain"
    Trainer(TrainOptions(suite=suite, model="t1", out=plain, threads=1, max_steps=1)).run()
    assert_same_weights(plain / "step1", full / "step1")  # loss scaling alone changes no bit
    st = json.loads((full / "state" / "step12" / "state.json").read_text())
    assert st["skipped_steps"] == 1 and st["lr_next"] == suite_lr(suite, suite.model("t1"), 11)
    assert st["scaler"]["scale"] == 2.0**11  # halved once, not yet grown back (window 1000)
    # stop after the skip, resume: the same schedule, the same weights and log
    part = tmp_path / "part"
    _scaled_run(suite, part, max_steps=5)
    assert json.loads((part / "state" / "step5" / "state.json").read_text())["skipped_steps"] == 1
    resumed = _scaled_run(suite, part, resume=True)
    assert resumed.skipped_steps == 1
    assert_same_weights(full / "step12", part / "step12")
    assert _strip(read_log(part)) == _strip(records)


def _fp16_run(path, out, env, *extra, timeout=300):
    cmd = [
        sys.executable,
        "-m",
        "tests.train.fp16_run",
        "--suite",
        str(path),
        "--model",
        "t1",
        "--out",
        str(out),
        "--overflow",
        str(SKIP),
        *extra,
    ]
    proc = subprocess.run(
        cmd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_deepspeed_fp16(suite, path, env, tmp_path, device: str, exact: bool) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    flags = ["--deepspeed", "--device", device]
    assert _fp16_run(path, full, env, *flags)["skipped_steps"] == 1
    records = read_log(full)
    _check_lagging_log(suite, records)
    assert records[SKIP + 1]["grad_norm"] == float("inf")
    assert_same_weights(full / "step1", full / "step2")  # ZeRO skipped the update
    assert weights(full / "step1")["gpt_neox.embed_in.weight"].dtype == torch.float16
    st = json.loads((full / "state" / "step12" / "state.json").read_text())
    assert st["precision"] == "fp16" and st["skipped_steps"] == 1 and st["deepspeed"]
    # Pythia's scaler: hysteresis 2 absorbs the first overflow, so the scale stays 2^12
    assert st["deepspeed_loss_scaler"] == {
        "cur_scale": 4096.0,
        "cur_iter": 12.0,
        "last_overflow_iter": 1.0,
        "cur_hysteresis": 1.0,
    }
    # the state holds ZeRO's fp32 master weights, not the fp16 copies
    master = ckpt.load_state(full / "state" / "step12")["model"]["gpt_neox.embed_in.weight"]
    assert master.dtype == torch.float32 and not torch.equal(master, master.half().float())
    _fp16_run(path, part, env, *flags, "--max-steps", "5")
    assert _fp16_run(path, part, env, *flags, "--resume")["skipped_steps"] == 1
    resumed = read_log(part)
    assert [r.get("lr") for r in resumed] == [r.get("lr") for r in records]
    assert [r.get("skipped_steps") for r in resumed] == [r.get("skipped_steps") for r in records]
    if exact:
        assert _strip(resumed) == _strip(records)
        assert_same_weights(full / "step12", part / "step12")
    else:
        for a, b in zip(resumed[1:], records[1:]):
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-2)


def test_deepspeed_fp16_overflow_on_cpu_lags_the_schedule_and_resumes_exactly(tiny, tmp_path):
    suite, path, env = tiny
    _check_deepspeed_fp16(suite, path, env, tmp_path, "cpu", exact=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_deepspeed_fp16_overflow_lags_the_schedule(tiny, tmp_path):
    suite, path, env = tiny
    _check_deepspeed_fp16(suite, path, env, tmp_path, "cuda", exact=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_autocast_fp16_overflow_lags_the_schedule(tiny, tmp_path):
    suite, path, env = tiny
    out = tmp_path / "amp"
    assert _fp16_run(path, out, env, "--device", "cuda")["skipped_steps"] == 1
    records = read_log(out)
    _check_lagging_log(suite, records)
    assert_same_weights(out / "step1", out / "step2")
    st = json.loads((out / "state" / "step12" / "state.json").read_text())
    assert st["skipped_steps"] == 1 and st["scaler"]["scale"] == 2.0**11


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("deepspeed", [False, True])
def test_gpu_bf16_attention_runs_a_flash_kernel(tmp_path, monkeypatch, deepspeed):
    """Pythia 14M's shapes (seq 2048, d_head 32) in bf16, flash-attn absent: the trainer's steps,
    the first SDPA call of the process included, run PyTorch's flash kernels forward and backward
    (torch alone took cuDNN's on an H100), and restricted to the flash kernel SDPA does not fall
    back (it raises otherwise)."""
    import numpy as np
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile

    from pythia.config import load_suite

    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    suite = load_suite(
        "pythia",
        {
            "training": {"global_batch": 2, "micro_batch": 2, "train_iters": 10},
            "models": {"14M": {"precision": "bf16"}},
        },
    )
    tr = Trainer(
        TrainOptions(
            suite=suite, model="14M", out=tmp_path / "run", device="cuda", deepspeed=deepspeed
        )
    )
    assert tr.precision is Precision.bf16
    assert tr.model.config._attn_implementation in ("sdpa", "flash_attention_2")
    batch = np.random.default_rng(0).integers(0, 50277, (2, 2049))
    for step in range(2):
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            out = tr.train_step(step, batch)
            torch.cuda.synchronize()
        kernels = [e.key for e in prof.key_averages()]
        assert any("flash_fwd" in k for k in kernels) and any("flash_bwd" in k for k in kernels), (
            kernels
        )
        assert not any("cudnn" in k.lower() and "sdpa" in k.lower() for k in kernels), kernels
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        out = tr.train_step(2, batch)
    assert np.isfinite(out["loss"]) and not out["skipped"]
