"""The training order, built exactly as GPT-NeoX v1.0 (``megatron/data/gpt2_dataset.py``) builds it.

Given a tokenized corpus (an indexed dataset with one EOD-terminated document per item)
GPT-NeoX derives three index arrays from one ``numpy.random.RandomState(seed)``:

1. ``num_samples = ceil(train_iters * global_batch * 1.005)``. The 0.5 % margin comes from
   ``get_normalized_weights_and_num_samples`` in ``megatron/data/data_utils.py``, which is
   used when the data is given as ``train-data-paths`` (with weights), as Pythia's configs
   do. Pythia's own index files are named ``..._147164160ns_2048sl_1234s_...``:
   ceil(143000 * 1024 * 1.005) = 147,164,160, which confirms the factor. (With a single
   ``data-path`` and a train/valid/test split string GPT-NeoX uses no margin.) Note the
   float arithmetic: 143000 * 1024 * 1.005 = 147164159.99999997, so ``ceil`` matters.
2. ``num_epochs`` = the smallest E with ``(E * T - 1) // seq_len >= num_samples``
   (T = tokens per epoch): each sample takes seq_len + 1 tokens, the last one shared with
   the next sample.
3. ``doc_idx`` = the document ids tiled E times, ``int32``, shuffled once with the rng:
   all epochs are shuffled together. (NVIDIA Megatron-LM later added
   ``separate_last_epoch``, which shuffles a last, partial epoch separately; GPT-NeoX never
   had it, so neither does this module.)
4. ``sample_idx`` (``[num_samples_all + 1, 2]``) with ``num_samples_all = (E*T - 1) // seq_len``:
   row i = (position in doc_idx, token offset in that document) where sample i starts;
   sample i spans from row i to row i + 1 inclusive (seq_len + 1 tokens). GPT-NeoX v1.0
   builds it with the C++ helper ``build_sample_idx``, which returns ``int32``; this
   module returns ``int32`` too and switches to ``int64`` only when values would not fit
   (later GPT-NeoX does the same with ``build_sample_idx_int64``).
5. ``shuffle_idx`` = ``arange(sample_idx.shape[0] - 1)`` shuffled with the same rng, i.e. a
   permutation of *all* ``num_samples_all`` samples of the E epochs, not just of the
   ``num_samples`` needed; ``uint32`` (``int64`` from 2^32 - 1 samples on).
6. Training sample j = tokens from ``sample_idx[shuffle_idx[j]]`` to
   ``sample_idx[shuffle_idx[j] + 1]`` walking ``doc_idx``; step s uses samples
   ``[B*s, B*(s+1))`` in that order.

:func:`write_order` writes the arrays and a pre-shuffled ``sequences.bin/.idx`` in which
document j is training sample j (like Pythia's released pre-shuffled files), so the
trainer reads a step as one contiguous slice. Only the ``train_iters * global_batch``
samples training consumes are materialised; the index arrays cover everything GPT-NeoX
builds, so the remaining samples can still be derived from them.

A dataset trained on released pre-shuffled files (:mod:`pythia.data.released`) has its order
already: :func:`verify_released` checks the files against the suite and records them instead.

Seeds. The seed is ``data.seed`` (GPT-NeoX's ``seed``, Pythia's 1234) and it enters only at
step 3: the rng that shuffles ``doc_idx`` and then ``shuffle_idx``. A *data-seeded* run (the
suite's ``seeds`` key with ``vary`` ``both`` or ``data``; :meth:`pythia.config.Suite.run_seeds`)
trains on the same corpus cut the same way, in the order this algorithm gives with
``RandomState(N)`` instead, as PolyPythias' ``seed<N>`` and ``data-seed<N>`` runs train on the
Pile shuffled with seed N (``EleutherAI/pile-preshuffled-seeds``). The epochs, the sample count
and the set of documents per epoch are those of the baseline order; only the permutations
differ. :func:`write_seed_order` writes it to ``<dataset>/seed<N>/`` (same files, its own
``order.json``), shared by the ``seed<N>`` and ``data-seed<N>`` runs of the dataset, and
:func:`seed_batch` reads step s of it as :func:`pythia.data.batches.get_batch` reads the baseline's.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from pythia import io, locks, paths
from pythia.config import Suite
from pythia.data import released
from pythia.data.batches import open_sequences
from pythia.data.indexed import IndexedDataset, IndexedDatasetWriter
from pythia.data.layout import Layout
from pythia.errors import DataError, MissingInputError, UsageError

log = logging.getLogger(__name__)

NUM_SAMPLES_MARGIN = 1.005
"""GPT-NeoX's 0.5 % extra samples (``get_normalized_weights_and_num_samples``)."""

_INT32_MAX = np.iinfo(np.int32).max


def num_samples_needed(train_iters: int, global_batch: int) -> int:
    """Samples GPT-NeoX asks the dataset for: ``ceil(train_iters * global_batch * 1.005)``.

    Computed in float like GPT-NeoX (``num_samples * weight * 1.005`` with weight 1.0).
    Pythia: ``num_samples_needed(143000, 1024) == 147164160``.
    """
    if train_iters <= 0 or global_batch <= 0:
        raise ValueError(
            f"train_iters and global_batch must be positive (got {train_iters}, {global_batch})"
        )
    return math.ceil(train_iters * global_batch * 1.0 * NUM_SAMPLES_MARGIN)


def num_epochs(tokens_per_epoch: int, seq_len: int, num_samples: int) -> int:
    """Smallest E with ``(E * tokens_per_epoch - 1) // seq_len >= num_samples`` (GPT-NeoX ``_num_epochs``)."""
    if tokens_per_epoch <= 1:
        raise DataError(
            f"the corpus has {tokens_per_epoch} tokens; at least 2 are needed to cut a sample: give the suite more text (data.sources, max_bytes_per_source)"
        )
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    epochs = 0
    total = 0
    while True:
        epochs += 1
        total += tokens_per_epoch
        # -1: each sample needs seq_len + 1 tokens but shares its last token with the next one
        if (total - 1) // seq_len >= num_samples:
            return epochs


def build_doc_idx(documents: ArrayLike, num_epochs: int, rng: np.random.RandomState) -> np.ndarray:
    """Document ids tiled ``num_epochs`` times and shuffled once, all epochs together.

    Returns int32, shape (num_epochs * len(documents),). Consumes one ``rng.shuffle``.
    """
    docs = np.asarray(documents)
    doc_idx = np.tile(docs, num_epochs).astype(np.int32)  # (E * D,)
    rng.shuffle(doc_idx)
    return doc_idx


def _sample_idx_dtype(num_samples: int, doc_idx_len: int) -> np.dtype:
    if num_samples + 1 < _INT32_MAX and doc_idx_len < _INT32_MAX:
        return np.dtype(np.int32)
    return np.dtype(np.int64)


def build_sample_idx(
    sizes: ArrayLike,
    doc_idx: np.ndarray,
    seq_len: int,
    num_epochs: int,
    tokens_per_epoch: int,
    chunk: int = 1 << 22,
) -> np.ndarray:
    """Start (position in doc_idx, offset) of every sample; shape (num_samples_all + 1, 2).

    Equal to GPT-NeoX's ``build_sample_idx`` walk, computed vectorised: sample i starts at
    token i * seq_len of the stream formed by the documents in ``doc_idx`` order, and the
    walk records the document containing that token (empty documents are skipped) and
    the offset in it. The only exception, kept here, is row 0, which the walk sets to
    (0, 0) even when the first document is empty.
    """
    sizes = np.asarray(sizes)
    num_samples = (num_epochs * tokens_per_epoch - 1) // seq_len
    lengths = sizes[doc_idx].astype(np.int64)  # (E * D,) tokens of each doc_idx entry
    if int(lengths.sum()) != num_epochs * tokens_per_epoch:
        raise ValueError(
            f"doc_idx holds {int(lengths.sum())} tokens but num_epochs * tokens_per_epoch = "
            f"{num_epochs * tokens_per_epoch}"
        )
    cum_end = np.cumsum(lengths)  # (E * D,) stream position just past each entry
    out = np.empty((num_samples + 1, 2), dtype=_sample_idx_dtype(num_samples, len(doc_idx)))
    for lo in range(0, num_samples + 1, chunk):
        hi = min(lo + chunk, num_samples + 1)
        pos = np.arange(lo, hi, dtype=np.int64) * seq_len  # (c,) stream position of each start
        d = np.searchsorted(cum_end, pos, side="right")  # (c,) entry containing pos
        out[lo:hi, 0] = d
        out[lo:hi, 1] = pos - (cum_end[d] - lengths[d])
    out[0] = (0, 0)
    return out


def build_shuffle_idx(num_samples: int, rng: np.random.RandomState) -> np.ndarray:
    """``arange(num_samples)`` shuffled once; uint32 (int64 from 2^32 - 1 on), like GPT-NeoX."""
    dtype = np.uint32 if num_samples < np.iinfo(np.uint32).max - 1 else np.int64
    shuffle_idx = np.arange(num_samples, dtype=dtype)  # (num_samples,)
    rng.shuffle(shuffle_idx)
    return shuffle_idx


@dataclasses.dataclass(frozen=True)
class OrderIndices:
    """GPT-NeoX's three index arrays and what they were built from."""

    doc_idx: np.ndarray
    """int32 (E * D,): document ids of all epochs in shuffled order."""
    sample_idx: np.ndarray
    """int32/int64 (num_samples_all + 1, 2): (position in doc_idx, offset) where each sample starts."""
    shuffle_idx: np.ndarray
    """uint32/int64 (num_samples_all,): training sample j is sample shuffle_idx[j]."""
    num_epochs: int
    """Epochs E the order covers."""
    seq_len: int = 0
    """Tokens per training sequence (samples hold seq_len + 1)."""
    tokens_per_epoch: int = 0
    """Tokens in one pass over the corpus."""
    num_samples: int = 0
    """Samples requested (``num_samples_needed``); at most ``len(shuffle_idx)``."""

    @property
    def num_samples_all(self) -> int:
        """Samples the E epochs hold (``len(shuffle_idx)``)."""
        return int(self.shuffle_idx.shape[0])


def build_indices(sizes: ArrayLike, num_samples: int, seq_len: int, seed: int) -> OrderIndices:
    """doc_idx, sample_idx and shuffle_idx of a corpus whose item sizes are ``sizes``.

    One ``RandomState(seed)`` is used, in GPT-NeoX's order: doc_idx shuffle, then shuffle_idx.
    """
    sizes = np.asarray(sizes)
    if sizes.ndim != 1 or sizes.size == 0:
        raise ValueError("sizes must be a non-empty 1-D array of document lengths")
    documents = np.arange(len(sizes), dtype=np.int32)
    tokens_per_epoch = int(sizes[documents].sum(dtype=np.int64))
    epochs = num_epochs(tokens_per_epoch, seq_len, num_samples)
    rng = np.random.RandomState(seed=seed)
    doc_idx = build_doc_idx(documents, epochs, rng)
    sample_idx = build_sample_idx(sizes, doc_idx, seq_len, epochs, tokens_per_epoch)
    # -1: sample i spans [sample_idx[i], sample_idx[i + 1]]
    shuffle_idx = build_shuffle_idx(sample_idx.shape[0] - 1, rng)
    return OrderIndices(
        doc_idx, sample_idx, shuffle_idx, epochs, seq_len, tokens_per_epoch, num_samples
    )


def sample(dataset: IndexedDataset, indices: OrderIndices, j: int) -> np.ndarray:
    """Training sample ``j`` (seq_len + 1 tokens, int64) by GPT-NeoX's document walk."""
    if not 0 <= j < indices.num_samples_all:
        raise IndexError(f"sample {j} out of range [0, {indices.num_samples_all})")
    i = int(indices.shuffle_idx[j])
    d_f, off_f = (int(v) for v in indices.sample_idx[i])
    d_l, off_l = (int(v) for v in indices.sample_idx[i + 1])
    doc_idx = indices.doc_idx
    if d_f == d_l:
        tokens = dataset.get(int(doc_idx[d_f]), offset=off_f, length=off_l - off_f + 1)
    else:
        parts = [dataset.get(int(doc_idx[d_f]), offset=off_f)]
        parts += [dataset.get(int(doc_idx[d])) for d in range(d_f + 1, d_l)]
        parts.append(dataset.get(int(doc_idx[d_l]), length=off_l + 1))
        tokens = np.concatenate(parts)
    if indices.seq_len and len(tokens) != indices.seq_len + 1:
        raise AssertionError(f"sample {j} has {len(tokens)} tokens, expected {indices.seq_len + 1}")
    return np.asarray(tokens, dtype=np.int64)


class _Gather:
    """Vectorised token gather for many samples: stream position -> token address."""

    def __init__(self, dataset: IndexedDataset, indices: OrderIndices) -> None:
        self.tokens = dataset.tokens  # (total_tokens,)
        lengths = dataset.sizes[indices.doc_idx].astype(np.int64)  # (E * D,)
        self.cum_end = np.cumsum(lengths)  # (E * D,)
        cum_start = self.cum_end - lengths  # (E * D,)
        # token address of stream position p inside entry d: p + shift[d]
        self.shift = dataset.token_offsets[indices.doc_idx] - cum_start  # (E * D,)
        self.cum_start = cum_start
        self.indices = indices
        self.width = indices.seq_len + 1

    def rows(self, js: np.ndarray) -> np.ndarray:
        """Samples ``js`` as a (len(js), seq_len + 1) array in the corpus dtype."""
        s = self.indices.shuffle_idx[js].astype(np.int64)  # (R,)
        start_rows = self.indices.sample_idx[s].astype(np.int64)  # (R, 2)
        start = self.cum_start[start_rows[:, 0]] + start_rows[:, 1]  # (R,) stream positions
        pos = start[:, None] + np.arange(self.width, dtype=np.int64)[None, :]  # (R, L+1)
        d = np.searchsorted(self.cum_end, pos, side="right")  # (R, L+1)
        return self.tokens[pos + self.shift[d]]  # (R, L+1)


def iter_sample_rows(
    dataset: IndexedDataset, indices: OrderIndices, n_rows: int, chunk_tokens: int = 1 << 22
) -> Iterator[np.ndarray]:
    """Training samples ``0 .. n_rows-1`` in chunks of about ``chunk_tokens`` tokens, each (r, L+1)."""
    gather = _Gather(dataset, indices)
    per = max(1, chunk_tokens // gather.width)
    for lo in range(0, n_rows, per):
        yield gather.rows(np.arange(lo, min(lo + per, n_rows)))


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with io.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)


ORDER_FILES = ("doc_idx.npy", "sample_idx.npy", "shuffle_idx.npy", "sequences.bin", "sequences.idx")


def write_order(
    text_prefix: str | Path,
    out_dir: str | Path,
    seq_len: int,
    train_iters: int,
    global_batch: int,
    seed: int,
    *,
    progress: bool = True,
    chunk_tokens: int = 1 << 22,
) -> dict[str, Any]:
    """Build the order of the corpus at ``text_prefix`` and write it to ``out_dir``.

    Writes ``doc_idx.npy``, ``sample_idx.npy``, ``shuffle_idx.npy``, ``sequences.bin/.idx``
    (document j = training sample j, ``train_iters * global_batch`` documents of
    seq_len + 1 tokens in the corpus dtype, so the .bin is a flat (N, seq_len + 1) array)
    and finally ``order.json`` (settings, sizes, sha256 of every file). Every file is
    written atomically; ``order.json`` last, so its presence means the set is complete.
    Returns the contents of ``order.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = IndexedDataset(text_prefix)
    n_needed = num_samples_needed(train_iters, global_batch)
    indices = build_indices(ds.sizes, n_needed, seq_len, seed)
    n_rows = train_iters * global_batch
    assert n_rows <= indices.num_samples_all

    _save_npy(out_dir / "doc_idx.npy", indices.doc_idx)
    _save_npy(out_dir / "sample_idx.npy", indices.sample_idx)
    _save_npy(out_dir / "shuffle_idx.npy", indices.shuffle_idx)
    _write_sequences(ds, indices, n_rows, out_dir, progress, chunk_tokens)
    record: dict[str, Any] = {
        "format": "GPT-NeoX v1.0 gpt2_dataset order; sequences.bin row j = training sample j",
        "seed": seed,
        "seq_len": seq_len,
        "train_iters": train_iters,
        "global_batch": global_batch,
        "num_samples_needed": n_needed,
        "sequences_rows": n_rows,
        **_describe(indices, ds, Path(text_prefix), out_dir),
    }
    io.write_json(out_dir / "order.json", record)
    return record


def _write_sequences(
    ds: IndexedDataset,
    indices: OrderIndices,
    n_rows: int,
    out_dir: Path,
    progress: bool,
    chunk_tokens: int,
) -> None:
    """``sequences.bin/.idx``: training samples 0 .. n_rows - 1, one document each."""
    with (
        IndexedDatasetWriter(out_dir / "sequences", ds.dtype) as w,
        tqdm(
            total=n_rows, unit="seq", desc=f"sequences {out_dir.name}", disable=not progress
        ) as bar,
    ):
        for rows in iter_sample_rows(ds, indices, n_rows, chunk_tokens):
            w.add_rows(rows, as_documents=True)
            bar.update(len(rows))


def _describe(
    indices: OrderIndices, ds: IndexedDataset, text_prefix: Path, out_dir: Path
) -> dict[str, Any]:
    """``order.json``'s account of the indices, the corpus and the files written."""
    return {
        "num_samples_all": indices.num_samples_all,
        "num_epochs": indices.num_epochs,
        "tokens_per_epoch": indices.tokens_per_epoch,
        "num_documents": len(ds),
        "dtype": str(ds.dtype),
        "dtypes": {
            "doc_idx": str(indices.doc_idx.dtype),
            "sample_idx": str(indices.sample_idx.dtype),
            "shuffle_idx": str(indices.shuffle_idx.dtype),
        },
        "text_document": {
            # relative to the order's own directory, so the record is the same in any work dir
            "path": os.path.relpath(text_prefix.resolve(), out_dir.resolve()),
            "idx_sha256": io.sha256_file(ds.idx_path),
            "bin_bytes": ds.bin_path.stat().st_size,
        },
        "sha256": {name: io.sha256_file(out_dir / name) for name in ORDER_FILES},
    }


# --------------------------------------------------------------------------- seeded orders


def seed_order_dir(suite_name: str, dataset: str, seed: int) -> Path:
    """Where the order of ``dataset`` with data-order seed ``seed`` lives: ``<dataset>/seed<N>/``."""
    return paths.dataset_dir(suite_name, dataset) / f"seed{seed}"


def write_seed_order(
    suite: Suite, dataset: str, seed: int, *, progress: bool = True
) -> dict[str, Any]:
    """The order of ``dataset``'s built corpus with data-order seed ``seed`` (:func:`write_order`
    into :func:`seed_order_dir`); ``order.json`` also records the baseline seed it replaces."""
    if released.is_released(suite, dataset):
        raise UsageError(
            f"dataset {dataset!r} of suite {suite.name!r} is trained on released pre-shuffled files; "
            "a data-seeded order needs a built corpus (PolyPythias' reshuffled Pile is its own download)"
        )
    if seed == suite.data.seed:
        raise UsageError(
            f"data-order seed {seed} is the baseline's (data.seed): its order is {dataset}/order.json"
        )
    t = suite.training
    out = seed_order_dir(suite.name, dataset, seed)
    text = Layout(suite.name).text_prefix("train", dataset)
    if not Path(f"{text}.idx").is_file():
        raise MissingInputError(
            f"the tokenized {dataset} corpus of suite {suite.name!r} is not built ({text}.idx is "
            f"missing); run `pythia data build --suite {suite.name}` first"
        )
    out.mkdir(parents=True, exist_ok=True)
    with locks.exclusive(out, f"pythia data build --stage order --data-seed {seed}"):
        record = write_order(
            text, out, t.seq_len, t.train_iters, t.global_batch, seed, progress=progress
        )
        record["baseline_seed"] = suite.data.seed
        io.write_json(out / "order.json", record)
    return record


def seed_batch(suite: Suite, dataset: str, seed: int, step: int) -> np.ndarray:
    """Tokens of training step ``step`` in the order with data-order seed ``seed``: int64,
    (global_batch, seq_len + 1), rows ``[B*step, B*(step+1))`` of ``<dataset>/seed<N>/sequences.bin``."""
    out = seed_order_dir(suite.name, dataset, seed)
    if not (out / "order.json").is_file():
        raise MissingInputError(
            f"the {dataset} order with data-order seed {seed} is not built ({out}/order.json is "
            f"missing); run `pythia data build --suite {suite.name} --stage order --dataset {dataset} "
            f"--data-seed {seed}`"
        )
    stamp = (out / "sequences.bin").stat().st_mtime_ns
    rows = _seed_rows(str(out / "sequences"), stamp, suite.training.seq_len + 1)  # (N, L+1)
    b = suite.training.global_batch
    steps = rows.shape[0] // b
    if not 0 <= step < steps:
        raise UsageError(
            f"step {step} out of range: the {dataset} order with seed {seed} has steps 0..{steps - 1}"
        )
    return np.array(rows[b * step : b * (step + 1)], dtype=np.int64)  # (B, L+1)


@functools.lru_cache(maxsize=8)
def _seed_rows(prefix: str, mtime_ns: int, width: int) -> np.memmap:
    """A seeded order's sequences, memory-mapped once per file version (``mtime_ns``)."""
    ds = IndexedDataset(prefix)
    return np.memmap(ds.bin_path, mode="r", dtype=ds.dtype, shape=(len(ds), width))


# --------------------------------------------------------------------------- released files


def verify_released(suite: Suite, dataset: str) -> dict[str, Any]:
    """The order stage of a dataset trained on released pre-shuffled files
    (:mod:`pythia.data.released`): check them against the suite and write ``order.json``
    describing them.

    The rows must hold seq_len + 1 tokens and cover every training step
    (train_iters x global_batch rows). Returns the record.
    """
    rows = open_sequences(suite, dataset)  # (N, seq_len + 1); a missing file says what to download
    t = suite.training
    need = t.train_iters * t.global_batch
    prefix = released.released_prefix(suite, dataset)
    if rows.shape[0] < need:
        raise DataError(
            f"{prefix}.bin holds {rows.shape[0]:,} sequences = {rows.shape[0] // t.global_batch:,} steps, "
            f"but suite {suite.name!r} trains {t.train_iters:,} steps of {t.global_batch} ({need:,} sequences); "
            f"{released.download_hint(suite, dataset)}"
        )
    spec = suite.data.pretokenized[dataset]
    record = {
        "format": "released pre-shuffled MMapIndexedDataset; row j = training sample j",
        "hub_dataset": spec.hub_dataset,
        "path": str(prefix),
        "seq_len": t.seq_len,
        "train_iters": t.train_iters,
        "global_batch": t.global_batch,
        "sequences_rows": int(rows.shape[0]),
        "steps_covered": int(rows.shape[0] // t.global_batch),
        "dtype": str(rows.dtype),
        "bin_bytes": Path(f"{prefix}.bin").stat().st_size,
        "idx_sha256": io.sha256_file(f"{prefix}.idx"),
    }
    io.write_json(paths.dataset_dir(suite.name, dataset) / "order.json", record)
    log.info(
        "released %s: %s sequences of %d tokens (%s steps) at %s",
        dataset,
        f"{rows.shape[0]:,}",
        rows.shape[1],
        f"{record['steps_covered']:,}",
        prefix,
    )
    return record
