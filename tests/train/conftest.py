"""Tiny synthetic suites for the training tests.

The data is written in the real layout with the data package's own writer
(``pythia.data.indexed.IndexedDatasetWriter``): ``work/<suite>/data/<dataset>/sequences.{bin,idx}``
(rows of seq_len + 1 tokens) and ``work/<suite>/data/validation_text_document.{bin,idx}``, so
the trainer reads it through the real ``get_batch`` / ``validation_sequences``.
Tokens follow a noisy deterministic rule (t+1 = 3 t + 1 mod 97, sometimes random), so the
loss has something to learn.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from pythia.config import load_suite

TINY = {
    "name": "tiny",
    "description": "training tests",
    "tokenizer": {"kind": "bpe", "vocab_size": 300, "pad_multiple": 128},
    "data": {"sources": ["stdlib"], "seed": 1234},
    "training": {
        "seq_len": 32,
        "global_batch": 8,
        "micro_batch": 4,
        "train_iters": 12,
        "warmup_fraction": 0.1,
        "seed": 1234,
        "zero_stage": 1,
        "val_sequences": 4,
        "checkpoints": {
            "log_spaced_until": 4,
            "every": 4,
            "state_at_fractions_before_end": [0.0, 0.21],
        },
    },
    "models": {
        "t1": {
            "num_layers": 1,
            "hidden_size": 16,
            "num_heads": 2,
            "peak_lr": 3.0e-3,
            "min_lr": 3.0e-4,
        },
        "t2": {
            "num_layers": 2,
            "hidden_size": 32,
            "num_heads": 2,
            "peak_lr": 2.0e-3,
            "min_lr": 2.0e-4,
        },
    },
}


def _tokens(rng: np.random.Generator, rows: int, width: int, vocab: int) -> np.ndarray:
    out = np.empty((rows, width), dtype=np.int64)
    out[:, 0] = rng.integers(1, 97, rows)
    for j in range(1, width):
        out[:, j] = (3 * out[:, j - 1] + 1) % 97
        noise = rng.random(rows) < 0.2
        out[noise, j] = rng.integers(1, vocab, int(noise.sum()))
    return out


def write_suite_data(work: Path, suite_cfg: dict, steps: int | None = None) -> None:
    """Sequences for both datasets and a validation split, in the real file layout."""
    from pythia.data.indexed import IndexedDatasetWriter

    t = suite_cfg["training"]
    width = t["seq_len"] + 1
    rows = t["global_batch"] * (steps or t["train_iters"])
    vocab = suite_cfg["tokenizer"]["vocab_size"]
    root = work / suite_cfg["name"] / "data"
    for k, dataset in enumerate(("standard", "deduped")):
        rng = np.random.default_rng(100 + k)
        with IndexedDatasetWriter(root / dataset / "sequences", np.uint16) as w:
            w.add_rows(_tokens(rng, rows, width, vocab))
    rng = np.random.default_rng(7)
    with IndexedDatasetWriter(root / "validation_text_document", np.uint16) as w:
        for doc in _tokens(rng, 16, width, vocab):
            w.add_item(doc)
            w.end_document()


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A directory with tiny.yaml and work/tiny/data built once per session."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    write_suite_data(root / "work", TINY)
    return root


@pytest.fixture
def tiny(tiny_root, monkeypatch):
    """(suite, yaml path, env for subprocesses) with PYTHIA_WORK pointing at the tiny work dir."""
    work = tiny_root / "work"
    monkeypatch.setenv("PYTHIA_WORK", str(work))
    env = {**os.environ, "PYTHIA_WORK": str(work), "OMP_NUM_THREADS": "1"}
    path = tiny_root / "tiny.yaml"
    return load_suite(path), path, env
