"""Data parallelism: 2 torchrun processes over gloo, and the DeepSpeed ZeRO-1 engine on CPU,
both against the plain single-process loop."""

from __future__ import annotations

import json
import sys

import pytest

from pythia.config import load_suite
from pythia.train.deepspeed_config import deepspeed_config, micro_and_accum

from .helpers import assert_same_weights, read_log, run_cli

STEPS = 4


@pytest.fixture
def single_run(tiny, tmp_path):
    _, path, env = tiny
    out = tmp_path / "single"
    run_cli(
        [
            "train",
            "--suite",
            str(path),
            "--model",
            "t1",
            "--out",
            str(out),
            "--threads",
            "1",
            "--max-steps",
            str(STEPS),
            "--no-progress",
        ],
        env,
    )
    return read_log(out), out


def _compare(a: list[dict], b: list[dict], rel: float) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(STEPS + 1))
    for x, y in zip(a, b):
        assert x.get("batch_hash") == y.get("batch_hash")
        for key in ("loss", "val_loss", "grad_norm"):
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=rel), (x["step"], key)


def test_two_process_gloo_matches_single_process(tiny, tmp_path, single_run):
    _, path, env = tiny
    out = tmp_path / "ddp"
    import subprocess

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "pythia.cli",
        "train",
        "--suite",
        str(path),
        "--model",
        "t1",
        "--out",
        str(out),
        "--threads",
        "1",
        "--max-steps",
        str(STEPS),
        "--no-progress",
    ]
    proc = subprocess.run(
        cmd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        start_new_session=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    _compare(single_run[0], read_log(out), rel=1e-5)


def test_deepspeed_zero1_on_cpu_matches_plain_loop_and_resumes(tiny, tmp_path, single_run):
    _, path, env = tiny
    out = tmp_path / "ds"
    common = [
        "train",
        "--suite",
        str(path),
        "--model",
        "t1",
        "--out",
        str(out),
        "--threads",
        "1",
        "--no-progress",
        "--deepspeed",
    ]
    run_cli([*common, "--max-steps", "2"], env)  # stop, save state, ...
    run_cli([*common, "--max-steps", str(STEPS), "--resume"], env)  # ... resume through the engine
    _compare(single_run[0], read_log(out), rel=1e-5)
    st = json.loads((out / "state" / f"step{STEPS}" / "state.json").read_text())
    assert st["deepspeed"] is True
    # same update rule, same arithmetic: on CPU even the weights agree
    assert_same_weights(single_run[1] / "step4", out / "step4")


def test_deepspeed_config_batch_arithmetic():
    suite = load_suite("pythia")
    cfg = deepspeed_config(suite, "410M", world_size=64)
    assert cfg["train_batch_size"] == 1024
    assert cfg["train_micro_batch_size_per_gpu"] * cfg["gradient_accumulation_steps"] * 64 == 1024
    assert cfg["zero_optimization"]["stage"] == 1 and cfg["gradient_clipping"] == 1.0
    assert (
        cfg["fp16"]["enabled"] and not cfg["bf16"]["enabled"]
    )  # Pythia 410M: fp16 with loss scaling
    assert deepspeed_config(suite, "1B", world_size=64)["bf16"]["enabled"]
    cpu = deepspeed_config(suite, "410M", world_size=8, device="cpu")
    assert not cpu["fp16"]["enabled"] and not cpu["bf16"]["enabled"]
    assert micro_and_accum(suite, 8) == (16, 8) and micro_and_accum(suite, 128) == (8, 1)
    with pytest.raises(ValueError, match="divisible"):
        micro_and_accum(suite, 3)


def test_deepspeed_config_cli(tiny):
    _, _, env = tiny
    proc = run_cli(
        ["deepspeed-config", "--suite", "pythia", "--model", "410M", "--world-size", "64"], env
    )
    cfg = json.loads(proc.stdout)
    assert cfg["train_batch_size"] == 1024 and cfg["gradient_accumulation_steps"] == 1
