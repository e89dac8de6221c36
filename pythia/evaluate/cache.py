"""Scores cached per checkpoint on disk, so a rerun only scores what is new.

Layout (``root`` defaults to ``work/<suite>/cache/scores``)::

    <root>/<model>-<dataset>-step<N>-<hash of the identity>/
        identity.txt                 the checkpoint's full identity (pythia.runs.Checkpoint.identity)
        <block key>.npz              targets, logprobs, greedy of one block of rows

A request is cut into blocks of ``block_rows`` consecutive rows; a block's key is the sha256
of its tokens, the sequence lengths, the positions and the scoring options. Blocks already
on disk are read; the rest are scored together (the model is loaded only if one is missing)
and written atomically, one file per block. Asking again for the same rows, or for the same
rows plus new ones (e.g. the sequences of a later checkpoint's extra steps), scores only the
new blocks. A retrained checkpoint has another identity, so its scores are never mixed up
with the old ones.

Example::

    from pythia.evaluate.cache import cached_score
    s = cached_score(ckpt, tokens, positions=range(32, 64), forbid=[0], vocab_size=len(tok))
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pythia import paths
from pythia.evaluate.scoring import Scores, as_rows, score, target_positions
from pythia.io import atomic_path, write_text

DEFAULT_BLOCK_ROWS = 1024
BLOCK_ARRAYS = ("targets", "logprobs", "greedy")
"""The arrays of a block's file (the :class:`~pythia.evaluate.scoring.Scores` of its rows)."""


def cache_root(suite: str) -> Path:
    """``work/<suite>/cache``: every on-disk cache of evaluations of a suite's checkpoints."""
    return paths.suite_dir(suite) / "cache"


def checkpoint_dir(root: str | Path, checkpoint) -> Path:
    """The cache folder of one checkpoint (readable name + hash of its identity)."""
    ident = checkpoint.identity
    h = hashlib.sha256(ident.encode()).hexdigest()[:16]
    d = Path(root) / f"{checkpoint.model}-{checkpoint.dataset}-step{checkpoint.step}-{h}"
    if not (d / "identity.txt").is_file():
        write_text(d / "identity.txt", ident + "\n")
    return d


def _block_key(rows: np.ndarray, lengths: np.ndarray, options: str) -> str:
    h = hashlib.sha256(options.encode())
    h.update(np.ascontiguousarray(rows, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(lengths, dtype="<i8").tobytes())
    return h.hexdigest()[:24]


def _load_block(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path) as f:
            return {k: f[k] for k in BLOCK_ARRAYS}
    except (OSError, ValueError, KeyError):  # missing or damaged: score it again
        return None


def cached_score(
    checkpoint,
    tokens,
    positions: Iterable[int] | None = None,
    *,
    vocab_size: int | None = None,
    forbid: Iterable[int] = (),
    root: str | Path | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    load_model: Callable[[], Any] | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> Scores:
    """:func:`pythia.evaluate.scoring.score` of ``checkpoint`` (a :class:`pythia.runs.Checkpoint`) with
    blocks of rows cached on disk (see the module docstring).

    ``load_model``: how to get the model if something must be scored (default:
    ``checkpoint.load_model()``), e.g. to reuse one already loaded.
    """
    rows, lengths = as_rows(tokens)
    pos = target_positions(rows.shape[1], positions)
    forbid = sorted({int(f) for f in forbid})
    options = json.dumps(
        {
            "positions": pos.tolist(),
            "vocab_size": vocab_size,
            "forbid": forbid,
            "width": rows.shape[1],
        },
        sort_keys=True,
    )
    folder = checkpoint_dir(root or cache_root(checkpoint.suite) / "scores", checkpoint)
    blocks = [(lo, min(lo + block_rows, len(rows))) for lo in range(0, len(rows), block_rows)]
    files = [
        folder / f"{_block_key(rows[lo:hi], lengths[lo:hi], options)}.npz" for lo, hi in blocks
    ]
    found = [_load_block(f) if f.is_file() else None for f in files]
    todo = [i for i, b in enumerate(found) if b is None]
    if todo:
        pick = np.concatenate([np.arange(*blocks[i]) for i in todo])
        fresh = score(
            load_model() if load_model is not None else checkpoint.load_model(),
            rows[pick],
            pos,
            vocab_size=vocab_size,
            forbid=forbid,
            batch_size=batch_size,
            lengths=lengths[pick],
            progress=progress,
            desc=checkpoint.name,
        )
        sizes = [blocks[i][1] - blocks[i][0] for i in todo]
        scored = dict(zip(todo, _write_blocks(fresh, sizes, [files[i] for i in todo])))
        found = [scored[i] if b is None else b for i, b in enumerate(found)]
    arrays = {k: np.concatenate([b[k] for b in found if b is not None]) for k in BLOCK_ARRAYS}
    return Scores(pos, arrays["targets"], arrays["logprobs"], arrays["greedy"])


def _write_blocks(
    fresh: Scores, sizes: list[int], files: list[Path]
) -> list[dict[str, np.ndarray]]:
    """``fresh`` (the rows of several blocks, in order) cut into blocks of ``sizes`` rows, each
    written atomically to its file."""
    out, at = [], 0
    for n, path in zip(sizes, files):
        part = fresh.rows(slice(at, at + n))
        at += n
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, targets=part.targets, logprobs=part.logprobs, greedy=part.greedy)
        out.append({"targets": part.targets, "logprobs": part.logprobs, "greedy": part.greedy})
    return out
