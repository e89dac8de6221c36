"""``pythia train`` killed with SIGKILL mid-run, then resumed: bit-identical final weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from pythia.config import load_suite
from pythia.train import checkpoint as ckpt

from .conftest import TINY
from .helpers import assert_same_weights, pythia_cmd, read_log, run_cli

LONG_STEPS = 40


@pytest.fixture
def long_suite(tiny_root, tiny):
    """The tiny suite's settings with 40 steps, as suite ``tinylong`` with its own data."""
    _, _, env = tiny
    cfg = json.loads(json.dumps(TINY))
    cfg["name"] = "tinylong"
    cfg["training"]["train_iters"] = LONG_STEPS
    path = tiny_root / "tinylong.yaml"
    if not path.exists():
        from .conftest import write_suite_data

        path.write_text(yaml.safe_dump(cfg))
        write_suite_data(tiny_root / "work", cfg)
    return load_suite(path), path, env


def _wait_for_records(log_path, n, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if log_path.exists() and len(log_path.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended before the kill: {proc.stderr.read()[-3000:]}")
        time.sleep(0.01)
    raise AssertionError("no progress before the timeout")


def test_sigkill_then_resume_is_bit_identical(long_suite, tmp_path):
    suite, path, env = long_suite
    common = ["train", "--suite", str(path), "--model", "t2", "--threads", "1", "--no-progress"]
    ref, killed = tmp_path / "ref", tmp_path / "killed"

    # killed twice at different moments (the 2nd kill usually lands inside a state write: every step saves)
    for n_records in (9, 27):
        proc = subprocess.Popen(
            pythia_cmd(*common, "--out", str(killed), "--state-every", "1", "--resume"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for_records(killed / "train_log.jsonl", n_records, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert not (killed / "done.json").exists()
    resumed_from = max(ckpt.saved_steps(killed / "state"))
    assert 0 < resumed_from < LONG_STEPS
    run_cli([*common, "--out", str(killed), "--state-every", "1", "--resume"], env)
    run_cli([*common, "--out", str(ref)], env)

    assert_same_weights(ref / f"step{LONG_STEPS}", killed / f"step{LONG_STEPS}")
    for s in suite.checkpoint_steps():
        assert_same_weights(ref / f"step{s}", killed / f"step{s}")
    a, b = read_log(ref), read_log(killed)
    assert [r["step"] for r in b] == list(range(LONG_STEPS + 1))
    assert [(r.get("loss"), r.get("batch_hash"), r.get("val_loss")) for r in a] == [
        (r.get("loss"), r.get("batch_hash"), r.get("val_loss")) for r in b
    ]
    assert (
        json.loads((killed / "done.json").read_text())["final_weights_sha256"]
        == json.loads((ref / "done.json").read_text())["final_weights_sha256"]
    )
