"""``pythia workflow``: run the Snakemake workflow so that a killed run simply reruns.

    pythia workflow run [SNAKEMAKE ARGS ...]     what `make reproduce` calls
    pythia workflow unlock [--directory DIR]     only clear a stale lock (for plain `snakemake` users)
    pythia workflow check-cluster [SNAKEMAKE ARGS ...]   what the cluster cannot give the jobs (sinfo)

How Snakemake 9 locks a directory (``snakemake/persistence``, file backend, the default):
when a run starts executing, it writes ``<workdir>/.snakemake/locks/<n>.input.lock`` and
``<n>.output.lock``, plain lists of the files the run reads and writes, and refuses to
start (``LockException``) if one of its outputs is listed in an existing lock file. The run
deletes them when it ends, also after a failed job or Ctrl-C, but not when it is killed
(SIGKILL, the OOM killer, a power cut, a lost node): every later run then stops until
someone runs ``snakemake --unlock``. Nothing in the lock files says who wrote them.

``pythia workflow run`` works out the run's working directory (``--directory``, else the
current one; the arguments are read with Snakemake's own parser, profiles included) and then:

1. takes the flock ``<workdir>/.snakemake/pythia-workflow.lock`` (:mod:`pythia.locks`). If a
   live ``pythia workflow run`` holds it, it stops with one line naming that process.
2. looks for a live Snakemake process on this host working in the directory (Snakemake
   changes into its working directory, so its ``cwd`` is the directory) and stops, naming
   it, if there is one: a plain ``snakemake`` run is respected too.
3. deletes the lock files still in ``.snakemake/locks/``: no live run owns them. This is what
   ``snakemake --unlock`` does, without loading the workflow a second time. One line says so.
4. replaces itself with Snakemake (``exec``), passing the arguments unchanged. The lock
   descriptor of step 1 stays open in the Snakemake process, so that lock lives exactly as
   long as the run and dies with it.

A killed run leaves, besides the lock files, the "incomplete" marks of the jobs it was
running; the profile's ``rerun-incomplete`` reruns those jobs, and the training rule's
``--resume`` continues each from its last saved state. Finished jobs are not redone.

Dry runs (``-n``), ``--lint``, ``--unlock`` and ``--nolock`` take no lock and go straight to
Snakemake. Limit of step 2: it sees the processes of this host only; a plain ``snakemake``
started on another host that shares the directory is not seen (runs started with
``pythia workflow run`` are, through the shared lock file of step 1).

On a cluster (the arguments select the ``slurm`` executor, as ``--profile slurm`` does), ``run``
first runs the pre-flight check of ``check-cluster`` and stops, one line per problem, before
anything is submitted (``PYTHIA_SKIP_CLUSTER_CHECK=1`` skips it). A job asking for more than any
node of its partition has stays PENDING forever (``Reason=PartitionConfig``) and Snakemake says
nothing; the check says it up front. It dry-runs the workflow with the same arguments (threads
uncapped, as the cluster run has them), takes each non-local job's request the way the slurm
plugin turns it into ``sbatch`` options (partition: ``slurm_partition`` or the default one; CPUs:
``cpus_per_task``, else the job's threads; memory: ``mem_mb`` or ``mem_mb_per_cpu`` x CPUs; GPUs:
``gpu`` or a ``gres`` of gpu; ``runtime``), and compares it with ``sinfo`` (each partition's node
configurations, state and time limit). It also reports ``--cores`` given with the slurm executor
(it caps every job's threads at the login node's cores), and a status command that cannot work:
``sacct`` without accounting, ``squeue`` with a ``MinJobAge`` under the plugin's longest wait
between status queries (180 s).

The slurm profile reads the site's values with :func:`slurm_site`, picks its status command with
:func:`slurm_status_command`, and calls :func:`fix_slurm_plugin` (``profiles/slurm/config.yaml``).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import yaml

from pythia import locks
from pythia.errors import PythiaError, UsageError

if TYPE_CHECKING:
    import argparse

LOCKS_DIR = Path(".snakemake") / "locks"
RUN_LOCK = Path(".snakemake") / "pythia-workflow.lock"
LOCK_FILE_GLOB = "*.lock"


class WorkflowInUseError(locks.DirectoryInUseError):
    """A live Snakemake run works in the directory."""


@dataclass
class SnakemakeInvocation:
    """What ``pythia workflow run`` needs to know of Snakemake's arguments."""

    workdir: Path
    takes_lock: bool  # False for dry runs, --lint, --unlock, --nolock
    executor: str | None = None  # "slurm" under --profile slurm; None: local
    ns: argparse.Namespace | None = None  # everything Snakemake's parser read, profiles applied


def snakemake_executable() -> str:
    """The ``snakemake`` beside this interpreter (the project's environment), else on PATH."""
    found = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which(
        "snakemake"
    )
    if not found:
        raise PythiaError(
            "snakemake is not installed in this environment; run `make env` "
            "(or pip install -e .) and call the environment's pythia"
        )
    return found


def parse_snakemake_args(args: list[str]) -> SnakemakeInvocation | None:
    """Read ``args`` with Snakemake's own parser (profiles applied); None if it rejects them
    (Snakemake will then say why itself)."""
    from snakemake.cli import parse_args  # heavy: snakemake's parser loads its plugins

    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            _, ns = parse_args(list(args))
    except (SystemExit, Exception):
        return None
    workdir = Path(ns.directory) if ns.directory else Path.cwd()
    takes_lock = not (ns.dryrun or ns.lint is not None or ns.unlock or ns.nolock)
    executor = getattr(ns, "executor", None)
    return SnakemakeInvocation(
        workdir=workdir.resolve(),
        takes_lock=takes_lock,
        executor=None if executor in (None, "local", "dryrun", "touch") else executor,
        ns=ns,
    )


# ----------------------------------------------------------------------------- who is running


def _is_snakemake(cmdline: list[str]) -> bool:
    """A Snakemake command line: ``snakemake ...``, ``python .../snakemake ...``, ``python -m snakemake``."""
    if not cmdline:
        return False
    head = [os.path.basename(a) for a in cmdline[:2]]
    if "snakemake" in head:
        return True
    return any(a == "-m" and b == "snakemake" for a, b in itertools.pairwise(cmdline))


def live_snakemake(workdir: Path) -> list[int]:
    """Process ids of the Snakemake processes on this host whose working directory is ``workdir``."""

    workdir = workdir.resolve()
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        info = proc.info
        if info["pid"] == me or not _is_snakemake(info.get("cmdline") or []):
            continue
        cwd = info.get("cwd")
        if cwd is None:  # not ours to inspect: count it if its arguments name the directory
            if any(str(workdir) in a for a in info.get("cmdline") or []):
                found.append(info["pid"])
            continue
        with contextlib.suppress(OSError):
            if Path(cwd).resolve() == workdir:
                found.append(info["pid"])
    return sorted(found)


def stale_lock_files(workdir: Path) -> list[Path]:
    """Snakemake's lock files in ``workdir/.snakemake/locks``."""
    d = workdir / LOCKS_DIR
    return sorted(p for p in d.glob(LOCK_FILE_GLOB) if p.is_file()) if d.is_dir() else []


# ----------------------------------------------------------------------------- the checks


def claim(workdir: Path) -> int:
    """Steps 1-3: make sure no live run works in ``workdir`` and clear a dead run's locks.

    Returns the descriptor holding ``.snakemake/pythia-workflow.lock`` (close it, or let the
    process end, to release). Raises :class:`WorkflowInUseError` if a live run holds the
    directory. Prints one line when it clears a stale lock.
    """
    if not workdir.is_dir():
        raise UsageError(
            f"working directory {workdir} does not exist; create it or fix --directory"
        )
    lock_file = workdir / RUN_LOCK
    fd = locks.acquire_fd(lock_file, "pythia workflow run")
    if fd is None:
        raise WorkflowInUseError(_in_use(workdir, lock_file))
    try:
        pids = live_snakemake(workdir)
        if pids:
            raise WorkflowInUseError(
                f"{workdir} is in use by a running Snakemake (pid {', '.join(map(str, pids))}); wait for it "
                f"to finish or stop it (kill {pids[0]}), then rerun"
            )
        cleared = clear_stale_locks(workdir)
        if cleared:
            print(
                f"pythia workflow: cleared a stale Snakemake lock in {workdir / LOCKS_DIR} ({len(cleared)} files) "
                "left by a run that is no longer alive; unfinished jobs rerun, finished ones are kept",
                file=sys.stderr,
                flush=True,
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _in_use(workdir: Path, lock_file: Path) -> str:
    rec = locks.holder(lock_file)
    stop = f"stop it (kill {rec['pid']})" if rec else "stop it"
    return f"{workdir} is in use by a running workflow, {locks.describe(rec)}; wait for it to finish or {stop}, then rerun"


def clear_stale_locks(workdir: Path) -> list[Path]:
    """Delete Snakemake's lock files in ``workdir`` (the caller made sure no run is alive)."""
    files = stale_lock_files(workdir)
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    return files


# ----------------------------------------------------------------------------- the slurm profile

SITE_ENV = "PYTHIA_SLURM_SITE"
SITE_FILE = Path("profiles") / "slurm" / "site.yaml"
_BLOCKS = ("default-resources", "set-resources", "set-threads")


class SlurmSite(dict):
    """The site file of the slurm profile (a mapping of Snakemake profile keys), with the pieces
    ``profiles/slurm/config.yaml`` layers over its own values."""

    path: Path | None = None

    def block(self, key: str) -> dict:
        """A one-level block (``default-resources``, ``set-threads``): its entries."""
        return dict(self.get(key) or {})

    def rule(self, rule: str) -> dict:
        """The ``set-resources`` entries of ``rule``."""
        return dict((self.get("set-resources") or {}).get(rule) or {})

    def other_rules(self, *shipped: str) -> dict:
        """``set-resources`` of the rules the shipped profile does not name."""
        return {
            r: dict(v) for r, v in (self.get("set-resources") or {}).items() if r not in shipped
        }

    def other_keys(self) -> dict:
        """Every key but the three blocks: each replaces the shipped value."""
        return {k: v for k, v in self.items() if k not in _BLOCKS}


def site_file() -> Path | None:
    """The slurm profile's site file: ``$PYTHIA_SLURM_SITE``, else ``profiles/slurm/site.yaml`` of
    the current directory or of this repository; None if there is none."""
    if os.environ.get(SITE_ENV):
        path = Path(os.environ[SITE_ENV]).expanduser()
        if not path.is_file():
            raise UsageError(
                f"${SITE_ENV} names {path}, which is not a file; create it "
                f"(from profiles/slurm/site.yaml.example) or unset {SITE_ENV}"
            )
        return path
    for path in (SITE_FILE, Path(__file__).resolve().parents[1] / SITE_FILE):
        if path.is_file():
            return path
    return None


def slurm_site() -> SlurmSite:
    """The site file's values (empty without one), checked: a mapping of profile keys, whose
    ``default-resources`` and ``set-threads`` are mappings and ``set-resources`` a mapping of rules
    to mappings."""

    path = site_file()
    if path is None:
        return SlurmSite()
    data = yaml.safe_load(path.read_text()) or {}

    def bad(what):
        return UsageError(f"{path}: {what}; see profiles/slurm/site.yaml.example")

    if not isinstance(data, dict):
        raise bad(
            "must be a mapping of profile keys (default-resources:, set-resources:, jobs: ...)"
        )
    for key in ("default-resources", "set-threads"):
        if not isinstance(data.get(key) or {}, dict):
            raise bad(f"{key} must be a mapping of names to values")
    rules = data.get("set-resources") or {}
    if not isinstance(rules, dict) or not all(isinstance(v or {}, dict) for v in rules.values()):
        raise bad("set-resources must map each rule to a mapping of resources")
    site = SlurmSite(data)
    site.path = path
    return site


SLURM_CONF_PATHS = ("/etc/slurm/slurm.conf", "/run/slurm/conf/slurm.conf")


def slurm_config() -> dict[str, str] | None:
    """``scontrol show config`` as a mapping; None where Slurm does not answer, or has no
    configuration file here (scontrol would retry for a minute: the profile asks at every read)."""
    conf_file = os.environ.get("SLURM_CONF") or next(
        (p for p in SLURM_CONF_PATHS if os.path.exists(p)), None
    )
    if not shutil.which("scontrol") or not conf_file or not os.path.exists(conf_file):
        return None
    try:
        out = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    conf = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            conf[key.strip()] = value.strip()
    return conf


def has_accounting(conf: dict[str, str]) -> bool:
    return conf.get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none"


def slurm_status_command() -> str | None:
    """``sacct`` where Slurm keeps accounting, ``squeue`` where it does not (sacct then fails and
    the plugin would lose its jobs), None where no Slurm answers (the plugin then chooses)."""
    conf = slurm_config()
    if conf is None:
        return None
    return "sacct" if has_accounting(conf) else "squeue"


def fix_slurm_plugin() -> bool:
    """Make the slurm plugin (2.8.0) see a job cancelled with ``scancel`` under sacct.

    sacct reports such a job as ``CANCELLED by <uid>``; the plugin compares the state with exact
    names (``CANCELLED``), takes it for a job still running, and Snakemake waits forever (squeue
    writes ``CANCELLED`` and is not affected). This wraps the plugin's status query so that the
    state is its first word. The slurm profile calls it while Snakemake reads the profile, in the
    process that runs the executor. Returns whether the plugin is (now) patched; a plugin without
    that function is left alone."""
    try:
        import snakemake_executor_plugin_slurm as plugin  # heavy (0.4 s, snakemake's API): only a slurm profile calls this
    except ImportError:
        return False
    query = getattr(plugin, "query_job_status", None)
    if query is None:
        return False
    if getattr(query, "pythia_fixed", False):
        return True

    async def query_job_status(command, logger):
        states, seconds = await query(command, logger)
        if states:
            states = {
                job: state.split()[0] if state.startswith("CANCELLED") else state
                for job, state in states.items()
            }
        return states, seconds

    query_job_status.pythia_fixed = True  # type: ignore[attr-defined]  # a mark on the function
    plugin.query_job_status = query_job_status
    return True


SQUEUE_MIN_JOB_AGE = 180
"""Seconds a finished job must stay in squeue: the plugin's longest wait between status queries
(it adds 10 s to the wait after each query that finds no job ended, up to 180 s)."""


def _seconds(value: str | None) -> int | None:
    """``300 sec``, ``1h``, ``300`` -> seconds."""
    m = re.match(r"(\d+)\s*([a-zA-Z]*)", value or "")
    if not m:
        return None
    return int(m[1]) * (
        3600 if m[2].lower().startswith("h") else 60 if m[2].lower().startswith("min") else 1
    )


# ----------------------------------------------------------------------------- check-cluster


@dataclass(frozen=True)
class Request:
    """What the slurm plugin asks ``sbatch`` for, for one job."""

    rule: str
    partition: str | None  # None: the cluster's default partition
    cpus: int | None  # None: no CPU option (cpus_per_task < 0)
    mem_mb: int | None
    gpus: int
    runtime: int | None  # minutes


@dataclass
class NodeGroup:
    """Nodes of one configuration in one partition (a line of ``sinfo -e``)."""

    partition: str
    cpus: int
    mem_mb: int
    gpus: int
    time_limit: int | None  # minutes; None: unlimited
    state: str


def _int(value) -> int | None:
    try:
        return int(float(str(value).strip("'\"")))
    except (TypeError, ValueError):
        return None


def _gres_gpus(gres: str) -> int:
    """GPUs in a gres string: ``gpu:8``, ``gpu:a100:4(S:0-1),gpu:v100:2``, ``(null)``."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", gres or "").split(","):
        parts = item.strip().split(":")
        if parts[0] == "gpu":
            total += _int(parts[-1]) or 1 if len(parts) > 1 else 1
    return total


def _minutes(limit: str) -> int | None:
    """A Slurm time limit (``infinite``, ``D-HH:MM:SS``, ``HH:MM:SS``, ``MM:SS``, ``MM``) in minutes."""
    if not limit or limit.lower() in ("infinite", "unlimited", "n/a"):
        return None
    days, _, rest = limit.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    h, m, sec = ([0, 0, *parts])[-3:] if len(parts) > 1 else (0, parts[0], 0)
    return (int(days or 0) * 24 + h) * 60 + m + (1 if sec else 0)


def _job_request(rule: str, threads: int, res: dict[str, str]) -> Request:
    """A dry run's job as the slurm plugin submits it (submit_string.get_submit_command, get_cpu_setting)."""
    gpus = _int(res.get("gpu")) or 0
    if not gpus and "gpu" in res.get("gres", ""):
        gpus = _gres_gpus(res["gres"])
    cpus_per_task = _int(res.get("cpus_per_task"))
    if cpus_per_task is not None and cpus_per_task < 0:
        cpus = None
    elif cpus_per_task:
        cpus = max(1, cpus_per_task)
    elif gpus and (per_gpu := _int(res.get("cpus_per_gpu"))):
        cpus = per_gpu * gpus
    else:
        cpus = threads
    mem = _int(res.get("mem_mb"))
    if per_cpu := _int(res.get("mem_mb_per_cpu")):
        mem = per_cpu * (cpus or 1)
    partition = res.get("slurm_partition", "").strip("'\"") or None
    return Request(rule, partition, cpus, mem, gpus, _int(res.get("runtime")))


def parse_dry_run(text: str) -> Counter:
    """The jobs of a dry run's output: ``Counter({(rule, threads, {resource: value}), ...})``,
    resources as a sorted tuple of pairs."""
    jobs: Counter = Counter()
    for block in re.split(r"\n\s*\n", text):
        head = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):$", block, re.M)
        if not head:
            continue
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        pairs = {}
        for item in re.split(r", (?=\w+=)", res[1] if res else ""):
            key, sep, value = item.partition("=")
            if sep:
                pairs[key.strip()] = value.strip()
        jobs[(head[1], int(threads[1]) if threads else 1, tuple(sorted(pairs.items())))] += 1
    return jobs


def local_rules(snakefile: Path) -> set[str]:
    """Rules named by a ``localrules:`` directive in ``snakefile`` or the .smk files beside it
    (a dry run prints local and cluster jobs alike)."""
    names: set[str] = set()
    files = [
        snakefile,
        *sorted(snakefile.parent.glob("rules/*.smk")),
        *sorted(snakefile.parent.glob("*.smk")),
    ]
    for f in files:
        with contextlib.suppress(OSError):
            for m in re.finditer(r"^localrules:(.*?)(?=^\S|\Z)", f.read_text(), re.M | re.S):
                body = re.sub(r"#[^\n]*", "", m[1])
                names.update(n for n in re.split(r"[\s,]+", body) if n)
            for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", f.read_text(), re.M):
                if re.search(r"^\s+localrule:\s*True", m[2], re.M):
                    names.add(m[1])
    return names


class DryRunError(PythiaError):
    """Snakemake rejected the run's arguments or workflow (a run stops the same way, saying why)."""


def planned_requests(sm_args: list[str], snakefile: Path) -> Counter:
    """``Counter({Request: jobs})`` of the cluster jobs a run with ``sm_args`` would submit: a dry
    run with the same arguments and threads left uncapped (``--cores`` is the login node's and
    caps nothing on the cluster; the check reports a ``--cores`` separately)."""
    cmd = [snakemake_executable(), *sm_args, "--dry-run", "--nolock", "--cores", "1000000"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise DryRunError(
            f"the dry run of the workflow failed, so the cluster check cannot see its jobs:\n{tail}"
        )
    local = local_rules(snakefile)
    requests: Counter = Counter()
    for (rule, threads, res), n in parse_dry_run(out.stdout).items():
        if rule not in local:
            requests[_job_request(rule, threads, dict(res))] += n
    return requests


def sinfo() -> tuple[list[NodeGroup], str | None]:
    """The cluster's node configurations per partition, and the default partition."""
    if not shutil.which("sinfo"):
        raise PythiaError(
            "sinfo not found: run the cluster check on the cluster's login node "
            "(or with scripts/slurm-local's SLURM_CONF exported)"
        )
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-e", "-o", "%P|%c|%m|%G|%l|%a"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise PythiaError("sinfo did not answer in 60 s; is slurmctld up?") from e
    if out.returncode != 0:
        raise PythiaError(f"sinfo failed: {out.stderr.strip()}")
    groups, default = [], None
    for line in out.stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6:
            continue
        name, cpus, mem, gres, limit, avail = fields
        if name.endswith("*"):
            name = name[:-1]
            default = name
        groups.append(
            NodeGroup(
                name,
                _int(cpus.rstrip("+")) or 0,
                _int(mem.rstrip("+")) or 0,
                _gres_gpus(gres),
                _minutes(limit),
                avail,
            )
        )
    return groups, default


def _jobs(rule: str, n: int) -> str:
    return f"rule {rule} ({n} job{'s' if n != 1 else ''})"


def _partition_problems(
    req: Request, who: str, part: str | None, by_partition: dict[str, list[NodeGroup]]
) -> list[str]:
    """Why the partition of ``req`` cannot take it at all (missing, none set), or is not up."""
    if part is None:
        return [
            f"{who}: no slurm_partition and the cluster has no default partition; "
            "set default-resources: slurm_partition in the site file"
        ]
    nodes = by_partition.get(part)
    if not nodes:
        return [
            f"{who}: partition '{part}' does not exist (partitions: {', '.join(sorted(by_partition)) or 'none'}); "
            "set slurm_partition in the site file"
        ]
    if not any(g.state == "up" for g in nodes):
        return [
            f"{who}: partition '{part}' is {nodes[0].state}, not up; its jobs would wait until it is"
        ]
    return []


def _node_misses(req: Request, who: str, part: str, nodes: list[NodeGroup]) -> list[str]:
    """Each resource of ``req`` that no node of partition ``part`` has, one line each; or, when
    each fits some node, a line if no single node has them all."""
    misses = []
    if req.cpus and req.cpus > max(g.cpus for g in nodes):
        misses.append(
            f"{who}: {req.cpus} CPUs per job (its threads, or cpus_per_task), but the largest node of "
            f"partition '{part}' has {max(g.cpus for g in nodes)}; lower set-threads/cpus_per_task of "
            f"{req.rule} in the site file"
        )
    if req.mem_mb and req.mem_mb > max(g.mem_mb for g in nodes):
        misses.append(
            f"{who}: mem_mb {req.mem_mb}, but the largest node of partition '{part}' has "
            f"{max(g.mem_mb for g in nodes)} MB; lower mem_mb of {req.rule} in the site file"
        )
    if req.gpus and req.gpus > max(g.gpus for g in nodes):
        most = max(g.gpus for g in nodes)
        misses.append(
            f"{who}: {req.gpus} GPUs per job, but "
            + (
                f"no node of partition '{part}' has a GPU"
                if not most
                else f"the nodes of partition '{part}' have at most {most}"
            )
            + f"; set gpu (and slurm_partition) of {req.rule} in the site file"
        )
    limits = [g.time_limit for g in nodes if g.time_limit is not None]  # None: unlimited
    if req.runtime and len(limits) == len(nodes) and req.runtime > max(limits):
        misses.append(
            f"{who}: runtime {req.runtime} min, but partition '{part}' allows at most {max(limits)} min; "
            f"lower runtime of {req.rule} in the site file"
        )
    if not misses and not any(
        (not req.cpus or req.cpus <= g.cpus)
        and (not req.mem_mb or req.mem_mb <= g.mem_mb)
        and req.gpus <= g.gpus
        for g in nodes
    ):
        misses.append(
            f"{who}: no single node of partition '{part}' has {req.cpus} CPUs, {req.mem_mb} MB and "
            f"{req.gpus} GPUs together"
        )
    return misses


def unmet_requests(requests: Counter, groups: list[NodeGroup], default: str | None) -> list[str]:
    """One line per request no node of its partition can meet."""
    by_partition: dict[str, list[NodeGroup]] = {}
    for g in groups:
        by_partition.setdefault(g.partition, []).append(g)
    problems: list[str] = []
    for req, n in sorted(requests.items(), key=lambda kv: kv[0].rule):
        who = _jobs(req.rule, n)
        part = req.partition or default
        lines = _partition_problems(req, who, part, by_partition)
        if part is not None and part in by_partition:
            lines += _node_misses(req, who, part, by_partition[part])
        problems += [line for line in lines if line not in problems]
    return problems


def settings_problems(inv: SnakemakeInvocation, conf: dict[str, str] | None) -> list[str]:
    """Arguments that break a cluster run: ``--cores``, and a status command that cannot follow the jobs."""
    ns, problems = inv.ns, []
    cores = getattr(ns, "cores", None)
    if cores is not None:
        problems.append(
            f"--cores {cores}: with the {inv.executor} executor it caps every job's threads (training "
            f"asks for set-threads) and the cores of all jobs in flight at {cores}; leave --cores out "
            f"(the profile's jobs: {getattr(ns, 'jobs', None)} bounds the jobs in flight)"
        )
    if conf is None:
        return problems
    status = getattr(ns, "slurm_status_command", None)
    status = status if isinstance(status, str) else None
    if status == "sacct" and not has_accounting(conf):
        problems.append(
            "slurm-status-command is sacct, but this Slurm keeps no accounting "
            "(AccountingStorageType=accounting_storage/none): sacct fails and Snakemake would wait "
            "forever; set slurm-status-command: squeue in the site file (or drop it: the profile chooses)"
        )
    min_job_age = _seconds(conf.get("MinJobAge"))
    if status == "squeue" and min_job_age is not None and min_job_age < SQUEUE_MIN_JOB_AGE:
        problems.append(
            f"slurm-status-command is squeue, but MinJobAge is {min_job_age} s: squeue forgets a finished "
            f"job before the plugin's next status query (up to {SQUEUE_MIN_JOB_AGE} s apart) and Snakemake "
            f"would wait forever; use sacct where there is accounting, or ask for MinJobAge >= "
            f"{SQUEUE_MIN_JOB_AGE}"
        )
    return problems


@dataclass
class ClusterCheck:
    problems: list[str]
    jobs: int
    partitions: list[str]


def check_cluster(sm_args: list[str], inv: SnakemakeInvocation) -> ClusterCheck:
    """The pre-flight check of a cluster run with ``sm_args`` (see the module's docstring)."""
    from snakemake.cli import resolve_snakefile  # heavy: snakemake's parser loads its plugins

    groups, default = sinfo()
    conf = slurm_config()
    snakefile = Path(
        getattr(inv.ns, "snakefile", None)
        or resolve_snakefile(None, allow_missing=True)
        or "Snakefile"
    )
    requests = planned_requests(sm_args, snakefile)
    problems = settings_problems(inv, conf) + unmet_requests(requests, groups, default)
    used = sorted({r.partition or default or "?" for r in requests})
    return ClusterCheck(problems, sum(requests.values()), used)


class ClusterMismatchError(PythiaError):
    """The jobs ask for what the cluster cannot give."""
