"""Section 05, term frequencies, on trained smoke checkpoints (pythia/evaluate/term_frequencies.py):
the lm-eval generation tasks score the first integer of the generation, and the evaluation runs
unchanged on a directory laid out as Pythia's released checkpoints."""

from __future__ import annotations

import re
import shutil

import pandas as pd

from pythia import runs
from pythia.config import register_suite_file
from pythia.evaluate import term_frequencies as tf
from pythia.runs import open_catalogue


def test_evaluation_takes_the_first_integer(smoke_run, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    # two checkpoints, one tokenizer: lm-eval's tokenizations are remembered on it
    loads = []
    with monkeypatch.context() as m:
        real = runs.Checkpoint.load_tokenizer
        m.setattr(
            runs.Checkpoint, "load_tokenizer", lambda self: loads.append(self.step) or real(self)
        )
        m.setattr(tf, "evaluation_steps", lambda suite, selected: [16, 24])
        two = tf.evaluate(
            open_catalogue("smoke", steps=[16, 24]),
            "s1",
            "standard",
            tmp_path / "two.parquet",
            batch_size=32,
            progress=False,
        )
    assert loads == [16] and sorted(pd.read_parquet(two)["step"].unique()) == [16, 24]
    cat = open_catalogue("smoke", steps=[24])
    out = tf.evaluate(cat, "s1", "standard", tmp_path / "s1.parquet", batch_size=32, progress=False)
    df = pd.read_parquet(out)
    spec = cat.suite.analysis.term_frequencies
    assert sorted(df["step"].unique()) == [24] and set(df["k"]) == set(spec.shots)
    assert (
        len(tf.documents(spec, "paper")) == 10 * 1 * len(spec.shots)
        and len(tf.documents(spec, "simple")) == 5 * 2
    )
    heldout = tf.documents(spec, "heldout", cat.suite)
    assert heldout and all(
        re.search(r"(plus|times|sum|product|Adding|Multiplying)", d["context"]) for d in heldout
    )
    assert all(tf.answer(d["op"], d["x1"], d["x2"]) == d["target"] and d["k"] == 0 for d in heldout)
    assert set(df["set"]) == {"paper", "simple", "heldout"} and len(df) == 10 * 2 + 5 * 2 + len(
        heldout
    )

    def first_integer(text):
        m = re.search(r"-?\d+", text)
        return m.group(0) if m else None

    assert (df["answer"] == df["generation"].map(first_integer).fillna("[no integer]")).all()
    assert ((df["answer"] == df["target"]).astype(float) == df["correct"]).all()
    assert not df["generation"].str.contains("\n").any()  # stops at the newline


def test_evaluation_on_a_local_released_layout(smoke_run, monkeypatch, tmp_path):
    """Unchanged on released checkpoints: a suite extending ``pythia`` (the paper's steps), read from a
    directory laid out as Pythia's download (the smoke model saved as pythia-70m-deduped/step143000)."""
    root = tmp_path / "released"
    shutil.copytree(
        smoke_run / "smoke" / "models" / "standard" / "s1" / "step24",
        root / "pythia-70m-deduped" / "step143000",
    )
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "pythia_tf.yaml").write_text(
        "extends: pythia\nname: pythia_tf\nanalysis:\n  term_frequencies:\n    shots: [0]\n    operations: [plus]\n"
        "    operands: {x1: [0, 3], x2: [1, 50], x2_values: [1]}\n"
    )
    monkeypatch.setenv("PYTHIA_SUITE_PATH", "")
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    suite = register_suite_file(tmp_path / "suites" / "pythia_tf.yaml")
    assert suite.analysis.term_frequencies.steps == [13000, 39000, 65000, 91000, 117000, 143000]
    cat = open_catalogue(suite, "local", root)
    df = pd.read_parquet(tf.evaluate(cat, "70M", "deduped", tmp_path / "e.parquet", progress=False))
    assert (
        set(df["step"]) == {143000}
        and sorted(df["x1"]) == [0, 1, 2, 3]
        and set(df["model"]) == {"70M"}
    )
