"""One writer per data directory: a build stage refuses while another process writes the same
directory, stages writing other directories run alongside, and a killed writer blocks nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from pythia.locks import lock_path


def _pythia(*args):
    return [sys.executable, "-m", "pythia.cli", *args]


def _wait_for_lock(lock_file, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if json.loads(lock_file.read_text()).get("pid") == proc.pid:
                return
        except (OSError, ValueError):
            pass
        assert proc.poll() is None, (
            f"the stage ended before it was paused: {proc.stderr.read()[-3000:]}"
        )
        time.sleep(0.005)
    raise AssertionError("the stage never took the lock")


def test_stage_refused_while_its_directory_is_written(smoke_data, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(smoke_data, work)
    data = work / "smoke" / "data"
    original = (data / "documents" / "train.jsonl").read_bytes()
    env = {
        **os.environ,
        "PYTHIA_WORK": str(work),
        "PYTHIA_CACHE": str(tmp_path / "cache"),
        "PYTHIA_OFFLINE": "1",
    }
    stage = ["data", "build", "--suite", "smoke", "--no-progress", "--stage"]

    first = subprocess.Popen(
        _pythia(*stage, "documents"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_lock(lock_path(data / "documents"), first)
        os.kill(first.pid, signal.SIGSTOP)
        second = subprocess.run(
            _pythia(*stage, "documents"),
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert second.returncode == 2 and "Traceback" not in second.stderr
        last = second.stderr.splitlines()[-1]
        assert last.startswith("pythia data build: error: ")
        assert f"is in use by pythia data build --stage documents (pid {first.pid}" in last
        # a stage that writes another directory is not held up (Snakemake runs such stages side by side)
        other = subprocess.run(
            _pythia(*stage, "order", "--dataset", "deduped"),
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert other.returncode == 0, other.stderr[-3000:]
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    again = subprocess.run(
        _pythia(*stage, "documents"),
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (data / "documents" / "train.jsonl").read_bytes() == original
