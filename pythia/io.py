"""Atomic writes, hashing and provenance shared by every part of the package.

A half-written file never replaces a good one: everything is written to a temporary name
in the same directory, flushed, fsynced and renamed over the target.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pythia


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep results and data private to their writer
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def code_version() -> str:
    """The git commit of the code (with ``-dirty`` for uncommitted changes), else the package version."""
    root = Path(pythia.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "pythia",
                "rules",
                "Snakefile",
                "notebooks",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"pythia-compendium {pythia.__version__}"


def provenance(
    config_digest: str | None = None,
    inputs: dict[str, str | Path] | None = None,
    timestamp: bool = True,
    **extra: Any,
) -> dict:
    """What produced an output: code version, config digest, and sha256 of each input file.

    ``timestamp=False`` leaves out the creation time: results committed to git record only
    what identifies them, so a rerun of the same code on the same inputs changes nothing."""
    record: dict[str, Any] = {"code_version": code_version(), "package_version": pythia.__version__}
    if timestamp:
        record["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    if config_digest:
        record["config_digest"] = config_digest
    if inputs:
        record["inputs"] = {
            k: sha256_file(v) if Path(v).is_file() else str(v) for k, v in inputs.items()
        }
    record.update(extra)
    return record


def write_provenance(output: str | Path, **kwargs: Any) -> Path:
    """Write ``<output>.provenance.json`` beside an output file."""
    output = Path(output)
    return write_json(output.with_name(output.name + ".provenance.json"), provenance(**kwargs))
