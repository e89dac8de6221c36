"""Exact window counts of the training rows (pythia.data.duplication) against a plain Counter of
tuples: random rows with planted repeats, a window that would exist only across a row end (not
counted), a weak hash that collides (verified and split), the profile's thresholds and covered
tokens, the most repeated windows one per passage; rows mapped to corpus addresses; the data
card's duplication section on the smoke data."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from pythia.data import duplication as D


def reference(rows: np.ndarray, w: int) -> Counter:
    """Occurrences of every window inside a row, by brute force."""
    return Counter(
        tuple(int(t) for t in row[s : s + w]) for row in rows for s in range(len(row) - w + 1)
    )


@pytest.fixture
def planted() -> tuple[np.ndarray, int]:
    """40 rows of 30 tokens from 6 symbols (short windows repeat by chance) with planted repeats:
    one 12-token passage copied into 7 rows, another twice; and row 39 holding the tokens that
    run from the end of row 0 into row 1, a window only a concatenation of the rows would have."""
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 6, (40, 30)).astype(np.uint16)
    passage = rng.integers(100, 200, 12)
    for r, s in ((2, 0), (5, 7), (9, 18), (11, 3), (20, 10), (25, 5), (33, 1)):
        rows[r, s : s + 12] = passage
    other = rng.integers(200, 300, 9)
    rows[3, 4:13] = other
    rows[30, 20:29] = other
    rows[0, 26:] = [500, 501, 502, 503]
    rows[1, :4] = [504, 505, 506, 507]
    rows[39, 10:18] = [500, 501, 502, 503, 504, 505, 506, 507]
    return rows, 8


def test_counts_equal_a_counter_of_tuples(planted):
    rows, w = planted
    wc = D.count_windows(rows, w)
    ref = reference(rows, w)
    per = wc.per_window()
    assert per.shape == (40, 30 - w + 1) and wc.windows == 40 * 23
    got = {
        tuple(int(t) for t in rows[r, s : s + w]): int(per[r, s])
        for r in range(40)
        for s in range(23)
    }
    assert got == dict(ref)
    assert wc.distinct == len(ref) and wc.counts.sum() == wc.windows
    assert per[2, 0] == 7 and per[3, 4] == 2
    # the window that runs from the end of row 0 into row 1 exists only in row 39: counted once
    assert per[39, 10] == 1
    np.testing.assert_array_equal(wc.first(), [ref[tuple(int(t) for t in row[:w])] for row in rows])
    assert wc.collisions == 0


def test_colliding_hashes_are_split_by_their_tokens(planted):
    rows, w = planted

    def weak(r: np.ndarray, win: int) -> np.ndarray:  # sum of tokens mod 7: collides all the time
        v = np.lib.stride_tricks.sliding_window_view(r.astype(np.int64), win, axis=1).sum(-1)
        return (v % 7).astype(np.uint64)

    wc = D.count_windows(rows, w, hashes=weak)
    assert wc.collisions > 0
    ref = reference(rows, w)
    per = wc.per_window()
    assert {
        tuple(int(t) for t in rows[r, s : s + w]): int(per[r, s])
        for r in range(40)
        for s in range(23)
    } == dict(ref)
    assert wc.distinct == len(ref)
    # the classes are the same as with the real hash (labels may differ)
    strong = D.count_windows(rows, w)
    pairs = set(zip(wc.label.tolist(), strong.label.tolist()))
    assert len(pairs) == wc.distinct == strong.distinct


def test_rolling_hash_is_a_polynomial_of_the_window():
    rows = np.random.default_rng(0).integers(0, 4096, (3, 20))
    h = D.rolling_hashes(rows, 5)
    b, mod = D.HASH_BASE, 1 << 64
    for r in range(3):
        for s in range(16):
            direct = 0
            for t in rows[r, s : s + 5]:
                direct = (direct * b + int(t) + 1) % mod
            assert int(h[r, s]) == direct
    with pytest.raises(ValueError):
        D.rolling_hashes(rows, 21)


def test_profile_thresholds_and_covered_tokens(planted):
    rows, w = planted
    wc = D.count_windows(rows, w)
    ref = reference(rows, w)
    p = D.profile(wc, (2, 5))
    assert p["windows"] == 40 * 23 and p["distinct"] == len(ref) and p["row_tokens"] == 40 * 30
    assert p["repeated_occurrences"] == 40 * 23 - len(ref) and p["max_count"] == max(ref.values())
    for k in (2, 5):
        a = p["at_least"][str(k)]
        assert a["distinct"] == sum(c >= k for c in ref.values())
        assert a["windows"] == sum(c for c in ref.values() if c >= k)
        covered = np.zeros(rows.shape, bool)  # brute force: mark every token of every such window
        for r in range(40):
            for s in range(23):
                if ref[tuple(int(t) for t in rows[r, s : s + w])] >= k:
                    covered[r, s : s + w] = True
        assert a["tokens"] == covered.sum() and a["token_fraction"] == round(
            covered.sum() / rows.size, 6
        )
    assert p["at_least"]["5"]["distinct"] == 12 - w + 1  # the passage copied 7 times: its 5 windows


def test_top_windows_are_one_per_passage(planted):
    rows, w = planted
    wc = D.count_windows(rows, w)
    top = D.top_windows(wc, n=3)
    per = wc.per_window()
    assert top[0]["count"] == 7 == per.max()
    assert [t["count"] for t in top] == sorted((t["count"] for t in top), reverse=True)
    # the passage's five shifted windows are one entry; the 9-token passage's two windows another
    assert sum(t["count"] == 7 for t in top) == 1
    seen = np.zeros(rows.shape, bool)
    for t in top:
        r, s = t["occurrences"]
        assert len(r) == t["count"] and (per[r, s] == t["count"]).all()
        window = tuple(rows[t["row"], t["start"] : t["start"] + w])
        assert all(tuple(rows[a, b : b + w]) == window for a, b in zip(r, s))
        for a, b in zip(r, s):
            assert not seen[a, b : b + w].any()  # no overlap with an occurrence listed before
        for a, b in zip(r, s):
            seen[a, b : b + w] = True
    assert D.top_windows(D.count_windows(np.arange(20).reshape(2, 10), 3)) == []  # nothing repeats


def test_rows_map_to_corpus_addresses_and_copies(smoke_data, monkeypatch):
    """Every row token is the corpus token at its address (doc_idx -> sample_idx -> shuffle_idx);
    corpus copies are the distinct addresses of each window, as a dict of sets says."""
    from pythia.config import load_suite
    from pythia.data.batches import open_sequences
    from pythia.data.indexed import IndexedDataset
    from pythia.data.layout import Layout

    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    suite = load_suite("smoke")
    L = Layout("smoke")
    for dataset in ("standard", "deduped"):
        rows = np.asarray(open_sequences(suite, dataset))
        ds = IndexedDataset(L.text_prefix("train", dataset))
        doc, address = D.row_addresses(
            L.dataset(dataset),
            ds.sizes,
            np.arange(len(rows))[:, None],
            np.arange(rows.shape[1])[None, :],
        )
        np.testing.assert_array_equal(np.asarray(ds.tokens)[address], rows)
        offsets = np.concatenate([[0], np.cumsum(ds.sizes)])
        assert ((offsets[doc] <= address) & (address < offsets[doc + 1])).all()
        wc = D.count_windows(rows, 8)
        copies = D.corpus_copies(wc, address)
        places = defaultdict(set)
        for r in range(len(rows)):
            for s in range(wc.starts):
                places[tuple(rows[r, s : s + 8])].add(int(address[r, s]))
        per = wc.per_window()
        for r in range(0, len(rows), 7):
            for s in range(0, wc.starts, 5):
                g = wc.label[r * wc.starts + s]
                assert copies[g] == len(places[tuple(rows[r, s : s + 8])]) <= per[r, s]


def test_card_profiles_both_datasets(smoke_data, monkeypatch):
    from pythia.config import load_suite
    from pythia.data.batches import open_sequences
    from pythia.data.card import CSV_FIELDS

    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    suite = load_suite("smoke")
    data = smoke_data / "smoke" / "data"
    card = json.loads((data / "card.json").read_text())
    dup = card["duplication"]
    w = dup["window"]
    assert w == 64 and dup["thresholds"] == [2, 10, 100]
    for dataset in ("standard", "deduped"):
        rows = np.asarray(open_sequences(suite, dataset))
        p = dup["datasets"][dataset]
        ref = reference(rows, w)
        assert p["windows"] == len(rows) * (rows.shape[1] - w + 1) and p["distinct"] == len(ref)
        assert p["rows"] == len(rows) and p["row_tokens"] == rows.size and p["collisions"] == 0
        for k in ("2", "10", "100"):
            a = p["at_least"][k]
            assert a["distinct"] == sum(c >= int(k) for c in ref.values())
            assert a["distinct_copies"] <= a["distinct"] and a["tokens_copies"] <= a["tokens"]
        assert sum(s["row_tokens"] for s in p["per_source"].values()) == rows.size
        assert set(p["per_source"]) <= {"stdlib", "arithmetic"}
        for t in p["top"]:
            assert (
                t["count"]
                == ref[tuple(int(x) for x in rows[t["row"], t["start"] : t["start"] + w])]
            )
            assert sum(t["sources"].values()) == t["count"] and isinstance(t["text"], str)
        per_row = [r for r in card["rows"] if r["dataset"] == dataset]
        assert sum(r["row_tokens"] for r in per_row) == rows.size
    red = dup["deduplication"]
    assert red["pile"]["change"] == -0.31
    std, ded = card["datasets"]["standard"], card["datasets"]["deduped"]
    assert red["smoke"]["change"] == round(ded["tokens_per_epoch"] / std["tokens_per_epoch"] - 1, 4)
    md = (data / "card.md").read_text()
    assert "## Duplication" in md and "300B to 207B" in md and "| standard | 2 |" in md
    header = (data / "card.csv").read_text().splitlines()[0].split(",")
    assert header == list(CSV_FIELDS) and {"row_tokens", "repeated_tokens", "copied_tokens"} <= set(
        header
    )


def test_card_on_micro_sized_data_stays_fast():
    """2M windows (a micro dataset) are counted in seconds, and the count is exact: planted repeats
    of a header every 300 rows are found with their number."""
    import time

    rng = np.random.default_rng(1)
    rows = rng.integers(0, 4096, (10_240, 257)).astype(np.uint16)
    header = rng.integers(0, 4096, 100)
    rows[::300, 50:150] = header
    t0 = time.perf_counter()
    wc = D.count_windows(rows, 64)
    seconds = time.perf_counter() - t0
    per = wc.per_window()
    assert per[0, 50] == len(range(0, 10_240, 300)) == 35 and (per[1] == 1).all()
    assert wc.distinct == wc.windows - 37 * (35 - 1)  # 37 shifted header windows, each 35 times
    assert seconds < 30, seconds  # ~1 s idle; generous for a loaded CI machine


def test_section_00_reads_the_cards_duplication(smoke_data, monkeypatch):
    """Section 00's table: one row per (dataset, at least k) in the paper's dataset order, the
    thresholds in numeric order (card.json sorts its keys), the card's numbers; none without a card."""
    from pythia.analysis import suite as st
    from pythia.config import load_suite

    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    suite = load_suite("smoke")
    assert st.builds_data(suite) and not st.builds_data(load_suite("pythia"))
    card = st.suite_card(suite)
    table = st.duplication_table(card)
    assert table[["dataset", "at_least"]].values.tolist() == [
        [d, k] for d in ("standard", "deduped") for k in (1, 2, 10, 100)
    ]
    for _, row in table[table.at_least > 1].iterrows():
        a = card["duplication"]["datasets"][row["dataset"]]["at_least"][str(row["at_least"])]
        assert (
            row["distinct_windows"],
            row["occurrences"],
            row["tokens"],
            row["tokens_places"],
        ) == (a["distinct"], a["windows"], a["tokens"], a["tokens_copies"])
    first = table[table.at_least == 1].iloc[0]
    assert (
        first["occurrences"] == card["duplication"]["datasets"]["standard"]["windows"]
        and first["token_share"] == 1
    )
    assert "300B -> 207B" in st.deduplication_note(card) and "Suite smoke" in st.deduplication_note(
        card
    )
    assert list(st.top_windows_table(card).columns) == [
        "dataset",
        "occurrences",
        "places",
        "sources",
        "text",
    ]
    assert st.duplication_table(None).empty and "released" in st.deduplication_note(None)
    assert st.card_inputs(load_suite("pythia")) is None
