"""``pythia workflow run|check-cluster|unlock``: Snakemake, after clearing a dead run's lock
(:mod:`pythia.workflow`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

from pythia.errors import UsageError
from pythia.workflow import (
    LOCKS_DIR,
    ClusterCheck,
    ClusterMismatchError,
    DryRunError,
    SnakemakeInvocation,
    check_cluster,
    claim,
    parse_snakemake_args,
    snakemake_executable,
    stale_lock_files,
)


def _print_check(check: ClusterCheck, prog: str) -> None:
    for line in check.problems:
        print(f"{prog}: {line}", file=sys.stderr, flush=True)
    if not check.problems:
        print(
            f"{prog}: the cluster can run every job: {check.jobs} Slurm job(s) planned, "
            f"partition(s) {', '.join(check.partitions) or 'none'}",
            file=sys.stderr,
            flush=True,
        )


def _cluster_invocation(sm_args: list[str]) -> SnakemakeInvocation:
    inv = parse_snakemake_args(sm_args)
    if inv is None:
        from snakemake.cli import parse_args  # heavy: only a rejected argument list needs it

        sink = io.StringIO()
        with (
            contextlib.suppress(SystemExit, Exception),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            parse_args(list(sm_args))
        why = next((line for line in reversed(sink.getvalue().splitlines()) if line.strip()), "")
        raise UsageError(
            f"snakemake rejects these arguments: {why.strip() or 'see snakemake ' + ' '.join(sm_args)}"
        )
    return inv


def _sm_args(args: argparse.Namespace) -> list[str]:
    sm_args = list(args.extra)
    return sm_args[1:] if sm_args[:1] == ["--"] else sm_args


def _preflight(sm_args: list[str], inv: SnakemakeInvocation) -> None:
    """The cluster check of a run (see the module's docstring); raises if a request cannot be met."""
    try:
        check = check_cluster(sm_args, inv)
    except DryRunError:
        return  # Snakemake says what is wrong when it runs
    _print_check(check, "pythia workflow run")
    if check.problems:
        raise ClusterMismatchError(
            f"{len(check.problems)} request(s) above the cluster cannot meet: the jobs would wait forever; "
            "fix them in profiles/slurm/site.yaml (PYTHIA_SKIP_CLUSTER_CHECK=1 runs anyway)"
        )


def _cmd_run(args: argparse.Namespace) -> int:
    sm_args = _sm_args(args)
    exe = snakemake_executable()
    inv = parse_snakemake_args(sm_args)
    if inv is not None and inv.takes_lock:
        fd = claim(inv.workdir)
        os.set_inheritable(fd, True)  # the lock lives on in the snakemake process
        if inv.executor == "slurm" and not os.environ.get("PYTHIA_SKIP_CLUSTER_CHECK"):
            _preflight(sm_args, inv)
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


def _cmd_check_cluster(args: argparse.Namespace) -> int:
    sm_args = _sm_args(args)
    inv = _cluster_invocation(sm_args)
    if inv.executor != "slurm":
        print(
            "pythia workflow check-cluster: these arguments run the workflow locally (no slurm executor); "
            "nothing to check (add --profile slurm)",
            file=sys.stderr,
        )
        return 0
    check = check_cluster(sm_args, inv)
    _print_check(check, "pythia workflow check-cluster")
    if check.problems:
        raise ClusterMismatchError(
            f"{len(check.problems)} request(s) above the cluster cannot meet; "
            "fix them in profiles/slurm/site.yaml"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "workflow", help="run the Snakemake workflow; a run killed earlier is unlocked and resumed"
    )
    wsub = p.add_subparsers(dest="workflow_command", required=True, metavar="SUBCOMMAND")
    q = wsub.add_parser(
        "run",
        allow_abbrev=False,
        help="snakemake with these arguments, after clearing a lock left by a dead run (a live run is respected)",
        description="Every argument goes to snakemake unchanged, e.g. "
        "`pythia workflow run --cores all --profile profiles/default --config suite=smoke`.",
    )
    q.set_defaults(func=_cmd_run, passthrough=True)
    q = wsub.add_parser(
        "check-cluster",
        allow_abbrev=False,
        help="what the cluster (sinfo) cannot give the jobs these snakemake arguments would submit, one line each",
        description="Takes the arguments of `pythia workflow run`, e.g. "
        "`pythia workflow check-cluster --profile slurm --config suite=pythia`; exits 2 if any job "
        "asks for a partition, CPUs, memory, GPUs or time no node has.",
    )
    q.set_defaults(func=_cmd_check_cluster, passthrough=True)
    q = wsub.add_parser(
        "unlock", help="clear a Snakemake lock left by a dead run (a live run is respected)"
    )
    q.add_argument(
        "--directory", "-d", type=Path, help="the workflow's working directory (default: here)"
    )
    q.set_defaults(func=_cmd_unlock)
