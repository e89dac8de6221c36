"""Section 03's driver on the smoke run: a run's window checkpoints scored with what they share
read once."""

from __future__ import annotations

import pandas as pd
import pytest
import transformers

from pythia import runs
from pythia.config import load_suite
from pythia.data.pronouns import suite_map
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
