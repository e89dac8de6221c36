"""The memorization scan over checkpoints and training data (:mod:`pythia.evaluate.memorization`):
scans through the catalogue and get_batch, their cache, and their errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from pythia.config import load_suite
from pythia.data.batches import get_batch
from pythia.errors import UsageError
from pythia.evaluate import memorization as M
from pythia.evaluate import memorization_files as F
from pythia.evaluate import memorization_kernels as K
from pythia.runs import open_catalogue


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small decoding steps run fastest on one thread (and do not slow to a crawl when other
    processes hold the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ckpt(smoke_run, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    return open_catalogue("smoke").checkpoint("s1", "standard", 24)


def test_options_and_ranges_fail_clearly(smoke_data, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    suite = load_suite("smoke")
    with pytest.raises(UsageError, match="prompt and continuation lengths must be >= 1"):
        K.ScanOptions(0, 32)
    assert M.step_range(suite, "standard", 16) == range(16)
    assert M.step_range(suite, "standard", 24, 4, 12, 2) == range(4, 12, 2)
    with pytest.raises(
        UsageError,
        match=r"data steps \[0, 30\) run past the training data .* steps 0..23; ask for a stop of at most 24",
    ):
        M.step_range(suite, "standard", 24, 0, 30)
    with pytest.raises(UsageError, match="at least k \\+ l = 64 tokens"):
        K.memorization(torch.nn.Linear(1, 1), np.zeros((2, 40), dtype=np.int64))


def test_scan_model_writes_cached_scans(ckpt, smoke_run, tmp_path, monkeypatch):
    suite = load_suite("smoke")
    cat = open_catalogue("smoke", steps=[0, 8, 24])
    opt = K.ScanOptions(32, 32, score_stride=5)
    import pythia.data.batches as batches

    reads = []
    real_get_batch = batches.get_batch
    monkeypatch.setattr(
        batches, "get_batch", lambda s, d, step: reads.append(step) or real_get_batch(s, d, step)
    )
    rec = M.scan_model(
        suite, "standard", "s1", cat, opt, progress=False, cache_root=tmp_path / "cache"
    )
    monkeypatch.setattr(batches, "get_batch", real_get_batch)
    assert sorted(reads) == list(range(24))  # checkpoints 8 and 24 both read steps 0-7: once
    assert [c["step"] for c in rec["checkpoints"]] == [0, 8, 24]
    assert [c["sequences"] for c in rec["checkpoints"]] == [0, 32, 96]
    out = F.summary_file("smoke", "standard", "s1")
    assert json.loads(out.read_text())["options"]["score_stride"] == 5
    scan = F.read_scan(out.parent / "step24.parquet")
    assert list(scan.columns) == list(F.COLUMNS) and scan["seq"].tolist() == list(range(96))
    assert ((scan["matches"] >= 0) == (scan["seq"] % 5 == 0)).all()
    # the same as scanning the rows directly
    rows = np.concatenate([get_batch(suite, "standard", s) for s in range(24)])
    direct = K.memorization(ckpt.load_model(), rows, opt, score_mask=np.arange(96) % 5 == 0)
    np.testing.assert_array_equal(scan["match_run"].to_numpy(), direct["match_run"])
    np.testing.assert_array_equal(scan["matches"].to_numpy(), direct["matches"])
    # a rerun reads every block from the cache, loading no model
    monkeypatch.setattr(type(ckpt), "load_model", lambda *a, **k: pytest.fail("scored again"))
    again = M.scan_model(
        suite, "standard", "s1", cat, opt, progress=False, cache_root=tmp_path / "cache"
    )
    assert all(c["scored_now"] == 0 for c in again["checkpoints"])
    pd.testing.assert_frame_equal(F.read_scan(out.parent / "step24.parquet"), scan)


def test_scan_on_a_local_released_layout(smoke_run, tmp_path, monkeypatch):
    """The same scan through the catalogue's `local` source (a released-layout directory)."""
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    run = smoke_run / "smoke" / "models" / "standard" / "s1"
    root = tmp_path / "released"
    shutil.copytree(run / "step24", root / "pythia-s1" / "step24")
    cat = open_catalogue("smoke", "local", root)  # released_name("s1") = pythia-s1
    rec = M.scan_model(
        "smoke",
        "standard",
        "s1",
        cat,
        K.ScanOptions(32, 32, 0),
        out=tmp_path / "scan.json",
        progress=False,
    )
    assert rec["checkpoints"][0]["sequences"] == 96
    assert rec["checkpoints"][0]["identity"].startswith("local:")
