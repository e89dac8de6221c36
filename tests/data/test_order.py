"""The training order against an independent, loop-by-loop reading of BRIEF.md section 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pythia.config import load_suite
from pythia.data import order
from pythia.data.indexed import IndexedDataset, write_indexed

# ---------------------------------------------------------------------------------------
# Independent reference: BRIEF.md section 2, steps 1-7, written as plain loops.
# ---------------------------------------------------------------------------------------


def ref_order(sizes: list[int], train_iters: int, batch: int, seq_len: int, seed: int):
    # 1. samples needed
    n_needed = math.ceil(train_iters * batch * 1.005)
    # 2. epochs: smallest E with (E*T - 1) // seq_len >= n_needed
    total = sum(sizes)
    epochs = 1
    while (epochs * total - 1) // seq_len < n_needed:
        epochs += 1
    # 3. one RandomState
    rng = np.random.RandomState(seed)
    # 4. doc ids tiled E times, shuffled once (all epochs together)
    doc_idx = []
    for _ in range(epochs):
        doc_idx.extend(range(len(sizes)))
    doc_idx = np.array(doc_idx, dtype=np.int32)
    rng.shuffle(doc_idx)
    # 5. walk doc_idx cutting seq_len+1-token samples sharing one boundary token
    n_all = (epochs * total - 1) // seq_len
    rows = [(0, 0)]
    d, off = 0, 0
    for _ in range(n_all):
        need = seq_len  # tokens to advance: seq_len + 1 per sample, minus the shared one
        while True:
            left = sizes[doc_idx[d]] - off  # tokens from the current position to the document end
            if need < left:
                off += need
                break
            need -= left
            d += 1
            off = 0
        rows.append((d, off))
    sample_idx = np.array(rows)
    # 6. shuffle of all samples, same rng
    shuffle_idx = np.arange(n_all, dtype=np.uint32)
    rng.shuffle(shuffle_idx)
    return n_needed, epochs, doc_idx, sample_idx, shuffle_idx


def ref_sample(docs: list[np.ndarray], doc_idx, sample_idx, shuffle_idx, j: int) -> list[int]:
    # 7. the span from sample_idx[shuffle_idx[j]] to sample_idx[shuffle_idx[j] + 1], inclusive
    i = shuffle_idx[j]
    (d0, o0), (d1, o1) = sample_idx[i], sample_idx[i + 1]
    out: list[int] = []
    d, o = d0, o0
    while (d, o) != (d1, o1):
        doc = docs[doc_idx[d]]
        if o < len(doc):
            out.append(int(doc[o]))
            o += 1
        if o >= len(doc):
            d, o = d + 1, 0
    out.append(int(docs[doc_idx[d1]][o1]))
    return out


# ---------------------------------------------------------------------------------------


def make_corpus(tmp_path: Path, n_docs: int, seed: int, max_len: int = 60, empty: bool = True):
    rng = np.random.default_rng(seed)
    docs = []
    for _k in range(n_docs):
        n = int(rng.integers(0 if empty else 1, max_len))
        body = rng.integers(1, 1000, size=n)
        docs.append(
            np.append(body, 0) if n else np.zeros(0, dtype=np.int64)
        )  # EOD id 0; some empty
    write_indexed(tmp_path / "text_document", docs, np.uint16)
    return docs, IndexedDataset(tmp_path / "text_document")


def test_num_samples_needed_matches_pythia() -> None:
    # Pythia's index files are named ..._147164160ns_2048sl_1234s_...
    assert order.num_samples_needed(143000, 1024) == 147_164_160
    assert order.num_samples_needed(640, 16) == math.ceil(640 * 16 * 1.005) == 10292


def test_num_epochs() -> None:
    assert order.num_epochs(1000, 10, 99) == 1  # (1000 - 1) // 10 = 99
    assert order.num_epochs(1000, 10, 100) == 2
    assert order.num_epochs(100, 10, 100) == 11  # (1100 - 1) // 10 = 109 >= 100; (1000-1)//10 = 99


@pytest.mark.parametrize(
    "train_iters,batch,seq_len,expect_epochs",
    [(6, 4, 16, 1), (60, 4, 16, 3)],  # one epoch; data shorter than training (3 epochs)
)
def test_indices_equal_reference(
    tmp_path: Path, train_iters, batch, seq_len, expect_epochs
) -> None:
    docs, ds = make_corpus(tmp_path, n_docs=40, seed=7)
    sizes = [len(d) for d in docs]
    n_needed, epochs, doc_idx, sample_idx, shuffle_idx = ref_order(
        sizes, train_iters, batch, seq_len, 1234
    )
    assert epochs == expect_epochs
    idx = order.build_indices(ds.sizes, order.num_samples_needed(train_iters, batch), seq_len, 1234)
    assert idx.num_epochs == epochs
    assert idx.num_samples == n_needed
    assert idx.doc_idx.dtype == np.int32
    assert idx.sample_idx.dtype == np.int32
    assert idx.shuffle_idx.dtype == np.uint32
    np.testing.assert_array_equal(idx.doc_idx, doc_idx)
    np.testing.assert_array_equal(idx.sample_idx, sample_idx)
    np.testing.assert_array_equal(idx.shuffle_idx, shuffle_idx)
    # every sample, by the package's walk, equals the reference walk
    for j in range(len(shuffle_idx)):
        got = order.sample(ds, idx, j)
        assert len(got) == seq_len + 1
        assert got.tolist() == ref_sample(docs, doc_idx, sample_idx, shuffle_idx, j)


def test_first_document_empty_keeps_row_zero(tmp_path: Path) -> None:
    # GPT-NeoX's walk records (0, 0) for sample 0 even when doc_idx[0] is an empty document
    docs = [np.zeros(0, dtype=np.int64)] * 5 + [np.arange(1, 30)] * 5
    write_indexed(tmp_path / "t", docs, np.uint16)
    ds = IndexedDataset(tmp_path / "t")
    for seed in range(20):
        idx = order.build_indices(ds.sizes, 5, 8, seed)
        ref = ref_order([len(d) for d in docs], 5, 1, 8, seed)
        np.testing.assert_array_equal(idx.sample_idx, ref[3])
        for j in range(idx.num_samples_all):
            assert order.sample(ds, idx, j).tolist() == ref_sample(docs, ref[2], ref[3], ref[4], j)


def test_write_order_files(tmp_path: Path) -> None:
    docs, ds = make_corpus(tmp_path, n_docs=60, seed=3)
    out = tmp_path / "standard"
    rec = order.write_order(
        tmp_path / "text_document",
        out,
        seq_len=16,
        train_iters=30,
        global_batch=4,
        seed=1234,
        progress=False,
        chunk_tokens=100,
    )  # small chunks: many chunks
    idx = order.build_indices(ds.sizes, order.num_samples_needed(30, 4), 16, 1234)
    np.testing.assert_array_equal(np.load(out / "doc_idx.npy"), idx.doc_idx)
    np.testing.assert_array_equal(np.load(out / "sample_idx.npy"), idx.sample_idx)
    np.testing.assert_array_equal(np.load(out / "shuffle_idx.npy"), idx.shuffle_idx)
    seqs = IndexedDataset(out / "sequences")
    assert len(seqs) == 30 * 4 and seqs.dtype == np.uint16
    assert set(seqs.sizes.tolist()) == {17}
    assert seqs.doc_idx.tolist() == list(range(121))
    flat = np.fromfile(out / "sequences.bin", dtype=np.uint16).reshape(-1, 17)  # (N, seq_len+1)
    for j in range(len(seqs)):
        assert seqs[j].tolist() == order.sample(ds, idx, j).tolist() == flat[j].tolist()
    meta = json.loads((out / "order.json").read_text())
    assert meta == rec
    assert meta["seed"] == 1234 and meta["seq_len"] == 16 and meta["num_epochs"] == idx.num_epochs
    assert meta["num_samples_needed"] == 121 and meta["sequences_rows"] == 120
    assert meta["tokens_per_epoch"] == sum(len(d) for d in docs)
    from pythia.io import sha256_file

    for name in order.ORDER_FILES:
        assert meta["sha256"][name] == sha256_file(out / name)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_determinism(tmp_path: Path) -> None:
    make_corpus(tmp_path, n_docs=50, seed=11)
    args = {"seq_len": 16, "train_iters": 20, "global_batch": 4, "progress": False}
    order.write_order(tmp_path / "text_document", tmp_path / "a", seed=1, **args)
    order.write_order(tmp_path / "text_document", tmp_path / "b", seed=1, **args)
    order.write_order(tmp_path / "text_document", tmp_path / "c", seed=2, **args)
    for name in order.ORDER_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "shuffle_idx.npy").read_bytes() != (
        tmp_path / "c" / "shuffle_idx.npy"
    ).read_bytes()
    assert (tmp_path / "a" / "sequences.bin").read_bytes() != (
        tmp_path / "c" / "sequences.bin"
    ).read_bytes()
    # same multiset of documents per epoch, different order
    a, c = np.load(tmp_path / "a" / "doc_idx.npy"), np.load(tmp_path / "c" / "doc_idx.npy")
    assert sorted(a.tolist()) == sorted(c.tolist()) and a.tolist() != c.tolist()


def test_too_small_corpus(tmp_path: Path) -> None:
    write_indexed(tmp_path / "t", [np.array([5])], np.uint16)
    with pytest.raises(ValueError, match="at least 2"):
        order.build_indices(IndexedDataset(tmp_path / "t").sizes, 10, 8, 0)


def _seed_work(smoke_data: Path, tmp_path: Path, monkeypatch) -> Path:
    """A work dir holding only the smoke suite's tokenized standard corpus (a seeded order's input)."""
    src = smoke_data / "smoke" / "data" / "standard"
    dst = tmp_path / "work" / "smoke" / "data" / "standard"
    dst.mkdir(parents=True)
    for ext in ("bin", "idx"):
        name = f"train_text_document.{ext}"
        (dst / name).write_bytes((src / name).read_bytes())
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    return dst


def test_seeded_order_differs_by_seed_and_is_deterministic(smoke_data, tmp_path, monkeypatch):
    suite = load_suite("smoke")
    base_dir = smoke_data / "smoke" / "data" / "standard"
    _seed_work(smoke_data, tmp_path, monkeypatch)
    rec1 = order.write_seed_order(suite, "standard", 1, progress=False)
    rec2 = order.write_seed_order(suite, "standard", 2, progress=False)
    d1, d2 = (
        order.seed_order_dir("smoke", "standard", 1),
        order.seed_order_dir("smoke", "standard", 2),
    )
    assert d1.name == "seed1" and rec1["seed"] == 1 and rec1["baseline_seed"] == 1234
    base = json.loads((base_dir / "order.json").read_text())
    # the same corpus cut the same way: epochs and samples as the baseline's; only the permutations differ
    for key in ("num_epochs", "num_samples_all", "tokens_per_epoch", "sequences_rows"):
        assert rec1[key] == rec2[key] == base[key], key
    docs = [np.load(d / "doc_idx.npy") for d in (base_dir, d1, d2)]
    assert sorted(docs[0].tolist()) == sorted(docs[1].tolist()) == sorted(docs[2].tolist())
    assert len({tuple(d.tolist()) for d in docs}) == 3
    seqs = [(d / "sequences.bin").read_bytes() for d in (base_dir, d1, d2)]
    assert len(set(seqs)) == 3
    # deterministic per seed: rebuilt, every file is byte-identical
    again = tmp_path / "again"
    (again / "smoke" / "data" / "standard").mkdir(parents=True)
    for f in ("bin", "idx"):
        (again / "smoke" / "data" / "standard" / f"train_text_document.{f}").write_bytes(
            (base_dir / f"train_text_document.{f}").read_bytes()
        )
    monkeypatch.setenv("PYTHIA_WORK", str(again))
    order.write_seed_order(suite, "standard", 1, progress=False)
    for name in order.ORDER_FILES:
        rebuilt = order.seed_order_dir("smoke", "standard", 1) / name
        assert rebuilt.read_bytes() == (d1 / name).read_bytes(), name
    # step s of the seeded order is rows [B*s, B*(s+1)) of its sequences
    b, width = suite.training.global_batch, suite.training.seq_len + 1
    rows = np.frombuffer(seqs[1], dtype=IndexedDataset(d1 / "sequences").dtype).reshape(-1, width)
    assert np.array_equal(order.seed_batch(suite, "standard", 1, 3), rows[3 * b : 4 * b])


def test_seeded_order_errors_say_what_to_do(smoke_data, tmp_path, monkeypatch):
    suite = load_suite("smoke")
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="--stage order --dataset standard --data-seed 3"):
        order.seed_batch(suite, "standard", 3, 0)
    with pytest.raises(FileNotFoundError, match="pythia data build --suite smoke"):
        order.write_seed_order(suite, "standard", 3, progress=False)
    with pytest.raises(ValueError, match="is the baseline's"):
        order.write_seed_order(suite, "standard", 1234, progress=False)
