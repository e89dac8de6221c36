"""Seed runs in the trainer: the init seed changes the initial weights (deterministically), the
data-order seed the batches, each alone for the decoupled kinds; the run's files record both."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import GPTNeoXForCausalLM

from pythia import paths
from pythia.cli import main
from pythia.data.batches import batch_hash, get_batch
from pythia.data.indexed import IndexedDatasetWriter
from pythia.data.order import seed_order_dir
from pythia.model import build_model
from pythia.train import checkpoint as ckpt
from pythia.train.loop import Trainer, TrainOptions, train

from .helpers import read_log


@pytest.fixture
def seed_tiny(tiny, tmp_path, monkeypatch):
    """The tiny suite with its data copied to a work dir of this test (seed orders and runs go there)."""
    suite, _, _ = tiny
    shutil.copytree(paths.data_dir(suite.name), tmp_path / "work" / suite.name / "data")
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    return suite


def _write_seed_order(suite, dataset: str, seed: int) -> np.ndarray:
    """A stand-in seeded order (the tiny suite has sequences but no corpus to reorder): the
    baseline's rows reversed, with the order.json that marks it complete."""
    base = np.concatenate(
        [get_batch(suite, dataset, s) for s in range(suite.training.train_iters)]
    )  # (N, L+1)
    rows = base[::-1].copy()
    out = seed_order_dir(suite.name, dataset, seed)
    with IndexedDatasetWriter(out / "sequences", np.uint16) as w:
        w.add_rows(rows)
    (out / "order.json").write_text(json.dumps({"seed": seed}))
    return rows


def _trainer(suite, tmp_path, **kw) -> Trainer:
    return Trainer(TrainOptions(suite=suite, model="t1", out=tmp_path / "x", threads=1, **kw))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_init_seed_changes_the_initial_weights_deterministically(seed_tiny, tmp_path):
    suite = seed_tiny
    _write_seed_order(suite, "standard", 1)
    base = _trainer(suite, tmp_path).model.state_dict()
    seed1 = _trainer(suite, tmp_path, seed=1).model.state_dict()
    again = _trainer(suite, tmp_path, seed=1).model.state_dict()
    weight1 = _trainer(suite, tmp_path, seed=1, vary="weight").model.state_dict()
    data1 = _trainer(suite, tmp_path, seed=1, vary="data").model.state_dict()
    assert not _same(base, seed1) and _same(seed1, again)
    assert _same(seed1, weight1)  # the same init seed
    assert _same(base, data1)  # a data-seed run keeps the baseline's init
    assert _same(seed1, build_model(suite, "t1", seed=1, device="cpu").state_dict())


def test_data_seed_changes_only_the_batches(seed_tiny, tmp_path):
    suite = seed_tiny
    rows = _write_seed_order(suite, "deduped", 2)
    b = suite.training.global_batch
    data2 = _trainer(suite, tmp_path, dataset="deduped", seed=2, vary="data")
    weight2 = _trainer(suite, tmp_path, dataset="deduped", seed=2, vary="weight")
    for s in (0, 5):
        assert np.array_equal(data2.load_batch(s)[0], rows[b * s : b * (s + 1)])
        assert np.array_equal(weight2.load_batch(s)[0], get_batch(suite, "deduped", s))
    assert not np.array_equal(data2.load_batch(0)[0], get_batch(suite, "deduped", 0))
    # the same held-out text for every seed
    assert np.array_equal(data2.validation_tokens, weight2.validation_tokens)


def test_seed_run_trains_into_its_own_run_and_records_its_seeds(seed_tiny):
    suite = seed_tiny
    rows = _write_seed_order(suite, "standard", 1)
    summary = train(TrainOptions(suite=suite, model="t1", seed=1, threads=1))
    run_dir = paths.run_dir(suite.name, "standard-seed1", "t1")
    assert summary["finished"] and (run_dir / "done.json").is_file()
    assert paths.list_runs(suite.name) == ["standard-seed1"]
    done = json.loads((run_dir / "done.json").read_text())
    want = {"run": "standard-seed1", "seed": 1, "seed_vary": "both", "init_seed": 1, "data_seed": 1}
    assert {k: done[k] for k in want} == want and done["dataset"] == "standard"
    assert done["run_digest"] == ckpt.run_digest(
        suite, "t1", "standard", suite.run_seeds("standard-seed1")
    )
    assert done["run_digest"] == ckpt.seed_run_digest(suite, "t1", "standard-seed1")
    assert done["run_digest"] != ckpt.run_digest(suite, "t1", "standard")
    info = json.loads((run_dir / "step4" / "pythia_checkpoint.json").read_text())
    assert {k: info[k] for k in want} == want
    b = suite.training.global_batch
    for r in read_log(run_dir)[1:]:
        assert r["batch_hash"] == batch_hash(rows[b * r["batch"] : b * (r["batch"] + 1)])
    step0 = ckpt.model_dir(run_dir, 0)
    m0 = GPTNeoXForCausalLM.from_pretrained(step0).state_dict()
    assert _same(build_model(suite, "t1", seed=1, device="cpu").state_dict(), m0)


def test_baseline_digest_is_unchanged_by_seeds(tiny):
    suite, _, _ = tiny
    for d in paths.DATASETS:
        assert ckpt.run_digest(suite, "t1", d) == ckpt.run_digest(
            suite, "t1", d, suite.run_seeds(d)
        )
    digests = {
        ckpt.seed_run_digest(suite, "t1", r)
        for r in (
            "standard-seed1",
            "standard-data-seed1",
            "standard-weight-seed1",
            "standard-seed2",
        )
    }
    assert len(digests) == 4
    with pytest.raises(ValueError, match="unknown run"):
        ckpt.seed_run_digest(suite, "t1", "standard-seed0")


@pytest.mark.parametrize(
    "argv, expect",
    [
        (
            ["data", "build", "--suite", "smoke", "--data-seed", "2"],
            "--data-seed builds one dataset's order: add --stage order --dataset standard|deduped",
        ),
        (
            ["train", "--suite", "smoke", "--model", "s1", "--seed", "-1"],
            "a seed run's seed is an integer >= 1 (seed 0 is the baseline), got -1",
        ),
        (
            ["benchmarks", "evaluate", "--suite", "smoke", "--model", "s1", "--dataset", "standard",
             "--run", "deduped-seed1", "--tasks-json", "t.json", "--out", "o.csv"],
            "--run deduped-seed1 is not a seed run of --dataset standard; give e.g. --run standard-seed1",
        ),
    ],
)  # fmt: skip
def test_seed_options_fail_in_one_line(argv, expect, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(expect), err
