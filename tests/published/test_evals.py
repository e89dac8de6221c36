"""The published-numbers converter on three real JSONs of EleutherAI's evals/pythia-v1 (and one
batch-size ablation it must leave out), and the committed table it made."""

from __future__ import annotations

from pathlib import Path

import pytest

from pythia.errors import MissingInputError
from pythia.published import evals

FIXTURES = Path(__file__).parent / "fixtures" / "pythia-v1"


def test_convert_reads_the_expected_rows(tmp_path):
    df = evals.convert(FIXTURES)
    assert list(df.columns) == evals.COLUMNS
    # three files (the 0.25MtokBS ablation is left out), 8 tasks: acc everywhere, acc_norm on the
    # 5 multiple-choice tasks that report it, perplexity on LAMBADA
    assert set(
        map(
            tuple, df[["model", "dataset", "step", "num_fewshot"]].drop_duplicates().values.tolist()
        )
    ) == {("70M", "standard", 143000, 0), ("160M", "deduped", 13000, 5), ("1B", "standard", 0, 0)}
    assert len(df) == 3 * (8 + 5 + 1)
    row = df[
        (df.model == "160M") & (df.task == "lambada_openai") & (df.metric == "perplexity")
    ].iloc[0]
    assert (row.value, row.stderr, row.num_fewshot) == (73.7845, 2.8, 5)
    assert row.tokens == 13000 * 2097152 and row.source == "published" and row.params == 162322944
    piqa = df[(df.model == "1B") & (df.task == "piqa") & (df.metric == "acc")].iloc[0]
    assert piqa.value == 0.525571 and piqa.params == 1011781632
    assert df[
        (df.model == "70M") & (df.task == "lambada_openai") & (df.metric == "acc")
    ].value.item() == pytest.approx(0.185, abs=6e-4)
    # written with its sidecar, read back equal
    table = evals.write(FIXTURES, tmp_path / "t.csv")
    meta = (tmp_path / "t.json").read_text()
    assert "Apache-2.0" in meta and "evals/pythia-v1" in meta
    assert evals.load(table).equals(df.astype({"params": "int64"}))


def test_missing_source_names_it(tmp_path):
    with pytest.raises(MissingInputError, match=str(tmp_path)):
        evals.convert(tmp_path)


def test_committed_table_covers_the_paper():
    df = evals.load()
    assert set(df.task) == set(evals.TASKS) and set(df.num_fewshot) == {0, 5}
    assert set(df.dataset) == {"standard", "deduped"} and df.model.nunique() == 8
    final = df[
        (df.step == 143000)
        & (df.num_fewshot == 0)
        & (df.dataset == "standard")
        & (df.metric == "acc")
    ]
    assert final.set_index(["model", "task"]).value[("160M", "sciq")] == pytest.approx(0.741)
