"""The validation text of sections 03 and 06 (pythia/data/validation.py): the suite's own split by
default (what the trainer and the committed results read), or a tokenized file in any of the
three formats the project reads, cut into rows of seq_len + 1; too little text stops with the
numbers and the way to give more."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pythia.config import load_suite
from pythia.data.batches import validation_sequences
from pythia.data.indexed import write_indexed
from pythia.data.validation import source_files, validation_rows
from pythia.errors import DataError, MissingInputError, UsageError

WIDTH = 65  # the smoke suite's seq_len + 1


@pytest.fixture
def suite(tmp_path, monkeypatch):
    """The smoke suite over a hand-written validation split of 3 sequences and a bit."""
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    s = load_suite("smoke")
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 512, size=n).astype(np.uint16) for n in (70, 50, 80, 1)]
    write_indexed(
        tmp_path / "work" / "smoke" / "data" / "validation_text_document", docs, np.uint16
    )
    return s


def _stream(n_tokens: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 512, size=n_tokens).astype(np.int64)


def test_the_default_is_the_suites_split(suite):
    # sections 03 and 06 without a file read exactly what they read before (micro unchanged)
    got = validation_rows(suite, 3)
    assert got.dtype == np.int64 and got.shape == (3, WIDTH)
    np.testing.assert_array_equal(got, validation_sequences(suite, 3))


def test_a_too_short_split_names_the_numbers_the_key_and_the_option(suite):
    with pytest.raises(UsageError) as e:
        validation_rows(suite, 256, needed_by="section 06")
    msg = str(e.value)
    assert msg.startswith(
        "the validation split of suite 'smoke' holds 3 sequences of 65 tokens, section 06 needs 256: "
        "give more with --config validation=PATH or --validation PATH ("
    )
    assert ".bin/.idx pair" in msg and ".npy" in msg and ".jsonl" in msg and "\n" not in msg


def _write(fmt: str, path, tokens: np.ndarray, record: int):
    """``tokens`` in format ``fmt``, as records of ``record`` tokens (the last one shorter)."""
    records = [tokens[i : i + record] for i in range(0, len(tokens), record)]
    if fmt == "indexed":
        write_indexed(path / "val_text_document", records, np.uint16)
        return path / "val_text_document.bin"
    if fmt == "npy-rows":
        np.save(path / "rows.npy", tokens[: len(tokens) // record * record].reshape(-1, record))
        return path / "rows.npy"
    if fmt == "npy-stream":
        np.save(path / "stream.npy", tokens.astype(np.uint16))
        return path / "stream.npy"
    lines = [
        json.dumps(r.tolist()) if i % 2 else json.dumps({"tokens": r.tolist()})
        for i, r in enumerate(records)
    ]
    (path / "val.jsonl").write_text("\n".join(lines) + "\n\n")
    return path / "val.jsonl"


@pytest.mark.parametrize("fmt", ["indexed", "npy-rows", "npy-stream", "jsonl"])
@pytest.mark.parametrize("record", [WIDTH, 100, 20])
def test_a_file_gives_the_requested_rows(suite, tmp_path, fmt, record):
    # records of exactly seq_len + 1 (the released rows) come back unchanged; longer and shorter
    # ones are joined and cut at the suite's sequence length, as the suite's split is
    tokens = _stream(10 * WIDTH + 7)
    path = _write(fmt, tmp_path, tokens, record)
    got = validation_rows(suite, 6, path, "section 03")
    assert got.dtype == np.int64 and got.shape == (6, WIDTH)
    np.testing.assert_array_equal(got, tokens[: 6 * WIDTH].reshape(6, WIDTH))
    if record == WIDTH and fmt == "npy-rows":
        np.testing.assert_array_equal(got, np.load(path)[:6])
    if fmt == "indexed":  # the pair by either name
        np.testing.assert_array_equal(validation_rows(suite, 6, path.with_suffix(".idx")), got)


def test_a_too_short_file_names_the_file_and_the_numbers(suite, tmp_path):
    path = tmp_path / "short.npy"
    np.save(path, _stream(3 * WIDTH + 10).reshape(-1, 5))
    with pytest.raises(
        UsageError,
        match=r"validation file .*short\.npy holds 3 sequences of 65 tokens, "
        r"section 06 needs 4: give more with --config validation=PATH or --validation PATH",
    ):
        validation_rows(suite, 4, path, "section 06")


def test_a_bad_file_is_one_clear_line(suite, tmp_path):
    with pytest.raises(UsageError, match=r"unknown format '\.txt'; give a \.bin/\.idx pair"):
        source_files(tmp_path / "val.txt")
    with pytest.raises(MissingInputError, match=r"validation file .*nosuch\.bin does not exist"):
        validation_rows(suite, 1, tmp_path / "nosuch.bin")
    np.save(tmp_path / "big.npy", np.full((2, WIDTH), 600, dtype=np.int32))
    with pytest.raises(
        DataError, match=r"holds token 600, outside the vocabulary of suite 'smoke' \(512 tokens\)"
    ):
        validation_rows(suite, 2, tmp_path / "big.npy")
    np.save(tmp_path / "float.npy", np.zeros((2, WIDTH)))
    with pytest.raises(DataError, match=r"a 2-D float64 array; give integer token rows"):
        validation_rows(suite, 2, tmp_path / "float.npy")
    (tmp_path / "bad.jsonl").write_text('[1, 2]\n"text"\n')
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: not a list of token ids"):
        validation_rows(suite, 2, tmp_path / "bad.jsonl")
    assert source_files(tmp_path / "v.bin") == [tmp_path / "v.bin", tmp_path / "v.idx"]
