"""Shared test settings (CPU only, offline, few threads) and the session's smoke suite.

``PYTHIA_OFFLINE=1`` for the whole session: archives come from the cache only.

``smoke_data``: the smoke suite's data (standard library + generated arithmetic: no download),
built once per session into a temporary work directory (empty cache, ``PYTHIA_OFFLINE=1``).
``smoke_run``: that work directory after ``pythia train`` of model s1 on the standard dataset
(24 steps, checkpoints 0, 1, 2, 4, 8, 16, 24 with their tokenizer), for the tests that need
real checkpoints (catalogue, scoring, lm-eval).
``hub``: the loopback Hugging Face hub (tests/hub_server.py), empty and online, with an empty
Hugging Face cache; ``HF_ENDPOINT`` points at it for the whole session.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub_server import hub, start_session_hub  # noqa: F401  (hub: the loopback hub fixture)

# The loopback Hugging Face hub (tests/hub_server.py) starts before anything imports
# huggingface_hub, which reads HF_ENDPOINT at import: every hub request of the session goes to it.
start_session_hub()

import torch  # noqa: E402  (after HF_ENDPOINT is set)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests never download a pinned archive behind the run's back: they read the cache that
# `make test` filled (``pythia data fetch --all-archives``) and fail when one is missing
# (tests/cached.py). The archive tests that talk to a server of their own, and the registry
# test that asks the real package index, lift this for themselves.
os.environ["PYTHIA_OFFLINE"] = "1"
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> Path:
    """Work directory holding ``smoke/data/...``, built once per session."""
    work = tmp_path_factory.mktemp("smoke_work")
    cache = tmp_path_factory.mktemp("smoke_cache")
    saved = {k: os.environ.get(k) for k in ("PYTHIA_WORK", "PYTHIA_CACHE", "PYTHIA_OFFLINE")}
    os.environ.update(PYTHIA_WORK=str(work), PYTHIA_CACHE=str(cache), PYTHIA_OFFLINE="1")
    try:
        from pythia.data.build import build

        build("smoke", progress=False)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return work


@pytest.fixture(scope="session")
def smoke_run(smoke_data) -> Path:
    """``smoke_data`` with model s1 trained on the standard dataset (through the CLI)."""
    run = smoke_data / "smoke" / "models" / "standard" / "s1"
    if not (run / "done.json").is_file():
        env = {
            **os.environ,
            "PYTHIA_WORK": str(smoke_data),
            "PYTHIA_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        }
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "pythia.cli",
                "train",
                "--suite",
                "smoke",
                "--model",
                "s1",
                "--dataset",
                "standard",
                "--threads",
                "1",
                "--no-progress",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-3000:]
    return smoke_data
