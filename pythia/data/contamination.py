"""Contamination guard: no evaluation item may occur in the training data.

Text is normalised to lowercase ``\\w+`` words (punctuation, case and layout do not count).
Every evaluation item contributes all its n-grams of ``n`` words (``data.contamination_ngram``,
13 as in GPT-3's and lm-evaluation-harness's decontamination); an item with fewer than
``n`` words contributes its whole word sequence as one shorter "n-gram", except items
with fewer than :data:`MIN_ITEM_WORDS` words, which are too generic to indicate
contamination (``"the author is"`` would match ordinary prose); they are counted as
``skipped_short`` in the report. A training document sharing any of these n-grams with an
evaluation item is dropped before the tokenizer is trained.

Efficiency: words are hashed once (CRC-32, stable across processes) and n-grams are
rolling polynomial hashes mod 2^64 computed in numpy; evaluation n-grams are one sorted
array per length (with the evaluation set of each, for the report) and every training
document is checked with a vectorised ``searchsorted``. A 64-bit hash collision could
drop a clean document; with ~10^7 n-grams the chance per document is ~10^-9.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

_WORD = re.compile(r"\w+")
_P = np.uint64(0x100000001B3)  # polynomial base (FNV prime)
MIN_ITEM_WORDS = 6
"""Items with fewer words than this are not guarded against (see the module docstring)."""


def normalize(text: str) -> list[str]:
    """Lowercase ``\\w+`` words."""
    return _WORD.findall(text.lower())


class _WordHashes(dict):
    def __missing__(self, w: str) -> int:
        h = zlib.crc32(w.encode("utf-8")) + 1  # never 0
        self[w] = h
        return h


_WH = _WordHashes()


def word_hashes(text: str) -> np.ndarray:
    """uint64 hash of each normalised word, shape (words,)."""
    return np.fromiter((_WH[w] for w in normalize(text)), dtype=np.uint64)


def ngram_hashes(wh: np.ndarray, n: int) -> np.ndarray:
    """Hash of every run of ``n`` consecutive words, shape (max(len - n + 1, 0),)."""
    m = len(wh) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * _P + wh[k : k + m]
        h = h + np.uint64(n)  # different lengths never share a hash by construction of the sum
    return h


def _batched_ngrams(whs: Sequence[np.ndarray], n: int) -> np.ndarray:
    """All n-gram hashes of several word-hash arrays, none crossing from one to the next."""
    if not whs:
        return np.zeros(0, dtype=np.uint64)
    flat = np.concatenate(whs)
    owner = np.repeat(np.arange(len(whs)), [len(w) for w in whs])  # (words,)
    h = ngram_hashes(flat, n)
    valid = owner[: len(h)] == owner[n - 1 : n - 1 + len(h)]
    return h[valid]


@dataclasses.dataclass
class EvalIndex:
    """Sorted n-gram hashes of the evaluation items, per length, with their evaluation set."""

    n: int
    hashes: dict[int, np.ndarray]  # length -> sorted uint64 hashes
    owners: dict[int, np.ndarray]  # length -> index into set_names, aligned with hashes
    set_names: list[str]
    items: dict[str, int]  # eval set -> items guarded
    skipped_short: dict[str, int]  # eval set -> items too short to guard

    @classmethod
    def build(cls, eval_items: dict[str, Sequence[str]], n: int) -> EvalIndex:
        set_names = sorted(eval_items)
        items: dict[str, int] = {}
        skipped: dict[str, int] = {}
        per_len: dict[int, list[np.ndarray]] = {}
        per_owner: dict[int, list[np.ndarray]] = {}
        for si, name in enumerate(set_names):
            whs = [word_hashes(t) for t in eval_items[name]]
            lens = np.array([len(w) for w in whs], dtype=np.int64)
            skipped[name] = int((lens < MIN_ITEM_WORDS).sum())
            items[name] = len(whs) - skipped[name]
            for length in sorted(set(np.minimum(lens[lens >= MIN_ITEM_WORDS], n).tolist())):
                sel = [w for w in whs if len(w) >= MIN_ITEM_WORDS and min(len(w), n) == length]
                h = _batched_ngrams(sel, length)
                per_len.setdefault(length, []).append(h)
                per_owner.setdefault(length, []).append(np.full(len(h), si, dtype=np.int32))
        hashes, owners = {}, {}
        for length in per_len:
            h = np.concatenate(per_len[length])
            o = np.concatenate(per_owner[length])
            order = np.argsort(h, kind="stable")
            h, o = h[order], o[order]
            keep = np.ones(len(h), dtype=bool)
            keep[1:] = h[1:] != h[:-1]  # first owner of each hash
            hashes[length], owners[length] = h[keep], o[keep]
        return cls(n, hashes, owners, set_names, items, skipped)

    @property
    def num_ngrams(self) -> int:
        return int(sum(len(h) for h in self.hashes.values()))

    def match(self, text: str) -> str | None:
        """The evaluation set of the first n-gram ``text`` shares with an item, else None."""
        wh = word_hashes(text)
        for length in sorted(self.hashes, reverse=True):
            ref = self.hashes[length]
            h = ngram_hashes(wh, length)
            if not len(h) or not len(ref):
                continue
            pos = np.searchsorted(ref, h)
            pos[pos == len(ref)] = 0
            hit = np.flatnonzero(ref[pos] == h)
            if len(hit):
                return self.set_names[int(self.owners[length][pos[hit[0]]])]
        return None


@dataclasses.dataclass
class ContaminationReport:
    """What the guard dropped."""

    ngram: int
    dropped: dict[str, str]  # document id -> evaluation set it overlaps
    per_source: dict[str, int]
    per_eval_set: dict[str, int]
    eval_items: dict[str, int]
    eval_items_skipped_short: dict[str, int]
    eval_ngrams: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def find_contaminated(docs: Iterable[tuple[str, str, str]], index: EvalIndex,
                      batch_words: int = 1 << 20) -> ContaminationReport:
    """Check ``(id, source, text)`` documents; returns which to drop and counts.

    Documents are checked in batches of about ``batch_words`` words at once.
    """
    dropped: dict[str, str] = {}
    per_source: Counter[str] = Counter()
    per_set: Counter[str] = Counter()

    def flush(batch: list[tuple[str, str, np.ndarray]]) -> None:
        if not batch:
            return
        whs = [b[2] for b in batch]
        flat = np.concatenate(whs)
        owner = np.repeat(np.arange(len(batch)), [len(w) for w in whs])
        hit_set = np.full(len(batch), -1, dtype=np.int64)
        for length in sorted(index.hashes, reverse=True):
            ref = index.hashes[length]
            h = ngram_hashes(flat, length)
            if not len(h) or not len(ref):
                continue
            valid = owner[: len(h)] == owner[length - 1 : length - 1 + len(h)]
            pos = np.searchsorted(ref, h)
            pos[pos == len(ref)] = 0
            hits = np.flatnonzero((ref[pos] == h) & valid)
            # attribution: the longest matching length first, then the earliest position
            docs_hit, first = np.unique(owner[hits], return_index=True)
            new = hit_set[docs_hit] < 0
            hit_set[docs_hit[new]] = index.owners[length][pos[hits[first[new]]]]
        for d, si in enumerate(hit_set):
            if si >= 0:
                doc_id, source, _ = batch[d]
                dropped[doc_id] = index.set_names[int(si)]
                per_source[source] += 1
                per_set[index.set_names[int(si)]] += 1

    batch: list[tuple[str, str, np.ndarray]] = []
    words = 0
    for doc_id, source, text in docs:
        wh = word_hashes(text)
        batch.append((doc_id, source, wh))
        words += len(wh)
        if words >= batch_words:
            flush(batch)
            batch, words = [], 0
    flush(batch)
    return ContaminationReport(
        ngram=index.n, dropped=dropped, per_source=dict(sorted(per_source.items())),
        per_eval_set=dict(sorted(per_set.items())), eval_items=index.items,
        eval_items_skipped_short=index.skipped_short, eval_ngrams=index.num_ngrams,
    )
