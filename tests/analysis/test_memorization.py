"""Section 04's analysis on synthetic inputs: window counts, the Poisson tests (accept a Poisson,
reject an over-dispersed process), the Q-Q data, persistence, every figure; and the sources of
training sequences on the smoke data; closeness to memorization against the duplicate count (bins,
the stratified sample, teacher-forced accuracy against a loop over positions, the scan job's
duplicates on a trained smoke model, the table and its figure); the agreement table with Pythia's
released results."""

from __future__ import annotations

import json
from collections import Counter

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pythia import sections
from pythia.analysis import memorization as mem
from pythia.config import load_suite
from pythia.evaluate import memorization_released as R


def flags_from_counts(counts: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    """A flag sequence with exactly counts[i] events at random places of window i."""
    flags = np.zeros(len(counts) * window, bool)
    for i, c in enumerate(counts):
        flags[i * window + rng.choice(window, size=int(c), replace=False)] = True
    return flags


def test_window_counts():
    f = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1], bool)
    np.testing.assert_array_equal(
        mem.window_counts(f, 3), [2, 1, 3]
    )  # the incomplete last window dropped
    np.testing.assert_array_equal(mem.window_counts(f, 1), f.astype(int))
    with pytest.raises(ValueError):
        mem.window_counts(f, 0)


def test_poisson_is_accepted_and_overdispersion_rejected():
    rng = np.random.default_rng(7)
    poisson = rng.poisson(2.0, 600)
    counts = mem.window_counts(flags_from_counts(poisson, 512, rng), 512)
    np.testing.assert_array_equal(counts, poisson)
    t = mem.poisson_test(counts)
    assert t["windows"] == 600 and t["mean"] == pytest.approx(poisson.mean())
    assert t["variance"] == pytest.approx(poisson.var(ddof=1))
    assert 0.85 < t["dispersion"] < 1.15 and t["dispersion_p"] > 0.05 and t["p_value"] > 0.05
    assert t["dof"] >= 3
    # the same statistic by hand: bins 0..K-1 and >= K of the fitted Poisson
    obs, exp = mem._chi2_bins(counts, counts.mean())
    assert obs.sum() == 600 and exp.sum() == pytest.approx(600) and (exp >= mem.MIN_EXPECTED).all()
    assert t["chi2"] == pytest.approx(((obs - exp) ** 2 / exp).sum())
    assert t["p_value"] == pytest.approx(stats.chi2.sf(t["chi2"], len(obs) - 2))
    # clustered events: negative binomial with mean 2 and variance 2 + 4 / 0.5 = 10
    clustered = rng.negative_binomial(0.5, 0.5 / 2.5, 600)
    c = mem.poisson_test(clustered)
    assert c["dispersion"] > 3 and c["dispersion_p"] < 1e-6 and c["p_value"] < 1e-6


def test_no_events_leave_the_tests_undefined():
    t = mem.poisson_test(np.zeros(20, int))
    assert t["mean"] == 0 and np.isnan(t["dispersion"]) and np.isnan(t["p_value"])
    q = mem.qq_points(np.zeros(20))
    assert q.to_dict("records") == [{"sample": 0.0, "theoretical": 0.0, "n": 20}]


def test_qq_points_follow_probplot():
    rng = np.random.default_rng(3)
    counts = rng.poisson(3.0, 400)
    q = mem.qq_points(counts)
    assert q["n"].sum() == 400
    assert set(q["sample"]) == set(counts.astype(float))
    # Poisson data: theoretical and sample quantiles agree within one count almost everywhere
    assert (q["n"] * (abs(q["sample"] - q["theoretical"]) <= 1)).sum() >= 0.95 * 400


@pytest.fixture
def scans() -> pd.DataFrame:
    """Two models, two datasets, checkpoints 4 and 8 of a suite with 16 sequences per step (128 rows
    seen at the end); match runs grow with size and training; a few sequences reach 32."""
    rng = np.random.default_rng(0)
    frames = []
    for model, scale in (("m1", 1.0), ("m2", 2.0)):
        for dataset in ("standard", "deduped"):
            for step in (4, 8):
                n = 16 * step
                run = np.minimum(rng.poisson(scale * step / 4, n), 32).astype(np.int16)
                run[::37] = 32
                matches = np.where(
                    np.arange(n) % 2 == 0, np.maximum(run, rng.integers(0, 33, n)), -1
                )
                frames.append(
                    pd.DataFrame(
                        {
                            "model": model,
                            "dataset": dataset,
                            "step": step,
                            "seq": np.arange(n),
                            "memorized": run == 32,
                            "match_run": run,
                            "matches": matches,
                        }
                    )
                )
    df = pd.concat(frames, ignore_index=True)
    df["score"] = np.where(df["matches"] >= 0, df["matches"] / 32, np.nan)
    df["position"] = df["seq"] / 128
    df["model"] = pd.Categorical(df["model"], ["m1", "m2"], ordered=True)
    return df


def test_counts_runs_position_size_and_persistence(scans):
    counts = mem.memorized_counts(scans, 32)
    row = counts[(counts.model == "m1") & (counts.dataset == "standard") & (counts.step == 8)].iloc[
        0
    ]
    assert (
        row.sequences == 128
        and row.memorized == len(range(0, 128, 37))
        and row.rate == row.memorized / 128
    )
    assert row.scored == 64
    final = mem.final_scans(scans)
    assert set(final.step) == {8} and len(final) == 4 * 128
    assert mem.auto_threshold(final, 32, 16) in (1, 2, 4)
    tests = mem.poisson_table(final, [16, 32], [32, 2])
    assert len(tests) == 2 * 2 * 2 * 2 and set(tests.columns) >= {
        "dispersion",
        "p_value",
        "chi2",
        "dof",
    }
    assert (tests[tests.threshold == 32]["mean"] > 0).all()
    runs = mem.match_runs(scans, 32)
    big = runs.set_index(["model", "dataset", "step"])["mean_match_run"]
    assert big[("m2", "standard", 8)] > big[("m1", "standard", 8)] > big[("m1", "standard", 4)]
    pos = mem.rate_by_position(final, [32, 2], bins=4)
    assert len(pos) == 4 * 4 and pos.sequences.sum() == 4 * 128
    size = mem.by_size(
        counts,
        load_suite("smoke").model_copy(
            update={
                "models": {
                    "m1": load_suite("smoke").model("s1"),
                    "m2": load_suite("smoke").model("s2"),
                }
            }
        ),
    )
    assert list(size.non_embedding_params.unique()) != [] and set(size.step) == {8}
    kept = mem.persistence(scans, 32)
    k = kept[(kept.model == "m1") & (kept.dataset == "standard")].iloc[0]
    # memorized at step 4: seqs 0 and 37 of the 64 then seen; at step 8 the same seqs are memorized again
    assert (k.earlier, k.later, k.events_earlier, k.still_later, k.fraction_kept) == (
        4,
        8,
        2,
        2,
        1.0,
    )
    for fig in (
        mem.plot_qq(mem.qq_data(final, "m2", [16, 64], 2)),
        mem.plot_match_runs(runs),
        mem.plot_position(pos),
        mem.plot_size(size),
    ):
        assert isinstance(fig, plt.Figure) and fig.axes
        plt.close(fig)
    note = mem.closing_note(counts, tests, pd.DataFrame(), 32)
    assert "standard: m1 4/128, m2 4/128" in note and "dispersion index" in note


def test_sources_of_training_sequences(smoke_data, monkeypatch):
    """The source of a sequence is that of the document its first token comes from (the order's
    shuffle_idx -> sample_idx -> doc_idx), also for the deduplicated order."""
    from pythia.data.batches import open_sequences
    from pythia.data.indexed import IndexedDataset
    from pythia.data.layout import Layout, read_jsonl

    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    suite = load_suite("smoke")
    L = Layout("smoke")
    train = read_jsonl(L.split_file("train"))
    for dataset in ("standard", "deduped"):
        seqs = np.arange(0, 96, 5)
        got = mem.sequence_sources(suite, dataset, seqs)
        assert len(got) == len(seqs) and set(got) <= {"stdlib", "arithmetic"}
        folder = L.dataset(dataset)
        shuffle_idx, sample_idx, doc_idx = (
            np.load(folder / f"{n}.npy") for n in ("shuffle_idx", "sample_idx", "doc_idx")
        )
        docs = IndexedDataset(L.text_prefix("train", dataset))
        rows = open_sequences(suite, dataset)
        for j in seqs:
            d, off = sample_idx[shuffle_idx[j]]
            doc = int(doc_idx[d])
            head = docs.get(doc, offset=int(off), length=min(8, int(docs.sizes[doc]) - int(off)))
            np.testing.assert_array_equal(
                rows[j][: len(head)], head
            )  # the document the sequence starts in
    removed = set(json.loads((L.dataset("deduped") / "dedup.json").read_text())["removed"])
    assert len([d for d in train if d["id"].split("#", 1)[0] not in removed]) == len(
        IndexedDataset(L.text_prefix("train", "deduped"))
    )
    # the decoded table: sequences reached by more models first, then longer runs; only those decoded
    from pythia.data.tokenizer import load_tokenizer

    final = pd.DataFrame(
        {
            "model": pd.Categorical(["s1", "s2", "s1", "s2"]),
            "dataset": "standard",
            "step": 24,
            "seq": [5, 5, 9, 11],
            "match_run": [4, 6, 1, 3],
        }
    )
    table = mem.memorized_sequences(final, suite, 2, 32, limit=2)
    assert table[["model", "seq", "match_run", "models"]].values.tolist() == [
        ["s2", 5, 6, 2],
        ["s1", 5, 4, 2],
    ]
    row = open_sequences(suite, "standard")[5]
    tok = load_tokenizer(suite)
    assert table.continuation[0] == tok.decode(row[32:38].tolist()) and table.prompt[
        0
    ] == tok.decode(row[:32].tolist())
    assert table.source[0] == mem.sequence_sources(suite, "standard", np.array([5]))[0]


# ------------------------------------------------------------------------------ duplication


def test_duplicate_bins_and_the_stratified_sample():
    from pythia.evaluate import memorization as M
    from pythia.evaluate import memorization_files as F

    counts = np.array([1, 2, 9, 10, 99, 100, 5000, 1])
    np.testing.assert_array_equal(F.duplicate_bins(counts), [0, 1, 1, 2, 2, 3, 3, 0])
    assert F.duplicate_bin_labels() == ["1", "2-9", "10-99", ">=100"]
    with pytest.raises(ValueError):
        F.duplicate_bins(np.array([0, 1]))
    bins = np.array([0] * 50 + [1] * 7 + [3] * 20)
    take = M.stratified_sample(bins, 10, seed=4)
    assert take[bins == 0].sum() == 10 and take[bins == 1].all() and take[bins == 3].sum() == 10
    np.testing.assert_array_equal(take, M.stratified_sample(bins, 10, seed=4))  # seeded
    assert not np.array_equal(take, M.stratified_sample(bins, 10, seed=5))
    assert M.stratified_sample(bins, 100).all()


def manual_teacher_forcing(model, rows: np.ndarray, k: int, l: int, vocab: int) -> np.ndarray:
    """(N, l) bool by a loop over positions: the model's full logits for rows[:, :t], the padded
    vocabulary cut, end-of-document at -inf, argmax == rows[:, t]."""
    import torch

    out = np.zeros((len(rows), l), bool)
    with torch.no_grad():
        for t in range(k, k + l):
            logits = (
                model(input_ids=torch.from_numpy(rows[:, :t].astype(np.int64)))
                .logits[:, -1, :vocab]
                .clone()
            )
            logits[:, 0] = float("-inf")
            out[:, t - k] = logits.argmax(-1).numpy() == rows[:, t]
    return out


def test_teacher_forced_accuracy_equals_a_loop_over_positions():
    """On a random one-layer model (the padded vocabulary cut to 500 of 512 rows): rows of random
    tokens, rows whose continuation is the model's own greedy one (all correct) with a few tokens
    changed, and one with an end-of-document token where the model would predict it."""
    import torch

    from pythia.evaluate import memorization_kernels as K
    from pythia.model import build_model

    torch.manual_seed(0)
    suite = load_suite("smoke")
    model = build_model(suite, "s1", seed=3, attn_implementation="sdpa").eval()
    k, l, vocab = 8, 12, 500
    rng = np.random.default_rng(0)
    prompts = rng.integers(1, vocab, (24, k))
    own = np.concatenate(
        [prompts, K.greedy_continue(model, prompts, l, vocab_size=vocab)], axis=1
    )  # (24, k+l)
    changed = own.copy()
    changed[np.arange(12), k + rng.integers(0, l, 12)] = rng.integers(
        1, vocab, 12
    )  # one wrong token each
    rows = np.concatenate([rng.integers(1, vocab, (16, k + l)), own, changed[:12]])
    rows[0, k + 3] = 0  # end-of-document: never the argmax
    got = K.teacher_forced_correct(model, rows, K.ScanOptions(k, l), vocab_size=vocab, batch_size=7)
    want = manual_teacher_forcing(model, rows, k, l, vocab)
    np.testing.assert_array_equal(got, want)
    assert got[16:40].all() and not got[40:].all(axis=1).any() and not got[0, 3]
    assert 0 < got.sum() < got.size
    # its leading run is the scan's match run (the same argmaxes)
    np.testing.assert_array_equal(
        K.leading_run(got), K.leading_matches(model, rows, k, l, vocab_size=vocab)
    )
    with pytest.raises(Exception, match="at least k \\+ l"):
        K.teacher_forced_correct(model, rows[:, :10], K.ScanOptions(k, l))


def synthetic_duplicates() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    frames = []
    for model, boost in (("m1", 0.0), ("m2", 0.2)):
        for dataset in ("standard", "deduped"):
            n = 300
            dups = np.concatenate(
                [
                    np.ones(150, int),
                    rng.integers(2, 10, 100),
                    rng.integers(10, 100, 40),
                    rng.integers(100, 400, 10),
                ]
            )
            acc = np.clip(0.1 + boost + 0.1 * np.log10(dups) + rng.normal(0, 0.02, n), 0, 1)
            tf = np.round(acc * 32).astype(int)
            tf[rng.random(n) < 0.3] = -1  # not sampled
            frames.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "dataset": dataset,
                        "step": 640,
                        "seq": np.arange(n),
                        "duplicates": dups,
                        "match_run": rng.integers(0, 33, n),
                        "tf_matches": tf,
                    }
                )
            )
    df = pd.concat(frames, ignore_index=True)
    from pythia.evaluate.memorization_files import duplicate_bin_labels, duplicate_bins

    df["bin"] = pd.Categorical(
        np.asarray(duplicate_bin_labels())[duplicate_bins(df["duplicates"].to_numpy())],
        categories=duplicate_bin_labels(),
        ordered=True,
    )
    df["model"] = pd.Categorical(df["model"], categories=["m1", "m2"], ordered=True)
    df["tf_accuracy"] = np.where(df["tf_matches"] >= 0, df["tf_matches"] / 32, np.nan)
    return df


def test_duplicates_table_and_figure():
    dups = synthetic_duplicates()
    table = mem.duplicates_table(dups, 32)
    assert len(table) == 2 * 2 * 4 and list(table["bin"][:4]) == ["1", "2-9", "10-99", ">=100"]
    for _, row in table.iterrows():
        g = dups[
            (dups["model"] == row["model"])
            & (dups["dataset"] == row["dataset"])
            & (dups["bin"] == row["bin"])
        ]
        sampled = g["tf_matches"][g["tf_matches"] >= 0] / 32
        assert row["sequences"] == len(g) and row["teacher_forced"] == len(sampled)
        assert (
            row["min_count"] == g["duplicates"].min() and row["max_count"] == g["duplicates"].max()
        )
        assert row["mean_tf_accuracy"] == pytest.approx(sampled.mean())
        assert row["sem_tf_accuracy"] == pytest.approx(sampled.std(ddof=1) / np.sqrt(len(sampled)))
        assert row["mean_match_run"] == pytest.approx(g["match_run"].mean())
        assert (
            row["run_ge_8"] == (g["match_run"] >= 8).sum()
            and row["memorized"] == (g["match_run"] >= 32).sum()
        )
    m2 = table[(table.model == "m2") & (table.dataset == "standard")]["mean_tf_accuracy"].to_numpy()
    assert (np.diff(m2) > 0).all()  # grows with the count, as planted
    fig = mem.plot_duplicates(table, 32)
    assert len(fig.axes) == 4 and len(fig.axes[0].lines) >= 2
    assert "m2" in mem.duplicates_note(table, 32)
    plt.close(fig)
    empty = mem.duplicates_table(dups.iloc[:0], 32)
    assert empty.empty and list(empty.columns) == list(table.columns)
    fig = mem.plot_duplicates(empty, 32, {"standard/m1": "too many windows"})
    assert "too many windows" in fig.axes[0].texts[0].get_text()
    plt.close(fig)


def test_scan_job_writes_duplicates_of_a_trained_model(smoke_run, tmp_path, monkeypatch):
    """The scan's `--duplicates` on the trained smoke s1: every scanned sequence with its duplicate
    count (a Counter of all training windows), the scan's leading run, and teacher-forced matches
    (equal to the loop over positions) for the sampled ones; the notebook's loader and table read it;
    a dataset too large to count gets an empty file that says why."""
    from pythia import cli
    from pythia.data import duplication
    from pythia.data.batches import open_sequences
    from pythia.evaluate import memorization as M
    from pythia.evaluate import memorization_files as F
    from pythia.runs import open_catalogue

    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    suite = load_suite("smoke")
    scan, out = tmp_path / "scan.json", tmp_path / "duplicates.parquet"
    code = cli.main(
        [
            "memorization",
            "scan",
            "--suite",
            "smoke",
            "--dataset",
            "standard",
            "--model",
            "s1",
            "--steps",
            "8",
            "24",
            "--score-stride",
            "0",
            "--threads",
            "1",
            "--out",
            str(scan),
            "--duplicates",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    dups = F.read_duplicates(out)
    assert list(dups.columns) == list(F.DUPLICATE_COLUMNS) and dups.attrs["step"] == 24
    rows = np.asarray(open_sequences(suite, "standard"))  # (96, 65)
    windows = Counter(tuple(r[s : s + 64]) for r in rows for s in range(rows.shape[1] - 63))
    assert dups["seq"].tolist() == list(range(96))
    assert dups["duplicates"].tolist() == [windows[tuple(rows[j, :64])] for j in range(96)]
    scanned = F.read_scan(tmp_path / "step24.parquet")
    np.testing.assert_array_equal(dups["match_run"], scanned["match_run"])
    done = dups[dups["tf_matches"] >= 0]
    assert (
        len(done) == 96
    )  # the smoke data's 96 sequences are all in bin 1, under the per-bin sample
    np.testing.assert_array_equal(done["tf_run"], done["match_run"])
    model = open_catalogue("smoke").checkpoint("s1", "standard", 24).load_model()
    want = manual_teacher_forcing(
        model, rows[done["seq"].to_numpy(), :64], 32, 32, suite.tokenizer.vocab_size
    )
    np.testing.assert_array_equal(done["tf_matches"], want.sum(1))
    # the per-bin sample: 40 of the 96, seeded
    again = M.duplicates_model(
        suite,
        "standard",
        "s1",
        open_catalogue("smoke"),
        M.ScanOptions(32, 32),
        per_bin=40,
        scan=scan,
        out=tmp_path / "sample.parquet",
    )
    assert (
        again["teacher_forced"] == 40
        and (F.read_duplicates(tmp_path / "sample.parquet")["tf_matches"] >= 0).sum() == 40
    )
    # what the notebook loads
    monkeypatch.setattr(mem, "duplicates_file", lambda s, d, m: out)
    loaded = mem.load_duplicates(suite, ["standard"], ["s1"])
    table = mem.duplicates_table(loaded, 32)
    assert table[["model", "dataset", "bin", "sequences", "teacher_forced"]].values.tolist() == [
        ["s1", "standard", "1", 96, 96]
    ]
    assert table["mean_tf_accuracy"].item() == pytest.approx(want.mean())
    # too many windows to count: an empty file that says why
    monkeypatch.setattr(duplication, "MAX_WINDOWS", 10)
    rec = M.duplicates_model(
        suite,
        "standard",
        "s1",
        open_catalogue("smoke"),
        M.ScanOptions(32, 32),
        scan=scan,
        out=tmp_path / "skipped.parquet",
    )
    skipped = F.read_duplicates(tmp_path / "skipped.parquet")
    assert (
        skipped.empty
        and "more than an exact in-memory count" in skipped.attrs["skipped"] == rec["skipped"]
    )
    with pytest.raises(Exception, match="scanned with"):
        M.duplicates_model(
            suite, "standard", "s1", open_catalogue("smoke"), M.ScanOptions(16, 16), scan=scan
        )


# ------------------------------------------------------------------------------ the released results


def _synthetic_scans(step: int, n: int, flagged: list[int]) -> pd.DataFrame:
    seq = np.arange(n)
    return pd.DataFrame(
        {
            "model": "s1",
            "dataset": "standard",
            "step": step,
            "seq": seq,
            "memorized": np.isin(seq, flagged),
            "match_run": np.where(np.isin(seq, flagged), 32, 3),
        }
    )


def test_released_agreement_table_absent_models_and_notes(tmp_path, monkeypatch):
    """The table from the files `pythia memorization released` writes: counts per model and dataset,
    a model without a split left out (and named), a scan without the released checkpoint and
    tokens of another k + l said in the note; the table is an optional output of section 04."""
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    suite = load_suite("smoke")
    rows = np.arange(40 * 65).reshape(40, 65) % 500
    tokens = rows[[3, 7, 30], :64]
    rel = R.ReleasedSet("s1", "standard", "duped.s1", "local", np.array([3, 7, 30]), tokens)
    R.write_released(R.released_file("smoke", "standard", "s1"), rel, rows, 24)
    R.write_released(
        R.released_file("smoke", "standard", "s2"),
        R.absent_set("local", "s2", "standard", "no released split 'duped.s2'"),
        None,
        24,
    )
    scans = pd.concat([_synthetic_scans(24, 20, [3, 5]), _synthetic_scans(16, 12, [3])])
    table = mem.released_agreement(suite, scans, ["standard"], ["s1", "s2"], 32, 32)
    assert list(table.columns) == list(mem.AGREEMENT_COLUMNS) and len(table) == 1
    r = table.iloc[0]
    assert (r["step"], r["rows_compared"], r["flagged_ours"], r["flagged_released"]) == (
        24,
        20,
        2,
        2,
    )
    assert (r["both"], r["only_ours"], r["only_released"], r["released_outside"]) == (1, 1, 1, 1)
    assert r["agreement"] == pytest.approx(18 / 20) and r["note"] == ""
    assert (r["tokens_checked"], r["tokens_differ"]) == (3, 0)
    assert table.attrs["absent"] == {"standard/s2": "no released split 'duped.s2'"}
    note = mem.released_note(table, 32)
    assert "only ours 1, only released 1: different sequences" in note and "standard/s2" in note
    differ = mem.released_disagreements(suite, scans, table)
    assert differ[["seq", "ours", "released"]].values.tolist() == [
        [5, True, False],
        [7, False, True],
    ]
    # our scans lack the released checkpoint; tokens of another k + l
    late = mem.released_agreement(suite, scans[scans.step == 16], ["standard"], ["s1"], 32, 32)
    assert late.iloc[0]["rows_compared"] == 0 and "no checkpoint at step 24" in late.iloc[0]["note"]
    other = mem.released_agreement(suite, scans, ["standard"], ["s1"], 16, 16)
    assert other.iloc[0]["note"] == "released tokens hold 64, our scan's k + l = 32"
    section = sections.get("memorization")
    assert ("table", "released_agreement") in [(k, n) for k, n, _ in section.compared()]
    assert "table released_agreement" not in sections.outputs("memorization", suite).missing()
