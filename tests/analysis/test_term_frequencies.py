"""Section 05, term frequencies, the tables and figures (pythia/analysis/term_frequencies.py),
from synthetic counts and results. Counting and prompts: tests/evaluate/test_term_frequencies.py."""

from __future__ import annotations

import pandas as pd

from pythia.analysis import term_frequencies as tf


def test_summaries_and_figures_from_synthetic_results():
    counts = pd.DataFrame(
        [
            {"dataset": d, "step": s, "x1": x, "count": int((x + 1) * s)}
            for d in ("standard", "deduped")
            for s in (8, 24)
            for x in range(20)
        ]
    )
    results = pd.DataFrame(
        [
            {
                "model": m,
                "dataset": d,
                "step": s,
                "set": "paper",
                "op": "plus",
                "k": k,
                "x1": x,
                "x2": 1,
                "target": str(x + 1),
                "generation": "",
                "answer": "",
                "correct": float(x >= 15),
            }
            for m in ("s1", "s2")
            for d in ("standard", "deduped")
            for s in (8, 24)
            for k in (0, 2)
            for x in range(20)
        ]
    )
    acc = tf.accuracy_per_x1(results, counts)
    gap = tf.frequency_gap(acc, shots=(0, 2))
    assert (
        len(gap) == 2 * 2 * 2 * 2 and (gap["gap"] == 50.0).all()
    )  # top 10 are x1 10..19: half correct
    bins = tf.binned(acc, bins=4)
    assert (
        bins["accuracy"].between(0, 1).all()
        and bins.groupby(["model", "dataset", "step", "k"]).size().max() <= 4
    )
    curves = tf.figure_data(bins, dataset=tf.main_dataset(["standard", "deduped"]))
    assert set(curves["dataset"]) == {"deduped"} and set(curves["k"]) == {2}
    fig = tf.plot_accuracy_vs_frequency(curves)
    assert len(fig.axes) == 2
    dist = tf.count_distribution(counts)
    assert dist.loc[(dist["rank"] == 1) & (dist["step"] == 24), "x1"].eq(19).all()
    assert len(tf.plot_count_distribution(dist).axes) == 2
    assert (tf.skew(counts)["max_over_min"] == 20).all()
