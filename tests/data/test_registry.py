"""Every pinned archive can be had now: the real package index is asked, by name and version.

A pinned release can vanish from the package index (``bigbench==1.0.0``'s sdist did, and every
fresh machine stopped); these tests notice it the day it happens instead of the day a cache is
cold. They need the network (the package index's JSON API, ``$PYTHIA_PYPI_JSON``, default
``https://pypi.org/pypi``) and fail without it; they never skip. For each entry of
:data:`pythia.data.archives.ARCHIVES`, :func:`~pythia.data.archives.release_file` must find the
pinned file in ``name==version`` with the pinned sha256 and size (downloading nothing); and the
smallest archive, the mathematics-dataset wheel (94 kB), is fetched into an empty temporary cache
through the name-and-version path alone (its pinned address deliberately dead) and verified.
"""

from __future__ import annotations

import dataclasses
import socket

import pytest

from pythia.data import archives as A


@pytest.fixture
def real_index(monkeypatch):
    """The package index the project uses by default (not a test server of another test)."""
    monkeypatch.delenv("PYTHIA_PYPI_JSON", raising=False)
    monkeypatch.delenv("PYTHIA_PYPI_SIMPLE", raising=False)
    monkeypatch.delenv("PYTHIA_OFFLINE", raising=False)


@pytest.mark.parametrize("package", list(A.ARCHIVES))
def test_pinned_release_is_still_served(package, real_index):
    a = A.ARCHIVES[package]
    try:
        found = A.release_file(a, timeout=60)
    except A.ArchiveMissingError as e:
        pytest.fail(f"{package}=={a.version}: {e}", pytrace=False)
    assert found.sha256 == a.sha256, package
    assert found.size == a.size, package
    assert found.url.startswith(("https://", "http://")) and found.url.endswith("/" + a.filename), (
        found.url
    )


def _dead_url(filename: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{filename}"  # closed again: connecting is refused


def test_small_archive_is_fetched_by_name_and_version(real_index, monkeypatch, tmp_path):
    """The pinned address refused, the simple index refused too: only the JSON API's answer for
    mathematics-dataset==1.0.1 can deliver the file, into an empty cache, with the pinned sha256."""
    pinned = A.ARCHIVES["mathematics-dataset"]
    assert pinned.size < 200_000  # small enough to fetch in every test run
    a = dataclasses.replace(pinned, url=_dead_url(pinned.filename))
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHIA_PYPI_SIMPLE", _dead_url("simple"))
    monkeypatch.setenv("PYTHIA_FETCH_RETRIES", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    A._verified.clear()
    assert not a.path.exists() and a.path.is_relative_to(tmp_path)
    assert A.fetch_archive(a, progress=False) == a.path
    assert a.path.stat().st_size == pinned.size and A.sha256_file(a.path) == pinned.sha256
    assert sorted(p.name for p in a.path.parent.iterdir() if not p.name.endswith(".lock")) == [
        pinned.filename
    ]
