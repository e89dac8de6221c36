"""The gender intervention's pronoun swap (the Pythia paper, section 4.1): a token-level,
length-preserving map from masculine to feminine pronoun tokens.

The swap is applied to exactly the batch ``get_batch`` returns for each intervened step::

    original = get_batch(suite, dataset, s)         # (B, L+1) int64, the baseline's batch s
    swapped  = lut[original]                        # lut: identity except masculine -> feminine ids

so order, optimizer state, learning rate and RNG are the baseline's; only those token ids differ.
GPT-NeoX's ``intervention`` branch swaps these ten token pairs of the GPT-NeoX-20B tokenizer:
" He"->" She", " His"->" Her", "His"->"Her", "He"->"She", " his"->" her", " he"->" she",
" him"->" her", "his"->"her", "him"->"her", "he"->"she". For another tokenizer (the micro
suite's BPE) the same string pairs are used where both sides are single tokens. (Its later
text-level branch re-tokenised the unmodified string, so that swap never took effect.)

:func:`view_batch` shows the swap on one row of a training batch (``pythia gender-intervention
view``). The intervened runs that apply it: :mod:`pythia.train.intervened_runs` (which runs, their
windows) and :mod:`pythia.train.intervention` (the trainer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pythia.config import Suite, config_digest, load_suite
from pythia.data.batches import get_batch
from pythia.data.tokenizer import load_tokenizer
from pythia.errors import UsageError

PRONOUN_PAIRS: tuple[tuple[str, str], ...] = (
    (" He", " She"),
    (" His", " Her"),
    ("His", "Her"),
    ("He", "She"),
    (" his", " her"),
    (" he", " she"),
    (" him", " her"),
    ("his", "her"),
    ("him", "her"),
    ("he", "she"),
)
"""Masculine -> feminine strings of GPT-NeoX's ``intervention`` branch, in its order."""


@dataclass(frozen=True)
class PronounMap:
    """Masculine -> feminine token ids of one tokenizer, and the pairs that were left out."""

    pairs: tuple[tuple[str, str, int, int], ...]
    """(masculine string, feminine string, masculine id, feminine id) of every usable pair."""
    skipped: tuple[tuple[str, str], ...]
    """String pairs not both single tokens in this tokenizer (not swapped)."""
    vocab_size: int

    @property
    def masculine(self) -> np.ndarray:
        return np.array(sorted({m for _, _, m, _ in self.pairs}), dtype=np.int64)

    @property
    def feminine(self) -> np.ndarray:
        return np.array(sorted({f for _, _, _, f in self.pairs}), dtype=np.int64)

    def lut(self, size: int | None = None) -> np.ndarray:
        """(V,) int64 lookup table: identity except ``lut[masculine] = feminine``."""
        table = np.arange(max(size or 0, self.vocab_size), dtype=np.int64)
        for _, _, m, f in self.pairs:
            table[m] = f
        return table

    def groups(self) -> dict[int, list[int]]:
        """Feminine id -> the masculine ids that map to it (" her" <- " his", " him")."""
        out: dict[int, list[int]] = {}
        for _, _, m, f in self.pairs:
            out.setdefault(f, []).append(m)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "pairs": [list(p) for p in self.pairs],
            "skipped": [list(p) for p in self.skipped],
            "vocab_size": self.vocab_size,
        }

    @property
    def digest(self) -> str:
        return config_digest(self.to_json())


def _single_token(tokenizer: Any, text: str) -> int | None:
    """The id of ``text`` if it is one token of ``tokenizer`` (encoding without special tokens
    gives one id that decodes back to the string), else None."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 and tokenizer.decode(ids) == text else None


def pronoun_map(tokenizer: Any, pairs: Any = None) -> PronounMap:
    """The swap for ``tokenizer``: each pair of ``pairs`` (default :data:`PRONOUN_PAIRS`) whose two
    strings are single tokens; none is a one-line error."""
    strings = [tuple(p) for p in (pairs or PRONOUN_PAIRS)]
    found, skipped = [], []
    for m, f in strings:
        mi, fi = _single_token(tokenizer, m), _single_token(tokenizer, f)
        if mi is None or fi is None:
            skipped.append((m, f))
        else:
            found.append((m, f, mi, fi))
    if not found:
        raise UsageError(
            f"no pair of {strings} is one token on both sides in "
            f"this tokenizer, so the intervention would change nothing; give single-token pairs in the "
            f"suite's intervention.pairs"
        )
    return PronounMap(tuple(found), tuple(skipped), len(tokenizer))


def suite_map(suite: Suite | str) -> PronounMap:
    """The pronoun map of a suite's built tokenizer (its ``intervention.pairs``)."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    return pronoun_map(load_tokenizer(suite), suite.intervention.pairs)


def swap(batch: np.ndarray, lut: np.ndarray) -> tuple[np.ndarray, int]:
    """(swapped batch, number of tokens changed): one gather, same shape and dtype."""
    out = lut[batch]
    return out, int(np.count_nonzero(out != batch))


def view_batch(
    suite: Suite | str, step: int, row: int = 0, dataset: str | None = None
) -> dict[str, Any]:
    """Row ``row`` of training batch ``step`` before and after the swap, decoded, with the swapped
    positions: what ``pythia gender-intervention view`` prints."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    tok = load_tokenizer(suite)
    pmap = pronoun_map(tok, suite.intervention.pairs)
    batch = get_batch(suite, dataset or suite.intervention.dataset, step)
    if not 0 <= row < len(batch):
        raise UsageError(f"row {row} out of range: a batch has rows 0..{len(batch) - 1}")
    swapped, n = swap(batch, pmap.lut())
    where = np.flatnonzero(swapped[row] != batch[row])
    return {
        "step": step,
        "row": row,
        "swaps_in_batch": n,
        "swaps_in_row": len(where),
        "positions": where.tolist(),
        "before": tok.decode(batch[row]),
        "after": tok.decode(swapped[row]),
        "pairs": [f"{m!r}->{f!r}" for m, f, _, _ in pmap.pairs],
    }
