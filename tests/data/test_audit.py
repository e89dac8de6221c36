"""``pythia data audit``: rows, EOD tokens, shard hashes and repeats of pre-shuffled files.

Hand-made files stand in for the released ones: a few rows of 9 tokens, 2 rows a step (the
audit's ``--row-tokens``/``--step-rows``), cut into shards named like Pythia's published ones;
the smoke suite's built data stands in for our own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from pythia.cli import main
from pythia.config import load_suite
from pythia.data import audit as AU
from pythia.data.batches import open_sequences
from pythia.data.indexed import IndexedDataset, IndexedDatasetWriter
from pythia.data.order import write_order
from pythia.data.released import released_prefix
from pythia.errors import UsageError

W, B = 9, 2  # tokens per row, rows per step
BASE = "pile_0.87_deduped_text_document"  # a name Pythia's published list holds


def _write(prefix: Path, items: list[np.ndarray]) -> Path:
    with IndexedDatasetWriter(prefix, np.uint16) as w:
        for item in items:
            w.add_item(item)
            w.end_document()
    return prefix


def _distinct_rows(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 500, size=W).astype(np.uint16) for _ in range(n)]


def _shard(prefix: Path, out: Path, cut_bytes: int) -> list[Path]:
    """Cut ``prefix.bin`` in two shards at byte ``cut_bytes`` (inside a row) beside ``<BASE>.idx``."""
    out.mkdir()
    data = Path(f"{prefix}.bin").read_bytes()
    shards = [out / f"{BASE}-00000-of-00082.bin", out / f"{BASE}-00001-of-00082.bin"]
    shards[0].write_bytes(data[:cut_bytes])
    shards[1].write_bytes(data[cut_bytes:])
    shutil.copyfile(f"{prefix}.idx", out / f"{BASE}.idx")
    return shards


def _audit_cli(capsys, *args: str) -> tuple[int, str]:
    rc = main(
        ["data", "audit", *args, "--row-tokens", str(W), "--step-rows", str(B), "--no-progress"]
    )
    return rc, capsys.readouterr().out


def test_published_list_holds_pythia_shard_hashes():
    hashes = AU.published_hashes()
    assert len(hashes) == 85  # 83 shards, the .idx and the joined .bin
    assert hashes[f"{BASE}-00000-of-00082.bin"].startswith("44fb8e4898a07bac")
    assert hashes[f"{BASE}.bin"].startswith("0cd548efd15974d5")
    assert all(len(h) == 64 for h in hashes.values())


def test_shards_whose_hashes_differ_from_the_published_list_fail(tmp_path, capsys):
    prefix = _write(tmp_path / "full", _distinct_rows(6))
    shards = _shard(prefix, tmp_path / "shards", cut_bytes=3 * W * 2 + 5)  # a row straddles the cut
    rc, out = _audit_cli(capsys, str(tmp_path / "shards"))
    assert rc == 1
    published = AU.published_hashes()
    for name in (shards[0].name, shards[1].name, f"{BASE}.idx"):
        line = next(x for x in out.splitlines() if x.startswith(f"FAIL: {name}: sha256"))
        assert published[name] in line and "download it again" in line
    assert "rows: 6 of 9 tokens = 3 steps of 2 rows" in out


def test_a_matching_list_entry_passes_and_an_unlisted_file_is_said_unchecked(tmp_path, capsys):
    prefix = _write(tmp_path / "full", _distinct_rows(6))
    shards = _shard(prefix, tmp_path / "shards", cut_bytes=40)
    good = hashlib.sha256(shards[0].read_bytes()).hexdigest()
    listing = tmp_path / "hashes.txt"
    listing.write_text(f"{shards[0].name} {good}\n{BASE}.idx {'0' * 64}\n")
    rc, out = _audit_cli(capsys, str(tmp_path / "shards"), "--hashes", str(listing))
    assert rc == 1  # the .idx's fake entry does not match
    assert f"sha256 match    {shards[0].name}" in out
    assert f"not checked: {shards[1].name}: not in {listing}" in out
    listing.write_text(f"{shards[0].name} {good}\n")
    rc, out = _audit_cli(capsys, str(tmp_path / "shards"), "--hashes", str(listing))
    assert rc == 0 and "result: ok" in out


def test_a_malformed_hash_list_is_one_clear_error(tmp_path):
    bad = tmp_path / "hashes.txt"
    bad.write_text("document-00000-of-00020.bin not-a-hash\n")
    with pytest.raises(UsageError, match=r"hashes.txt:1: expected '<file name> <sha256>'"):
        AU.read_hash_list(bad)


def test_eod_tokens_are_counted_where_they_were_planted(tmp_path):
    rows = _distinct_rows(6)
    rows[1][[0, 8]] = 0  # row 1: EOD first and last
    rows[4][4] = 0  # row 4: EOD in the middle
    rec = AU.audit(
        AU.find_target(_write(tmp_path / "p", rows)), row_tokens=W, step_rows=B, progress=False
    )
    e = rec["eod"]
    assert (e["count"], e["rows_with_eod"], e["rows"]) == (3, 2, 6)
    assert (e["first_position"], e["last_position"], e["first_row_with_eod"]) == (0, 8, 1)
    assert sum(e["histogram"].values()) == 3
    none = AU.audit(
        AU.find_target(_write(tmp_path / "q", _distinct_rows(4))),
        row_tokens=W,
        step_rows=B,
        progress=False,
    )
    assert none["eod"]["count"] == 0 and none["eod"]["first_position"] is None  # like Pythia's rows


def test_ragged_rows_fail_and_a_partial_step_is_a_note(tmp_path, capsys):
    rows = _distinct_rows(3)
    _write(tmp_path / "ragged", [*rows, rows[0][:5]])
    rc, out = _audit_cli(capsys, str(tmp_path / "ragged.bin"))
    assert rc == 1
    assert "FAIL: 1 of 4 index items are not 9 tokens (first: item 3, 5 tokens)" in out
    assert "FAIL: the files end with a ragged row of 5 tokens" in out
    _write(tmp_path / "partial", rows)
    rc, out = _audit_cli(capsys, str(tmp_path / "partial"))
    assert rc == 0 and "note: partial last step 1: 1 of 2 rows" in out


def test_a_repeated_epoch_is_found_at_its_first_step(tmp_path):
    """An order that repeats its first epoch row for row (what pythia#144 asks about): the
    first repeat is the boundary step, even when the row straddles two shards."""
    epoch = _distinct_rows(7)  # 3.5 steps
    prefix = _write(tmp_path / "full", epoch + epoch[:5])
    rec = AU.audit(
        AU.find_target(_shard(prefix, tmp_path / "shards", 7 * W * 2 + 3)[0].parent),
        row_tokens=W,
        step_rows=B,
        progress=False,
    )
    rep = rec["repeats"]
    assert rep["repeated_rows"] == 5
    assert rep["first"] == {"row": 7, "step": 3, "repeats_row": 0, "repeats_step": 0}
    assert [s["row"] for s in rep["shown"]] == [7, 8, 9, 10, 11]


def test_smoke_data_audit_matches_a_direct_count(smoke_env, tmp_path, capsys):
    suite = load_suite("smoke")
    rec = AU.audit_suite(suite, "deduped", progress=False)
    rows = np.asarray(open_sequences(suite, "deduped"))  # (N, seq_len + 1)
    assert rec["failures"] == [] and rec["rows"]["rows"] == len(rows)
    assert (
        rec["eod"]["count"] == int((rows == 0).sum()) > 0
    )  # our rows hold EOD where documents end
    seen: dict[bytes, int] = {}
    repeats = [
        (i, seen[r.tobytes()]) for i, r in enumerate(rows) if seen.setdefault(r.tobytes(), i) != i
    ]
    assert rec["repeats"]["repeated_rows"] == len(repeats)
    first = repeats[0] if repeats else None
    assert rec["repeats"]["first"] == (
        first
        and {
            "row": first[0],
            "step": first[0] // 4,
            "repeats_row": first[1],
            "repeats_step": first[1] // 4,
        }
    )
    card = json.loads((smoke_env / "smoke" / "data" / "card.json").read_text())["datasets"][
        "deduped"
    ]
    boundary = card["tokens_per_epoch"] // suite.training.tokens_per_step
    assert card["tokens_per_epoch"] > 24 * suite.training.tokens_per_step  # less than an epoch:
    assert rec["epoch_boundary"] is None and boundary > 24  # no boundary and no repeat
    c = rec["corpus_repeats"]
    assert c["first_step"] is None and c["repeated_tokens"] == 0
    assert (
        c["repeated_tokens"] + c["distinct_tokens"]
        == c["training_tokens"]
        == len(rows) * suite.training.seq_len
    )
    out = tmp_path / "audit.json"
    assert main(["data", "audit", "--suite", "smoke", "--no-progress", "--out", str(out)]) == 0
    assert [r["dataset"] for r in json.loads(out.read_text())] == ["standard", "deduped"]
    assert "not checked: hashes: no published hash list" in capsys.readouterr().out


def test_nothing_to_audit_is_one_clear_error(capsys):
    assert main(["data", "audit"]) != 0
    assert "error: say what to audit: a PATH" in capsys.readouterr().err


def _brute_corpus_repeat(d: Path, rows: int, seq_len: int) -> tuple[int | None, int]:
    """(first row holding an input token an earlier row held, such tokens), one document
    span at a time: an independent walk of doc_idx / sample_idx / shuffle_idx."""
    corpus = IndexedDataset(d / "train_text_document")
    doc_idx, sample_idx = np.load(d / "doc_idx.npy"), np.load(d / "sample_idx.npy")
    shuffle_idx = np.load(d / "shuffle_idx.npy")
    covered = [np.zeros(n, dtype=bool) for n in corpus.sizes]
    first, repeated = None, 0
    for j in range(rows):
        (p0, o0), (p1, o1) = sample_idx[shuffle_idx[j]], sample_idx[shuffle_idx[j] + 1]
        for p in range(int(p0), int(p1) + 1):  # the last token (o1 of p1) is the label only
            doc = int(doc_idx[p])
            a, b = (int(o0) if p == p0 else 0), (int(o1) if p == p1 else int(corpus.sizes[doc]))
            hits = int(covered[doc][a:b].sum())
            repeated += hits
            if hits and first is None:
                first = j
            covered[doc][a:b] = True
    return first, repeated


def test_built_data_past_one_epoch_gives_the_card_boundary_and_its_repeats(
    smoke_data, tmp_path, monkeypatch
):
    """The smoke corpus ordered for 600 steps (about 1.5 epochs, like Pythia's deduplicated run):
    the epoch boundary is the card's, and the corpus repeats equal an independent walk. GPT-NeoX
    shuffles all epochs together, so the repeats start long before the boundary."""
    shutil.copytree(smoke_data / "smoke" / "data", tmp_path / "smoke" / "data")
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    suite = load_suite("smoke", overrides={"training": {"train_iters": 600}})
    t = suite.training
    d = tmp_path / "smoke" / "data" / "deduped"
    write_order(
        d / "train_text_document",
        d,
        t.seq_len,
        t.train_iters,
        t.global_batch,
        t.seed,
        progress=False,
    )
    rec = AU.audit_suite(suite, "deduped", progress=False)
    card = json.loads((tmp_path / "smoke" / "data" / "card.json").read_text())["datasets"][
        "deduped"
    ]
    assert rec["epoch_boundary"]["step"] == card["tokens_per_epoch"] // t.tokens_per_step < 600
    c = rec["corpus_repeats"]
    assert (c["first_row"], c["repeated_tokens"]) == _brute_corpus_repeat(
        d, 600 * t.global_batch, t.seq_len
    )
    assert c["first_step"] < rec["epoch_boundary"]["step"]
    tenths = c["repeated_share_by_tenth"]  # a ramp, no jump at the boundary
    assert len(tenths) == 10 and tenths[0] < tenths[-1]
    assert c["repeated_tokens"] + c["distinct_tokens"] == 600 * t.tokens_per_step


def test_a_released_dataset_is_audited_with_its_suite_shape(tmp_path, monkeypatch, capsys):
    """A suite whose standard dataset is a released file: rows of seq_len + 1, global_batch a
    step, EOD 0, and the audit says what it cannot check there."""
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    raw = {
        "extends": "smoke",
        "name": "relaudit",
        "training": {"seq_len": 16, "global_batch": 4, "train_iters": 3},
        "data": {
            "pretokenized": {
                "standard": {"hub_dataset": "EleutherAI/pile-standard-pythia-preshuffled"}
            }
        },
    }
    (tmp_path / "relaudit.yaml").write_text(yaml.safe_dump(raw))
    suite = load_suite(tmp_path / "relaudit.yaml")
    prefix = released_prefix(suite, "standard")
    prefix.parent.mkdir(parents=True)
    rows = np.random.default_rng(1).integers(1, 300, size=(14, 17)).astype(np.uint16)
    rows[13] = rows[2]  # step 3 repeats a row of step 0
    with IndexedDatasetWriter(prefix, np.uint16) as w:
        w.add_rows(rows)
    rc = main(
        [
            "data",
            "audit",
            "--suite",
            str(tmp_path / "relaudit.yaml"),
            "--dataset",
            "standard",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "rows: 14 of 17 tokens = 3 steps of 4 rows + 2 rows" in out
    assert "EOD (id 0): 0 tokens in 0 of 14 rows" in out
    assert "first at step 3 (row 13 = row 2, step 0)" in out
    assert "Pythia publishes no hash list for the pre-shuffled files" in out
    assert "released files carry no order indices" in out
