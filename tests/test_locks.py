"""pythia.locks: one writer per directory, a lock that dies with its process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from pythia import locks

HOLD = (
    "import sys, time\nfrom pythia.locks import exclusive\n"
    "with exclusive(sys.argv[1], 'pythia test holder'):\n    print('held', flush=True)\n    time.sleep(600)\n"
)


def _holder(directory) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "held\n"
    return proc


def test_lock_file_beside_the_directory_records_the_holder(tmp_path):
    run = tmp_path / "run"
    with locks.exclusive(run, "pythia train"):
        rec = json.loads((tmp_path / ".run.lock").read_text())
        assert rec["pid"] == os.getpid() and rec["command"] == "pythia train" and rec["host"]
        assert locks.holder(tmp_path / ".run.lock")["pid"] == os.getpid()
    assert not run.exists(), "locking does not create the directory"


def test_reentrant_in_one_process_and_released_after(tmp_path):
    with locks.exclusive([tmp_path / "a", tmp_path / "b"], "outer"):
        with locks.exclusive(tmp_path / "a", "inner"):
            pass
        assert str(locks.lock_path(tmp_path / "a")) in locks._held  # still held by the outer block
    assert not locks._held
    proc = _holder(tmp_path / "a")  # another process can take it now
    proc.kill()
    proc.wait()


def test_second_process_is_refused_naming_the_holder(tmp_path):
    proc = _holder(tmp_path / "run")
    try:
        with pytest.raises(locks.DirectoryInUseError) as e:
            with locks.exclusive(tmp_path / "run", "pythia train"):
                pass
        msg = str(e.value)
        assert (
            f"pid {proc.pid}" in msg and "pythia test holder" in msg and f"kill {proc.pid}" in msg
        )
        assert "\n" not in msg
        # the locks taken before the refused one are given back
        with pytest.raises(locks.DirectoryInUseError):
            with locks.exclusive([tmp_path / "other", tmp_path / "run"], "x"):
                pass
        assert not locks._held
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_does_not_block(tmp_path):
    proc = _holder(tmp_path / "run")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lock_file = tmp_path / ".run.lock"
    assert json.loads(lock_file.read_text())["pid"] == proc.pid  # the file stays ...
    assert locks.holder(lock_file) is None  # ... but names a dead process
    with locks.exclusive(tmp_path / "run", "pythia train"):  # ... and the lock is free
        assert locks.holder(lock_file)["pid"] == os.getpid()
