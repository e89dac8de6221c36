"""A run's directory: claiming it, where a run starts, and its log.

    <run>/run.json           the run's identity (suite, run digest, model, dataset)
    <run>/train_log.jsonl    one record per step (:mod:`pythia.train.loop`)
    <run>/step<N>/           Hugging Face checkpoints; <run>/state/step<K>/ training states
    <run>/done.json          the summary of a finished run

A directory holding another configuration's run is refused (or, with ``replace_stale``,
deleted); one holding this run's checkpoints is continued only when asked (``--resume``), from
its latest state, after cutting the log back to that state's step (a resumed run rewrites the
records after it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

from pythia.io import write_text
from pythia.train import checkpoint as ckpt
from pythia.train.distributed import DistContext, barrier

LOG_NAME = "train_log.jsonl"


def claim(run_dir: Path, record: dict, ctx: DistContext, replace_stale: bool) -> None:
    """Create ``run_dir`` and write its ``run.json`` (the main rank), or check that it holds this
    run (``record``); every rank returns once the directory is ready."""
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.check_run_dir(run_dir, record, replace_stale=replace_stale)
    barrier(ctx)  # every rank sees the run dir after a stale one was replaced


def resume_from(run_dir: Path, resume: bool) -> tuple[Path | None, Path | None]:
    """(latest state, the one before it) to resume from, (None, None) to start at step 0; a run
    directory that already holds checkpoints without ``resume`` is an error."""
    latest, previous = ckpt.latest_state(run_dir)
    if not resume:
        existing = ckpt.saved_steps(run_dir) or ckpt.saved_steps(run_dir / "state")
        if existing:
            raise ckpt.CheckpointError(
                f"{run_dir} already holds checkpoints of this run (up to step {max(existing)}); "
                "pass --resume to continue it, or delete the directory to start over"
            )
        return None, None
    return latest, previous


def truncate_log(path: Path, keep_upto: int) -> None:
    """Keep records with step <= keep_upto (resume replays the rest); atomic rewrite."""
    kept: list[str] = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if rec.get("step", -1) <= keep_upto:
                kept.append(json.dumps(rec, sort_keys=True))
    write_text(path, "".join(k + "\n" for k in kept))


def append_record(log: IO[str], record: dict[str, Any]) -> None:
    """One record as a line of the log, flushed (a kill loses at most the line being written)."""
    log.write(json.dumps(record, sort_keys=True) + "\n")
    log.flush()


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def hash_list(items: list[str]) -> str:
    """First 16 hex characters of sha256 over ``items`` joined by newlines."""
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]
