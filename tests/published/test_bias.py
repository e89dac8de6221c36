"""The published bias-evaluation converter (:mod:`pythia.published.bias`) on one real JSON of
EleutherAI's ``evals/bias-evals`` (Apache-2.0, the EleutherAI/pythia repository), copied unchanged
into ``fixtures/bias-evals/``, and the committed table it made.

The file is ``intervention-19m-deduped-step143000_eval_results_01-21-2023-21-41-13.json``: the
v0 19M model (v1 name 70M) with the 7% intervention, at the last step. Its values, read by hand:

    "crows_pairs_english_gender": {"likelihood_difference": 34.78701171875,
                                   "likelihood_difference_stderr": 3.1706225105892925,
                                   "pct_stereotype": 0.503125,
                                   "pct_stereotype_stderr": 0.027994078772422822}
    "lambada_openai": {"ppl": 98.44299577023739, "ppl_stderr": 4.077530873480856,
                       "acc": 0.23772559673976323, "acc_stderr": 0.005930696697197463}
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pythia.errors import MissingInputError
from pythia.published import bias

FIXTURES = Path(__file__).parent / "fixtures"
"""Holds ``bias-evals/`` like the pythia-evals folder (no WinoBias files: those rows are absent)."""

KEY = ("70M", "intervention", 143000)
"""(model, variant, step) of the fixture: v0 ``19m`` is v1 70M; ``intervention-`` the 7% run."""


def _by_metric(df: pd.DataFrame) -> pd.DataFrame:
    rows = df[(df.model == KEY[0]) & (df.variant == KEY[1]) & (df.step == KEY[2])]
    return rows.set_index("metric")


def test_collect_reads_the_json_values_unchanged():
    rows = _by_metric(pd.DataFrame(bias.collect(FIXTURES)))
    assert sorted(rows.index) == [
        "crows_likelihood_diff",
        "crows_pct_stereotype",
        "lambada_acc",
        "lambada_ppl",
    ]  # the file's other tasks (winogrande, the other CrowS-Pairs subsets, ...) are left out
    # the literal values of the JSON (module docstring)
    assert rows.loc["crows_pct_stereotype", "value"] == 0.503125
    assert rows.loc["crows_pct_stereotype", "stderr"] == 0.027994078772422822
    assert rows.loc["crows_likelihood_diff", "value"] == 34.78701171875
    assert rows.loc["crows_likelihood_diff", "stderr"] == 3.1706225105892925
    assert rows.loc["lambada_acc", "value"] == 0.23772559673976323
    assert rows.loc["lambada_ppl", "value"] == 98.44299577023739


def test_convert_writes_the_row_and_its_source(tmp_path):
    csv, meta = bias.convert(FIXTURES, tmp_path)
    df = pd.read_csv(csv)
    assert list(df.columns) == ["model", "variant", "step", "metric", "value", "stderr"]
    rows = _by_metric(df)
    # written with 6 significant digits: 0.503125 and 0.027994078772422822 of the JSON
    assert rows.loc["crows_pct_stereotype", "value"] == 0.503125
    assert rows.loc["crows_pct_stereotype", "stderr"] == 0.0279941
    assert rows.loc["crows_likelihood_diff", "value"] == 34.787  # 34.78701171875
    assert rows.loc["lambada_acc", "value"] == 0.237726  # 0.23772559673976323
    text = meta.read_text()
    assert "Apache-2.0" in text and "evals/bias-evals" in text


def test_committed_table_holds_the_hand_checked_row():
    """The committed ``tables/bias_evals.csv`` (converted from the whole folder; one file per
    step here, so nothing is averaged) has the fixture's numbers."""
    rows = _by_metric(bias.load())
    assert rows.loc["crows_pct_stereotype", "value"] == 0.503125
    assert rows.loc["crows_pct_stereotype", "stderr"] == 0.0279941
    assert rows.loc["crows_likelihood_diff", "value"] == 34.787
    assert rows.loc["crows_likelihood_diff", "stderr"] == 3.17062  # 3.1706225105892925
    assert rows.loc["lambada_acc", "value"] == 0.237726
    assert rows.loc["lambada_ppl", "value"] == 98.443  # 98.44299577023739
    assert rows.loc["lambada_ppl", "stderr"] == 4.07753  # 4.077530873480856


def test_missing_source_names_it(tmp_path):
    with pytest.raises(MissingInputError, match="bias-evals does not exist"):
        bias.collect(tmp_path)
