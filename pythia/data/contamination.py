"""Contamination guard: no evaluation example may occur in the training data.

Text is normalised to lowercase ``\\w+`` words (punctuation, case and layout do not count).
Every example of every evaluation set (:mod:`pythia.data.evalsets`) is checked in full: its
prompt followed by each of its choices or targets is one *item*, and a training document is
dropped when it contains an item by one of four rules, chosen by the item's kind and length
in words:

``ngram``  (``n`` words or more; ``n = data.contamination_ngram``, 13 as in GPT-3's and
           lm-evaluation-harness's decontamination) the document shares any ``n``-gram with
           the item;
``whole``  (:data:`MIN_ITEM_WORDS` to ``n - 1`` words) the document contains the item's whole
           word sequence;
``line``   (1 to :data:`MIN_ITEM_WORDS` - 1 words) the document contains the item's whole word
           sequence as whole lines: starting at the beginning of a line and ending at the end
           of a line. Short items are too generic to look for inside running text
           (``"the author is"``, ``"yes"``), but a line that *is* an item, as in a leaked list
           of questions and answers, is exact evidence;
``symbols`` (examples whose prompt is mostly not word characters: ASCII art in BIG-bench's
           ``kanji_ascii`` and ``mnist_ascii``, bracket sequences in ``dyck_languages``) the
           document has the item's lines (prompt lines, then the choice's), compared without
           whitespace, as consecutive lines; windows of ``n`` lines for longer items. Reading
           such items as words would keep only the answer (``"you"``, ``"3"``) and match any
           line that says it. A one-line prompt also matches with the choice on the same line.

Items with no characters but whitespace cannot match anything and are counted as ``empty``.
The report keeps, for every dropped document, the set, the rule and what matched.

Efficiency: words are hashed once (CRC-32, stable across processes) and word sequences are
polynomial hashes mod 2^64 computed in numpy (a hash includes its length). The evaluation
side is one sorted array of unique hashes (with the first set each belongs to) for the
``ngram`` and ``whole`` rules, one for ``line`` and one for ``symbols`` (hashes of windows of
line hashes); built once per cache for the ~110M words of all sets
(:func:`pythia.data.evalsets.guard_index`) and memory-mapped by each build. Training documents are checked in batches with vectorised ``searchsorted``. A 64-bit
hash collision could drop a clean document; with ~10^8 hashes the chance per document is
~10^-8.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pythia.io import atomic_dir

GUARD_VERSION = 2
"""Raise when the guard's rules or hashing change (part of the data build's digest)."""
_WORD = re.compile(r"\w+")
_P = np.uint64(0x100000001B3)  # polynomial base (FNV prime)
MIN_ITEM_WORDS = 6
"""Items with fewer words than this are matched only as whole lines (rule ``line``)."""
RULES = ("ngram", "whole", "line", "symbols")
_CHUNK_WORDS = 4_000_000  # evaluation words hashed at once while building the index


def normalize(text: str) -> list[str]:
    """Lowercase ``\\w+`` words."""
    return _WORD.findall(text.lower())


class _WordHashes(dict):
    def __missing__(self, w: str) -> int:
        if len(self) > 2_000_000:  # bound the memory over ~10^8 evaluation words
            self.clear()
        h = zlib.crc32(w.encode("utf-8")) + 1  # never 0
        self[w] = h
        return h


_WH = _WordHashes()


def word_hashes(text: str) -> np.ndarray:
    """uint64 hash of each normalised word, shape (words,)."""
    return _hash_words(normalize(text))


def symbol_hash(text: str) -> int:
    """64-bit hash of lowercased ``text`` without its whitespace (``symbols`` rule), 0 if empty."""
    s = "".join(text.lower().split())
    return (
        int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")
        if s
        else 0
    )


def line_keys(text: str) -> list[int]:
    """:func:`symbol_hash` of each line that is not blank, in order."""
    return [symbol_hash(line) for line in text.split("\n") if line.strip()]


def is_symbolic(text: str) -> bool:
    """Fewer than half of the non-space characters are word characters (ASCII art, brackets)."""
    chars = len("".join(text.split()))
    return chars > 0 and 2 * sum(len(w) for w in _WORD.findall(text)) < chars


def line_word_hashes(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Word hashes (words,), whether each word starts / ends a line (words,) bool, and the
    :func:`line_keys` of the text (non-blank lines,) uint64.

    The words are those of :func:`word_hashes` (``\\w`` never matches a line break)."""
    raw = text.lower().split("\n")
    lines = [_WORD.findall(line) for line in raw]
    symbols = np.array([symbol_hash(r) for r in raw if r.strip()], dtype=np.uint64)
    counts = np.array([len(ws) for ws in lines], dtype=np.int64)  # (lines,)
    wh = _hash_words([w for ws in lines for w in ws])
    ends = np.cumsum(counts)[counts > 0]  # one past each non-empty line's last word
    starts = ends - counts[counts > 0]
    is_start = np.zeros(len(wh), dtype=bool)
    is_end = np.zeros(len(wh), dtype=bool)
    is_start[starts] = True
    is_end[ends - 1] = True
    return wh, is_start, is_end, symbols


def ngram_hashes(wh: np.ndarray, n: int) -> np.ndarray:
    """Hash of every run of ``n`` consecutive words, shape (max(len - n + 1, 0),)."""
    m = len(wh) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * _P + wh[k : k + m]
        h = h + np.uint64(n)  # sequences of different lengths hash apart
    return h


def _stacked_hashes(block: np.ndarray) -> np.ndarray:
    """Row-wise :func:`ngram_hashes` of a (rows, L) block with one n-gram per row."""
    h = np.zeros(block.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(block.shape[1]):
            h = h * _P + block[:, k]
        return h + np.uint64(block.shape[1])


Item = str | tuple[str, Sequence[str]]
"""An evaluation item for :meth:`EvalIndex.build`: a text, or (prompt, continuations): the
prompt followed by each continuation is one item."""


def _sorted_unique(h: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.sort`` then a neighbour compare: several times faster than
    ``np.unique`` on large uint64 arrays in numpy 2)."""
    h = np.sort(h)
    keep = np.ones(len(h), dtype=bool)
    keep[1:] = h[1:] != h[:-1]
    return h[keep]


@functools.lru_cache(maxsize=1 << 16)
def _normalize_choice(text: str) -> list[str]:
    """:func:`normalize` for choices, which repeat across the examples of a task (callers
    only read or concatenate the list)."""
    return normalize(text)


def _hash_words(words: list[str]) -> np.ndarray:
    return np.fromiter(map(_WH.__getitem__, words), dtype=np.uint64, count=len(words))


class _SetHashes:
    """Hashes of one evaluation set's items, built in chunks of bounded memory.

    Words are collected as Python lists and hashed in bulk (one ``np.fromiter`` per chunk):
    per item the work is a few list operations, which matters at ~19M items."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ng_words: list[str] = []  # sequences whose n-grams are wanted, back to back
        self.ng_lens: list[int] = []
        self.whole: dict[int, list[str]] = {}  # length -> items of that length, back to back
        self.line: dict[int, list[str]] = {}
        self.parts: list[np.ndarray] = []
        self.whole_parts: list[np.ndarray] = []
        self.line_parts: list[np.ndarray] = []
        self.whole_lengths: set[int] = set()
        self.line_lengths: set[int] = set()
        self.symbols: list[np.ndarray] = []
        self.symbol_lengths: set[int] = set()
        self.stats = Counter({"examples": 0, "items": 0, **dict.fromkeys(RULES, 0), "empty": 0})

    def add(self, item: Item) -> None:
        prompt, conts = (item, ()) if isinstance(item, str) else item
        self.stats["examples"] += 1
        if prompt.strip() and is_symbolic(prompt):
            self._symbol_items(prompt, conts)
            return
        if not prompt.strip() and any(is_symbolic(c) for c in conts):  # whole-sentence choices
            for c in conts:
                if is_symbolic(c):
                    self._symbol_items(c, ())
            conts = [c for c in conts if not is_symbolic(c)]
            if not conts:
                return
        q = normalize(prompt)
        if not conts:
            self._item(q)
            return
        n = self.n
        if len(q) >= n:
            self._ngrams(q)  # the prompt's own n-grams once, not once per choice
        if len(q) >= n - 1:
            tail = q[len(q) - (n - 1) :]
            for c in conts:
                cw = _normalize_choice(c)
                if cw:
                    self._ngrams(tail + cw)  # the n-grams that reach into the choice
                    self.stats["items"] += 1
                    self.stats["ngram"] += 1
                else:
                    self._item(q)
        else:
            for c in conts:
                self._item(q + _normalize_choice(c))  # the whole item: few words
        if len(self.ng_words) >= _CHUNK_WORDS:
            self._flush()

    def _item(self, words: list[str]) -> None:
        length = len(words)
        self.stats["items"] += 1
        if length >= self.n:
            self.stats["ngram"] += 1
            self._ngrams(words)
        elif length >= MIN_ITEM_WORDS:
            self.stats["whole"] += 1
            self.whole.setdefault(length, []).extend(words)
        elif length > 0:
            self.stats["line"] += 1
            self.line.setdefault(length, []).extend(words)
        else:  # only blank text gets here: anything else without words is symbolic
            self.stats["empty"] += 1

    def _symbol_items(self, prompt: str, conts: Sequence[str]) -> None:
        """Items compared as sequences of lines (``symbols`` rule), windows of ``n`` lines."""
        k = self.n
        p = line_keys(prompt)
        if not conts:
            self._count_symbols(1)
            self._windows(p)
            return
        if len(p) >= k:
            self._windows(p)  # the prompt's own windows once
        head = p[len(p) - (k - 1) :] if len(p) >= k - 1 else p
        for c in conts:
            self._count_symbols(1)
            cl = line_keys(c)
            self._windows(head + cl)
            if len(p) == 1 and cl:  # a one-line prompt: also with the choice on the same line
                self._windows([symbol_hash(f"{prompt} {c}")])

    def _count_symbols(self, items: int) -> None:
        self.stats["items"] += items
        self.stats["symbols"] += items

    def _windows(self, keys: list[int]) -> None:
        if not keys:
            return
        length = min(len(keys), self.n)
        self.symbols.append(ngram_hashes(np.array(keys, dtype=np.uint64), length))
        self.symbol_lengths.add(length)

    def _ngrams(self, words: list[str]) -> None:
        self.ng_words.extend(words)
        self.ng_lens.append(len(words))

    def _flush(self) -> None:
        if self.ng_words:
            flat = _hash_words(self.ng_words)
            owner = np.repeat(np.arange(len(self.ng_lens)), self.ng_lens)  # (words,)
            h = ngram_hashes(flat, self.n)
            self.parts.append(
                _sorted_unique(h[owner[: len(h)] == owner[self.n - 1 : self.n - 1 + len(h)]])
            )
        for buf, parts, lengths in (
            (self.whole, self.whole_parts, self.whole_lengths),
            (self.line, self.line_parts, self.line_lengths),
        ):
            for length, words in buf.items():
                parts.append(_stacked_hashes(_hash_words(words).reshape(-1, length)))
                lengths.add(length)
            buf.clear()
        self.ng_words, self.ng_lens = [], []

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, set[int]]]:
        """Unique hashes for ``ngram`` + ``whole``, for ``line`` and for ``symbols``, and the
        lengths present in each (words; lines for ``symbols``)."""
        self._flush()
        parts = self.parts + self.whole_parts
        main = _sorted_unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)
        line = (
            _sorted_unique(np.concatenate(self.line_parts))
            if self.line_parts
            else np.zeros(0, dtype=np.uint64)
        )
        symbols = (
            _sorted_unique(np.concatenate(self.symbols))
            if self.symbols
            else np.zeros(0, dtype=np.uint64)
        )
        lengths = ({self.n} if self.stats["ngram"] else set()) | self.whole_lengths
        return (
            main,
            line,
            symbols,
            {"main": lengths, "line": self.line_lengths, "symbols": self.symbol_lengths},
        )


def _merge(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique union of per-set sorted arrays, with the index of the first set holding each."""
    if not arrays or not sum(len(a) for a in arrays):
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint16)
    h = np.concatenate(arrays)
    owner = np.repeat(np.arange(len(arrays), dtype=np.uint16), [len(a) for a in arrays])
    order = np.argsort(h, kind="stable")  # equal hashes keep set order: the first set wins
    h, owner = h[order], owner[order]
    del order
    keep = np.ones(len(h), dtype=bool)
    keep[1:] = h[1:] != h[:-1]
    return h[keep], owner[keep]


_ARRAYS = ("hashes", "owners", "line_hashes", "line_owners", "symbol_hashes", "symbol_owners")


@dataclasses.dataclass
class EvalIndex:
    """Sorted hashes of every evaluation item, with the evaluation set of each."""

    n: int
    hashes: np.ndarray  # (H,) sorted unique uint64: n-grams and whole items (rules ngram, whole)
    owners: np.ndarray  # (H,) uint16 index into set_names
    lengths: list[int]  # word lengths present in ``hashes``
    line_hashes: np.ndarray  # (L,) sorted unique uint64: short items (rule line)
    line_owners: np.ndarray  # (L,) uint16
    line_lengths: list[int]
    symbol_hashes: np.ndarray  # (S,) sorted unique uint64: windows of lines (rule symbols)
    symbol_owners: np.ndarray  # (S,) uint16
    symbol_lengths: list[int]  # window lengths (lines) present in ``symbol_hashes``
    set_names: list[str]
    stats: dict[str, dict[str, int]]  # per set: examples, items, items per rule, empty

    @classmethod
    def build(
        cls, eval_items: Mapping[str, Iterable[Item]], n: int, progress: bool = False
    ) -> EvalIndex:
        """Index ``{set name: items}``; sets are hashed one at a time (bounded memory)."""
        if len(eval_items) > np.iinfo(np.uint16).max:
            raise ValueError(f"{len(eval_items)} evaluation sets; at most 65535 can be indexed")
        set_names = sorted(eval_items)
        mains, lines, symbols, stats = [], [], [], {}
        lengths: dict[str, set[int]] = {"main": set(), "line": set(), "symbols": set()}
        for name in tqdm(set_names, desc="guard index", unit="set", disable=not progress):
            sh = _SetHashes(n)
            for item in eval_items[name]:
                sh.add(item)
            main, line, sym, ls = sh.finish()
            mains.append(main)
            lines.append(line)
            symbols.append(sym)
            for k in lengths:
                lengths[k] |= ls[k]
            stats[name] = dict(sh.stats)
        hashes, owners = _merge(mains)
        del mains
        line_hashes, line_owners = _merge(lines)
        symbol_hashes, symbol_owners = _merge(symbols)
        return cls(
            n,
            hashes,
            owners,
            sorted(lengths["main"]),
            line_hashes,
            line_owners,
            sorted(lengths["line"]),
            symbol_hashes,
            symbol_owners,
            sorted(lengths["symbols"]),
            set_names,
            stats,
        )

    @property
    def num_hashes(self) -> int:
        return int(len(self.hashes) + len(self.line_hashes) + len(self.symbol_hashes))

    def save(self, directory: str | Path) -> Path:
        """Write the index as ``.npy`` arrays and ``index.json`` (atomically, as one directory)."""
        with atomic_dir(directory) as tmp:
            for name in _ARRAYS:
                np.save(tmp / f"{name}.npy", getattr(self, name))
            (tmp / "index.json").write_text(
                json.dumps(
                    {
                        "n": self.n,
                        "min_item_words": MIN_ITEM_WORDS,
                        "guard_version": GUARD_VERSION,
                        "lengths": self.lengths,
                        "line_lengths": self.line_lengths,
                        "symbol_lengths": self.symbol_lengths,
                        "set_names": self.set_names,
                        "stats": self.stats,
                    },
                    indent=1,
                )
            )
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> EvalIndex:
        """An index written by :meth:`save`; the arrays are memory-mapped."""
        d = Path(directory)
        meta = json.loads((d / "index.json").read_text())
        arrays = {name: np.load(d / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        return cls(
            meta["n"],
            lengths=meta["lengths"],
            line_lengths=meta["line_lengths"],
            symbol_lengths=meta["symbol_lengths"],
            set_names=meta["set_names"],
            stats=meta["stats"],
            **arrays,
        )

    def match(self, text: str) -> tuple[str, str] | None:
        """(evaluation set, rule) of the first item ``text`` contains, else None."""
        report = find_contaminated([("doc", "text", text)], self)
        hit = report.dropped.get("doc")
        return (hit["set"], hit["rule"]) if hit else None


@dataclasses.dataclass
class ContaminationReport:
    """What the guard dropped, and why."""

    ngram: int
    min_item_words: int
    dropped: dict[str, dict]  # document id -> {"source", "set", "rule", "match"}
    per_source: dict[str, int]
    per_eval_set: dict[str, int]  # documents dropped, by the set of their first match
    per_eval_set_rule: dict[str, dict[str, int]]
    eval_sets: dict[str, dict[str, int]]  # per set: examples, items, items per rule, empty
    eval_hashes: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _lookup(ref: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each hash in ``h``: whether ``ref`` (sorted) holds it, and where. Queries are
    sorted first so that the binary searches walk ``ref`` (often memory-mapped) in order."""
    if not len(ref) or not len(h):
        return np.zeros(len(h), dtype=bool), np.zeros(len(h), dtype=np.int64)
    order = np.argsort(h)
    pos = np.empty(len(h), dtype=np.int64)
    pos[order] = np.searchsorted(ref, h[order])
    pos[pos == len(ref)] = 0
    return ref[pos] == h, pos


Hit = tuple[int, str, int, int]
"""A document's first match: (evaluation set index, rule, position in words or lines, length)."""

_Doc = tuple[str, str, str, tuple[np.ndarray, ...]]
"""(id, source, text, :func:`line_word_hashes` of the text): a document being checked."""


def _first_hits(
    flat: np.ndarray,
    sizes: list[int],
    length: int,
    ref: np.ndarray,
    owners: np.ndarray,
    starts: np.ndarray | None = None,
    ends: np.ndarray | None = None,
) -> dict[int, tuple[int, int]]:
    """The first run of ``length`` units (words or lines) of each document that ``ref`` holds:
    {document: (owner, position in the document)}. ``flat`` holds the documents' unit hashes
    back to back (``sizes`` units each); no run crosses from one into the next; with ``starts``
    and ``ends``, a run must also start and end a line."""
    h = ngram_hashes(flat, length)
    m = len(h)
    if not m or not len(ref):
        return {}
    doc_of = np.repeat(np.arange(len(sizes)), sizes)  # (units,)
    valid = doc_of[:m] == doc_of[length - 1 : length - 1 + m]
    if starts is not None and ends is not None:
        valid &= starts[:m] & ends[length - 1 : length - 1 + m]
    hit, pos = _lookup(ref, h)
    hits = np.flatnonzero(hit & valid)
    docs_hit, first = np.unique(doc_of[hits], return_index=True)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = {}
    for d, k in zip(docs_hit.tolist(), first.tolist()):
        w = int(hits[k])
        out[d] = (int(owners[pos[w]]), w - int(offsets[d]))
    return out


def _scan(batch: list[_Doc], index: EvalIndex) -> dict[int, Hit]:
    """The first match of each document of ``batch`` that matches: by rule (``ngram``,
    ``whole``, ``line``, then ``symbols``), longest first, then earliest."""
    found: dict[int, Hit] = {}

    def keep(hits: dict[int, tuple[int, int]], rule: str, length: int) -> None:
        for d, (owner, at) in hits.items():
            found.setdefault(d, (owner, rule, at, length))

    words = np.concatenate([b[3][0] for b in batch])  # (words,)
    word_sizes = [len(b[3][0]) for b in batch]
    starts = np.concatenate([b[3][1] for b in batch])
    ends = np.concatenate([b[3][2] for b in batch])
    for length in sorted(index.lengths, reverse=True):
        rule = "ngram" if length >= index.n else "whole"
        keep(_first_hits(words, word_sizes, length, index.hashes, index.owners), rule, length)
    for length in sorted(index.line_lengths, reverse=True):
        hits = _first_hits(
            words, word_sizes, length, index.line_hashes, index.line_owners, starts, ends
        )
        keep(hits, "line", length)
    lines = np.concatenate([b[3][3] for b in batch])  # (non-blank lines,)
    line_sizes = [len(b[3][3]) for b in batch]
    for length in sorted(index.symbol_lengths, reverse=True):
        hits = _first_hits(lines, line_sizes, length, index.symbol_hashes, index.symbol_owners)
        keep(hits, "symbols", length)
    return found


def _matched_text(text: str, rule: str, at: int, length: int) -> str:
    """The words (or, for ``symbols``, the non-blank lines) of ``text`` a match covers."""
    if rule == "symbols":  # lines at..at+length of the document's non-blank lines
        lines = [r for r in text.split("\n") if r.strip()]
        return " / ".join(r.strip() for r in lines[at : at + length])
    return " ".join(normalize(text)[at : at + length])


def _batches(docs: Iterable[tuple[str, str, str]], batch_words: int) -> Iterator[list[_Doc]]:
    """The documents with their hashes, in batches of about ``batch_words`` words."""
    batch: list[_Doc] = []
    words = 0
    for doc_id, source, text in docs:
        lw = line_word_hashes(text)
        batch.append((doc_id, source, text, lw))
        words += len(lw[0])
        if words >= batch_words:
            yield batch
            batch, words = [], 0
    if batch:
        yield batch


def find_contaminated(
    docs: Iterable[tuple[str, str, str]], index: EvalIndex, batch_words: int = 1 << 20
) -> ContaminationReport:
    """Check ``(id, source, text)`` documents; returns which to drop, why, and counts.

    Documents are checked in batches of about ``batch_words`` words at once. A document's
    match is reported by rule (``ngram``, ``whole``, ``line``, then ``symbols``), longest
    first, then earliest.
    """
    dropped: dict[str, dict] = {}
    per_source: Counter[str] = Counter()
    per_set: Counter[str] = Counter()
    per_set_rule: dict[str, Counter[str]] = {}
    for batch in _batches(docs, batch_words):
        for d, (si, rule, at, length) in sorted(_scan(batch, index).items()):
            doc_id, source, text, _ = batch[d]
            name = index.set_names[si]
            match = _matched_text(text, rule, at, length)
            dropped[doc_id] = {"source": source, "set": name, "rule": rule, "match": match[:300]}
            per_source[source] += 1
            per_set[name] += 1
            per_set_rule.setdefault(name, Counter())[rule] += 1
    return ContaminationReport(
        ngram=index.n,
        min_item_words=MIN_ITEM_WORDS,
        dropped=dropped,
        per_source=dict(sorted(per_source.items())),
        per_eval_set=dict(sorted(per_set.items())),
        per_eval_set_rule={k: dict(sorted(v.items())) for k, v in sorted(per_set_rule.items())},
        eval_sets=index.stats,
        eval_hashes=index.num_hashes,
    )


def iter_items(examples: Iterable) -> Iterator[Item]:
    """(prompt, continuations) of each :class:`~pythia.data.evalsets.Example`."""
    for ex in examples:
        yield ex.prompt, ex.continuations
