"""Tokenizers: the trained BPE (EOD = 0, AutoTokenizer-loadable, deterministic) and GPT-NeoX-20B."""

from __future__ import annotations

import pytest

from pythia.data import tokenizer as T
from pythia.data.archives import ARCHIVES
from tests.cached import cached_archive

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "The quick brown fox jumps over the lazy dog. " * 20,
    "Adding 12 and 34 gives 46. The product of 7 and 8 is 56.\n\n" * 10,
    "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.",
] * 5


def test_bpe_has_eod_zero_and_loads_with_autotokenizer(tmp_path):
    from transformers import AutoTokenizer

    T.train_bpe(TEXTS, 300, tmp_path / "tok", progress=False)
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == [
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert tok.convert_ids_to_tokens(0) == "<|endoftext|>"
    assert tok.eos_token_id == tok.pad_token_id == tok.bos_token_id == 0
    assert len(tok) <= 300
    text = "def add(a, b):\n    return a + b  # ünïcödé"
    ids = tok(text)["input_ids"]
    assert 0 not in ids  # no BOS/EOS added: documents get EOD explicitly
    assert tok.decode(ids) == text  # byte-level: lossless, never unknown


def test_bpe_training_is_deterministic(tmp_path):
    a = T.train_bpe(TEXTS, 300, tmp_path / "a", progress=False)
    b = T.train_bpe(TEXTS, 300, tmp_path / "b", progress=False)
    for f in T.TOKENIZER_FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes()


def test_load_tokenizer_missing_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pythia data build --suite smoke"):
        T.load_tokenizer("smoke")


def test_neox20b_token_ids(tmp_path, monkeypatch):
    """Needs the pinned llama-cpp-python sdist in the cache (tests never download it; `make
    test` fetches it, and the test fails, saying so, without it)."""
    archive = ARCHIVES["llama-cpp-python"]
    real = cached_archive("llama-cpp-python").resolve()
    from transformers import AutoTokenizer

    # extract the GGUF into a private cache so the test does not write into the real one
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    archive.path.parent.mkdir(parents=True)
    archive.path.symlink_to(real)
    T.build_neox20b(tmp_path / "neox")
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "neox"))
    assert tok("Hello world the")["input_ids"] == [12092, 1533, 253]
    assert len(tok) == 50277
    assert tok.convert_ids_to_tokens([0, 1]) == ["<|endoftext|>", "<|padding|>"]
    assert tok.decode([12092, 1533, 253]) == "Hello world the"
