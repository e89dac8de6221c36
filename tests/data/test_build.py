"""The data build: determinism, hash-chosen held-out splits, stage skipping, outputs on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pythia.data import build as B
from pythia.data.indexed import IndexedDataset, IndexedDatasetError

# Files whose bytes legitimately differ between two builds (logs, timings, timestamps, and
# order.json, which records the absolute path of the corpus it was built from).
VOLATILE = (
    "build.log",
    ".provenance.json",
    ".stamps/",
    ".lock",
)  # .lock: pythia.locks, beside each written dir


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not any(v in rel for v in VOLATILE):
            out[rel] = p.read_bytes()
    return out


def _without_path(order_json: bytes) -> dict:
    d = json.loads(order_json)
    d["text_document"].pop("path")
    return d


def test_split_long_chunks_on_boundaries_and_loses_nothing():
    text = "\n\n".join(f"paragraph {i} " + "word " * 400 for i in range(30))
    chunks = B.split_long(text, 5_000)
    assert len(chunks) > 5
    assert all(len(c.encode()) <= 5_000 for c in chunks)
    assert "".join(chunks) == text
    assert all(c.startswith("paragraph") for c in chunks)  # cut at paragraph boundaries
    one_line = "x" * 12_000 + "é" * 10
    assert "".join(B.split_long(one_line, 5_000)) == one_line
    assert B.split_long("short", 5_000) == ["short"]


def test_split_of_is_a_hash_of_the_text():
    texts = [f"document number {i}" for i in range(20_000)]
    splits = [B.split_of(t, 0.1, 0.05) for t in texts]
    assert splits == [B.split_of(t, 0.1, 0.05) for t in texts]
    frac = {s: splits.count(s) / len(texts) for s in ("validation", "test", "train")}
    assert abs(frac["validation"] - 0.1) < 0.01 and abs(frac["test"] - 0.05) < 0.01


def test_smoke_outputs_exist(smoke_data):
    d = smoke_data / "smoke" / "data"
    for f in (
        "documents/train.jsonl",
        "documents/manifest.json",
        "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json",
        "validation_text_document.bin",
        "test_text_document.idx",
        "standard/train_text_document.bin",
        "deduped/train_text_document.idx",
        "deduped/dedup.json",
        "standard/sequences.bin",
        "deduped/order.json",
        "standard/shuffle_idx.npy",
        "card.json",
        "card.md",
        "card.csv",
        "card.json.provenance.json",
        "sources.json",
    ):
        assert (d / f).is_file(), f
    card = json.loads((d / "card.json").read_text())
    assert {r["source"] for r in card["rows"]} == {"stdlib", "arithmetic"}
    assert set(card["datasets"]) == {"standard", "deduped"}
    for r in card["rows"]:
        assert r["tokens"] > 0 and r["epochs"] > 0
    std = IndexedDataset(d / "standard" / "train_text_document")
    assert all(int(std[i][-1]) == 0 for i in range(len(std)))  # every document ends with EOD
    assert card["datasets"]["standard"]["tokens_per_epoch"] == std.total_tokens


def test_card_reports_the_guard_per_evaluation_set(smoke_data):
    d = smoke_data / "smoke" / "data"
    c = json.loads((d / "card.json").read_text())["contamination"]
    assert c["evaluation_groups"] == ["arithmetic"] and list(c["sets"]) == ["arithmetic_prompts"]
    st = c["sets"]["arithmetic_prompts"]
    assert (
        st["examples"] == st["items"] == st["whole"] == 10_000
    )  # 8 words each: matched as a whole
    assert st["removed_documents"] == 0 and c["removed"] == {}
    md = (d / "card.md").read_text()
    assert "## Contamination guard" in md and "10,000 examples" in md
    assert json.loads((d / "sources.json").read_text())["evaluation_sets"] == 1


def test_heldout_is_hash_chosen_and_disjoint(smoke_data):
    L = B.Layout.__new__(B.Layout)
    docs = {}
    root = smoke_data / "smoke" / "data" / "documents"
    for split in ("train", "validation", "test"):
        docs[split] = [json.loads(x) for x in (root / f"{split}.jsonl").read_text().splitlines()]
    assert docs["validation"] and docs["test"]
    for split, ds in docs.items():
        for d in ds:
            assert B.split_of(d["text"], 0.05, 0.05) == split
    ids = [{d["id"] for d in ds} for ds in docs.values()]
    texts = [{d["text"] for d in ds} for ds in docs.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert not (texts[0] & texts[1] or texts[0] & texts[2])
    del L


def test_build_is_deterministic(smoke_data, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    B.build("smoke", progress=False)
    # the data build's own directory: the session's smoke work dir also holds models other tests train
    a = _files(smoke_data / "smoke" / "data")
    b = _files(tmp_path / "work" / "smoke" / "data")
    assert sorted(a) == sorted(b)
    for name in a:
        if name.endswith("order.json"):
            assert _without_path(a[name]) == _without_path(b[name]), name
        else:
            assert a[name] == b[name], name
    # finished stages are skipped on a second run
    assert B.build("smoke", progress=False) == {}


def test_changed_setting_reruns_from_that_stage(tmp_path, monkeypatch):
    from pythia.config import load_suite

    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))  # the guard's index goes there
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    suite = load_suite("smoke", {"data": {"max_bytes_per_source": 30_000}})
    B.build(suite, progress=False)
    assert all(B.is_done(suite, s) for s in B.STAGES)
    changed = load_suite(
        "smoke", {"data": {"max_bytes_per_source": 30_000, "dedup": {"threshold": 0.9}}}
    )
    assert B.is_done(changed, "tokenizer") and not B.is_done(changed, "dedup")
    ran = B.build(changed, progress=False)
    assert list(ran) == ["dedup", "order", "card"]


def test_truncated_idx_fails_naming_the_file_and_leaves_it(smoke_data, tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(smoke_data, work)
    monkeypatch.setenv("PYTHIA_WORK", str(work))
    idx = work / "smoke" / "data" / "validation_text_document.idx"
    data = idx.read_bytes()
    idx.write_bytes(data[:-5])
    from pythia.data.batches import validation_sequences

    with pytest.raises(IndexedDatasetError, match=r"validation_text_document.idx.*truncated"):
        validation_sequences("smoke", 2)
    assert idx.read_bytes() == data[:-5]  # nothing was deleted or rewritten
    bin_ = work / "smoke" / "data" / "validation_text_document.bin"
    assert bin_.stat().st_size > 0


def test_order_stage_for_one_dataset_rejects_unknown(smoke_env):
    from pythia.config import load_suite

    suite = load_suite("smoke")
    with pytest.raises(ValueError, match=r"unknown dataset 'dedup'.*standard, deduped"):
        B.run_stage(suite, "order", "dedup", progress=False)
    with pytest.raises(ValueError, match="unknown stage"):
        B.run_stage(suite, "shuffle", progress=False)


def test_dedup_report_counts_removed_per_source(smoke_data):
    d = json.loads((smoke_data / "smoke" / "data" / "deduped" / "dedup.json").read_text())
    assert d["input_documents"] == d["kept_documents"] + d["removed_documents"]
    assert sum(d["removed_per_source"].values()) == d["removed_documents"]
    ded = IndexedDataset(smoke_data / "smoke" / "data" / "deduped" / "train_text_document")
    assert len(ded) == d["kept_items"] and ded.total_tokens == d["kept_tokens"]
    assert "seconds" not in d  # timings live in the stamp, so the file is deterministic
    std = IndexedDataset(smoke_data / "smoke" / "data" / "standard" / "train_text_document")
    assert np.array_equal(std[0], ded[0]) or d["removed_documents"] > 0
