"""The cluster path for real: the smoke workflow through `--profile slurm` on a one-node Slurm
that the tests start themselves (scripts/slurm-local), once without accounting (the profile
polls with squeue) and once with slurmdbd and MariaDB (sacct).

Per Slurm, two workflow invocations on a copy of the smoke suite's data (session fixture
``smoke_data``), with the suite's model s1:

1. the training of the standard run, cancelled with ``scancel`` as soon as Slurm has it: the
   workflow fails and names the cancelled Slurm job;
2. the same command again, with the deduplicated run's training added on purpose broken (its
   sequences.bin emptied) and ``--keep-going``: the cancelled job reruns and completes with the
   weights and training log of the same training run locally (session fixture ``smoke_run``),
   the broken one fails in Slurm and fails the workflow with its log shown. Every job Snakemake
   ran that is not a local rule is a Slurm job that ``squeue`` (no accounting) or ``sacct``
   (accounting) lists under the run's id.

The second invocation goes through the pre-flight check of ``pythia workflow run``; another
test gives the check what the shipped profile asks for (32 threads, 256 GB, 8 GPUs) plus
``--cores all`` and expects one line for each and nothing submitted.

Where Slurm cannot be installed or started (not root, no apt-get, a real Slurm's
/etc/slurm/slurm.conf), the Slurm tests skip, saying why; with ``PYTHIA_REQUIRE_SLURM=1`` (CI)
or ``CI=true`` they fail instead. The daemons are stopped by their pid files when the module's
tests end, failed or not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from pythia import workflow
from tests.test_workflow import (
    _env,
)  # the workflow tests' job environment: this venv first, no path overrides
import contextlib

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPT = ROOT / "scripts" / "slurm-local"
STATE_PREFIX = "pythia-slurm-test-"
CONFIG = [
    "--config",
    "suite=smoke",
    "train_threads=1",
    "sections=[training]",
    "datasets=[standard,deduped]",
    "models=[s1]",
]
STANDARD = "work/smoke/models/standard/s1/done.json"
DEDUPED = "work/smoke/models/deduped/s1/done.json"
# The site file of these tests: what a 2-CPU node can give, and fast polling (the plugin waits
# this long before its first status query, then 10 s more each time no job has ended).
SITE = """\
default-resources:
  mem_mb: 1000
  runtime: 10
set-resources:
  train:
    gpu: 0
    mem_mb: 2000
    runtime: 10
set-threads:
  train: 1
jobs: 4
slurm-init-seconds-before-status-checks: 2
"""


def _pythia_workflow(*args, cwd=ROOT, timeout=600, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "pythia"), "workflow", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])


# ----------------------------------------------------------------------------- no Slurm needed


def test_tiny_rules_are_local_rules():
    """Notebooks, task writers and the fetch never become Slurm jobs (each would pay 10-15 s)."""
    local = workflow.local_rules(ROOT / "Snakefile")
    rules = set(
        re.findall(
            r"^rule (\w+):", "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk")), re.M
        )
    )
    tiny = {r for r in rules if r.endswith(("_notebook", "_tasks"))} | {"data_fetch"}
    assert len(tiny) >= 11 and tiny <= local, sorted(tiny - local)
    assert "train" not in local and "all" in local


def _parse_profile(tmp_path, site: str | None, *args):
    site_file = tmp_path / "site.yaml"
    site_file.write_text(site or "")
    old = os.environ.get(workflow.SITE_ENV)
    os.environ[workflow.SITE_ENV] = str(site_file)
    try:
        inv = workflow.parse_snakemake_args(["--profile", "slurm", *args])
    finally:
        if old is None:
            os.environ.pop(workflow.SITE_ENV)
        else:
            os.environ[workflow.SITE_ENV] = old
    assert inv is not None
    return inv


def _resources(block) -> dict:
    """A resources block as given (Snakemake's own tmpdir and disk_mb left out)."""
    return {k: v.raw for k, v in block.items() if k not in ("tmpdir", "disk_mb")}


def test_site_file_layers_over_the_shipped_profile_entry_by_entry(tmp_path, monkeypatch):
    """Site values go in one file; each replaces one entry, not the block (as --default-resources would)."""
    monkeypatch.chdir(ROOT)
    shipped = _parse_profile(tmp_path, None).ns
    assert shipped.executor == "slurm" and shipped.cores is None and shipped.jobs == 64
    assert _resources(shipped.default_resources) == {
        "mem_mb": 16000,
        "runtime": 120,
    }  # no cpus_per_task: threads
    assert _resources(shipped.set_resources["train"]) == {
        "gpu": 8,
        "mem_mb": 256000,
        "runtime": 2880,
    }
    assert shipped.set_threads["train"].value == 32

    site = _parse_profile(
        tmp_path,
        "default-resources:\n  slurm_account: proj\n  slurm_partition: cpu\n"
        "set-resources:\n  train:\n    slurm_partition: gpu\n    gpu: 4\n"
        "  benchmarks_evaluate:\n    mem_mb: 32000\n"
        "set-threads:\n  train: 16\njobs: 8\nslurm-status-command: squeue\n",
    ).ns
    assert _resources(site.default_resources) == {
        "mem_mb": 16000,
        "runtime": 120,
        "slurm_account": "proj",
        "slurm_partition": "cpu",
    }
    assert _resources(site.set_resources["train"]) == {
        "gpu": 4,
        "mem_mb": 256000,
        "runtime": 2880,
        "slurm_partition": "gpu",
    }
    assert _resources(site.set_resources["benchmarks_evaluate"]) == {"mem_mb": 32000}
    assert (
        site.set_threads["train"].value == 16
        and site.jobs == 8
        and site.slurm_status_command == "squeue"
    )

    bad = tmp_path / "bad.yaml"
    bad.write_text("set-resources:\n  train: 8\n")
    monkeypatch.setenv(workflow.SITE_ENV, str(bad))
    with pytest.raises(workflow.UsageError, match="set-resources must map each rule"):
        workflow.slurm_site()
    monkeypatch.setenv(workflow.SITE_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(workflow.UsageError, match="is not a file"):
        workflow.slurm_site()


def test_cluster_check_finds_each_unmet_request():
    groups = [
        workflow.NodeGroup("cpu", 64, 256000, 0, 24 * 60, "up"),
        workflow.NodeGroup("gpu", 32, 512000, 4, 2 * 24 * 60, "up"),
    ]
    requests = Counter(
        {
            workflow.Request("data_order", None, 4, 16000, 0, 120): 2,  # default partition: fits
            workflow.Request(
                "train", "gpu", 48, 600000, 8, 2880
            ): 20,  # CPUs, memory, GPUs: three lines
            workflow.Request(
                "benchmarks_evaluate", "cpu", 1, 16000, 1, 3000
            ): 1,  # a GPU on cpu, over the time limit
            workflow.Request("memorization_scan", "bigmem", 1, 1000, 0, 60): 1,  # no such partition
            workflow.Request(
                "term_frequencies_counts", "gpu", 32, 512000, 4, 2880
            ): 1,  # exactly fits
        }
    )
    lines = workflow.unmet_requests(requests, groups, default="cpu")
    assert len(lines) == 6, lines
    assert any(
        line.startswith("rule train (20 jobs): 48 CPUs per job") and "has 32" in line
        for line in lines
    )
    assert any(
        "rule train (20 jobs): mem_mb 600000" in line and "512000 MB" in line for line in lines
    )
    assert any(
        "rule train (20 jobs): 8 GPUs per job" in line and "at most 4" in line for line in lines
    )
    assert any(
        "benchmarks_evaluate (1 job): 1 GPUs per job, but no node of partition 'cpu' has a GPU"
        in line
        for line in lines
    )
    assert any(
        "benchmarks_evaluate (1 job): runtime 3000 min" in line and "at most 1440 min" in line
        for line in lines
    )
    assert any("partition 'bigmem' does not exist (partitions: cpu, gpu)" in line for line in lines)
    # CPUs and memory on different nodes are not one node that has both
    split = [
        workflow.NodeGroup("p", 64, 1000, 0, None, "up"),
        workflow.NodeGroup("p", 2, 64000, 0, None, "up"),
    ]
    assert (
        "no single node"
        in workflow.unmet_requests(
            Counter({workflow.Request("r", "p", 8, 8000, 0, 10): 1}), split, "p"
        )[0]
    )
    assert (
        workflow._gres_gpus("gpu:a100:4(S:0-1),gpu:v100:2") == 6
        and workflow._gres_gpus("(null)") == 0
    )
    assert [workflow._minutes(v) for v in ("infinite", "2-00:00:00", "1:30:00", "45:00", "30")] == [
        None,
        2880,
        90,
        45,
        30,
    ]
    # the slurm plugin's CPUs: cpus_per_task, else cpus_per_gpu x GPUs, else the job's threads
    assert workflow._job_request("train", 32, {"gpu": "8", "mem_mb": "1000"}).cpus == 32
    assert workflow._job_request("train", 32, {"gpu": "2", "cpus_per_gpu": "4"}).cpus == 8
    assert (
        workflow._job_request("x", 1, {"cpus_per_task": "4", "mem_mb_per_cpu": "100"}).mem_mb == 400
    )


def test_slurm_plugin_sees_a_job_cancelled_by_a_user_under_sacct():
    """sacct writes "CANCELLED by <uid>" for a job killed with scancel; the plugin (2.8.0) took it
    for a running job and Snakemake waited forever. The slurm profile wraps its status query."""
    import asyncio
    import logging

    import snakemake_executor_plugin_slurm as plugin

    assert workflow.fix_slurm_plugin() and workflow.fix_slurm_plugin()  # idempotent
    states, _ = asyncio.run(
        plugin.query_job_status(
            r"printf '7|CANCELLED by 0\n8|COMPLETED\n9|RUNNING\n'", logging.getLogger("test")
        )
    )
    assert states == {"7": "CANCELLED", "8": "COMPLETED", "9": "RUNNING"}


# ----------------------------------------------------------------------------- a local Slurm


class Cluster:
    """A running scripts/slurm-local in ``state`` (accounting: sacct; else squeue)."""

    def __init__(self, state: Path, accounting: bool):
        self.state, self.accounting = state, accounting
        self.status = "sacct" if accounting else "squeue"
        self.env = {"SLURM_CONF": str(state / "slurm.conf")}

    def run(self, *cmd, timeout=60) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(cmd), env=_env(**self.env), capture_output=True, text=True, timeout=timeout
        )

    def logs(self) -> str:
        """The end of each daemon's log, for a failure message."""
        out = []
        for name in ("slurmctld.log", "slurmd.log", "slurmdbd.log", "munge/munged.log"):
            f = self.state / name
            if f.exists():
                out.append(f"--- {f}:\n" + _tail(f.read_text(errors="replace"), 25))
        return "\n".join(out)

    def queued(self) -> set[str]:
        """Ids of the jobs squeue lists (it sees a job at once; sacct a moment later)."""
        out = self.run("squeue", "-h", "-t", "all", "-o", "%i")
        assert out.returncode == 0, out.stderr + self.logs()
        return set(out.stdout.split())

    def jobs(self) -> dict[str, dict]:
        """Every job Slurm still knows of, by id: name (the workflow's run id), state, comment (rule),
        as the status command of this cluster reports them."""
        if self.accounting:
            out = self.run(
                "sacct",
                "-X",
                "-n",
                "-P",
                "-a",
                "-S",
                "now-2hours",
                "-o",
                "JobIDRaw,JobName%64,State",
            )
            rows = [[*line.split("|"), ""] for line in out.stdout.splitlines()]
        else:
            out = self.run("squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%k")
            rows = [line.split("|") for line in out.stdout.splitlines()]
        assert out.returncode == 0, out.stderr + self.logs()
        return {
            r[0]: {"name": r[1], "state": r[2].split()[0], "comment": r[3]}
            for r in rows
            if len(r) >= 4
        }


def _cannot(reason: str):
    if os.environ.get("PYTHIA_REQUIRE_SLURM") == "1" or os.environ.get("CI") == "true":
        pytest.fail(f"the Slurm tests must run here (PYTHIA_REQUIRE_SLURM/CI) but cannot: {reason}")
    pytest.skip(f"no local Slurm: {reason}")


def _hold_machine_lock(timeout: float = 900):
    """One local Slurm per machine (it links /etc/slurm/slurm.conf): wait for another test session's
    to finish. Returns the open lock file (closing it releases the lock)."""
    import fcntl

    f = open(Path(tempfile.gettempdir()) / f"{STATE_PREFIX}lock", "a")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() > deadline:
                f.close()
                _cannot(f"another test session kept its local Slurm for {timeout:.0f} s")
            time.sleep(2)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (OSError, IndexError):
        return False


def _stop_leftovers():
    """Stop local Slurms a killed test session left behind (by their pid files; with the machine's
    lock held, no live session has one)."""
    for state in Path(tempfile.gettempdir()).glob(f"{STATE_PREFIX}*"):
        if not state.is_dir():
            continue
        if (state / "state.json").exists():
            subprocess.run(
                [sys.executable, str(SCRIPT), "stop", "--dir", str(state)],
                capture_output=True,
                timeout=120,
            )
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module", params=["squeue", "sacct"])
def cluster(request):
    """A one-node Slurm for this module's tests: without accounting, then with it."""
    if os.geteuid() != 0:
        _cannot("needs root to install and start slurmctld, slurmd and munged")
    if not shutil.which("apt-get") and not shutil.which("slurmctld", path="/usr/sbin:/usr/bin"):
        _cannot("Slurm is not installed and there is no apt-get to install it")
    lock = _hold_machine_lock()
    _stop_leftovers()
    accounting = request.param == "sacct"
    state = Path(tempfile.mkdtemp(prefix=STATE_PREFIX))
    state.chmod(0o755)
    cmd = [
        sys.executable,
        str(SCRIPT),
        "start",
        "--dir",
        str(state),
        *(["--accounting"] if accounting else []),
    ]
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if out.returncode == 3:
            _cannot(out.stderr.strip().splitlines()[0])
        assert out.returncode == 0, f"scripts/slurm-local start failed:\n{out.stdout}{out.stderr}"
        c = Cluster(state, accounting)
        c.start_seconds = time.monotonic() - t0
        yield c
    finally:
        pids = {}
        for name in ("munge/munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pids[name] = int((state / f"{name}.pid").read_text().split()[0])
        stop = subprocess.run(
            [sys.executable, str(SCRIPT), "stop", "--dir", str(state)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        left = [f"{name} ({pid})" for name, pid in pids.items() if _alive(pid)]
        link = Path("/etc/slurm/slurm.conf")
        linked = link.is_symlink() and Path(os.readlink(link)).parent == state
        shutil.rmtree(state, ignore_errors=True)
        lock.close()
        assert stop.returncode == 0 and not left and not linked, (
            f"stop left {left} (link: {linked}):\n{stop.stderr}"
        )


def _copy_data(smoke_data: Path, dest: Path) -> Path:
    """A workflow directory holding the smoke suite's built data (mtimes kept: nothing to rebuild)."""
    shutil.copytree(smoke_data / "smoke" / "data", dest / "work" / "smoke" / "data")
    return dest


def _submitted(text: str) -> dict[str, tuple[str, str]]:
    """Slurm job id -> (rule, wildcard values joined by _), from the plugin's lines."""
    return {
        m[1]: (m[2], m[3])
        for m in re.finditer(
            r"has been submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+?)/(\S*)/\d+\.log\)",
            text,
        )
    }


def _ran(text: str, prefix: str) -> set[tuple[str, str]]:
    """(rule, wildcard values joined by _) of the jobs Snakemake started as ``rule`` or ``localrule``,
    not counting the logs of failed jobs it prints (the Slurm log holds the job's own Snakemake)."""
    text = re.sub(r"^Logfile [^\n]*:\n={40,}\n.*?\n={40,}$", "", text, flags=re.M | re.S)
    jobs = set()
    for block in re.split(r"\n\s*\n", text):
        head = re.search(rf"^{prefix} (\w+):$", block, re.M)
        if head:
            wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            jobs.add(
                (head[1], "_".join(kv.split("=", 1)[1] for kv in wc[1].split(", ")) if wc else "")
            )
    return jobs


class Invocation:
    def __init__(self, args, out: str, rc: int, seconds: float):
        self.args, self.out, self.rc, self.seconds = args, out, rc, seconds
        m = re.search(r"SLURM run ID: (\S+)", out)
        self.run_id = m[1] if m else None
        self.submitted = _submitted(out)
        self.cluster_jobs, self.local_jobs = _ran(out, "rule"), _ran(out, "localrule")


@pytest.fixture(scope="module")
def slurm_runs(cluster, smoke_data, tmp_path_factory):
    """The two invocations of the module's docstring on ``cluster``; returns what each printed and
    the Slurm job ids cancelled and run."""
    work = _copy_data(smoke_data, tmp_path_factory.mktemp(f"slurm_{cluster.status}"))
    site = work / "site.yaml"
    site.write_text(SITE)
    env = {**cluster.env, workflow.SITE_ENV: str(site)}
    pythia = [str(BIN / "pythia"), "workflow", "run"]

    # 1. cancelled by Slurm while queued or running
    before = cluster.queued()
    args = [STANDARD, "--profile", "slurm", "--directory", str(work), *CONFIG]
    log = work / "first.log"
    t0 = time.monotonic()
    with log.open("w") as f:
        proc = subprocess.Popen(
            [*pythia, *args],
            cwd=ROOT,
            env=_env(**env, PYTHIA_SKIP_CLUSTER_CHECK="1"),
            stdout=f,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline, cancelled = time.monotonic() + 120, None
        while cancelled is None and time.monotonic() < deadline and proc.poll() is None:
            new = sorted(cluster.queued() - before, key=int)
            if new:
                cancelled = new[0]
                assert cluster.run("scancel", cancelled).returncode == 0
            time.sleep(0.3)
        assert cancelled, (
            f"no Slurm job appeared within 120 s:\n{_tail(log.read_text())}\n{cluster.logs()}"
        )
        try:
            rc = proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the workflow did not end within 240 s of `scancel {cancelled}` ({cluster.status} status):\n"
                f"{_tail(log.read_text())}\n{cluster.logs()}"
            )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first = Invocation(args, log.read_text(), rc, time.monotonic() - t0)
    first.cancelled = cancelled

    # 2. again, with a broken job beside it; through run's cluster check
    (work / "work" / "smoke" / "data" / "deduped" / "sequences.bin").write_bytes(b"")
    args = [
        STANDARD,
        DEDUPED,
        "--keep-going",
        "--profile",
        "slurm",
        "--directory",
        str(work),
        *CONFIG,
    ]
    t0 = time.monotonic()
    check = (
        {} if cluster.status == "squeue" else {"PYTHIA_SKIP_CLUSTER_CHECK": "1"}
    )  # its dry run: once is enough
    try:
        out = subprocess.run(
            [*pythia, *args],
            cwd=ROOT,
            env=_env(**env, **check),
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"the second run did not end within 600 s ({cluster.status} status):\n"
            f"{_tail(e.stdout if isinstance(e.stdout, str) else (e.stdout or b'').decode(errors='replace'))}\n"
            f"{cluster.logs()}"
        )
    second = Invocation(args, out.stdout + out.stderr, out.returncode, time.monotonic() - t0)
    (work / "second.log").write_text(second.out)
    print(
        f"\n[{cluster.status}] slurm-local start {cluster.start_seconds:.1f} s, cancelled run {first.seconds:.1f} s, "
        f"rerun + failing job {second.seconds:.1f} s"
    )
    return {
        "work": work,
        "first": first,
        "second": second,
        "jobs": cluster.jobs(),
        "cluster": cluster,
    }


def test_status_command_follows_accounting(cluster, tmp_path, monkeypatch):
    """sacct needs accounting; without it the profile polls with squeue (else Snakemake waits forever)."""
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    monkeypatch.chdir(ROOT)
    assert workflow.slurm_status_command() == cluster.status
    assert _parse_profile(tmp_path, SITE).ns.slurm_status_command == cluster.status


def test_scancelled_job_fails_the_workflow_naming_it(slurm_runs):
    first, cluster = slurm_runs["first"], slurm_runs["cluster"]
    assert first.rc != 0, _tail(first.out)
    assert f"SLURM-job '{first.cancelled}' failed, SLURM status is: 'CANCELLED'" in first.out, (
        _tail(first.out)
    )
    assert slurm_runs["jobs"][first.cancelled]["state"] == "CANCELLED"
    assert "Error in rule train" in first.out and "standard_s1" in first.out


def test_cancelled_job_reruns_on_the_next_invocation(slurm_runs):
    first, second = slurm_runs["first"], slurm_runs["second"]
    reran = [
        jid
        for jid, job in slurm_runs["jobs"].items()
        if job["name"] == second.run_id
        and (not job["comment"] or "standard_s1" in job["comment"])
        and job["state"] == "COMPLETED"
    ]
    assert len(reran) == 1 and reran[0] != first.cancelled, (slurm_runs["jobs"], _tail(second.out))
    assert (slurm_runs["work"] / STANDARD).is_file()


def test_every_cluster_job_ran_as_a_slurm_job(slurm_runs):
    """Each job Snakemake started outside localrules was submitted, and Slurm's status command
    lists it under the run's id; none was run on the login node instead."""
    jobs = slurm_runs["jobs"]
    for inv in (slurm_runs["first"], slurm_runs["second"]):
        assert inv.run_id, _tail(inv.out)
        assert inv.cluster_jobs and inv.cluster_jobs == set(inv.submitted.values()), (
            inv.cluster_jobs,
            inv.submitted,
        )
        for jid in inv.submitted:
            assert jid in jobs and jobs[jid]["name"] == inv.run_id, (
                jid,
                jobs,
                slurm_runs["cluster"].logs(),
            )
        assert not inv.local_jobs, inv.local_jobs  # (targets given: no notebook)
    assert slurm_runs["second"].cluster_jobs == {("train", "standard_s1"), ("train", "deduped_s1")}
    assert len(slurm_runs["second"].submitted) == 2


def test_outputs_equal_a_local_run(slurm_runs, smoke_run):
    """The Slurm job's training equals the same training run here (``smoke_run``: `pythia train`
    of s1 on the standard data, one thread, as the job's command line has it)."""

    def record(run: Path):
        done = json.loads((run / "done.json").read_text())
        done.pop("train_log_sha256")  # the log holds tokens per second
        assert done.pop("final_checkpoint").endswith("smoke/models/standard/s1/step24")
        log = [
            {k: v for k, v in json.loads(line).items() if k != "tokens_per_s"}
            for line in (run / "train_log.jsonl").read_text().splitlines()
        ]
        return done, log

    slurm_done, slurm_log = record((slurm_runs["work"] / STANDARD).parent)
    local_done, local_log = record(smoke_run / "smoke" / "models" / "standard" / "s1")
    assert slurm_done == local_done and slurm_log == local_log
    assert slurm_done["final_weights_sha256"] and slurm_done["steps"] == 24 and len(slurm_log) == 25


def test_job_failing_in_slurm_fails_the_workflow_with_its_log(slurm_runs):
    second, work = slurm_runs["second"], slurm_runs["work"]
    assert second.rc != 0, _tail(second.out)
    failed = [
        jid
        for jid, job in slurm_runs["jobs"].items()
        if job["name"] == second.run_id and job["state"] == "FAILED"
    ]
    assert len(failed) == 1, slurm_runs["jobs"]
    assert f"SLURM-job '{failed[0]}' failed, SLURM status is: 'FAILED'" in second.out, _tail(
        second.out
    )
    log = (
        (work / "logs" / "smoke" / "train" / "deduped" / "s1.log").read_text().strip().splitlines()
    )
    assert "sequences.bin: size 0 bytes is inconsistent" in log[-1]
    assert log[-1] in second.out, "the failed job's log is not shown:\n" + _tail(second.out)
    assert not (work / DEDUPED).exists()
    if (
        slurm_runs["cluster"].status == "squeue"
    ):  # the run's pre-flight check passed: the site asks what the node has
        assert (
            "the cluster can run every job: 2 Slurm job(s) planned, partition(s) local"
            in second.out
        ), _tail(second.out)


@pytest.mark.parametrize(
    "cluster", ["squeue"], indirect=True
)  # the check reads sinfo alone: one Slurm is enough
def test_run_refuses_requests_the_cluster_cannot_meet(cluster, smoke_data, tmp_path):
    """One line per unmet request, before anything is submitted (instead of jobs PENDING forever):
    the shipped profile's training (32 threads, 256 GB, 8 GPUs) on a 2-CPU node without GPUs, and
    --cores all, which would cap every job's threads at the login node's cores."""
    work = _copy_data(smoke_data, tmp_path)
    site = tmp_path / "shipped.yaml"
    site.write_text("")
    before = cluster.queued()
    out = _pythia_workflow(
        "run",
        STANDARD,
        "--cores",
        "all",
        "--profile",
        "slurm",
        "--directory",
        str(work),
        *CONFIG,
        **cluster.env,
        **{workflow.SITE_ENV: str(site)},
    )
    text = out.stdout + out.stderr
    assert out.returncode == 2, _tail(text)
    lines = [
        line[len("pythia workflow run: ") :]
        for line in text.splitlines()
        if line.startswith("pythia workflow run: ")
    ]
    assert len(lines) == 5, lines
    assert lines[0].startswith(
        f"--cores {os.cpu_count()}: with the slurm executor it caps every job's threads"
    )
    assert (
        lines[1].startswith("rule train (1 job): 32 CPUs per job")
        and "partition 'local' has 2" in lines[1]
    )
    assert lines[2].startswith(
        "rule train (1 job): mem_mb 256000, but the largest node of partition 'local' has"
    )
    assert lines[3].startswith(
        "rule train (1 job): 8 GPUs per job, but no node of partition 'local' has a GPU"
    )
    assert lines[4].startswith("error: 4 request(s) above the cluster cannot meet"), lines
    assert (
        cluster.queued() == before and not (work / ".snakemake" / "slurm_logs").exists()
    )  # nothing submitted
