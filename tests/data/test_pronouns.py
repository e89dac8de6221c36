"""The gender intervention's pronoun map on the smoke suite's tokenizer: length-preserving, only
pronouns swapped, and a one-line error where no pair is single tokens."""

from __future__ import annotations

import numpy as np
import pytest

from pythia.data.pronouns import pronoun_map, suite_map, swap
from pythia.data.tokenizer import load_tokenizer
from pythia.errors import UsageError


def test_map_is_length_preserving_and_swaps_only_pronouns(smoke_data, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    pmap = suite_map("smoke")  # the smoke suite's stand-in pair
    ((m, f, mi, fi),) = pmap.pairs
    assert (m, f) == ("he", "her") and mi != fi
    rng = np.random.default_rng(0)
    batch = rng.integers(0, pmap.vocab_size, (4, 65))
    batch[0, :5] = mi
    out, n = swap(batch, pmap.lut())
    assert out.shape == batch.shape and out.dtype == batch.dtype
    keep = batch != mi
    assert np.array_equal(out[keep], batch[keep])  # every other token unchanged
    assert not (out == mi).any() and (out[~keep] == fi).all() and n == int((~keep).sum())
    # GPT-NeoX's pairs are all multi-token in this 512-token vocabulary: a one-line error
    with pytest.raises(UsageError, match="is one token on both sides"):
        pronoun_map(load_tokenizer("smoke"))
