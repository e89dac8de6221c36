"""get_batch / batch_hash / validation_sequences on files in the real layout."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pythia import paths
from pythia.config import load_suite
from pythia.data import batches
from pythia.data.batches import (
    DataNotBuiltError,
    batch_hash,
    get_batch,
    open_sequences,
    split_tokens,
    validation_sequences,
)
from pythia.data.indexed import IndexedDatasetWriter, write_indexed


@pytest.fixture
def work(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    return tmp_path / "work"


def small_suite(steps: int = 10, seq_len: int = 16, batch: int = 4):
    return load_suite(
        "micro",
        overrides={
            "name": "tinydata",
            "training": {"seq_len": seq_len, "global_batch": batch, "train_iters": steps},
        },
    )


def write_sequences(suite, dataset: str, seed: int = 0, rows: int | None = None) -> np.ndarray:
    t = suite.training
    rows = rows if rows is not None else t.train_iters * t.global_batch
    data = (
        np.random.default_rng(seed).integers(0, 4096, size=(rows, t.seq_len + 1)).astype(np.uint16)
    )
    with IndexedDatasetWriter(paths.dataset_dir(suite.name, dataset) / "sequences", np.uint16) as w:
        w.add_rows(data)
    return data


def test_rows_of_each_step(work: Path) -> None:
    suite = small_suite()
    data = write_sequences(suite, "standard")
    b = suite.training.global_batch
    for step in np.random.default_rng(1).permutation(10):
        got = get_batch(suite, "standard", int(step))
        assert got.shape == (b, 17) and got.dtype == np.int64
        np.testing.assert_array_equal(got, data[b * step : b * (step + 1)])
    assert open_sequences(suite, "standard").shape == (40, 17)
    assert batches.num_steps(suite, "standard") == 10


def test_datasets_are_separate(work: Path) -> None:
    suite = small_suite()
    std = write_sequences(suite, "standard", seed=0)
    ded = write_sequences(suite, "deduped", seed=1)
    np.testing.assert_array_equal(get_batch(suite, "deduped", 3), ded[12:16])
    np.testing.assert_array_equal(get_batch(suite, "standard", 3), std[12:16])


def test_rebuilt_file_is_reopened(work: Path) -> None:
    suite = small_suite()
    write_sequences(suite, "standard", seed=0)
    get_batch(suite, "standard", 0)
    new = write_sequences(suite, "standard", seed=5, rows=48)
    np.testing.assert_array_equal(get_batch(suite, "standard", 11), new[44:48])


def test_errors(work: Path) -> None:
    suite = small_suite()
    with pytest.raises(ValueError, match="standard, deduped"):
        get_batch(suite, "dedup", 0)
    with pytest.raises(DataNotBuiltError, match=r"pythia data build --suite tinydata"):
        get_batch(suite, "standard", 0)
    write_sequences(suite, "standard")
    with pytest.raises(IndexError, match=r"steps 0\.\.9"):
        get_batch(suite, "standard", 10)
    with pytest.raises(IndexError, match=r"steps 0\.\.9"):
        get_batch(suite, "standard", -1)
    other = small_suite(seq_len=32)
    with pytest.raises(ValueError, match="seq_len 32"):
        get_batch(other, "standard", 0)


def test_batch_hash() -> None:
    b = np.arange(2 * 9, dtype=np.uint16).reshape(2, 9)
    h = batch_hash(b)
    assert len(h) == 16 and int(h, 16) >= 0
    assert (
        batch_hash(b.astype(np.int64)) == h == batch_hash(b.astype(np.int32))
    )  # dtype-independent
    import hashlib

    assert h == hashlib.sha256(b.astype("<i8").tobytes()).hexdigest()[:16]
    c = b.copy()
    c[1, 4] += 1
    assert batch_hash(c) != h
    assert batch_hash(np.asfortranarray(b.astype(np.int64))) == h  # layout-independent


def test_validation_sequences(work: Path) -> None:
    suite = small_suite(seq_len=16)
    rng = np.random.default_rng(3)
    docs = [np.append(rng.integers(1, 4096, int(rng.integers(1, 30))), 0) for _ in range(40)]
    write_indexed(paths.data_dir(suite.name) / "validation_text_document", docs, np.uint16)
    write_indexed(paths.data_dir(suite.name) / "test_text_document", docs[::-1], np.uint16)
    flat = np.concatenate(docs)
    got = validation_sequences(suite, 5)
    assert got.shape == (5, 17) and got.dtype == np.int64
    np.testing.assert_array_equal(got, flat[: 5 * 17].reshape(5, 17))
    test = validation_sequences(suite, 3, split="test")
    np.testing.assert_array_equal(test, np.concatenate(docs[::-1])[:51].reshape(3, 17))
    most = len(flat) // 17
    assert validation_sequences(suite, most).shape == (most, 17)
    with pytest.raises(ValueError, match=f"{most} sequences"):
        validation_sequences(suite, most + 1)
    with pytest.raises(ValueError, match="validation, test"):
        validation_sequences(suite, 1, split="train")
    # the whole split as one stream (section 03's held-out pronoun text reads it so)
    from pythia.evaluate.bias import heldout_tokens

    np.testing.assert_array_equal(split_tokens(suite, "validation"), flat)
    np.testing.assert_array_equal(split_tokens(suite, "validation", limit=20), flat[:20])
    np.testing.assert_array_equal(heldout_tokens(suite), np.concatenate(docs[::-1]))


def test_validation_not_built(work: Path) -> None:
    with pytest.raises(DataNotBuiltError, match="pythia data build --suite tinydata"):
        validation_sequences(small_suite(), 2)


def test_suite_by_name_and_latency(work: Path) -> None:
    micro = load_suite("micro")  # 640 steps x 16 x 257 tokens, like the real micro suite
    data = write_sequences(micro, "standard")
    np.testing.assert_array_equal(get_batch("micro", "standard", 639), data[-16:])
    rng = np.random.default_rng(0)
    times = []
    for step in rng.integers(0, 640, 50):
        t = time.perf_counter()
        get_batch("micro", "standard", int(step))
        times.append(time.perf_counter() - t)
    assert float(np.median(times)) < 0.010, f"median get_batch {np.median(times) * 1e3:.2f} ms"
