"""Training batches: the one function the trainer and the batch viewer share.

Step ``s`` of a suite trained on ``dataset`` uses rows ``[B*s, B*(s+1))`` of the
pre-shuffled ``work/<suite>/data/<dataset>/sequences.bin`` (B = global batch), exactly as
Pythia's ``utils/batch_viewer.py`` slices its pre-shuffled files. Each row holds
seq_len + 1 tokens: inputs ``row[:-1]``, labels ``row[1:]``.

A dataset a suite lists under ``data.pretokenized`` (the ``pythia`` suite: Pythia's released
pre-shuffled Pile, see :mod:`pythia.data.released`) is read from the released file instead,
with the same slicing: the trainer, the batch viewer and every section see Pythia's real
training order through this one function.

The file is memory-mapped once per process and path (re-opened if it is rebuilt), so a
batch at any step costs a slice and a copy.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from pythia import paths
from pythia.config import Suite, load_suite
from pythia.data import released
from pythia.data.indexed import IndexedDataset
from pythia.errors import DataError, MissingInputError, UsageError

SEQUENCES = "sequences"
SPLITS = ("validation", "test")


class DataNotBuiltError(MissingInputError):
    """A data product a function needs has not been built; the message says how to build it."""


class StepOutOfRangeError(UsageError, IndexError):
    """A training step outside the steps the built data covers."""


def build_hint(suite_name: str) -> str:
    """What to run to (re)build a suite's data."""
    return f"run `pythia data build --suite {suite_name}` (or the Snakemake data rule for suite {suite_name})"


@functools.lru_cache(maxsize=32)
def _load_named_suite(name: str) -> Suite:
    return load_suite(name)


def _as_suite(suite: str | Suite) -> Suite:
    """A Suite from a Suite or a suite name / YAML path (names are loaded once per process)."""
    return suite if isinstance(suite, Suite) else _load_named_suite(str(suite))


def _file_key(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _open_rows(
    bin_key: tuple[str, int, int, int], idx_key: tuple[str, int, int, int], prefix: str, hint: str
) -> np.memmap:
    ds = IndexedDataset(prefix, rebuild_hint=hint)
    if len(ds) == 0:
        raise DataError(f"{ds.bin_path} holds no sequences; {hint}")
    width = int(ds.sizes[0])
    if not bool((ds.sizes == width).all()):
        raise DataError(
            f"{ds.idx_path}: sequences have different lengths, not a pre-shuffled file; {hint}"
        )
    if width <= 1:
        raise DataError(f"{ds.idx_path}: sequences of {width} tokens; {hint}")
    return np.memmap(
        ds.bin_path, mode="r", dtype=ds.dtype, shape=(len(ds), width)
    )  # (N, seq_len+1)


def sequences_prefix(suite: str | Suite, dataset: str) -> Path:
    """``work/<suite>/data/<dataset>/sequences`` (the .bin/.idx prefix), or the released file's prefix."""
    s = _as_suite(suite)
    if released.is_released(s, dataset):
        return released.released_prefix(s, dataset)
    return paths.dataset_dir(s.name, dataset) / SEQUENCES


def open_sequences(suite: str | Suite, dataset: str) -> np.memmap:
    """The pre-shuffled training sequences, memory-mapped: shape (N, seq_len + 1).

    Cached per file (path, mtime, size): repeated calls cost a stat.
    """
    s = _as_suite(suite)
    paths.check_dataset(dataset)
    prefix = sequences_prefix(s, dataset)
    is_released = released.is_released(s, dataset)
    hint = released.download_hint(s, dataset) if is_released else build_hint(s.name)
    bin_path, idx_path = Path(f"{prefix}.bin"), Path(f"{prefix}.idx")
    for p in (bin_path, idx_path):
        if not p.is_file():
            if is_released:
                raise DataNotBuiltError(released.missing_message(s, dataset, p))
            raise DataNotBuiltError(
                f"training sequences of suite {s.name!r}, dataset {dataset!r} are not built ({p} is missing); {hint}"
            )
    rows = _open_rows(_file_key(bin_path), _file_key(idx_path), str(prefix), hint)
    expected = s.training.seq_len + 1
    if rows.shape[1] != expected:
        raise DataError(
            f"{bin_path} holds sequences of {rows.shape[1]} tokens but suite {s.name!r} has seq_len "
            f"{s.training.seq_len} (rows of {expected}); {hint}"
        )
    return rows


def num_steps(suite: str | Suite, dataset: str) -> int:
    """Whole steps the built sequences file covers (rows // global_batch)."""
    s = _as_suite(suite)
    return open_sequences(s, dataset).shape[0] // s.training.global_batch


def get_batch(suite: str | Suite, dataset: str, step: int) -> np.ndarray:
    """Tokens of training step ``step``: int64, shape (global_batch, seq_len + 1).

    Rows ``[B*step, B*(step+1))`` of ``work/<suite>/data/<dataset>/sequences.bin``.
    """
    s = _as_suite(suite)
    rows = open_sequences(s, dataset)
    b = s.training.global_batch
    steps = rows.shape[0] // b
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"step must be an integer, got {step!r}")
    if not 0 <= step < steps:
        raise StepOutOfRangeError(
            f"step {step} out of range: suite {s.name!r} dataset {dataset!r} has steps 0..{steps - 1} "
            f"({rows.shape[0]} sequences / global batch {b}); pick a step in that range"
        )
    return np.array(rows[b * step : b * (step + 1)], dtype=np.int64)  # (B, L+1)


def batch_hash(batch: np.ndarray) -> str:
    """First 16 hex characters of sha256 over the batch as contiguous little-endian int64."""
    return hashlib.sha256(np.ascontiguousarray(batch, dtype="<i8").tobytes()).hexdigest()[:16]


def split_tokens(suite: str | Suite, split: str, limit: int | None = None) -> np.ndarray:
    """The documents of ``work/<suite>/data/<split>_text_document`` (EOD-terminated) back to back,
    in order, as one int64 token stream (its first ``limit`` tokens, when given)."""
    s = _as_suite(suite)
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    prefix = paths.data_dir(s.name) / f"{split}_text_document"
    hint = build_hint(s.name)
    if not Path(f"{prefix}.bin").is_file() or not Path(f"{prefix}.idx").is_file():
        raise DataNotBuiltError(
            f"the {split} split of suite {s.name!r} is not built ({prefix}.bin/.idx missing); {hint}"
        )
    ds = IndexedDataset(prefix, rebuild_hint=hint)
    need = ds.total_tokens if limit is None else min(limit, ds.total_tokens)
    expected_offsets = (
        np.concatenate([[0], np.cumsum(ds.sizes[:-1], dtype=np.int64)]) if len(ds) else np.zeros(0)
    )
    if np.array_equal(ds.token_offsets, expected_offsets):
        flat = ds.tokens[:need]  # items are stored back to back: the .bin is the concatenation
    else:
        parts, got = [], 0
        for i in range(len(ds)):
            if got >= need:
                break
            parts.append(ds[i])
            got += len(parts[-1])
        flat = np.concatenate(parts)[:need] if parts else np.zeros(0, dtype=np.int64)
    return np.array(flat, dtype=np.int64)


def validation_sequences(suite: str | Suite, n: int, split: str = "validation") -> np.ndarray:
    """The first ``n`` held-out sequences: int64, shape (n, seq_len + 1).

    The documents of ``work/<suite>/data/<split>_text_document`` (EOD-terminated) are
    concatenated in order (:func:`split_tokens`) and cut into consecutive, non-overlapping rows
    of seq_len + 1.
    """
    s = _as_suite(suite)
    if n <= 0:
        raise UsageError(f"n must be positive, got {n}")
    width = s.training.seq_len + 1
    flat = split_tokens(s, split, limit=n * width)
    if len(flat) < n * width:  # split_tokens stops at the split's end: flat is all of it
        frac = "val_fraction" if split == "validation" else "test_fraction"
        total = len(flat)
        raise UsageError(
            f"the {split} split of suite {s.name!r} has {total} tokens = {total // width} sequences of "
            f"{width}, fewer than the {n} asked for; ask for fewer or raise data.{frac}"
        )
    return flat.reshape(n, width)  # (n, L+1)
