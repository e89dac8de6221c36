"""Section 03's analysis on hand-made measures: the trajectories, the final table, the closing
note and the figures, and the published numbers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from pythia.analysis import gender_intervention as gi
from pythia.config import load_suite


def _frame():
    rows = []
    for run, variant, shift in (
        ("deduped", "baseline", 0.0),
        ("deduped-intervention", "intervention", 0.5),
    ):
        for step in (16, 24) if variant == "baseline" else (24,):
            for metric in ("pronoun_logodds", "val_loss"):
                rows.append(
                    {
                        "run": run,
                        "variant": variant,
                        "model": "s1",
                        "step": step,
                        "tokens_seen": step * 256,
                        "metric": metric,
                        "value": 1.0 + (shift if step == 24 else 0),
                        "stderr": 0.1,
                        "n": 10,
                    }
                )
    return pd.DataFrame(rows)


def test_trajectories_final_table_and_figures():
    suite = load_suite("smoke")
    df = _frame()
    traj = gi.trajectories(df, suite)
    iv = traj[traj["variant"] == "intervention"]
    assert sorted(iv["step"].unique()) == [16, 24]  # starts at the baseline's value at step 16
    final = gi.final_table(df)
    assert set(final["metric"]) == {"pronoun_logodds", "val_loss"} and (final["shift"] == 0.5).all()
    assert "+0.500" in gi.closing_note(final, pd.DataFrame())
    plt.close(gi.plot_trajectories(traj))
    pub = gi.published_trajectories()
    assert {"baseline", "intervention"} <= set(pub["variant"]) and (
        pub["metric"] == "crows_pct_stereotype"
    ).any()
    plt.close(gi.plot_published(pub))
    assert not gi.published_final().empty
