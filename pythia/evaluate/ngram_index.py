"""A token n-gram index over a dataset's training order (EleutherAI's ``tokengrams``): how often
any token sequence occurs in the rows training reads, and at which steps.

The index (:func:`build_index`): the training rows of steps ``0 .. min(train_iters, built
steps)`` in step order (step ``s`` = rows ``[B*s, B*(s+1))`` of the pre-shuffled sequences, as
:func:`pythia.data.batches.get_batch` reads them: our built ``work/<suite>/data/<dataset>`` or
Pythia's released pre-shuffled files), each row of seq_len + 1 tokens followed by one
:data:`SEPARATOR` token, written as one u16 token file; ``tokengrams.MemmapIndex.build`` sorts
its suffix array (tokengrams' README: a suffix array over a file of little-endian u16 tokens
answers ``count``/``contains``/``positions`` of any token sequence in O(len(query) log n)).
The separator is no token of the vocabulary, so no query matches across two rows: rows that
follow each other in the file are unrelated samples of the shuffled order, and an occurrence
is one inside a training row. A position ``p`` is row ``p // (seq_len + 2)``, step
``row // B``.

Cached under ``work/<suite>/cache/ngram/<dataset>-<key>/`` (:func:`index_key`: the data's
settings digest, the sequence file's size and mtime, the batch shape and the steps covered), so
rebuilt data gets a new index and a rerun reuses it. The cost: 2 bytes per token for the token
file and 8 per token for the suffix array; fine for built suites, and for the released 300B
tokens a machine with 3 TB of disk.

Queries: :meth:`TrainingIndex.count`, :meth:`TrainingIndex.occurrence_steps`,
:meth:`TrainingIndex.rows_holding` and :func:`first_seen` (a text, tokenized with the suite's
tokenizer: the steps at which it occurs in the training order).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tokengrams
from tqdm.auto import tqdm

from pythia import paths
from pythia.config import Suite, config_digest
from pythia.data.batches import num_steps, open_sequences, sequences_prefix
from pythia.data.build import stage_digest
from pythia.data.released import is_released
from pythia.data.tokenizer import load_tokenizer
from pythia.errors import DataError, UsageError
from pythia.io import atomic_dir, write_json

INDEX_VERSION = 1
"""Bumped when the index's token file layout changes (indexes of another version are rebuilt)."""
SEPARATOR = 2**16 - 1
"""The token after every row: no vocabulary here reaches it (GPT-NeoX's has 50,277 tokens)."""
VOCAB = 2**16
"""tokengrams' ``vocab``: u16 tokens."""
TOKENS = "tokens.bin"
INDEX = "index.bin"
INFO = "info.json"


@dataclass(frozen=True)
class TrainingIndex:
    """A built index: ``index`` (tokengrams.MemmapIndex) over ``steps`` steps of ``batch`` rows
    of ``width`` tokens (seq_len + 1) each followed by the separator."""

    index: Any
    folder: Path
    width: int
    batch: int
    steps: int

    @property
    def stride(self) -> int:
        """Tokens per row in the token file (the row and its separator)."""
        return self.width + 1

    @property
    def rows(self) -> int:
        return self.steps * self.batch

    def count(self, query: Sequence[int]) -> int:
        """Occurrences of the token sequence ``query`` inside the training rows."""
        return int(self.index.count(_query(query))) if query else 0

    def positions(self, query: Sequence[int]) -> np.ndarray:
        """Sorted positions in the token file where ``query`` starts (int64)."""
        if not query:
            return np.zeros(0, np.int64)
        return np.sort(np.asarray(self.index.positions(_query(query)), dtype=np.int64))

    def occurrence_steps(self, query: Sequence[int]) -> np.ndarray:
        """The step of every occurrence of ``query``, sorted (a step twice when it holds it twice)."""
        return self.positions(query) // self.stride // self.batch

    def rows_holding(self, tokens: Iterable[int]) -> np.ndarray:
        """Boolean [rows]: which training rows hold at least one of ``tokens``."""
        mask = np.zeros(self.rows, bool)
        for t in tokens:
            mask[self.positions([int(t)]) // self.stride] = True
        return mask


def _query(query: Sequence[int]) -> list[int]:
    q = [int(t) for t in query]
    if any(not 0 <= t < SEPARATOR for t in q):
        raise UsageError(f"token ids must be in 0..{SEPARATOR - 1}; got {q}")
    return q


def order_identity(suite: Suite, dataset: str) -> Any:
    """What a dataset's training order is made of: the released files' settings for a dataset read
    from Pythia's pre-shuffled files, else the digest of our order stage (tokenizer, documents,
    order settings)."""
    if is_released(suite, dataset):
        return suite.data.model_dump(mode="json")
    return stage_digest(suite, "order", dataset)


def index_key(suite: Suite, dataset: str) -> str:
    """What the index depends on: the data (its settings digest, or the released files' settings,
    and the sequence file's size and mtime), the batch shape and the steps it covers."""
    open_sequences(suite, dataset)  # missing data fails here, saying how to build or download it
    prefix = sequences_prefix(suite, dataset)
    st = Path(f"{prefix}.bin").stat()
    return config_digest(
        {
            "version": INDEX_VERSION,
            "data": order_identity(suite, dataset),
            "file": [str(prefix), st.st_size, st.st_mtime_ns],
            "batch": suite.training.global_batch,
            "seq_len": suite.training.seq_len,
            "steps": _covered_steps(suite, dataset),
        }
    )


def _covered_steps(suite: Suite, dataset: str) -> int:
    """The steps training reads that the data holds."""
    return min(suite.training.train_iters, num_steps(suite, dataset))


def index_dir(suite: Suite, dataset: str, root: str | Path | None = None) -> Path:
    """``<root>/<dataset>-<key>`` (root: ``work/<suite>/cache/ngram``)."""
    root = Path(root) if root is not None else paths.suite_dir(suite.name) / "cache" / "ngram"
    return root / f"{paths.check_dataset(dataset)}-{index_key(suite, dataset)}"


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """tokengrams prints its progress to the process's stdout: send it to stderr, so a command's
    own output (``--json``) stays clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _write_tokens(
    suite: Suite, dataset: str, path: Path, steps: int, progress: bool, chunk_steps: int = 64
) -> None:
    """The rows of steps [0, steps), each followed by :data:`SEPARATOR`, as u16 to ``path``."""
    rows = open_sequences(suite, dataset)
    b = suite.training.global_batch
    with (
        open(path, "wb") as f,
        tqdm(total=steps, unit="step", disable=not progress, desc=f"index {dataset}") as bar,
    ):
        for lo in range(0, steps, chunk_steps):
            hi = min(lo + chunk_steps, steps)
            part = np.asarray(rows[lo * b : hi * b])
            if part.size and int(part.max()) >= SEPARATOR:
                raise DataError(
                    f"{sequences_prefix(suite, dataset)}.bin holds token id {int(part.max())}: the "
                    f"n-gram index stores u16 tokens below {SEPARATOR}; use a smaller vocabulary"
                )
            out = np.full((part.shape[0], part.shape[1] + 1), SEPARATOR, np.uint16)
            out[:, :-1] = part
            f.write(out.astype("<u2").tobytes())
            bar.update(hi - lo)


def build_index(
    suite: Suite, dataset: str, *, root: str | Path | None = None, progress: bool = True
) -> TrainingIndex:
    """The index of ``dataset``'s training order: loaded when cached (:func:`index_dir`), else
    built with progress (the rows' token file, then tokengrams' suffix array) into a temporary
    folder renamed into place."""
    folder = index_dir(suite, dataset, root)
    steps = _covered_steps(suite, dataset)
    width = suite.training.seq_len + 1
    if not (folder / INFO).is_file():
        t0 = time.perf_counter()
        with atomic_dir(folder) as tmp:
            tmp.chmod(0o755)  # mkdtemp's 0700 would keep the index private to its builder
            _write_tokens(suite, dataset, tmp / TOKENS, steps, progress)
            with _stdout_to_stderr():
                tokengrams.MemmapIndex.build(
                    str(tmp / TOKENS), str(tmp / INDEX), vocab=VOCAB, verbose=progress
                )
            write_json(
                tmp / INFO,
                {
                    "suite": suite.name,
                    "dataset": dataset,
                    "steps": steps,
                    "batch": suite.training.global_batch,
                    "width": width,
                    "tokens": steps * suite.training.global_batch * width,
                    "seconds": round(time.perf_counter() - t0, 3),
                },
            )
    index = tokengrams.MemmapIndex(str(folder / TOKENS), str(folder / INDEX), vocab=VOCAB)
    return TrainingIndex(index, folder, width, suite.training.global_batch, steps)


def first_seen(index: TrainingIndex, tokens: Sequence[int]) -> dict[str, Any]:
    """Where the token sequence ``tokens`` occurs in the training order: ``count`` (occurrences),
    ``first_step`` (None when it never occurs), ``steps`` (the distinct steps, sorted) and
    ``per_step`` (occurrences at each of them)."""
    steps, per = np.unique(index.occurrence_steps(tokens), return_counts=True)
    return {
        "tokens": [int(t) for t in tokens],
        "count": int(per.sum()),
        "first_step": int(steps[0]) if steps.size else None,
        "steps": steps.tolist(),
        "per_step": per.tolist(),
        "steps_covered": index.steps,
    }


def first_seen_text(
    suite: Suite,
    dataset: str,
    text: str,
    *,
    root: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`first_seen` of ``text`` tokenized with the suite's tokenizer as given (no special
    tokens; in a BPE a leading space is part of the first token: ``" cat"`` is not ``"cat"``)."""
    tokens = load_tokenizer(suite).encode(text, add_special_tokens=False)
    if not tokens:
        raise UsageError(f"{text!r} has no tokens; give a non-empty text")
    return {"text": text} | first_seen(
        build_index(suite, dataset, root=root, progress=progress), tokens
    )
