"""Section 03's driver on the smoke run: a run's window checkpoints scored with what they share
read once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import transformers

from pythia import runs
from pythia.cli import main
from pythia.config import load_suite
from pythia.data.batches import validation_sequences
from pythia.data.pronouns import suite_map
from pythia.errors import UsageError
from pythia.evaluate import bias
from pythia.evaluate import gender_intervention as gi


def test_evaluate_run_reads_its_inputs_and_tokenizer_once(smoke_run, tmp_path, monkeypatch):
    """A run's checkpoints share what does not depend on them: the held-out pronoun rows and the
    validation sequences are read once, the tokenizer built once; each checkpoint's rows are
    those it gets on its own."""
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    suite = load_suite("smoke")
    cat = runs.open_catalogue(suite)
    tasks = bias.write_tasks(tmp_path / "tasks", suite, 4)
    reads, builds = [], []
    real_heldout, real_auto = bias.heldout_tokens, transformers.AutoTokenizer.from_pretrained

    def heldout(s):
        reads.append(s.name)
        return real_heldout(s)

    def from_pretrained(*a, **k):
        builds.append(a)
        return real_auto(*a, **k)

    monkeypatch.setattr(bias, "heldout_tokens", heldout)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    monkeypatch.setattr(runs, "_TOKENIZERS", type(runs._TOKENIZERS)())
    out = gi.evaluate_run(suite, cat, "standard", "s1", tasks, tmp_path / "standard.csv")
    df = pd.read_csv(out)
    from_checkpoints = [
        a for a in builds if "/models/" in str(a[0])
    ]  # (the pronoun map reads the suite's own)
    assert sorted(df.step.unique()) == [16, 24] and len(reads) == 1 and len(from_checkpoints) == 1
    assert {"crows_pct_stereotype", "winobias_pro", "pronoun_logodds", "val_loss"} <= set(df.metric)
    alone = gi.evaluate_checkpoint(
        cat.checkpoint("s1", "standard", 16), suite, suite_map(suite), tasks
    )
    got = df[df.step == 16].set_index("metric").value
    for r in alone:
        assert got[r["metric"]] == pytest.approx(r["value"], nan_ok=True), r["metric"]


def test_run_inputs_read_the_validation_file_when_given(smoke_data, tmp_path, monkeypatch):
    """Without a file the validation sequences are the suite's split (as before); with one they
    are its rows, the pronoun rows unchanged; too few rows name the numbers and the way on."""
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    suite = load_suite("smoke")
    pmap = suite_map(suite)
    default = gi.run_inputs(suite, pmap)
    np.testing.assert_array_equal(default["val"], validation_sequences(suite, 8))
    rows = np.random.default_rng(0).integers(0, 512, size=(9, 65), dtype=np.int64)
    np.save(tmp_path / "val.npy", rows)
    given = gi.run_inputs(suite, pmap, tmp_path / "val.npy")
    np.testing.assert_array_equal(given["val"], rows[:8])
    np.testing.assert_array_equal(given["pronoun_rows"], default["pronoun_rows"])
    np.save(tmp_path / "short.npy", rows[:7])
    with pytest.raises(UsageError) as e:
        gi.run_inputs(suite, pmap, tmp_path / "short.npy")
    assert (
        "short.npy holds 7 sequences of 65 tokens, section 03 (training.val_sequences) needs 8: "
        in str(e.value)
        and "--config validation=PATH or --validation PATH" in str(e.value)
    )


def test_the_evaluate_command_passes_its_validation_file(smoke_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    monkeypatch.delenv("PYTHIA_DEBUG", raising=False)
    np.save(tmp_path / "short.npy", np.zeros((3, 65), dtype=np.uint16))
    argv = [
        "gender-intervention",
        "evaluate",
        "--suite",
        "smoke",
        "--run",
        "standard",
        "--model",
        "s1",
    ]
    argv += [
        "--out",
        str(tmp_path / "m.csv"),
        "--validation",
        str(tmp_path / "short.npy"),
        "--no-progress",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: validation file" in err and "holds 3 sequences of 65 tokens, section 03" in err
    assert not (tmp_path / "m.csv").exists()
