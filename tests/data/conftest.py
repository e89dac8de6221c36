"""Fixtures of the data tests.

``smoke_data`` (defined in ``tests/conftest.py``, shared with the training and evaluation
tests): the smoke suite's data (standard library + generated arithmetic: no download) built
once per test session into a temporary work directory, with an empty temporary cache and
``PYTHIA_OFFLINE=1`` so nothing is fetched. It returns the work directory; tests that read
the data through ``pythia.paths`` use the ``smoke_env`` fixture, which points ``PYTHIA_WORK``
(and the cache) at it for the duration of one test.

Tests never download. Two tests run only when an archive is in the real cache and skip
(saying so) otherwise; to run them in CI, fetch once and cache the directory
``$PYTHIA_CACHE/archives/`` (default ``~/.cache/pythia-compendium/archives/``):

* GPT-NeoX tokenizer ids: ``llama_cpp_python-0.3.36.tar.gz``, 76,589,250 bytes, sha256
  832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e:
  ``pythia data fetch --archive llama-cpp-python``
* math generator determinism: ``mathematics_dataset-1.0.1-py3-none-any.whl``, 93,905 bytes:
  ``pythia data fetch --archive mathematics-dataset``
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def smoke_env(smoke_data, monkeypatch, tmp_path) -> Path:
    """``PYTHIA_WORK`` pointed at the session's smoke data (offline, empty cache)."""
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    return smoke_data


@pytest.fixture
def empty_cache(monkeypatch, tmp_path) -> Path:
    """An empty ``PYTHIA_CACHE`` (offline)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PYTHIA_CACHE", str(cache))
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    from pythia.data import archives

    archives._verified.clear()
    return cache
