"""Exact counts of repeated token windows in the rows a model trains on: the data card's
duplication profile, and the duplicate count of each memorization window (section 04).

What is counted. The rows of a dataset's training order (``sequences.bin``: ``train_iters x
global_batch`` rows of ``seq_len + 1`` tokens, row j = training sequence j: every row the model
is trained on, each once) and every window of ``w`` consecutive tokens inside one row
(``L - w + 1`` windows per row of L tokens). Windows that would cross from one row into the next
are not counted: rows are separate sequences, in training as here. The *count* of a window is
the number of (row, start) positions of all training rows that hold the same ``w`` tokens (so a
window seen once has count 1, and a document seen in two epochs gives its windows count 2).

How, exactly and in O(N log N) for N windows (micro: 2M windows in about a second):

1. A polynomial rolling hash modulo 2^64 of every window. Prefix hashes
   ``P[i] = sum_{j<i} (x[j] + 1) B^(i-1-j)`` come from one vectorised pass over the columns (all
   rows at once); window ``[i, i + w)`` hashes to ``P[i + w] - B^w P[i]`` (numpy's uint64
   arithmetic wraps, which is the modulus).
2. The N hashes are sorted (``argsort``), so equal windows are adjacent.
3. Verification: every adjacent pair with equal hashes is compared token by token. Hash groups
   in which some pair differs (a collision: about N^2 / 2^65 expected, 1e-7 for micro) are split
   by their tokens (``np.unique`` over (group, tokens) of those groups' members only). Equality
   is transitive, so the groups are then exactly the classes of equal windows: the counts are
   exact whatever the hash.
4. The size of each class (``np.bincount``), and back to every (row, start).

The profile (:func:`profile`) gives windows, distinct windows, and per threshold k (2, 10, 100)
the distinct windows occurring at least k times, their occurrences and the tokens they cover (a
token position is covered when a window occurring >= k times contains it). The most repeated
windows (:func:`top_windows`) are listed once per passage: each is the most repeated window that
overlaps no occurrence of a window listed before it (the shifts of one repeated header are one
entry, not ten). :func:`row_documents` maps (row, position) to the document of the dataset's
corpus, through GPT-NeoX's index arrays, for the sources of a window's occurrences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pythia.config import Suite
from pythia.data.batches import open_sequences

WINDOW = 64
"""Tokens per counted window: Pythia's memorization window (32 prompt + 32 continuation tokens)."""
THRESHOLDS = (2, 10, 100)
"""Counts the profile reports windows and tokens at (at least 2, 10, 100 occurrences)."""
TOP = 10
"""Most repeated windows (one per passage) the data card lists."""
MAX_WINDOWS = 20_000_000
"""Datasets with more windows than this are not profiled by the data card (it must stay cheap:
micro has 2M windows; Pythia's 300B tokens are out of reach of an in-memory count)."""
HASH_BASE = 0x9E3779B97F4A7C15
"""The multiplier B of the rolling hash (odd, 64-bit; any odd constant works: counts are verified)."""
_VERIFY_CHUNK = 1 << 18
"""Pairs of windows compared per chunk in the verification (memory: chunk x w tokens x 2)."""


# ------------------------------------------------------------------------------ hashing and counting


def rolling_hashes(rows: np.ndarray, window: int, base: int = HASH_BASE) -> np.ndarray:
    """(R, L - w + 1) uint64 polynomial hashes mod 2^64 of every ``window``-token window of each
    row of ``rows`` (R, L): ``P[:, i + w] - B^w P[:, i]`` with prefix hashes P (module docstring)."""
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise ValueError(f"rows must be a 2-D array (rows, tokens), got shape {rows.shape}")
    n_rows, length = rows.shape
    if not 1 <= window <= length:
        raise ValueError(f"window must lie in [1, {length}] (tokens per row), got {window}")
    x = rows.T.astype(np.uint64) + np.uint64(1)  # (L, R): columns as contiguous rows
    b = np.uint64(base)
    prefix = np.zeros((length + 1, n_rows), dtype=np.uint64)  # (L + 1, R)
    with np.errstate(over="ignore"):
        for i in range(length):
            np.multiply(prefix[i], b, out=prefix[i + 1])
            prefix[i + 1] += x[i]
        bw = np.uint64(pow(base, window, 1 << 64))
        h = prefix[window:] - prefix[: length - window + 1] * bw  # (P, R)
    return np.ascontiguousarray(h.T)  # (R, P)


@dataclass(frozen=True)
class WindowCounts:
    """The classes of equal windows of a set of rows (R rows, P window starts per row)."""

    window: int
    """w: tokens per window."""
    rows: int
    """R: rows counted."""
    starts: int
    """P: window starts per row (L - w + 1)."""
    label: np.ndarray
    """(R * P,) int64: the class of each window, flat in row-major order (row r, start s at r * P + s)."""
    counts: np.ndarray
    """(G,) int64: occurrences of each class."""
    collisions: int
    """Hash groups that held different windows (split by their tokens)."""

    @property
    def windows(self) -> int:
        return self.rows * self.starts

    @property
    def distinct(self) -> int:
        return len(self.counts)

    def per_window(self) -> np.ndarray:
        """(R, P) int64: the count of the window at each (row, start)."""
        return self.counts[self.label].reshape(self.rows, self.starts)

    def first(self) -> np.ndarray:
        """(R,) int64: the count of each row's first window (tokens [0, w))."""
        return self.counts[self.label.reshape(self.rows, self.starts)[:, 0]]

    def occurrences(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat indices of all windows sorted by class, then by position (R * P,); offsets (G + 1,)):
        the occurrences of class g are ``order[offsets[g]:offsets[g + 1]]``, in row-major order."""
        order = np.argsort(self.label, kind="stable")
        offsets = np.concatenate([[0], np.cumsum(self.counts)])
        return order, offsets


def _windows_at(view: np.ndarray, flat: np.ndarray, starts: int) -> np.ndarray:
    """(n, w) tokens of the windows at flat indices ``flat`` of a (R, P, w) sliding-window view."""
    return view[flat // starts, flat % starts]


def count_windows(
    rows: np.ndarray,
    window: int = WINDOW,
    *,
    hashes: Callable[[np.ndarray, int], np.ndarray] = rolling_hashes,
) -> WindowCounts:
    """Exact classes and counts of the ``window``-token windows inside the rows of ``rows`` (R, L)
    (no window crosses from one row into the next), by hashing, sorting and verifying every
    adjacent equal-hash pair token by token (module docstring). ``hashes``: the hash function
    (rows, window) -> (R, P) uint64 (tests pass a weak one to exercise the collision path)."""
    rows = np.ascontiguousarray(rows)
    h = np.asarray(hashes(rows, window), dtype=np.uint64)
    n_rows, starts = h.shape
    if starts != rows.shape[1] - window + 1 or n_rows != rows.shape[0]:
        raise ValueError(f"hashes of shape {h.shape} for rows {rows.shape} and window {window}")
    flat = h.reshape(-1)
    order = np.argsort(flat, kind="stable")  # (N,)
    hs = flat[order]
    same = hs[1:] == hs[:-1]  # (N - 1,) adjacent equal hashes
    group = np.concatenate([[0], np.cumsum(~same)]).astype(
        np.int64
    )  # (N,) hash group in sorted order
    view = np.lib.stride_tricks.sliding_window_view(rows, window, axis=1)  # (R, P, w), no copy
    pairs = np.flatnonzero(same)
    bad_groups: list[np.ndarray] = []
    for lo in range(0, len(pairs), _VERIFY_CHUNK):
        p = pairs[lo : lo + _VERIFY_CHUNK]
        differ = (
            _windows_at(view, order[p], starts) != _windows_at(view, order[p + 1], starts)
        ).any(axis=1)
        if differ.any():
            bad_groups.append(group[p[differ]])
    label_sorted = group
    collisions = 0
    if bad_groups:  # split the colliding hash groups by their tokens
        bad = np.unique(np.concatenate(bad_groups))
        collisions = len(bad)
        members = np.flatnonzero(np.isin(group, bad))  # positions in sorted order
        keyed = np.column_stack(
            [group[members], _windows_at(view, order[members], starts).astype(np.int64)]
        )
        _, sub = np.unique(keyed, axis=0, return_inverse=True)
        label_sorted = group.copy()
        label_sorted[members] = group[-1] + 1 + sub.reshape(-1)
        _, label_sorted = np.unique(label_sorted, return_inverse=True)  # dense 0..G-1
        label_sorted = label_sorted.reshape(-1).astype(np.int64)
    label = np.empty(len(flat), dtype=np.int64)
    label[order] = label_sorted
    counts = np.bincount(label).astype(np.int64)
    return WindowCounts(window, n_rows, starts, label, counts, collisions)


# ------------------------------------------------------------------------------ the profile


def covered_tokens(hit: np.ndarray, window: int) -> np.ndarray:
    """(R, P + w - 1) bool: the token positions covered by at least one window marked in ``hit``
    (R, P) (window at start s covers [s, s + w)), by differences of a running sum."""
    n_rows, starts = hit.shape
    length = starts + window - 1
    csum = np.zeros((n_rows, starts + 1), dtype=np.int32)
    np.cumsum(hit, axis=1, out=csum[:, 1:])
    p = np.arange(length)
    lo = np.maximum(0, p - window + 1)  # windows starting in [lo, hi] cover position p
    hi = np.minimum(starts - 1, p)
    return (csum[:, hi + 1] - csum[:, lo]) > 0


def profile(
    wc: WindowCounts, thresholds: tuple[int, ...] = THRESHOLDS, copies: np.ndarray | None = None
) -> dict[str, Any]:
    """Windows, distinct windows, repeated occurrences (windows beyond the first of their class) and,
    per threshold k (``at_least[k]``): ``distinct`` windows occurring >= k times in the rows, their
    ``windows`` (occurrences), the ``tokens`` they cover and that share of the rows' tokens. With
    ``copies`` (:func:`corpus_copies`) also ``distinct_copies`` (windows with >= k places in the
    corpus), the ``tokens_copies`` those cover and their share: the duplication of the text itself,
    without the repeats of a document seen in two epochs."""
    per = wc.per_window()
    row_tokens = wc.rows * (wc.starts + wc.window - 1)
    out: dict[str, Any] = {
        "window": wc.window,
        "rows": wc.rows,
        "row_tokens": row_tokens,
        "windows": wc.windows,
        "distinct": wc.distinct,
        "repeated_occurrences": wc.windows - wc.distinct,
        "max_count": int(wc.counts.max()) if wc.distinct else 0,
        "at_least": {},
    }
    for k in thresholds:
        cover = int(covered_tokens(per >= k, wc.window).sum())
        rec = {
            "distinct": int((wc.counts >= k).sum()),
            "windows": int(wc.counts[wc.counts >= k].sum()),
            "tokens": cover,
            "token_fraction": round(cover / row_tokens, 6) if row_tokens else 0.0,
        }
        if copies is not None:
            cc = int(
                covered_tokens((copies >= k)[wc.label].reshape(wc.rows, wc.starts), wc.window).sum()
            )
            rec.update(
                distinct_copies=int((copies >= k).sum()),
                tokens_copies=cc,
                token_fraction_copies=round(cc / row_tokens, 6) if row_tokens else 0.0,
            )
        out["at_least"][str(k)] = rec
    return out


def top_windows(
    wc: WindowCounts, n: int = TOP, min_count: int = 2, max_candidates: int = 200_000
) -> list[dict]:
    """The ``n`` most repeated windows, one per passage: in order of count (then first occurrence),
    each window that overlaps no occurrence of a window taken before it (two windows of length w
    overlap iff one contains the other's first or last token). ``{"count", "row", "start",
    "occurrences": (rows (c,), starts (c,))}`` each, the first occurrence in ``row``/``start``."""
    cand = np.flatnonzero(wc.counts >= min_count)
    if not len(cand) or n <= 0:
        return []
    order, offsets = wc.occurrences()
    first = order[offsets[cand]]
    cand = cand[np.lexsort((first, -wc.counts[cand]))][:max_candidates]
    covered = np.zeros((wc.rows, wc.starts + wc.window - 1), dtype=bool)
    span = np.arange(wc.window)
    out = []
    for g in cand:
        occ = order[offsets[g] : offsets[g + 1]]
        r, s = occ // wc.starts, occ % wc.starts
        if covered[r, s].any() or covered[r, s + wc.window - 1].any():
            continue
        covered[r[:, None], s[:, None] + span] = True
        out.append(
            {
                "count": int(wc.counts[g]),
                "row": int(r[0]),
                "start": int(s[0]),
                "occurrences": (r, s),
            }
        )
        if len(out) == n:
            break
    return out


# ------------------------------------------------------------------------------ rows -> corpus


def row_addresses(
    order_dir: Path, sizes: np.ndarray, rows: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(document, address) of token ``positions`` of training rows ``rows`` (broadcastable arrays):
    the corpus document holding it (an index into the dataset's ``train_text_document``, whose
    documents have ``sizes`` tokens) and its address there (token offset in the corpus, documents
    concatenated in order), through GPT-NeoX's order in ``order_dir``: row j starts at stream
    position ``cum_start[sample_idx[shuffle_idx[j], 0]] + sample_idx[shuffle_idx[j], 1]`` of the
    documents concatenated in ``doc_idx`` order (each epoch's copy of a document at its own place
    in the stream, at one address in the corpus)."""
    shuffle_idx = np.load(order_dir / "shuffle_idx.npy", mmap_mode="r")
    sample_idx = np.load(order_dir / "sample_idx.npy", mmap_mode="r")
    doc_idx = np.asarray(np.load(order_dir / "doc_idx.npy", mmap_mode="r"), dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    lengths = sizes[doc_idx]  # (E * D,)
    cum_end = np.cumsum(lengths)
    cum_start = cum_end - lengths
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # (D,) corpus address of each document
    rows = np.asarray(rows, dtype=np.int64)
    s = np.asarray(shuffle_idx[rows.reshape(-1)], dtype=np.int64)
    start_rows = np.asarray(sample_idx[s], dtype=np.int64)  # (n, 2)
    start = (cum_start[start_rows[:, 0]] + start_rows[:, 1]).reshape(rows.shape)
    stream = start + np.asarray(positions, dtype=np.int64)
    entry = np.searchsorted(cum_end, stream, side="right")
    doc = doc_idx[entry]
    return doc, stream - cum_start[entry] + offsets[doc]


def corpus_copies(wc: WindowCounts, address: np.ndarray) -> np.ndarray:
    """(G,) int64: the distinct corpus places of each class of windows, ``address`` (R, L) being the
    corpus address of every row token (:func:`row_addresses`). Occurrences of one window at one
    address are the same text seen in two epochs; at different addresses, copies of the text."""
    start = address[:, : wc.starts].reshape(-1)  # (R * P,) address of each window's first token
    span = int(address.max()) + 1
    key = np.sort(
        wc.label * span + start
    )  # (class, address) pairs, sorted (np.unique is ~10x slower)
    first = np.concatenate([[True], key[1:] != key[:-1]])
    return np.bincount(key[first] // span, minlength=wc.distinct).astype(np.int64)


# ------------------------------------------------------------------------------ a suite's datasets


def training_rows(suite: str | Suite, dataset: str) -> np.ndarray:
    """(R, seq_len + 1) the rows of ``dataset``'s training order (memory-mapped ``sequences.bin``)."""
    return open_sequences(suite, dataset)


def dataset_profile(
    order_dir: Path,
    rows: np.ndarray,
    sizes: np.ndarray,
    sources: list[str],
    decode,
    window: int = WINDOW,
    thresholds: tuple[int, ...] = THRESHOLDS,
    top: int = TOP,
) -> dict[str, Any]:
    """The duplication profile of one dataset's training ``rows`` for the data card: :func:`profile`
    with corpus copies; per source the row tokens and those covered by a window occurring >= 2 times
    in the rows and by one with >= 2 places in the corpus (``sources``: the source of each corpus
    document of the dataset, ``sizes`` their tokens); and the :func:`top_windows` decoded
    (``decode``: token ids -> text) with their count, corpus copies, first occurrence (row, start)
    and the sources of their occurrences."""
    rows = np.asarray(rows)
    n_rows, length = rows.shape
    wc = count_windows(rows, window)
    doc, address = row_addresses(
        order_dir, sizes, np.arange(n_rows)[:, None], np.arange(length)[None, :]
    )  # (R, L)
    copies = corpus_copies(wc, address)
    out = profile(wc, thresholds, copies)
    out["collisions"] = wc.collisions
    names = sorted(set(sources))
    src_id = np.searchsorted(names, np.asarray(sources))[doc]  # (R, L)
    repeated = covered_tokens(wc.per_window() >= 2, window)
    copied = covered_tokens((copies >= 2)[wc.label].reshape(wc.rows, wc.starts), window)
    total = np.bincount(src_id.reshape(-1), minlength=len(names))
    rep = np.bincount(src_id[repeated], minlength=len(names))
    cop = np.bincount(src_id[copied], minlength=len(names))
    out["per_source"] = {
        name: {
            "row_tokens": int(total[i]),
            "repeated_tokens": int(rep[i]),
            "repeated_fraction": round(float(rep[i]) / total[i], 6) if total[i] else 0.0,
            "copied_tokens": int(cop[i]),
            "copied_fraction": round(float(cop[i]) / total[i], 6) if total[i] else 0.0,
        }
        for i, name in enumerate(names)
    }
    listed = []
    for t in top_windows(wc, top):
        r, s = t["occurrences"]
        occ_src = np.bincount(src_id[r, s], minlength=len(names))
        g = wc.label[t["row"] * wc.starts + t["start"]]
        listed.append(
            {
                "count": t["count"],
                "copies": int(copies[g]),
                "row": t["row"],
                "start": t["start"],
                "text": decode(rows[t["row"], t["start"] : t["start"] + window].tolist()),
                "sources": {names[i]: int(c) for i, c in enumerate(occ_src) if c},
            }
        )
    out["top"] = listed
    return out
