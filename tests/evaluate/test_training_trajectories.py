"""Section 06's evaluate step reads its validation sequences from the suite's split or, given
``--validation FILE``, from a tokenized file (pythia/data/validation.py)."""

from __future__ import annotations

import json

import numpy as np

from pythia.cli import main
from pythia.config import load_suite
from pythia.data.batches import validation_sequences
from pythia.evaluate import training_trajectories as tt


def _hallucination_and_tasks(tmp_path):
    hal = tmp_path / "hallucination.npz"
    z = np.zeros((4, 8), dtype=np.int64)
    np.savez(hal, prompts=z, generated=z + 1, true=z + 2)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tasks.json").write_text(json.dumps([]))
    return hal, tasks


def test_inputs_read_the_validation_file_when_given(smoke_data, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    suite = load_suite("smoke")  # val_sequences 4 of seq_len + 1 = 65
    hal, tasks = _hallucination_and_tasks(tmp_path)
    default = tt._read_inputs(suite, hal, tasks)
    np.testing.assert_array_equal(default.val, validation_sequences(suite, 4))
    stream = np.random.default_rng(3).integers(0, 512, size=5 * 100, dtype=np.int64)
    lines = [json.dumps(stream[i : i + 100].tolist()) for i in range(0, len(stream), 100)]
    (tmp_path / "val.jsonl").write_text("\n".join(lines) + "\n")
    given = tt._read_inputs(suite, hal, tasks, tmp_path / "val.jsonl")
    np.testing.assert_array_equal(given.val, stream[: 4 * 65].reshape(4, 65))
    np.testing.assert_array_equal(given.gen_rows, default.gen_rows)


def test_the_evaluate_command_passes_its_validation_file(smoke_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    monkeypatch.delenv("PYTHIA_DEBUG", raising=False)
    hal, tasks = _hallucination_and_tasks(tmp_path)
    np.save(tmp_path / "short.npy", np.zeros((3, 65), dtype=np.uint16))
    argv = ["training-trajectories", "evaluate", "--suite", "smoke", "--dataset", "standard"]
    argv += ["--model", "s1", "--hallucination", str(hal), "--tasks", str(tasks)]
    argv += ["--out-dir", str(tmp_path / "out"), "--validation", str(tmp_path / "short.npy")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: validation file" in err and "short.npy holds 3 sequences of 65 tokens" in err
    assert (
        "section 06 (analysis.training_trajectories.val_sequences) needs 4: give more with" in err
    )
    assert not (tmp_path / "out").exists()
