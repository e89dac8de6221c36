"""One writer per run directory: a second ``pythia train`` refuses while the first is alive,
naming it, with or without ``--resume``; once the first is killed, ``--resume`` proceeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from pythia.locks import lock_path

from .helpers import pythia_cmd, run_cli


def _wait_for_lock(lock_file, proc, timeout=120):
    """Until ``proc`` holds the lock (its pid in the lock file)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if json.loads(lock_file.read_text()).get("pid") == proc.pid:
                return
        except (OSError, ValueError):
            pass
        assert proc.poll() is None, (
            f"training ended before it was paused: {proc.stderr.read()[-3000:]}"
        )
        time.sleep(0.005)
    raise AssertionError("the first run never took the lock")


def test_second_writer_refused_while_first_alive_then_resume_after_kill(tiny, tmp_path):
    _, path, env = tiny
    run = tmp_path / "run"
    common = [
        "train",
        "--suite",
        str(path),
        "--model",
        "t2",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(run),
    ]
    first = subprocess.Popen(
        pythia_cmd(*common), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_lock(lock_path(run), first)
        os.kill(first.pid, signal.SIGSTOP)  # alive and holding the lock, but not finishing
        assert not (run / "done.json").exists()
        for extra in ([], ["--resume"]):
            second = subprocess.run(
                pythia_cmd(*common, *extra),
                env=env,
                check=False,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert second.returncode == 2, second.stderr
            assert "Traceback" not in second.stderr
            last = second.stderr.splitlines()[-1]
            assert last.startswith("pythia train: error: ")
            assert (
                f"{run} is in use by pythia train (pid {first.pid}" in last
                and f"kill {first.pid}" in last
            )
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    # the dead process's lock file is still there; it blocks nothing
    assert json.loads(lock_path(run).read_text())["pid"] == first.pid
    run_cli([*common, "--resume"], env)
    done = json.loads((run / "done.json").read_text())
    assert done["steps"] == 12 and done["checkpoints"][-1] == 12
