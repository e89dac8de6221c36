"""The seed-spread helpers on hand-made frames, every value worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from pythia.analysis import seeds


def test_split_runs_reads_seed_and_kind_from_the_run_name():
    df = seeds.split_runs(
        pd.DataFrame(
            {"run": ["standard", "deduped-seed2", "standard-data-seed1", "deduped-weight-seed3"]}
        )
    )
    assert df["dataset"].tolist() == ["standard", "deduped", "standard", "deduped"]
    assert df["seed"].tolist() == [0, 2, 1, 3]
    assert df["vary"].tolist() == ["both", "both", "data", "weight"]
    # the baseline is seed 0 of every kind present
    both = seeds.with_baseline_per_kind(df)
    assert sorted(both[both["seed"] == 0]["vary"]) == ["both", "data", "weight"]


def test_seed_bands_mean_sd_min_max_per_step():
    df = pd.DataFrame(
        {
            "model": ["m"] * 6,
            "dataset": ["standard"] * 6,
            "seed": [0, 1, 2, 0, 1, 2],
            "step": [1, 1, 1, 2, 2, 2],
            "tokens_seen": [10, 10, 10, 20, 20, 20],
            "value": [1.0, 2.0, 6.0, 4.0, 4.0, np.nan],
        }
    )
    b = seeds.seed_bands(df, "value", by=["model", "dataset"], extra=["tokens_seen"])
    one, two = b.iloc[0], b.iloc[1]
    # step 1: 1, 2, 6 -> mean 3, sd sqrt(((-2)^2 + (-1)^2 + 3^2) / 2) = sqrt(7)
    assert (one.n_seeds, one["mean"], one["min"], one["max"], one.tokens_seen) == (
        3,
        3.0,
        1.0,
        6.0,
        10,
    )
    assert one.sd == pytest.approx(np.sqrt(7))
    # step 2: the missing seed is left out: 4, 4 -> sd 0
    assert (two.n_seeds, two["mean"], two.sd) == (2, 4.0, 0.0)


def _finals(values: dict) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"model": m, "dataset": d, "seed": s, "loss": v}
            for (m, d), per_seed in values.items()
            for s, v in enumerate(per_seed)
        ]
    )


def test_seed_spread_gap_against_seed_noise():
    finals = _finals(
        {
            ("A", "standard"): [5.0, 5.2, 5.4],
            ("A", "deduped"): [5.1, 5.1, 5.4],
            ("B", "standard"): [3.0, 3.01, 3.02],
            ("B", "deduped"): [3.5, 3.51, 3.49],
        }
    )
    t = seeds.seed_spread(finals, "loss").set_index(["model", "quantity"])
    a_std, a_ded, a_gap = (t.loc[("A", q)] for q in ("standard", "deduped", "standard - deduped"))
    assert (a_std.n_seeds, a_std["mean"], a_std["min"], a_std["max"]) == (
        3,
        pytest.approx(5.2),
        5.0,
        5.4,
    )
    assert a_std.sd == pytest.approx(0.2)
    assert a_ded.sd == pytest.approx(np.sqrt(0.03))  # deviations -0.1, -0.1, 0.2
    # gaps per seed: -0.1, +0.1, 0.0 -> mean 0, sd 0.1; noise sqrt((0.04 + 0.03) / 2)
    assert a_gap["mean"] == pytest.approx(0.0, abs=1e-12) and a_gap.sd == pytest.approx(0.1)
    assert a_gap.noise_sd == pytest.approx(np.sqrt(0.035))
    assert a_gap.gap_exceeds_2sd_noise == "no"
    assert a_gap["values"] == "seed 0: -0.1000; seed 1: 0.1000; seed 2: 0.0000"
    b_gap = t.loc[("B", "standard - deduped")]
    # gaps -0.5, -0.5, -0.47: mean -0.49, sd sqrt(0.0003); noise: both sds 0.01
    assert b_gap["mean"] == pytest.approx(-0.49) and b_gap.sd == pytest.approx(np.sqrt(0.0003))
    assert b_gap.noise_sd == pytest.approx(0.01)
    assert b_gap.gap_exceeds_2sd_noise == "yes"
    assert np.isnan(t.loc[("B", "standard"), "noise_sd"])


def test_seed_spread_pairs_by_seed_and_survives_one_seed():
    finals = _finals({("A", "standard"): [2.0, 3.0], ("A", "deduped"): [1.0]})
    t = seeds.seed_spread(finals, "loss").set_index("quantity")
    gap = t.loc["standard - deduped"]
    assert (gap.n_seeds, gap["mean"]) == (1, 1.0)  # only seed 0 is in both
    assert np.isnan(gap.sd) and np.isnan(gap.noise_sd) and gap.gap_exceeds_2sd_noise == ""
    only = seeds.seed_spread(_finals({("A", "standard"): [2.0, 3.0]}), "loss")
    assert only["quantity"].tolist() == ["standard"]  # no gap without both datasets


def test_plot_seed_bands_draws_a_band_per_dataset():
    bands = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "dataset": ["standard", "standard", "deduped", "deduped"],
            "step": [1, 2, 1, 2],
            "n_seeds": [3] * 4,
            "mean": [2.0, 1.0, 2.5, 1.5],
            "min": [1.5, 0.5, 2.0, 1.0],
            "max": [2.5, 1.5, 3.0, 2.0],
        }
    )
    fig = seeds.plot_seed_bands(bands, row=None, col="model", x="step", ylabel="y", title="t")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["standard (n=3)", "deduped (n=3)"]
    assert ax.get_lines()[1].get_ydata().tolist() == [2.5, 1.5]
    assert len(ax.collections) == 2  # one band each
