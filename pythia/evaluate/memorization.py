"""(k, l)-memorization scans of the training data, checkpoint by checkpoint (Pythia, section 4.2).

One scan of a batch of rows (the exact memorized flags, leading match runs and fractional scores,
from teacher forcing and greedy decoding) is :func:`pythia.evaluate.memorization_kernels.memorization`;
this module runs it over the training sequences each checkpoint has seen, caches it and writes
the files the section's notebook reads (:mod:`pythia.evaluate.memorization_files`).

Scans: :func:`scan_checkpoint` scores every training sequence a checkpoint has seen (steps
[0, step) of the data order, read through :func:`pythia.data.batches.get_batch`, so Pythia's
released pre-shuffled files work unchanged), or a configured range and stride of steps, in
blocks of whole steps; each block's result is cached on disk per checkpoint identity
(``work/<suite>/cache/memorization/``), so a rerun or a crash resumes where it stopped, and
results stream into one Parquet file per checkpoint (bounded memory whatever the data size).
:func:`scan_model` scans every selected checkpoint of one model and writes its ``scan.json``.

Duplicates (:func:`duplicates_model`, ``pythia memorization duplicates``): at the final scanned
checkpoint, each scanned sequence's memorization window (its first k + l tokens) gets its
duplicate count, the occurrences of those k + l tokens as a window anywhere in the dataset's
training rows (:mod:`pythia.data.duplication`, exact), and, for a sample stratified by
:data:`DUPLICATE_BINS` (every row of a bin up to ``per_bin``, a seeded sample beyond), the
teacher-forced accuracy: how many of the l continuation tokens are the argmax given the true
prefix (:func:`~pythia.evaluate.memorization_kernels.teacher_forced_correct`: one forward pass per
row, the scan's conventions: real vocabulary, end-of-document never predicted). The leading run
of those matches is the scan's match run (the same argmaxes); the job checks that.

The files and their columns are :mod:`pythia.evaluate.memorization_files`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pythia import paths
from pythia.config import Suite, load_suite
from pythia.data import batches, duplication
from pythia.errors import UsageError
from pythia.evaluate.cache import cache_root as default_cache_root
from pythia.evaluate.cache import checkpoint_dir
from pythia.evaluate.memorization_files import (
    DUPLICATE_BINS,
    DUPLICATE_COLUMNS,
    duplicate_bin_labels,
    duplicate_bins,
    duplicates_file,
    read_scan,
    scan_file,
    summary_file,
)
from pythia.evaluate.memorization_kernels import (
    DEFAULT_OPTIONS,
    ScanOptions,
    leading_run,
    memorization,
    teacher_forced_correct,
)
from pythia.io import atomic_path, write_json
from pythia.runs import Catalogue, Checkpoint

log = logging.getLogger("pythia.memorization")

BLOCK_ROWS = 16384
"""Sequences per cached block (rounded to whole steps): with a score every 16th sequence, a block
decodes 1024 rows at once (:data:`pythia.evaluate.memorization_kernels.CPU_DECODE_BATCH`)."""
ROWS_MEMO_BYTES = 256 << 20
"""Training rows a scan keeps in memory for its later checkpoints (the first steps of the order:
all of a micro run's 5 MB; Pythia's first ~500 steps)."""


# ------------------------------------------------------------------------------ scans over training data


def seen_steps(checkpoint_step: int) -> range:
    """Data steps a checkpoint has trained on: step s's batch is consumed by update s + 1, so the
    checkpoint at step N has seen steps [0, N)."""
    return range(checkpoint_step)


def step_range(
    suite: Suite,
    dataset: str,
    checkpoint_step: int,
    start: int | None = None,
    stop: int | None = None,
    stride: int = 1,
) -> range:
    """The data steps to scan: ``[start, stop)`` every ``stride`` (default: all seen by the checkpoint);
    a range past the training data fails with the steps there are."""
    have = batches.num_steps(suite, dataset)
    seen = seen_steps(checkpoint_step)
    start = seen.start if start is None else start
    stop = min(seen.stop, have) if stop is None else stop
    if stride < 1:
        raise UsageError(f"step stride must be >= 1, got {stride}")
    if start < 0 or stop < start:
        raise UsageError(f"bad data step range [{start}, {stop}); give 0 <= start <= stop")
    if stop > have:
        raise UsageError(
            f"data steps [{start}, {stop}) run past the training data of suite {suite.name!r} "
            f"dataset {dataset!r}, which has steps 0..{have - 1}; ask for a stop of at most {have}"
        )
    return range(start, stop, stride)


def _blocks(steps: range, per_block: int) -> Iterator[range]:
    for i in range(0, len(steps), per_block):
        yield steps[i : i + per_block]


def block_rows(
    suite: Suite, dataset: str, steps: range, width: int, memo: dict[int, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(seq (n,), rows (n, width)) of the training sequences of ``steps`` via get_batch; ``memo``
    keeps each step's rows for the next checkpoint (every checkpoint re-reads the steps before it)."""

    def batch(s: int) -> np.ndarray:
        if memo is not None and s in memo:
            return memo[s]
        rows = np.ascontiguousarray(batches.get_batch(suite, dataset, s)[:, :width])
        # every step's rows have one shape: the memo holds the first ROWS_MEMO_BYTES of them
        if memo is not None and (len(memo) + 1) * rows.nbytes <= ROWS_MEMO_BYTES:
            memo[s] = rows  # the earliest steps, which every later checkpoint reads again
        return rows

    b = suite.training.global_batch
    rows = np.concatenate([batch(s) for s in steps])  # (n, width)
    seq = np.concatenate([np.arange(s * b, (s + 1) * b, dtype=np.int64) for s in steps])  # (n,)
    return seq, rows


def _cache_file(folder: Path, steps: range, rows: np.ndarray, options: ScanOptions) -> Path:
    h = hashlib.sha256(options.digest.encode())
    h.update(np.ascontiguousarray(rows, dtype="<i8").tobytes())
    return folder / f"steps{steps.start}-{steps.stop}-{steps.step}-{h.hexdigest()[:20]}.npz"


def _load_block(cached: Path) -> dict[str, np.ndarray] | None:
    """A block's cached result, or None when it is missing or damaged (then it is scored again)."""
    if not cached.is_file():
        return None
    try:
        with np.load(cached) as f:
            return {k: f[k] for k in ("memorized", "match_run", "matches")}
    except (OSError, ValueError, KeyError):
        return None  # damaged: score again


def _save_block(cached: Path, res: dict[str, np.ndarray]) -> None:
    with atomic_path(cached, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, memorized=res["memorized"], match_run=res["match_run"], matches=res["matches"])


class _ScanBlocks:
    """The blocks of one checkpoint's scan, each read from the cache (``cache_root``) where it holds
    the block (the same rows and options), else scored and cached; the model is loaded at the first
    block scored (a scan found whole in the cache loads none)."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        suite: Suite,
        options: ScanOptions,
        *,
        cache_root: Path | None,
        device: str,
        dtype: Any,
        batch_size: int | None,
    ) -> None:
        self.checkpoint, self.suite, self.options = checkpoint, suite, options
        self.folder = checkpoint_dir(
            (cache_root or default_cache_root(suite.name)) / "memorization", checkpoint
        )
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.model: Any = None
        self.scored = 0  # sequences scored (not read from the cache)

    def __call__(
        self, steps: range, rows_memo: dict[int, np.ndarray] | None
    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(seq, result) of each block of whole ``steps`` in turn."""
        suite, options = self.suite, self.options
        for block in _blocks(steps, max(1, BLOCK_ROWS // suite.training.global_batch)):
            seq, rows = block_rows(suite, self.checkpoint.dataset, block, options.width, rows_memo)
            cached = _cache_file(self.folder, block, rows, options)
            res = _load_block(cached)
            if res is None:
                res = self._score(block, seq, rows)
                _save_block(cached, res)
            yield seq, res

    def _score(self, block: range, seq: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        if self.model is None:
            self.model = self.checkpoint.load_model(dtype=self.dtype, device=self.device)
        stride = self.options.score_stride
        mask = (seq % stride == 0) if stride else np.zeros(len(seq), bool)
        t1 = time.perf_counter()
        res = memorization(
            self.model,
            rows,
            self.options,
            vocab_size=self.suite.tokenizer.vocab_size,
            score_mask=mask,
            batch_size=self.batch_size,
        )
        self.scored += len(seq)
        log.debug(
            "%s steps %s: %.0f seq/s",
            self.checkpoint.name,
            block,
            len(seq) / (time.perf_counter() - t1),
        )
        return res


def _check_width(suite: Suite, options: ScanOptions) -> None:
    """A suite's training sequences must hold k + l tokens."""
    if suite.training.seq_len + 1 < options.width:
        raise UsageError(
            f"suite {suite.name!r} has sequences of {suite.training.seq_len + 1} tokens, fewer than "
            f"k + l = {options.width}; use shorter prompt/continuation lengths"
        )


def _scan_schema(checkpoint: Checkpoint, options: ScanOptions, steps: range):
    """The Parquet schema of a scan (:data:`COLUMNS`), its checkpoint, options and steps as metadata."""
    import pyarrow as pa  # heavy: only writing a scan needs it

    return pa.schema(
        [
            ("seq", pa.int64()),
            ("memorized", pa.bool_()),
            ("match_run", pa.int16()),
            ("matches", pa.int16()),
        ],
        metadata={
            "checkpoint": checkpoint.identity,
            "options": json.dumps(asdict(options)),
            "steps": json.dumps([steps.start, steps.stop, steps.step]),
        },
    )


def scan_checkpoint(
    checkpoint: Checkpoint,
    suite: Suite,
    steps: range,
    options: ScanOptions = DEFAULT_OPTIONS,
    *,
    out: Path | None = None,
    device: str = "cpu",
    dtype: Any = None,
    batch_size: int | None = None,
    progress: bool = True,
    cache_root: Path | None = None,
    rows_memo: dict[int, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Scan the training sequences of data ``steps`` with ``checkpoint`` into ``out`` (Parquet,
    :data:`COLUMNS`); blocks already in the cache are not scored again. ``rows_memo``: the training
    rows read so far, step by step (one dict shared by the checkpoints of one model and dataset).
    Returns a summary (sequences, memorized, seconds, sequences/s)."""
    from tqdm.auto import tqdm  # tqdm.auto looks for a notebook's widgets: only a scan needs it

    _check_width(suite, options)
    out = out or scan_file(suite.name, checkpoint.dataset, checkpoint.model, checkpoint.step)
    blocks = _ScanBlocks(
        checkpoint,
        suite,
        options,
        cache_root=cache_root,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
    )
    t0 = time.perf_counter()
    with tqdm(
        total=len(steps) * suite.training.global_batch,
        unit="seq",
        desc=checkpoint.name,
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        schema = _scan_schema(checkpoint, options, steps)
        n_rows, memorized = _write_scan(out, schema, blocks(steps, rows_memo), bar)
    seconds = time.perf_counter() - t0
    return {
        "checkpoint": checkpoint.name,
        "identity": checkpoint.identity,
        "file": str(out),
        "sequences": n_rows,
        "memorized": memorized,
        "scored_now": blocks.scored,
        "seconds": seconds,
        "sequences_per_s": blocks.scored / seconds if blocks.scored and seconds > 0 else None,
    }


def _write_scan(
    out: Path, schema, blocks: Iterator[tuple[np.ndarray, dict[str, np.ndarray]]], bar
) -> tuple[int, int]:
    """Stream the scanned ``blocks`` into ``out`` (Parquet, ``schema``), counting on the progress
    ``bar``; returns (sequences, memorized)."""
    import pyarrow as pa  # heavy: only writing a scan needs it
    import pyarrow.parquet as pq  # heavy: as above

    n_rows = memorized = 0
    with atomic_path(out, suffix=".parquet") as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for seq, res in blocks:
            writer.write_table(pa.table({"seq": seq, **res}, schema=schema))
            n_rows += len(seq)
            memorized += int(res["memorized"].sum())
            bar.update(len(seq))
            bar.set_postfix(memorized=memorized)
    return n_rows, memorized


def _scan_steps(catalogue: Catalogue, model: str, dataset: str) -> list[int]:
    """The selected steps of ``model`` on ``dataset`` the catalogue has; none fails, saying what to do."""
    steps = catalogue.steps(model, dataset)
    if not steps:
        have = catalogue.available_steps(model, dataset)
        if not have:  # the catalogue says what to do (train, download)
            catalogue.checkpoint(
                model, dataset, catalogue.selected[-1] if catalogue.selected else 0
            )
        raise UsageError(
            f"no checkpoint of {model}/{dataset} to scan among the selected steps "
            f"{catalogue.selected[:8]}{'...' if len(catalogue.selected) > 8 else ''} "
            f"(steps there: {have[:8]}{'...' if len(have) > 8 else ''}); pick existing steps with --steps"
        )
    return steps


def scan_model(
    suite: str | Suite,
    dataset: str,
    model: str,
    catalogue: Catalogue,
    options: ScanOptions = DEFAULT_OPTIONS,
    *,
    data_start: int | None = None,
    data_stop: int | None = None,
    data_stride: int = 1,
    device: str = "cpu",
    dtype: Any = None,
    batch_size: int | None = None,
    out: Path | None = None,
    progress: bool = True,
    cache_root: Path | None = None,
) -> dict[str, Any]:
    """Scan every selected checkpoint of ``model`` on ``dataset`` (the catalogue's steps), each over
    the sequences it has seen (or the given data step range); writes ``step<N>.parquet`` per
    checkpoint and the summary ``scan.json`` (last, so its presence means the set is complete)."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    paths.check_dataset(dataset)
    steps = _scan_steps(catalogue, model, dataset)
    out = out or summary_file(suite.name, dataset, model)
    checkpoints = []
    # each checkpoint reads every step before it: read each once
    rows_memo: dict[int, np.ndarray] = {}
    for step in steps:
        ckpt = catalogue.checkpoint(model, dataset, step)  # a missing one fails, saying which exist
        rng = step_range(suite, dataset, step, data_start, data_stop, data_stride)
        res = scan_checkpoint(
            ckpt,
            suite,
            rng,
            options,
            out=out.parent / f"step{step}.parquet",
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            progress=progress,
            cache_root=cache_root,
            rows_memo=rows_memo,
        )
        res.update(step=step, data_steps=[rng.start, rng.stop, rng.step])
        log.info(
            "%s: %d sequences, %d memorized (%.1f s)",
            ckpt.name,
            res["sequences"],
            res["memorized"],
            res["seconds"],
        )
        checkpoints.append(res)
    record: dict[str, Any] = {"suite": suite.name, "dataset": dataset, "model": model}
    record["options"] = asdict(options)
    record.update(device=device, dtype=str(dtype), checkpoints=checkpoints)
    record["seconds"] = sum(c["seconds"] for c in checkpoints)
    write_json(out, record)
    return record


# ------------------------------------------------------------------------------ duplicates


TF_PER_BIN = 1000
"""Rows per duplicate-count bin whose teacher-forced accuracy is computed (all rows of a smaller bin):
micro's bins 1 and 2-9 hold ~5,000 rows each; 1,000 keep the 1.8M model's forwards to a few seconds of one core."""


def stratified_sample(bins: np.ndarray, per_bin: int, seed: int = 0) -> np.ndarray:
    """(N,) bool: every row of a bin holding at most ``per_bin`` rows, else ``per_bin`` rows of it drawn
    without replacement by ``numpy.random.default_rng(seed)`` (one draw per bin, in bin order)."""
    bins = np.asarray(bins)
    take = np.zeros(len(bins), dtype=bool)
    rng = np.random.default_rng(seed)
    for b in range(len(DUPLICATE_BINS)):
        idx = np.flatnonzero(bins == b)
        take[idx if len(idx) <= per_bin else rng.choice(idx, per_bin, replace=False)] = True
    return take


def _write_duplicates(out: Path, columns: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    import pyarrow as pa  # heavy: only writing the duplicates needs it
    import pyarrow.parquet as pq  # heavy: as above

    types = {
        "seq": pa.int64(),
        "duplicates": pa.int64(),
        "bin": pa.int8(),
        "match_run": pa.int16(),
        "tf_matches": pa.int16(),
        "tf_run": pa.int16(),
    }
    schema = pa.schema(
        [(c, types[c]) for c in DUPLICATE_COLUMNS],
        metadata={k: json.dumps(v) for k, v in metadata.items()},
    )
    table = pa.table(
        {
            c: pa.array(
                np.asarray(columns.get(c, []), dtype=types[c].to_pandas_dtype()), type=types[c]
            )
            for c in DUPLICATE_COLUMNS
        },
        schema=schema,
    )
    with atomic_path(out, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def _final_scan(
    scan: Path, options: ScanOptions, catalogue: Catalogue, model: str, dataset: str
) -> tuple[int, Path, Checkpoint]:
    """(step, Parquet file, checkpoint) of the last checkpoint the scan summary ``scan`` lists,
    checked: scanned with ``options``' k and l, and of the checkpoint the catalogue has there now."""
    import pyarrow.parquet as pq  # heavy: only the duplicates need it

    if not scan.is_file():
        raise UsageError(
            f"{scan} is missing: run `pythia memorization scan` for {dataset}/{model} first"
        )
    record = json.loads(scan.read_text())
    # the stride changes no run
    want = {k: v for k, v in asdict(options).items() if k != "score_stride"}
    if {k: record["options"].get(k) for k in want} != want:
        raise UsageError(
            f"{scan} was scanned with {record['options']}, not {want}; rescan or pass its options"
        )
    step = int(record["checkpoints"][-1]["step"])
    parquet = scan.parent / f"step{step}.parquet"
    ckpt = catalogue.checkpoint(model, dataset, step)
    identity = pq.read_schema(parquet).metadata[b"checkpoint"].decode()
    if identity != ckpt.identity:
        raise UsageError(
            f"{parquet} scanned {identity}, not the checkpoint there now ({ckpt.identity}); rescan"
        )
    return step, parquet, ckpt


def _teacher_forced(
    ckpt: Checkpoint,
    rows: np.ndarray,
    options: ScanOptions,
    *,
    vocab_size: int,
    device: str,
    dtype: Any,
    batch_size: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(matches (n,), leading run (n,)) of ``rows`` (n, k + l) under teacher forcing with ``ckpt``."""
    net = ckpt.load_model(dtype=dtype, device=device)
    correct = teacher_forced_correct(
        net, rows, options, vocab_size=vocab_size, batch_size=batch_size
    )
    return correct.sum(axis=1), leading_run(correct)


def duplicates_model(
    suite: str | Suite,
    dataset: str,
    model: str,
    catalogue: Catalogue,
    options: ScanOptions = DEFAULT_OPTIONS,
    *,
    per_bin: int = TF_PER_BIN,
    seed: int = 0,
    device: str = "cpu",
    dtype: Any = None,
    batch_size: int | None = None,
    scan: Path | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Duplicate counts, the scan's leading runs and (for a :func:`stratified_sample` of ``per_bin``
    rows per bin) teacher-forced matches of every sequence the last checkpoint of ``scan`` (default
    :func:`summary_file`; scanned with ``options``' k and l) scanned; writes ``out`` (default
    :func:`duplicates_file`; ``tf_matches``/``tf_run`` -1 where not computed). A dataset too large
    for an exact in-memory count (:data:`pythia.data.duplication.MAX_WINDOWS`: the released Pile)
    gets an empty file whose metadata says why. Returns a summary (rows, bins, agreement of the
    teacher-forced runs with the scan's, seconds)."""
    t0 = time.perf_counter()
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    paths.check_dataset(dataset)
    scan = scan or summary_file(suite.name, dataset, model)
    out = out or duplicates_file(suite.name, dataset, model)
    step, parquet, ckpt = _final_scan(scan, options, catalogue, model, dataset)
    meta: dict[str, Any] = {"suite": suite.name, "dataset": dataset, "model": model, "step": step}
    meta.update(checkpoint=ckpt.identity, options=asdict(options), window=options.width)
    meta.update(bins=duplicate_bin_labels(), per_bin=per_bin, seed=seed)
    rows = duplication.training_rows(suite, dataset)
    windows = rows.shape[0] * (rows.shape[1] - options.width + 1)
    if windows > duplication.MAX_WINDOWS:
        return _skip_duplicates(out, meta, windows, t0)
    # (R,) the duplicate count of every training row's first window
    counts = duplication.count_windows(np.asarray(rows), options.width).first()
    columns = _duplicate_columns(counts, read_scan(parquet))
    take = stratified_sample(columns["bin"], per_bin, seed)
    if take.any():
        columns["tf_matches"][take], columns["tf_run"][take] = _teacher_forced(
            ckpt,
            np.asarray(rows[columns["seq"][take], : options.width]),
            options,
            vocab_size=suite.tokenizer.vocab_size,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
        )
    differ = int((columns["tf_run"][take] != columns["match_run"][take]).sum())
    _write_duplicates(out, columns, {**meta, "runs_differing": differ})
    per = {lab: int((columns["bin"] == i).sum()) for i, lab in enumerate(duplicate_bin_labels())}
    summary = {**meta, "rows": len(take), "per_bin_rows": per, "teacher_forced": int(take.sum())}
    return {
        **summary,
        "runs_differing": differ,
        "seconds": _log_duplicates(ckpt, summary, differ, t0),
    }


def _skip_duplicates(out: Path, meta: dict[str, Any], windows: int, t0: float) -> dict[str, Any]:
    """Write the empty duplicates file of a dataset too large to count, its metadata saying why."""
    meta["skipped"] = (
        f"{windows:,} windows of {meta['window']} tokens in the training rows: more than an exact "
        f"in-memory count takes ({duplication.MAX_WINDOWS:,})"
    )
    _write_duplicates(out, {}, meta)
    log.info("%s/%s: duplicates skipped: %s", meta["dataset"], meta["model"], meta["skipped"])
    return {**meta, "rows": 0, "seconds": time.perf_counter() - t0}


def _duplicate_columns(counts: np.ndarray, scanned) -> dict[str, np.ndarray]:
    """The :data:`DUPLICATE_COLUMNS` of the scanned sequences (a :func:`read_scan` frame), given
    every training row's first-window duplicate count; the teacher-forced ones -1 (not computed)."""
    seq = scanned["seq"].to_numpy()
    dups = counts[seq]
    return {
        "seq": seq,
        "duplicates": dups,
        "bin": duplicate_bins(dups),
        "match_run": scanned["match_run"].to_numpy(),
        "tf_matches": np.full(len(seq), -1, dtype=np.int16),
        "tf_run": np.full(len(seq), -1, dtype=np.int16),
    }


def _log_duplicates(ckpt: Checkpoint, summary: dict[str, Any], differ: int, t0: float) -> float:
    """Log what :func:`duplicates_model` found; the seconds since ``t0``."""
    seconds = time.perf_counter() - t0
    log.info(
        "%s: %d sequences by duplicate count %s, %d teacher-forced; %d teacher-forced runs differ from the "
        "scan's (%.1f s)",
        ckpt.name,
        summary["rows"],
        summary["per_bin_rows"],
        summary["teacher_forced"],
        differ,
        seconds,
    )
    if differ:  # a near-tie argmax, rounded differently by the scan's cached and this full forward
        log.warning(
            "%s: %d of %d teacher-forced leading runs differ from the scan's",
            ckpt.name,
            differ,
            summary["teacher_forced"],
        )
    return seconds
