"""The n-gram index of the training order (pythia/evaluate/ngram_index.py, tokengrams) on the smoke
suite's built data: counts and first-seen steps against a brute-force scan of the ordered rows,
the cache, the ``first-seen`` command, and section 05's counts through the index equal to the
regex pass over every row (pythia/evaluate/term_frequencies.py)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from pythia.cli import main
from pythia.config import load_suite
from pythia.data import released
from pythia.data.batches import DataNotBuiltError, get_batch
from pythia.data.indexed import IndexedDatasetWriter
from pythia.data.tokenizer import load_tokenizer
from pythia.evaluate import ngram_index as ni
from pythia.evaluate import term_frequencies as tf


@pytest.fixture
def smoke(smoke_data, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    return load_suite("smoke")


def brute_steps(suite, dataset: str, query: list[int]) -> list[int]:
    """The step of every occurrence of ``query`` inside a training row, scanning every step."""
    q = np.array(query)
    found = []
    for step in range(suite.training.train_iters):
        for row in get_batch(suite, dataset, step):
            if len(row) >= len(q):
                windows = np.lib.stride_tricks.sliding_window_view(row, len(q))
                found += [step] * int((windows == q).all(axis=1).sum())
    return found


def test_counts_and_steps_equal_a_brute_force_scan(smoke, tmp_path):
    index = ni.build_index(smoke, "standard", root=tmp_path, progress=False)
    assert index.steps == smoke.training.train_iters and index.width == smoke.training.seq_len + 1
    rows = np.concatenate([get_batch(smoke, "standard", s) for s in range(index.steps)])
    rng = np.random.default_rng(0)
    queries = [[int(t)] for t in rng.choice(rows.ravel(), 5)]
    queries += [rows[r, c : c + n].tolist() for r, c, n in [(3, 10, 2), (40, 0, 3), (95, 60, 5)]]
    # the last token of a row and the first of the next one in the file: never in one row
    # (also across a separator that were a real token: EOD, id 0)
    queries += [[int(rows[r, -1]), int(rows[r + 1, 0])] for r in (0, 7, 50)]
    queries += [[int(rows[r, -1]), 0, int(rows[r + 1, 0])] for r in (0, 7, 50)]
    queries.append([int(rows[0, 0])] * 9)  # absent
    for q in queries:
        steps = brute_steps(smoke, "standard", q)
        assert index.count(q) == len(steps), q
        assert index.occurrence_steps(q).tolist() == steps, q
        seen = ni.first_seen(index, q)
        assert seen["first_step"] == (steps[0] if steps else None)
        assert seen["steps"] == sorted(set(steps)) and sum(seen["per_step"]) == len(steps)
    assert any(index.count(q) == 0 for q in queries)
    assert sum(index.count(q) > 1 for q in queries) >= 3  # repeated tokens and n-grams


def test_the_index_is_cached_by_the_data(smoke, tmp_path):
    index = ni.build_index(smoke, "standard", root=tmp_path, progress=False)
    info = index.folder / ni.INFO
    stamp = info.stat().st_mtime_ns
    again = ni.build_index(smoke, "standard", root=tmp_path, progress=False)
    assert again.folder == index.folder and info.stat().st_mtime_ns == stamp  # not rebuilt
    other = ni.build_index(smoke, "deduped", root=tmp_path, progress=False)
    assert other.folder != index.folder and other.folder.name.startswith("deduped-")
    assert (index.folder / ni.TOKENS).stat().st_size == index.rows * index.stride * 2


def test_first_seen_command_tokenizes_the_text_and_matches_the_scan(smoke, tmp_path, capsys):
    tok = load_tokenizer(smoke)
    text = tok.decode(get_batch(smoke, "standard", 5)[1, 20:23].tolist())
    query = tok.encode(text, add_special_tokens=False)
    steps = brute_steps(smoke, "standard", query)
    assert steps and steps[0] <= 5
    argv = ["term-frequencies", "first-seen", "--suite", "smoke", "--dataset", "standard"]
    argv += [text, "--index-cache", str(tmp_path), "--no-progress"]
    assert main([*argv, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)  # stdout holds the JSON alone
    assert found["text"] == text and found["tokens"] == query
    assert found["first_step"] == steps[0] and found["count"] == len(steps)
    assert found["steps"] == sorted(set(steps))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"first seen at step {steps[0]}; {len(steps):,} occurrences" in out
    assert out.splitlines()[-1] == "steps: " + " ".join(map(str, sorted(set(steps))))


def test_every_row_with_a_digit_is_kept(smoke, tmp_path):
    """The exactness of the index path: a row the index skips decodes to text without a digit."""
    tok = load_tokenizer(smoke)
    index = ni.build_index(smoke, "standard", root=tmp_path, progress=False)
    keep = index.rows_holding(tf.digit_tokens(tok))
    rows = np.concatenate([get_batch(smoke, "standard", s) for s in range(index.steps)])
    has_digit = np.array([bool(re.search(r"\d", t)) for t in tok.batch_decode(rows.tolist())])
    assert (has_digit <= keep).all()
    assert has_digit.any() and not keep.all()  # the smoke data has both kinds of rows
    assert tf.DIGIT_TEXT.search(tok.decode(tok.encode("7")))
    ids = tok.encode("٣", add_special_tokens=False)  # an Arabic-Indic digit: several byte tokens
    assert all(i in set(tf.digit_tokens(tok).tolist()) for i in ids)


@pytest.mark.parametrize("dataset", ["standard", "deduped"])
def test_counts_through_the_index_equal_the_regex_pass(smoke, tmp_path, dataset):
    plain = tf.count_dataset(smoke, dataset, tmp_path / "plain.npz", steps=[8], progress=False)
    index = ni.build_index(smoke, dataset, root=tmp_path / "ngram", progress=False)
    fast = tf.count_dataset(
        smoke, dataset, tmp_path / "fast.npz", steps=[8], workers=2, progress=False, index=index
    )
    a, b = tf.load_counts(plain), tf.load_counts(fast)
    for k in ("start", "end", "numbers", "pairs", "tokens"):
        assert (a[k] == b[k]).all(), k
    assert a["numbers"].sum() > 0 and a["pairs"].sum() > 0
    assert json.loads(fast.with_suffix(".json").read_text())["index"] == str(index.folder)


def test_first_seen_without_built_data_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "empty"))
    argv = ["term-frequencies", "first-seen", "--suite", "smoke", "--dataset", "standard", "x"]
    assert main([*argv, "--index-cache", str(tmp_path / "ngram")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "is not built" in err[0] and "pythia data build --suite smoke" in err[0]
    )
    with pytest.raises(DataNotBuiltError, match=r"training sequences .* are not built"):
        ni.build_index(load_suite("smoke"), "standard", root=tmp_path / "ngram")
    assert not (tmp_path / "ngram").exists()


def test_the_index_reads_released_pre_shuffled_files(tmp_path, monkeypatch):
    """Pythia's released format (one row of seq_len + 1 tokens per item), more rows than training
    reads: the index covers the steps of train_iters and answers as a scan of those steps."""
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    raw = {
        "extends": "smoke",
        "name": "relindex",
        "training": {"seq_len": 16, "global_batch": 4, "train_iters": 6},
        "data": {"pretokenized": {"standard": {"hub_dataset": "EleutherAI/pile-standard"}}},
    }
    (tmp_path / "relindex.yaml").write_text(yaml.safe_dump(raw))
    suite = load_suite(tmp_path / "relindex.yaml")
    data = np.random.default_rng(1).integers(0, 40, size=(30, 17)).astype(np.uint16)
    with IndexedDatasetWriter(released.released_prefix(suite, "standard"), np.uint16) as w:
        w.add_rows(data)  # 7 steps of 4 rows, and 2 rows over
    index = ni.build_index(suite, "standard", root=tmp_path / "ngram", progress=False)
    assert index.steps == 6 and index.rows == 24
    for q in ([int(data[0, 0])], data[5, 3:5].tolist(), data[27, 0:2].tolist(), [7, 7]):
        steps = brute_steps(suite, "standard", q)
        assert index.occurrence_steps(q).tolist() == steps, q
    assert index.count(data[27].tolist()) == 0  # a row of step 6, which training never reads
