"""The data card's values on the smoke corpus, recomputed another way from the built files.

:func:`pythia.data.card.card_record` counts from the document lists, ``dedup.json`` and
``order.json``. Here every number is derived from what the models actually read: the tokenized
corpora (``.bin``/``.idx``, one item per document), the documents' jsonl (text and source of each
item), and the order's index arrays. Which training documents deduplication kept is found by
matching the deduplicated corpus's items against the standard one's (they are a subsequence of
it); the source of every token of every training row by rebuilding the rows from ``doc_idx``,
``sample_idx`` and ``shuffle_idx`` (and checking them against ``sequences.bin``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pythia.config import load_suite
from pythia.data.card import CSV_FIELDS, card_record, render_csv
from pythia.data.indexed import IndexedDataset

DATASETS = ("standard", "deduped")


@pytest.fixture(scope="module")
def smoke(smoke_data, tmp_path_factory):
    """(suite, card_record of the built smoke data, its data directory)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHIA_WORK", str(smoke_data))
        mp.setenv("PYTHIA_CACHE", str(tmp_path_factory.mktemp("card_cache")))
        mp.setenv("PYTHIA_OFFLINE", "1")
        suite = load_suite("smoke")
        return suite, card_record(suite), smoke_data / "smoke" / "data"


def _documents(data: Path, split: str) -> list[dict]:
    lines = (data / "documents" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def _items(prefix: Path) -> list[np.ndarray]:
    """Every item (document) of a tokenized corpus, as stored."""
    ds = IndexedDataset(prefix)
    return [np.asarray(ds[i]) for i in range(len(ds))]


def _kept(standard: list[np.ndarray], deduped: list[np.ndarray]) -> list[int]:
    """Indices of the standard items the deduplicated corpus holds, in order."""
    kept, j = [], 0
    for i, item in enumerate(standard):
        if j < len(deduped) and np.array_equal(item, deduped[j]):
            kept.append(i)
            j += 1
    assert j == len(deduped), "the deduplicated items are not a subsequence of the standard ones"
    return kept


@pytest.fixture(scope="module")
def corpus(smoke):
    """Per dataset: the training documents (text and source) and their token items."""
    _, _, data = smoke
    docs = _documents(data, "train")
    standard = _items(data / "standard" / "train_text_document")
    deduped = _items(data / "deduped" / "train_text_document")
    assert len(standard) == len(docs)
    kept = _kept(standard, deduped)
    return {
        "standard": (docs, standard),
        "deduped": ([docs[i] for i in kept], deduped),
    }


def _training_tokens(suite) -> int:
    t = suite.training
    return t.train_iters * t.global_batch * t.seq_len


def test_rows_count_each_sources_documents_bytes_and_tokens(smoke, corpus):
    suite, card, data = smoke
    rows = {(r["source"], r["dataset"]): r for r in card["rows"]}
    sources = sorted({d["source"] for d in corpus["standard"][0]})
    assert sorted(rows) == sorted((s, d) for s in sources for d in DATASETS)
    manifest = json.loads((data / "documents" / "manifest.json").read_text())
    guarded = Counter(why["source"] for why in manifest["contamination"]["dropped"].values())
    standard_docs = Counter(d["source"] for d in corpus["standard"][0])
    for dataset in DATASETS:
        docs, items = corpus[dataset]
        per_epoch = sum(len(x) for x in items)
        for source in sources:
            mine = [k for k, d in enumerate(docs) if d["source"] == source]
            r = rows[source, dataset]
            assert r["documents"] == len(mine)
            assert r["bytes"] == sum(len(docs[k]["text"].encode("utf-8")) for k in mine)
            assert r["tokens"] == sum(len(items[k]) for k in mine)
            removed = standard_docs[source] - len(mine)
            assert r["removed_duplicates"] == removed  # 0 in the standard dataset
            assert r["removed_contamination"] == guarded[source]
            assert r["epochs"] == round(_training_tokens(suite) / per_epoch, 3)
    # the smoke corpus has a near-duplicate, so deduplication is seen to remove something
    removed = len(corpus["standard"][1]) - len(corpus["deduped"][1])
    assert removed > 0
    assert sum(r["removed_duplicates"] for r in card["rows"]) == removed


def test_per_source_token_shares_sum_to_one(smoke, corpus):
    _, card, _ = smoke
    for dataset in DATASETS:
        total = card["datasets"][dataset]["tokens_per_epoch"]
        shares = [r["tokens"] / total for r in card["rows"] if r["dataset"] == dataset]
        assert math.isclose(sum(shares), 1.0, rel_tol=1e-12)
        assert sum(r["tokens"] for r in card["rows"] if r["dataset"] == dataset) == total


def test_dataset_totals_and_epochs(smoke, corpus):
    suite, card, data = smoke
    t = suite.training
    needed = math.ceil(t.train_iters * t.global_batch * 1.005)  # GPT-NeoX's 0.5 % margin
    for dataset in DATASETS:
        _, items = corpus[dataset]
        tokens = sum(len(x) for x in items)
        epochs = next(e for e in range(1, 1000) if (e * tokens - 1) // t.seq_len >= needed)
        sequences = data / dataset / "sequences.bin"
        itemsize = IndexedDataset(data / dataset / "sequences").dtype.itemsize
        assert card["datasets"][dataset] == {
            "documents": len(items),
            "tokens_per_epoch": tokens,
            "training_tokens": _training_tokens(suite),
            "epochs_seen": round(_training_tokens(suite) / tokens, 3),
            "order_epochs": epochs,
            "sequences": sequences.stat().st_size // itemsize // (t.seq_len + 1),
        }
        assert card["datasets"][dataset]["sequences"] == t.train_iters * t.global_batch


def test_held_out_splits(smoke):
    suite, card, data = smoke
    for split in ("validation", "test"):
        items = _items(data / f"{split}_text_document")
        assert card["held_out"][split] == {
            "documents": len(_documents(data, split)),
            "tokens": sum(len(x) for x in items),
            "fraction": getattr(
                suite.data, "val_fraction" if split == "validation" else "test_fraction"
            ),
        }
        assert len(items) == len(_documents(data, split))


def _row_sources(data: Path, dataset: str, sources: list[str], items: list[np.ndarray]) -> Counter:
    """Tokens of the training rows per source: every row rebuilt from the order's arrays as
    GPT-NeoX's gpt2_dataset reads it, checked against ``sequences.bin``."""
    d = data / dataset
    doc_idx, sample_idx = np.load(d / "doc_idx.npy"), np.load(d / "sample_idx.npy")
    shuffle_idx = np.load(d / "shuffle_idx.npy")
    stored = IndexedDataset(d / "sequences")
    counts: Counter = Counter()
    for j in range(len(stored)):
        s = int(shuffle_idx[j])
        (d0, o0), (d1, o1) = sample_idx[s], sample_idx[s + 1]
        spans: list[tuple[int, int, int | None]]  # (document, first token, end) of each piece
        if d0 == d1:
            spans = [(int(doc_idx[d0]), int(o0), int(o1) + 1)]
        else:
            spans = [
                (int(doc_idx[d0]), int(o0), None),
                *((int(doc_idx[k]), 0, None) for k in range(d0 + 1, d1)),
                (int(doc_idx[d1]), 0, int(o1) + 1),
            ]
        row = np.concatenate([items[doc][a:b] for doc, a, b in spans])
        assert np.array_equal(row, np.asarray(stored[j])), (dataset, j)
        for doc, a, b in spans:
            counts[sources[doc]] += len(items[doc][a:b])
    return counts


def test_row_tokens_per_source_follow_the_training_order(smoke, corpus):
    suite, card, data = smoke
    for dataset in DATASETS:
        docs, items = corpus[dataset]
        counts = _row_sources(data, dataset, [d["source"] for d in docs], items)
        t = suite.training
        assert sum(counts.values()) == t.train_iters * t.global_batch * (t.seq_len + 1)
        for r in card["rows"]:
            if r["dataset"] == dataset:
                assert r["row_tokens"] == counts[r["source"]], r
        profile = card["duplication"]["datasets"][dataset]["per_source"]
        assert {s: p["row_tokens"] for s, p in profile.items()} == dict(counts)


def test_hashes_and_csv(smoke):
    _, card, data = smoke
    for rel, digest in card["sha256"].items():
        assert hashlib.sha256((data / rel).read_bytes()).hexdigest() == digest, rel
    assert card["tokenizer"]["sha256"] == card["sha256"]["tokenizer/tokenizer.json"]
    rows = list(csv.DictReader(io.StringIO(render_csv(card))))
    assert [r["source"] for r in rows] == [r["source"] for r in card["rows"]]
    for got, want in zip(rows, card["rows"]):
        assert got == {k: "" if want[k] is None else str(want[k]) for k in CSV_FIELDS}
    on_disk = json.loads((data / "card.json").read_text())
    assert on_disk["rows"] == card["rows"] and on_disk["datasets"] == card["datasets"]
