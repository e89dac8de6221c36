"""The gender intervention's trainer on the smoke suite: the intervened run's start, replay,
interruption and resume, the swap in every logged batch, and the error without earlier state.

One baseline (smoke s1 on the deduplicated data, state every 8 steps) is trained in-process into a
temporary work directory that shares the session's smoke data; its state at the start step 16 is
set aside and removed, so the intervened run must resume from step 8 and replay 8 batches.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file

from pythia import paths
from pythia.config import load_suite
from pythia.data.batches import batch_hash, get_batch
from pythia.data.pronouns import suite_map, swap
from pythia.train import checkpoint as ckpt
from pythia.train.intervention import InterventionError, train_intervention
from pythia.train.loop import TrainOptions, train

OVERRIDES = {"training": {"checkpoints": {"state_every": 8}}}


@pytest.fixture(scope="module")
def baseline(smoke_data, tmp_path_factory):
    """(work dir, suite, the baseline's state at step 16 set aside) with PYTHIA_WORK pointing at it."""
    work = tmp_path_factory.mktemp("gi_work")
    (work / "smoke").mkdir()
    (work / "smoke" / "data").symlink_to(smoke_data / "smoke" / "data")
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHIA_WORK", str(work))
    suite = load_suite("smoke", OVERRIDES)
    train(TrainOptions(suite=suite, model="s1", dataset="deduped", threads=1, progress=False))
    run = paths.run_dir("smoke", "deduped", "s1")
    aside = work / "state16"
    shutil.move(str(ckpt.state_dir(run, 16)), aside)
    yield work, suite, aside
    mp.undo()


def _opts(suite, out=None, **kw):
    return TrainOptions(suite=suite, model="s1", threads=1, progress=False, out=out, **kw)


def test_intervened_run_starts_from_the_baseline_and_swaps_every_batch(baseline):
    _work, suite, aside = baseline
    done = train_intervention(_opts(suite), "intervention")
    run = paths.run_dir("smoke", "deduped-intervention", "s1")
    base = paths.run_dir("smoke", "deduped", "s1")
    assert done["finished"] and done["start_step"] == 16
    assert done["state_step"] == 8 and done["replayed_steps"] == 8
    # replayed unmodified steps reproduce the baseline: weights at the start are its checkpoint's
    assert done["start_matches_baseline"] is True
    # weights and optimizer state at the first intervened step equal the baseline's state there
    mine, theirs = ckpt.state_dir(run, 16), aside
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(str(mine / name)), load_file(str(theirs / name))
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), name
    # the log: one record per step, the original batch's hash is the baseline's, no masculine token survives
    pmap = suite_map(suite)
    lut = pmap.lut()
    recs = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    base_recs = {
        r["step"]: r for r in map(json.loads, (base / "train_log.jsonl").read_text().splitlines())
    }
    assert [r["step"] for r in recs] == list(range(16, 25))
    for r in recs[1:]:
        original = get_batch(suite, "deduped", r["batch"])
        swapped, n = swap(original, lut)
        assert (
            r["original_batch_hash"] == base_recs[r["step"]]["batch_hash"] == batch_hash(original)
        )
        assert r["batch_hash"] == batch_hash(swapped) and r["swaps"] == n
        assert not np.isin(swapped, pmap.masculine).any()
    assert done["swaps"] == sum(r["swaps"] for r in recs[1:]) > 0
    assert ckpt.saved_steps(run) == [16, 24]  # the suite's checkpoint steps from the start on


def test_interrupted_intervened_run_resumes_bit_identically(baseline, tmp_path):
    _, suite, _ = baseline
    cut = tmp_path / "cut"
    first = train_intervention(_opts(suite, out=cut, max_steps=20), "intervention")
    assert not first["finished"] and ckpt.saved_steps(cut / "state")[-1] == 20
    resumed = train_intervention(_opts(suite, out=cut, resume=True), "intervention")
    whole = paths.run_dir("smoke", "deduped-intervention", "s1")
    if not (whole / "done.json").is_file():
        train_intervention(_opts(suite), "intervention")
    ref = json.loads((whole / "done.json").read_text())
    assert resumed["final_weights_sha256"] == ref["final_weights_sha256"]
    assert resumed["batch_hashes_sha256"] == ref["batch_hashes_sha256"]


def test_start_without_earlier_state_names_the_saved_steps(baseline, tmp_path):
    _, _suite, _ = baseline
    early = load_suite(
        "smoke",
        {
            **OVERRIDES,
            "intervention": {"runs": {"intervention": {"fraction": 0.9, "models": ["s1"]}}},
        },
    )
    with pytest.raises(InterventionError, match=r"step 2 .*states saved at steps: 8, 24"):
        train_intervention(_opts(early, out=tmp_path / "early"), "intervention")
