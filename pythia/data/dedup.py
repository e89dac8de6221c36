"""Near-deduplication with MinHash LSH (datasketch), as for Pythia's deduplicated Pile.

A document is the set of its overlapping lowercase word n-grams (``shingle_words`` words;
words are ``\\w+`` runs, so punctuation and layout do not count). A document with fewer
words is one shingle of all its words (an empty document is the empty shingle, so empty
documents are duplicates of each other). Two documents are near-duplicates when the
MinHash estimate of their Jaccard similarity reaches ``threshold`` (Pythia: 0.87).

Documents are visited in the given order. Each one is looked up in a ``MinHashLSH``
index of the documents kept so far (bands tuned for recall, see ``LSH_WEIGHTS``); LSH
candidates are verified with the MinHash Jaccard estimate (LSH alone also returns pairs
below the threshold, and misses some above it), and a document with a
verified match is removed in favour of the earliest matching kept document. Otherwise it
is kept and inserted. So every cluster keeps its first document, and the result depends
only on the order and the settings. (A document similar only to a *removed* document is
kept: matching is against kept documents, as in streaming deduplication.)

Speed: MinHash signatures are computed for many documents at once in numpy, with
datasketch's ``affine32`` scheme (its default): a 32-bit hash of each shingle is mixed with
the MurmurHash3 finalizer and permuted by ``a * h + b mod 2^32`` with datasketch's own
permutation parameters for ``(num_perm, seed)``; the minimum over a document's shingles is
its signature. This equals ``datasketch.MinHash(num_perm, seed, hashfunc=shingle_hash)``
updated with the same shingles (checked by the tests) without a Python call per shingle.
Shingle hashes come from per-word CRC-32 values combined polynomially (mod 2^64) and
folded to 32 bits; they are deterministic across processes (unlike ``hash()``).
"""

from __future__ import annotations

import dataclasses
import re
import time
import zlib
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from pythia.config import DedupSpec

MINHASH_SEED = 1
"""Seed of the MinHash permutations (datasketch's default)."""
SCHEME = "affine32"
"""datasketch MinHash scheme the signatures follow."""
LSH_WEIGHTS = (0.1, 0.9)
"""(false-positive, false-negative) weights for datasketch's choice of bands x rows.

datasketch's default (0.5, 0.5) gives 7 bands of 18 rows at threshold 0.87 / 128
permutations, which finds a pair at Jaccard 0.87 only 45 % of the time (0.9: 68 %).
Because candidates are verified with the MinHash estimate anyway, recall is weighted
instead: 10 bands of 12 rows find 88 % at 0.87, 96 % at 0.9, 99.9 % at 0.945, and the
extra candidates below the threshold are rejected by the verification.
"""

_WORD = re.compile(r"\w+")
_P = np.uint64(1_000_003)  # multiplier of the polynomial shingle hash
_MASK32 = np.uint64(0xFFFFFFFF)
_BATCH_SHINGLES = (
    1 << 16
)  # shingles per vectorised signature batch (x num_perm x 4 bytes of memory)


@dataclasses.dataclass
class DedupResult:
    """Outcome of :func:`deduplicate`."""

    kept: list[str]
    """Ids of the kept documents, in the input order."""
    removed: dict[str, str]
    """Removed id -> id of the kept document it duplicates."""
    seconds: float
    """Wall time of the whole run."""
    docs_per_second: float
    """Input documents per second."""

    @property
    def num_docs(self) -> int:
        return len(self.kept) + len(self.removed)


def words(text: str) -> list[str]:
    """Lowercase ``\\w+`` words of a text."""
    return _WORD.findall(text.lower())


class _WordHashCache(dict):
    """word -> CRC-32 of its UTF-8 bytes, computed once per distinct word."""

    def __missing__(self, word: str) -> int:
        h = zlib.crc32(word.encode("utf-8"))
        if len(self) < 2_000_000:  # bound the memory on huge vocabularies
            self[word] = h
        return h


_word_hash_cache = _WordHashCache()


def _word_hashes(ws: list[str]) -> np.ndarray:
    return np.fromiter(map(_word_hash_cache.__getitem__, ws), dtype=np.uint64, count=len(ws))


def shingle_hashes(text: str, shingle_words: int) -> np.ndarray:
    """32-bit hashes of a document's word n-grams, uint32, shape (max(1, n_words - k + 1),)."""
    wh = _word_hashes(words(text))  # (n,)
    n, k = len(wh), shingle_words
    m = n - k + 1 if n >= k else 1
    width = k if n >= k else n
    h = np.zeros(m, dtype=np.uint64)  # polynomial hash of each shingle, mod 2^64
    for t in range(width):
        h = h * _P + wh[t : t + m]
    return ((h ^ (h >> np.uint64(32))) & _MASK32).astype(np.uint32)


def shingle_hash(shingle: Sequence[str]) -> int:
    """The 32-bit hash of one shingle (a tuple of words): the scalar twin of :func:`shingle_hashes`."""
    h = 0
    for w in shingle:
        h = (h * int(_P) + zlib.crc32(w.encode("utf-8"))) % (1 << 64)
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def shingles(text: str, shingle_words: int) -> list[tuple[str, ...]]:
    """The word n-grams of a document (reference form of :func:`shingle_hashes`)."""
    ws = words(text)
    if len(ws) < shingle_words:
        return [tuple(ws)]
    return [tuple(ws[i : i + shingle_words]) for i in range(len(ws) - shingle_words + 1)]


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (a bijection on uint32), as datasketch's affine32 scheme applies it."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def permutations(num_perm: int, seed: int = MINHASH_SEED) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's permutation parameters (a, b) for the affine32 scheme, each uint32 (num_perm,)."""
    from datasketch import MinHash  # heavy (scipy): only deduplication needs it

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signatures(hash_lists: Sequence[np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures of many documents at once: uint32, shape (len(hash_lists), num_perm).

    ``hash_lists[i]`` are the uint32 shingle hashes of document i (at least one each).
    """
    out = np.empty((len(hash_lists), len(a)), dtype=np.uint32)
    start = 0
    while start < len(hash_lists):
        stop, total = start, 0
        while stop < len(hash_lists) and (
            stop == start or total + len(hash_lists[stop]) <= _BATCH_SHINGLES
        ):
            total += len(hash_lists[stop])
            stop += 1
        batch = hash_lists[start:stop]
        hv = _fmix32(np.concatenate(batch).astype(np.uint32))  # (T,)
        # permutations x shingles, so the min runs along contiguous memory (~10x faster)
        phv = a[:, None] * hv[None, :]  # (num_perm, T), wraps mod 2^32
        phv += b[:, None]
        offsets = np.zeros(len(batch), dtype=np.int64)
        np.cumsum([len(x) for x in batch[:-1]], out=offsets[1:])
        out[start:stop] = np.minimum.reduceat(phv, offsets, axis=1).T  # (docs, num_perm)
        start = stop
    return out


def deduplicate(
    docs: Sequence[tuple[str, str]],
    spec: DedupSpec,
    progress: bool = True,
    seed: int = MINHASH_SEED,
    batch_docs: int = 256,
    lsh_weights: tuple[float, float] = LSH_WEIGHTS,
) -> DedupResult:
    """Remove near-duplicates from ``docs`` (``(id, text)`` pairs); keeps the first of each cluster.

    Ids must be unique. See the module docstring for the exact rule.
    """
    from datasketch import LeanMinHash, MinHashLSH  # heavy (scipy): only deduplication needs it

    t0 = time.perf_counter()
    ids = [d[0] for d in docs]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise ValueError(f"document ids must be unique; {dup!r} occurs more than once")
    a, b = permutations(spec.num_perm, seed)
    lsh = MinHashLSH(threshold=spec.threshold, num_perm=spec.num_perm, weights=lsh_weights)
    kept_sigs: dict[int, np.ndarray] = {}
    kept: list[str] = []
    removed: dict[str, str] = {}

    with tqdm(total=len(docs), unit="doc", desc="dedup", disable=not progress) as bar:
        for lo in range(0, len(docs), batch_docs):
            chunk = docs[lo : lo + batch_docs]
            sigs = signatures([shingle_hashes(text, spec.shingle_words) for _, text in chunk], a, b)
            for k, sig in enumerate(sigs):
                i = lo + k
                m = LeanMinHash(seed=seed, hashvalues=sig, scheme=SCHEME)
                match = None
                for c in sorted(lsh.query(m)):
                    # MinHash Jaccard estimate, as datasketch's MinHash.jaccard computes it
                    if np.count_nonzero(kept_sigs[c] == sig) / spec.num_perm >= spec.threshold:
                        match = c
                        break
                if match is None:
                    lsh.insert(i, m, check_duplication=False)
                    kept_sigs[i] = sig
                    kept.append(ids[i])
                else:
                    removed[ids[i]] = ids[match]
            bar.update(len(chunk))
    seconds = time.perf_counter() - t0
    return DedupResult(kept, removed, seconds, len(docs) / seconds if seconds > 0 else float("inf"))
