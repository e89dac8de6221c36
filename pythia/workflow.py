"""``pythia workflow``: run the Snakemake workflow so that a killed run simply reruns.

    pythia workflow run [SNAKEMAKE ARGS ...]     what `make reproduce` calls
    pythia workflow unlock [--directory DIR]     only clear a stale lock (for plain `snakemake` users)

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
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from pythia import locks
from pythia.errors import PythiaError, UsageError

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


def snakemake_executable() -> str:
    """The ``snakemake`` beside this interpreter (the project's environment), else on PATH."""
    found = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
    if not found:
        raise PythiaError("snakemake is not installed in this environment; run `make env` "
                          "(or pip install -e .) and call the environment's pythia")
    return found


def parse_snakemake_args(args: list[str]) -> SnakemakeInvocation | None:
    """Read ``args`` with Snakemake's own parser (profiles applied); None if it rejects them
    (Snakemake will then say why itself)."""
    from snakemake.cli import parse_args

    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            _, ns = parse_args(list(args))
    except (SystemExit, Exception):
        return None
    workdir = Path(ns.directory) if ns.directory else Path.cwd()
    takes_lock = not (ns.dryrun or ns.lint is not None or ns.unlock or ns.nolock)
    return SnakemakeInvocation(workdir=workdir.resolve(), takes_lock=takes_lock)


# ----------------------------------------------------------------------------- who is running


def _is_snakemake(cmdline: list[str]) -> bool:
    """A Snakemake command line: ``snakemake ...``, ``python .../snakemake ...``, ``python -m snakemake``."""
    if not cmdline:
        return False
    head = [os.path.basename(a) for a in cmdline[:2]]
    if "snakemake" in head:
        return True
    return any(a == "-m" and b == "snakemake" for a, b in zip(cmdline, cmdline[1:]))


def live_snakemake(workdir: Path) -> list[int]:
    """Process ids of the Snakemake processes on this host whose working directory is ``workdir``."""
    import psutil

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
        raise UsageError(f"working directory {workdir} does not exist; create it or fix --directory")
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
            print(f"pythia workflow: cleared a stale Snakemake lock in {workdir / LOCKS_DIR} ({len(cleared)} files) "
                  "left by a run that is no longer alive; unfinished jobs rerun, finished ones are kept",
                  file=sys.stderr, flush=True)
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


# ----------------------------------------------------------------------------- commands


def _cmd_run(args: argparse.Namespace) -> int:
    sm_args = list(args.extra)
    if sm_args[:1] == ["--"]:
        sm_args = sm_args[1:]
    exe = snakemake_executable()
    inv = parse_snakemake_args(sm_args)
    if inv is not None and inv.takes_lock:
        fd = claim(inv.workdir)
        os.set_inheritable(fd, True)  # the lock lives on in the snakemake process
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(exe, [exe, *sm_args])
    return 0  # not reached


def _cmd_unlock(args: argparse.Namespace) -> int:
    workdir = Path(args.directory or Path.cwd()).resolve()
    files_before = stale_lock_files(workdir)
    fd = claim(workdir)
    os.close(fd)
    if not files_before:
        print(f"pythia workflow: no Snakemake lock in {workdir / LOCKS_DIR}; nothing to do")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("workflow", help="run the Snakemake workflow; a run killed earlier is unlocked and resumed")
    wsub = p.add_subparsers(dest="workflow_command", required=True, metavar="SUBCOMMAND")
    q = wsub.add_parser(
        "run", allow_abbrev=False,
        help="snakemake with these arguments, after clearing a lock left by a dead run (a live run is respected)",
        description="Every argument goes to snakemake unchanged, e.g. "
                    "`pythia workflow run --cores all --profile profiles/default --config suite=smoke`.",
    )
    q.set_defaults(func=_cmd_run, passthrough=True)
    q = wsub.add_parser("unlock", help="clear a Snakemake lock left by a dead run (a live run is respected)")
    q.add_argument("--directory", "-d", type=Path, help="the workflow's working directory (default: here)")
    q.set_defaults(func=_cmd_unlock)
