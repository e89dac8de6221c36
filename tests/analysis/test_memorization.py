"""Section 04's analysis on synthetic inputs: window counts, the Poisson tests (accept a Poisson,
reject an over-dispersed process), the Q-Q data, persistence, every figure; and the sources of
training sequences on the smoke data."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from pythia.analysis import memorization as mem  # noqa: E402
from pythia.config import load_suite  # noqa: E402


def flags_from_counts(counts: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    """A flag sequence with exactly counts[i] events at random places of window i."""
    flags = np.zeros(len(counts) * window, bool)
    for i, c in enumerate(counts):
        flags[i * window + rng.choice(window, size=int(c), replace=False)] = True
    return flags


def test_window_counts():
    f = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1], bool)
    np.testing.assert_array_equal(mem.window_counts(f, 3), [2, 1, 3])  # the incomplete last window dropped
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
                matches = np.where(np.arange(n) % 2 == 0, np.maximum(run, rng.integers(0, 33, n)), -1)
                frames.append(pd.DataFrame({"model": model, "dataset": dataset, "step": step, "seq": np.arange(n),
                                            "memorized": run == 32, "match_run": run, "matches": matches}))
    df = pd.concat(frames, ignore_index=True)
    df["score"] = np.where(df["matches"] >= 0, df["matches"] / 32, np.nan)
    df["position"] = df["seq"] / 128
    df["model"] = pd.Categorical(df["model"], ["m1", "m2"], ordered=True)
    return df


def test_counts_runs_position_size_and_persistence(scans):
    counts = mem.memorized_counts(scans, 32)
    row = counts[(counts.model == "m1") & (counts.dataset == "standard") & (counts.step == 8)].iloc[0]
    assert row.sequences == 128 and row.memorized == len(range(0, 128, 37)) and row.rate == row.memorized / 128
    assert row.scored == 64
    final = mem.final_scans(scans)
    assert set(final.step) == {8} and len(final) == 4 * 128
    assert mem.auto_threshold(final, 32, 16) in (1, 2, 4)
    tests = mem.poisson_table(final, [16, 32], [32, 2])
    assert len(tests) == 2 * 2 * 2 * 2 and set(tests.columns) >= {"dispersion", "p_value", "chi2", "dof"}
    assert (tests[tests.threshold == 32]["mean"] > 0).all()
    runs = mem.match_runs(scans, 32)
    big = runs.set_index(["model", "dataset", "step"])["mean_match_run"]
    assert big[("m2", "standard", 8)] > big[("m1", "standard", 8)] > big[("m1", "standard", 4)]
    pos = mem.rate_by_position(final, [32, 2], bins=4)
    assert len(pos) == 4 * 4 and pos.sequences.sum() == 4 * 128
    size = mem.by_size(counts, load_suite("smoke").model_copy(
        update={"models": {"m1": load_suite("smoke").model("s1"), "m2": load_suite("smoke").model("s2")}}))
    assert list(size.non_embedding_params.unique()) != [] and set(size.step) == {8}
    kept = mem.persistence(scans, 32)
    k = kept[(kept.model == "m1") & (kept.dataset == "standard")].iloc[0]
    # memorized at step 4: seqs 0 and 37 of the 64 then seen; at step 8 the same seqs are memorized again
    assert (k.earlier, k.later, k.events_earlier, k.still_later, k.fraction_kept) == (4, 8, 2, 2, 1.0)
    for fig in (mem.plot_qq(mem.qq_data(final, "m2", [16, 64], 2)), mem.plot_match_runs(runs),
                mem.plot_position(pos), mem.plot_size(size)):
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
        shuffle_idx, sample_idx, doc_idx = (np.load(folder / f"{n}.npy") for n in ("shuffle_idx", "sample_idx", "doc_idx"))
        docs = IndexedDataset(L.text_prefix("train", dataset))
        rows = open_sequences(suite, dataset)
        for j in seqs:
            d, off = sample_idx[shuffle_idx[j]]
            doc = int(doc_idx[d])
            head = docs.get(doc, offset=int(off), length=min(8, int(docs.sizes[doc]) - int(off)))
            np.testing.assert_array_equal(rows[j][: len(head)], head)  # the document the sequence starts in
    removed = set(json.loads((L.dataset("deduped") / "dedup.json").read_text())["removed"])
    assert len([d for d in train if d["id"].split("#", 1)[0] not in removed]) == len(IndexedDataset(L.text_prefix("train", "deduped")))
    # the decoded table: sequences reached by more models first, then longer runs; only those decoded
    from pythia.data.tokenizer import load_tokenizer

    final = pd.DataFrame({"model": pd.Categorical(["s1", "s2", "s1", "s2"]), "dataset": "standard", "step": 24,
                          "seq": [5, 5, 9, 11], "match_run": [4, 6, 1, 3]})
    table = mem.memorized_sequences(final, suite, 2, 32, limit=2)
    assert table[["model", "seq", "match_run", "models"]].values.tolist() == [["s2", 5, 6, 2], ["s1", 5, 4, 2]]
    row = open_sequences(suite, "standard")[5]
    tok = load_tokenizer(suite)
    assert table.continuation[0] == tok.decode(row[32:38].tolist()) and table.prompt[0] == tok.decode(row[:32].tolist())
    assert table.source[0] == mem.sequence_sources(suite, "standard", np.array([5]))[0]
