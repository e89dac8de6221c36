"""Where a memorization scan's outputs live, and how to read them (section 04).

The scan (:mod:`pythia.evaluate.memorization`) writes, under
``work/<suite>/memorization/<dataset>/<model>/``:

* ``step<N>.parquet`` (:func:`scan_file`): one checkpoint's scan, one row per training sequence it
  has seen (:data:`COLUMNS`, :func:`read_scan`);
* ``scan.json`` (:func:`summary_file`): the model's scans, written last (the workflow rule's output);
* ``duplicates.parquet`` (:func:`duplicates_file`): each scanned sequence's duplicate count, its
  bin (:data:`DUPLICATE_BINS`) and teacher-forced matches (:data:`DUPLICATE_COLUMNS`,
  :func:`read_duplicates`);

and ``work/<suite>/memorization/bench.json`` (:func:`bench_file`): ``pythia bench memorization``'s
measurement in the workflow.

Columns of a scan (one row per training sequence)::

    seq          int64   index of the sequence in the training order (step = seq // global_batch)
    memorized    bool    greedy decoding reproduces all l tokens
    match_run    int16   tokens greedy decoding reproduces before its first miss (l if memorized)
    matches      int16   tokens of the l-token greedy continuation equal to the true ones
                         (-1 where the fractional score was not computed)

This module imports no model code (the scan's kernels import ``transformers``): the section's
analysis (:mod:`pythia.analysis.memorization`), which the workflow's Snakefile imports, reads the
scans through it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pythia import paths

COLUMNS = ("seq", "memorized", "match_run", "matches")
"""The columns of a scan, in order (see the module docstring)."""
DUPLICATE_BINS: tuple[tuple[int, int | None], ...] = ((1, 1), (2, 9), (10, 99), (100, None))
"""Duplicate-count bins [lo, hi] (hi None: no upper end): seen once, 2-9, 10-99, >= 100 times."""
DUPLICATE_COLUMNS = ("seq", "duplicates", "bin", "match_run", "tf_matches", "tf_run")
"""The columns of ``duplicates.parquet``, in order."""


# ------------------------------------------------------------------------------ the files


def scan_file(suite: str, dataset: str, model: str, step: int) -> Path:
    """``work/<suite>/memorization/<dataset>/<model>/step<N>.parquet``: one checkpoint's scan."""
    return paths.suite_dir(suite) / "memorization" / dataset / model / f"step{step}.parquet"


def summary_file(suite: str, dataset: str, model: str) -> Path:
    """``work/<suite>/memorization/<dataset>/<model>/scan.json``: what a model's scans wrote (the rule's output)."""
    return paths.suite_dir(suite) / "memorization" / dataset / model / "scan.json"


def duplicates_file(suite: str, dataset: str, model: str) -> Path:
    """``work/<suite>/memorization/<dataset>/<model>/duplicates.parquet`` (:data:`DUPLICATE_COLUMNS`)."""
    return paths.suite_dir(suite) / "memorization" / dataset / model / "duplicates.parquet"


def bench_file(suite: str) -> Path:
    """``work/<suite>/memorization/bench.json``: the workflow's scan-vs-generate measurement."""
    return paths.suite_dir(suite) / "memorization" / "bench.json"


def read_scan(path: str | Path):
    """One checkpoint's scan as a frame (:data:`COLUMNS`)."""
    import pandas as pd  # heavy: only reading a scan needs it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run `pythia memorization scan` (or the workflow's memorization rules)"
        )
    return pd.read_parquet(path)


# ------------------------------------------------------------------------------ duplicates


def duplicate_bin_labels() -> list[str]:
    """The bins' labels, in order: ``1``, ``2-9``, ``10-99``, ``>=100``."""
    return [
        f"{lo}" if hi == lo else f"{lo}-{hi}" if hi is not None else f">={lo}"
        for lo, hi in DUPLICATE_BINS
    ]


def duplicate_bins(counts: np.ndarray) -> np.ndarray:
    """(N,) int8: the :data:`DUPLICATE_BINS` index of each duplicate count (counts are >= 1)."""
    counts = np.asarray(counts)
    if counts.size and counts.min() < 1:
        raise ValueError(
            f"duplicate counts are >= 1 (a window occurs at least where it is), got {counts.min()}"
        )
    edges = np.array([lo for lo, _ in DUPLICATE_BINS[1:]])
    return np.searchsorted(edges, counts, side="right").astype(np.int8)


def read_duplicates(path: str | Path):
    """One model's duplicates as a frame (:data:`DUPLICATE_COLUMNS`) with its metadata in ``.attrs``."""
    import pandas as pd  # heavy: only reading the duplicates needs it
    import pyarrow.parquet as pq  # heavy: as above

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run `pythia memorization duplicates` (or the workflow's "
            f"memorization_scan rule)"
        )
    table = pq.read_table(path)
    df: pd.DataFrame = table.to_pandas()
    df.attrs = {
        k.decode(): json.loads(v)
        for k, v in (table.schema.metadata or {}).items()
        if not k.startswith(b"pandas")
    }
    return df
