"""GPT-NeoX MMapIndexedDataset writer/reader, checked against an independent reader."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from pythia.data.indexed import (
    IndexedDataset,
    IndexedDatasetError,
    IndexedDatasetWriter,
    best_dtype,
    write_indexed,
)


def read_idx_independently(path: Path) -> dict:
    """Parse a .idx from the format description alone (struct + np.frombuffer)."""
    raw = path.read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    (version,) = struct.unpack("<Q", raw[9:17])
    (code,) = struct.unpack("<B", raw[17:18])
    n, m = struct.unpack("<QQ", raw[18:34])
    off = 34
    sizes = np.frombuffer(raw, dtype="<i4", count=n, offset=off)
    off += 4 * n
    pointers = np.frombuffer(raw, dtype="<i8", count=n, offset=off)
    off += 8 * n
    doc_idx = np.frombuffer(raw, dtype="<i8", count=m, offset=off)
    off += 8 * m
    assert off == len(raw), "no trailing bytes"
    return {
        "version": version,
        "code": code,
        "n": n,
        "m": m,
        "sizes": sizes,
        "pointers": pointers,
        "doc_idx": doc_idx,
    }


def _docs(seed: int = 0, n: int = 20, vocab: int = 4096) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, size=int(rng.integers(0, 50))) for _ in range(n)]


# GPT-NeoX v1.0's and Pythia's (utils/mmap_dataset.py) dtype table
NEOX_DTYPES = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float32,
    7: np.float64,
    8: np.uint16,
}


@pytest.mark.parametrize(
    "dtype,code",
    [(np.uint16, 8), (np.int32, 4), (np.int64, 5), (np.uint8, 1), (np.float32, 6), (np.float64, 7)],
)
def test_written_files_match_the_format(tmp_path: Path, dtype, code) -> None:
    docs = _docs(vocab=200)
    prefix = write_indexed(tmp_path / "corpus", docs, dtype)
    idx = read_idx_independently(Path(f"{prefix}.idx"))
    assert idx["version"] == 1
    assert idx["code"] == code
    assert idx["n"] == len(docs)
    assert idx["m"] == len(docs) + 1
    assert idx["sizes"].tolist() == [len(d) for d in docs]
    item = np.dtype(dtype).itemsize
    expected_ptr = np.concatenate([[0], np.cumsum([len(d) * item for d in docs])[:-1]])
    assert idx["pointers"].tolist() == expected_ptr.tolist()
    assert idx["doc_idx"].tolist() == list(range(len(docs) + 1))
    raw = np.frombuffer(Path(f"{prefix}.bin").read_bytes(), dtype=np.dtype(dtype).newbyteorder("<"))
    assert raw.tolist() == np.concatenate(docs).tolist()


@pytest.mark.parametrize("code", sorted(NEOX_DTYPES))
def test_dtype_codes_are_gpt_neox_v1s(tmp_path: Path, code: int) -> None:
    """Code 6 is float32 (not float64), 7 float64: a file written by GPT-NeoX with code 6 reads
    back as the float32 values it holds."""
    dtype = np.dtype(NEOX_DTYPES[code])
    values = np.arange(1, 6).astype(dtype)
    prefix = write_indexed(tmp_path / "c", [values], dtype)
    assert read_idx_independently(Path(f"{prefix}.idx"))["code"] == code
    assert Path(f"{prefix}.bin").stat().st_size == 5 * dtype.itemsize
    ds = IndexedDataset(prefix)
    assert ds.dtype == dtype and ds[0].tolist() == values.tolist()


def test_multi_item_documents_doc_idx(tmp_path: Path) -> None:
    with IndexedDatasetWriter(tmp_path / "x", np.int32) as w:
        w.add_item([1, 2, 3])
        w.add_item([4])
        w.end_document()
        w.add_item([5, 6])
        w.end_document()
        w.add_rows(np.arange(6).reshape(3, 2))  # three more items, each its own document
    idx = read_idx_independently(tmp_path / "x.idx")
    assert idx["sizes"].tolist() == [3, 1, 2, 2, 2, 2]
    assert idx["doc_idx"].tolist() == [0, 2, 3, 4, 5, 6]
    assert idx["pointers"].tolist() == [0, 12, 16, 24, 32, 40]


def test_round_trip(tmp_path: Path) -> None:
    docs = _docs(seed=3, n=50)
    write_indexed(tmp_path / "c", docs, np.uint16)
    ds = IndexedDataset(tmp_path / "c")
    assert len(ds) == 50
    assert ds.dtype == np.uint16
    assert ds.total_tokens == sum(len(d) for d in docs)
    assert ds.sizes.tolist() == [len(d) for d in docs]
    assert ds.doc_idx.tolist() == list(range(51))
    for i, d in enumerate(docs):
        assert ds[i].tolist() == d.tolist()
        if len(d) >= 3:
            assert ds.get(i, offset=1, length=2).tolist() == d[1:3].tolist()
            assert ds.get(i, offset=2).tolist() == d[2:].tolist()
    assert ds[-1].tolist() == docs[-1].tolist()
    with pytest.raises(IndexError):
        ds[50]
    assert ds.tokens.tolist() == np.concatenate(docs).tolist()


def test_empty_dataset(tmp_path: Path) -> None:
    write_indexed(tmp_path / "e", [], np.uint16)
    ds = IndexedDataset(tmp_path / "e")
    assert len(ds) == 0 and ds.total_tokens == 0


def test_best_dtype() -> None:
    assert best_dtype(50277) == np.uint16
    assert best_dtype(65499) == np.uint16
    assert best_dtype(65500) == np.int32
    assert best_dtype(100_000) == np.int32


def test_values_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="do not fit"):
        write_indexed(tmp_path / "bad", [np.array([70000])], np.uint16)
    assert not (tmp_path / "bad.bin").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_missing_file_names_it(tmp_path: Path) -> None:
    write_indexed(tmp_path / "c", _docs(), np.uint16)
    (tmp_path / "c.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"c\.bin"):
        IndexedDataset(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match=r"nothing\.idx"):
        IndexedDataset(tmp_path / "nothing")


def test_wrong_magic(tmp_path: Path) -> None:
    write_indexed(tmp_path / "c", _docs(), np.uint16)
    raw = bytearray((tmp_path / "c.idx").read_bytes())
    raw[:6] = b"TNTIDX"
    (tmp_path / "c.idx").write_bytes(bytes(raw))
    with pytest.raises(IndexedDatasetError, match=r"c\.idx.*magic"):
        IndexedDataset(tmp_path / "c")


def test_unsupported_version(tmp_path: Path) -> None:
    write_indexed(tmp_path / "c", _docs(), np.uint16)
    raw = bytearray((tmp_path / "c.idx").read_bytes())
    raw[9:17] = struct.pack("<Q", 2)
    (tmp_path / "c.idx").write_bytes(bytes(raw))
    with pytest.raises(IndexedDatasetError, match=r"c\.idx.*version 2"):
        IndexedDataset(tmp_path / "c")


def test_truncated_index(tmp_path: Path) -> None:
    write_indexed(tmp_path / "c", _docs(), np.uint16)
    raw = (tmp_path / "c.idx").read_bytes()
    (tmp_path / "c.idx").write_bytes(raw[:-5])
    with pytest.raises(IndexedDatasetError, match=r"c\.idx.*truncated"):
        IndexedDataset(tmp_path / "c")
    (tmp_path / "c.idx").write_bytes(raw[:20])  # shorter than the header
    with pytest.raises(IndexedDatasetError, match=r"c\.idx.*truncated"):
        IndexedDataset(tmp_path / "c")


def test_bin_inconsistent_with_index(tmp_path: Path) -> None:
    write_indexed(tmp_path / "c", _docs(), np.uint16)
    raw = (tmp_path / "c.bin").read_bytes()
    (tmp_path / "c.bin").write_bytes(raw[:-2])
    with pytest.raises(
        IndexedDatasetError, match=r"c\.bin.*inconsistent.*pythia data build --suite"
    ):
        IndexedDataset(tmp_path / "c")


def test_custom_rebuild_hint(tmp_path: Path) -> None:
    write_indexed(tmp_path / "c", _docs(), np.uint16)
    (tmp_path / "c.bin").write_bytes(b"")
    with pytest.raises(IndexedDatasetError, match="--suite micro"):
        IndexedDataset(
            tmp_path / "c", rebuild_hint="rebuild with `pythia data build --suite micro`"
        )


class Boom(RuntimeError):
    pass


def test_failed_write_leaves_earlier_files_intact(tmp_path: Path) -> None:
    docs = _docs(seed=1)
    write_indexed(tmp_path / "c", docs, np.uint16)
    before = {p: (tmp_path / p).read_bytes() for p in ("c.bin", "c.idx")}

    def failing():
        yield np.array([1, 2, 3])
        yield np.array([4, 5])
        raise Boom("disk on fire")

    with pytest.raises(Boom):
        write_indexed(tmp_path / "c", failing(), np.uint16)
    assert {p: (tmp_path / p).read_bytes() for p in ("c.bin", "c.idx")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.bin", "c.idx"], (
        "no temporary files left"
    )
    # an unfinalized writer does not touch the target either
    w = IndexedDatasetWriter(tmp_path / "c", np.uint16)
    w.add_item([9, 9, 9])
    assert {p: (tmp_path / p).read_bytes() for p in ("c.bin", "c.idx")} == before
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.bin", "c.idx"]
    assert IndexedDataset(tmp_path / "c")[0].tolist() == docs[0].tolist()
