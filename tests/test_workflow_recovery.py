"""A killed `make reproduce` reruns by itself: stale Snakemake locks are cleared, live ones respected.

The last test is the user's story end to end: the smoke workflow, started with `make
reproduce`, killed with SIGKILL (the whole process group: make, Snakemake, the training job)
while a model trains; a second `make reproduce` on the same directory, with no manual step,
clears the lock, reruns only what had not finished, resumes the killed model, and ends with
the same weights as an uninterrupted run of that model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pythia import locks, workflow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _fake_snakemake(cwd: Path) -> subprocess.Popen:
    """A process that looks like Snakemake (argv[0] 'snakemake') working in ``cwd``."""
    return subprocess.Popen(["snakemake", "600"], executable=shutil.which("sleep"), cwd=cwd)


def _stale_locks(workdir: Path) -> list[Path]:
    d = workdir / ".snakemake" / "locks"
    d.mkdir(parents=True)
    files = [d / "0.input.lock", d / "0.output.lock"]
    for f in files:
        f.write_text(f"{workdir}/work/smoke/data/card.json\n")
    return files


@pytest.mark.parametrize(
    "cmdline,expected",
    [
        (["/usr/bin/python3", "/env/bin/snakemake", "--cores", "2"], True),
        (["snakemake"], True),
        (["python", "-m", "snakemake", "-n"], True),
        (["/bin/bash", "-c", "pythia train --suite smoke # .snakemake/x"], False),
        (["python", "/env/bin/pythia", "workflow", "run"], False),
        ([], False),
    ],
)
def test_snakemake_command_lines(cmdline, expected):
    assert workflow._is_snakemake(cmdline) is expected


def test_stale_lock_is_cleared_with_one_line(tmp_path, capsys):
    files = _stale_locks(tmp_path)
    fd = workflow.claim(tmp_path)
    os.close(fd)
    assert not any(f.exists() for f in files)
    err = capsys.readouterr().err.splitlines()
    assert (
        len(err) == 1
        and err[0].startswith("pythia workflow: cleared a stale Snakemake lock")
        and "(2 files)" in err[0]
    )


def test_lock_of_a_live_snakemake_is_respected(tmp_path):
    files = _stale_locks(tmp_path)
    proc = _fake_snakemake(tmp_path)
    try:
        assert workflow.live_snakemake(tmp_path) == [proc.pid]
        assert workflow.live_snakemake(tmp_path / ".snakemake") == []  # another directory
        with pytest.raises(
            workflow.WorkflowInUseError, match=f"running Snakemake \\(pid {proc.pid}\\)"
        ):
            workflow.claim(tmp_path)
    finally:
        proc.kill()
        proc.wait()
    assert all(f.exists() for f in files)  # left alone
    os.close(workflow.claim(tmp_path))  # its process gone, the lock is stale
    assert not any(f.exists() for f in files)


def test_a_live_workflow_run_is_respected_through_its_lock_file(tmp_path):
    hold = (
        "import sys, time\nfrom pythia import workflow\nfd = workflow.claim(__import__('pathlib').Path(sys.argv[1]))\n"
        "print('held', flush=True)\ntime.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", hold, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline() == "held\n"
        files = _stale_locks(tmp_path)
        with pytest.raises(
            workflow.WorkflowInUseError,
            match=f"running workflow, pythia workflow run \\(pid {proc.pid}",
        ):
            workflow.claim(tmp_path)
        assert all(f.exists() for f in files)
    finally:
        proc.kill()
        proc.wait()


def test_unlock_command(tmp_path, capsys):
    from pythia.cli import main

    assert main(["workflow", "unlock", "--directory", str(tmp_path)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    _stale_locks(tmp_path)
    assert main(["workflow", "unlock", "-d", str(tmp_path)]) == 0
    assert "cleared a stale Snakemake lock" in capsys.readouterr().err
    assert workflow.stale_lock_files(tmp_path) == []


def test_dry_run_passes_straight_to_snakemake(tmp_path):
    """A dry run takes no lock, so a live run does not stop it and its locks stay."""
    files = _stale_locks(tmp_path)
    proc = _fake_snakemake(tmp_path)
    try:
        out = subprocess.run(
            [
                str(BIN / "pythia"),
                "workflow",
                "run",
                "-n",
                "--directory",
                str(tmp_path),
                "--config",
                "suite=smoke",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        )
    finally:
        proc.kill()
        proc.wait()
    assert out.returncode == 0, out.stderr[-3000:]
    assert "cleared" not in out.stderr and all(f.exists() for f in files)


# ----------------------------------------------------------------------------- end to end

JOB_RE = re.compile(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n)+)", re.M)


def _jobs(log: str) -> dict[str, tuple[str, str]]:
    """jobid -> (rule, wildcards) of every job Snakemake started, from its log."""
    out = {}
    for rule, body in JOB_RE.findall(log):
        jobid = re.search(r"jobid: (\d+)", body).group(1)
        wildcards = re.search(r"wildcards: (.*)", body)
        out[jobid] = (rule, wildcards.group(1).strip() if wildcards else "")
    return out


def _finished(log: str) -> set[tuple[str, str]]:
    jobs = _jobs(log)
    return {jobs[j] for j in re.findall(r"Finished jobid: (\d+)", log) if j in jobs}


def _reproduce(workdir: Path) -> list[str]:
    """`make reproduce` on the smoke suite in ``workdir``, with this test's environment; the two
    sections that train (the case studies add ten minutes and nothing to what is tested here)."""
    stamp = Path(sys.prefix) / ".installed"
    return [
        "make",
        "--no-print-directory",
        "-C",
        str(ROOT),
        "-o",
        str(stamp),
        "reproduce",
        f"VENV={sys.prefix}",
        "CORES=2",
        "SUITE=smoke",
        "SECTIONS=suite,training",
        f"WORKDIR={workdir}",
    ]


def _training_now(workdir: Path) -> Path | None:
    """A run directory whose model is between optimizer steps right now: the records of step 0
    and at least step 1 in its log, no done.json yet."""
    for log in (workdir / "work" / "smoke" / "models").glob("*/*/train_log.jsonl"):
        if not (log.parent / "done.json").exists() and log.read_bytes().count(b"\n") >= 2:
            return log.parent
    return None


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_killed_reproduce_reruns_by_itself(tmp_path):
    wd = tmp_path / "wf"
    wd.mkdir()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MAKEFLAGS", None)
    log1 = tmp_path / "first.log"
    with open(log1, "w") as f:
        first = subprocess.Popen(
            _reproduce(wd),
            cwd=ROOT,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # 1. while it runs, a second `make reproduce` on the same directory is refused
        t0 = time.time()
        while not workflow.stale_lock_files(wd):
            assert first.poll() is None and time.time() - t0 < 600, log1.read_text()[-5000:]
            time.sleep(0.05)
        holder = locks.holder(wd / workflow.RUN_LOCK)
        busy = subprocess.run(
            _reproduce(wd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert busy.returncode != 0
        assert (
            f"is in use by a running workflow, pythia workflow run (pid {holder['pid']}"
            in busy.stderr
        )
        assert "Traceback" not in busy.stderr

        # 2. SIGKILL to make, Snakemake and its jobs while a model trains
        while (killed := _training_now(wd)) is None:
            assert first.poll() is None and time.time() - t0 < 900, log1.read_text()[-5000:]
            time.sleep(0.002)
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    records_at_kill = len((killed / "train_log.jsonl").read_text().splitlines())
    assert workflow.stale_lock_files(wd), "the kill left Snakemake's lock behind"
    assert not (killed / "done.json").exists()
    finished_before = _finished(log1.read_text())
    killed_job = ("train", f"dataset={killed.parent.name}, model={killed.name}")
    assert killed_job not in finished_before

    # 3. the same command again: no manual step
    rerun = subprocess.run(
        _reproduce(wd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    out = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, out[-5000:]
    cleared = [line for line in out.splitlines() if "cleared a stale Snakemake lock" in line]
    assert len(cleared) == 1
    rerun_jobs = set(_jobs(out).values())
    assert killed_job in rerun_jobs
    assert not (rerun_jobs & finished_before), (
        f"finished jobs redone: {rerun_jobs & finished_before}"
    )
    assert (wd / "results" / "smoke" / "notebooks" / "01_training.ipynb").exists()
    # make reproduce ends with results compare: against the snapshot of what the killed run had
    # written (the suite section, if it finished before the kill), else there is no reference
    assert (
        "vs snapshot" in rerun.stdout and "verdict: reproduced" in rerun.stdout
    ) or "results/smoke: no reference to compare with" in rerun.stdout
    train_log = (
        wd / "logs" / "smoke" / "train" / killed.parent.name / f"{killed.name}.log"
    ).read_text()
    resumed = re.search(r"resumed .* \(step (\d+)\)", train_log)

    # 4. the killed model ends where an uninterrupted run of it ends
    ref = tmp_path / "ref"
    subprocess.run(
        [
            str(BIN / "pythia"),
            "train",
            "--suite",
            "smoke",
            "--model",
            killed.name,
            "--dataset",
            killed.parent.name,
            "--threads",
            "2",
            "--no-progress",
            "--out",
            str(ref),
        ],
        cwd=wd,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    from tests.train.helpers import assert_same_weights

    assert_same_weights(ref / "step24", killed / "step24")
    done, ref_done = (json.loads((d / "done.json").read_text()) for d in (killed, ref))
    assert done["final_weights_sha256"] == ref_done["final_weights_sha256"]
    print(
        f"\nkilled {killed.parent.name}/{killed.name} after {records_at_kill} log records; "
        f"rerun: {len(rerun_jobs)} jobs ({sorted(r for r, _ in rerun_jobs)}), "
        f"{'resumed from state step ' + resumed.group(1) if resumed else 'restarted from step 0 (no state saved yet)'}; "
        f"{len(finished_before)} finished jobs kept; final weights sha256 {done['final_weights_sha256'][:16]} "
        f"= uninterrupted {ref_done['final_weights_sha256'][:16]}"
    )
