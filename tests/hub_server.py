"""A loopback Hugging Face hub for tests: the hub's HTTP API over small local repositories.

The real ``huggingface_hub`` client (and ``transformers`` through it) talks to this server over
real HTTP once ``HF_ENDPOINT`` points at it (tests/conftest.py does that before anything imports
huggingface_hub, whose ``constants.ENDPOINT`` is read at import). Nothing of the client is
replaced. The answers follow the shapes huggingface_hub 2.4 parses (``hf_api.ModelInfo``,
``RepoFile``/``RepoFolder``, ``GitRefs``, ``file_download.get_hf_file_metadata`` and
``utils._http.hf_raise_for_status``), which are those of the hub's documented API
(https://huggingface.co/docs/hub/api).

A repository is described plainly: repo id -> {branch -> {path -> bytes or a local file}}
(:meth:`HubServer.publish`). Each branch gets its own commit sha, sha1 of the repository, the
branch name and its files' blob ids: deterministic, and re-publishing a branch with other files
gives it a new commit (the old commit stays resolvable by its sha, as on the hub).

Routes (``<t>`` is ``models`` or ``datasets``; ``<repo>`` is ``org/name``), with the client calls
that use them:

    GET  /api/<t>/<repo>                        model_info / dataset_info / repo_info (main)
    GET  /api/<t>/<repo>/revision/<rev>         model_info(revision=...), snapshot_download's
                                                revision resolution: {id, sha, siblings, ...}
                                                (``?blobs=1``: siblings with blobId, size, lfs)
    GET  /api/<t>/<repo>/refs                   list_repo_refs: {branches, tags, converts,
                                                pullRequests}, each {name, ref, targetCommit}
    GET  /api/<t>/<repo>/tree/<rev>[/<path>]    list_repo_tree (``recursive``, ``expand``),
                                                snapshot_download's file list: files
                                                {type, oid (git blob sha1), size, path,
                                                lfs: {oid (sha256), size, pointerSize}} and
                                                directories {type, oid, path}; one page
    POST /api/<t>/<repo>/paths-info/<rev>       get_paths_info / HfFileSystem (form ``paths``)
    HEAD /<repo>/resolve/<rev>/<path>           get_hf_file_metadata (hf_hub_download,
    GET  (datasets: /datasets/<repo>/resolve/)  transformers' cached_file / has_file):
                                                ``X-Repo-Commit``; a plain file answers 200 with
                                                ``ETag`` (quoted blob sha1) and its bytes; an
                                                LFS file (weights, parquet, ...) answers 302 to
                                                the LFS host with ``X-Linked-Etag`` (quoted
                                                sha256), ``X-Linked-Size`` and ``ETag``
    GET  <lfs host>/lfs/<sha256>                the download after the redirect (a second port,
    HEAD                                        so, as with the hub's CDN, the client does not
                                                follow the HEAD redirect: another origin)

Errors are the hub's: 404 with ``X-Error-Code`` ``RepoNotFound``, ``RevisionNotFound`` or
``EntryNotFound`` (and ``X-Error-Message``, JSON ``{"error": ...}``), which huggingface_hub turns
into RepositoryNotFoundError, RevisionNotFoundError and (Remote)EntryNotFoundError. Any other
path is a 404 without an error code (recorded like every request).

Every request is recorded (:attr:`HubServer.log`: method, host ``hub``/``lfs``, path with query,
status) so tests can assert what a run asked for, e.g. that a rerun made 0 requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".onnx",
    ".parquet",
    ".arrow",
    ".npy",
    ".npz",
    ".gguf",
    ".zst",
)
"""Files stored in LFS (as the hub's default ``.gitattributes`` has it), plus any over 10 MB."""
LFS_MIN_SIZE = 10 << 20
DATE = "2024-01-01T00:00:00.000Z"


def git_blob_sha1(data: bytes) -> str:
    """Git's blob id of ``data`` (what the hub reports as a file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file stored in git for an LFS file."""
    sha = hashlib.sha256(data).hexdigest()
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
    )


@dataclass(frozen=True)
class HubFile:
    """One file of a commit and its hub metadata."""

    path: str
    data: bytes = field(repr=False)

    @property
    def is_lfs(self) -> bool:
        return self.path.endswith(LFS_SUFFIXES) or len(self.data) >= LFS_MIN_SIZE

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def oid(self) -> str:
        """Git blob id: of the LFS pointer for an LFS file, of the bytes otherwise."""
        return git_blob_sha1(lfs_pointer(self.data) if self.is_lfs else self.data)

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "oid": self.oid,
            "size": len(self.data),
            "path": self.path,
        }
        if self.is_lfs:
            entry["lfs"] = {
                "oid": self.sha256,
                "size": len(self.data),
                "pointerSize": len(lfs_pointer(self.data)),
            }
        return entry


@dataclass
class HubRepo:
    """A repository: branches (name -> commit sha), tags, and every commit published (sha -> files)."""

    repo_id: str
    repo_type: str = "model"
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)

    def resolve(self, rev: str) -> str | None:
        """The commit sha of a branch, tag or (full) commit sha; None if there is none."""
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        return rev if rev in self.commits else None


def _read(content: bytes | str | Path) -> bytes:
    if isinstance(content, bytes):
        return content
    return Path(content).read_bytes()


class HubServer:
    """The loopback hub: an API/resolve server and an LFS host, each a ThreadingHTTPServer on a
    free loopback port, serving :attr:`repos`. :attr:`url` is the ``HF_ENDPOINT``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.repos: dict[tuple[str, str], HubRepo] = {}
        self.log: list[tuple[str, str, str, int]] = []
        self._lock = threading.Lock()
        self._hub = ThreadingHTTPServer((host, 0), _handler(self, "hub"))
        self._lfs = ThreadingHTTPServer((host, 0), _handler(self, "lfs"))
        self._hub.daemon_threads = self._lfs.daemon_threads = True
        self._threads = [
            threading.Thread(target=s.serve_forever, daemon=True, name=f"hub-server-{n}")
            for n, s in (("api", self._hub), ("lfs", self._lfs))
        ]
        for t in self._threads:
            t.start()

    @property
    def url(self) -> str:
        host, port = self._hub.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def lfs_url(self) -> str:
        host, port = self._lfs.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        for s in (self._hub, self._lfs):
            s.shutdown()
            s.server_close()

    # ------------------------------------------------------------------ content
    def clear(self) -> None:
        """No repositories, empty log."""
        with self._lock:
            self.repos.clear()
            self.log.clear()

    def publish(
        self,
        repo_id: str,
        branch: str,
        files: dict[str, bytes | str | Path],
        repo_type: str = "model",
    ) -> str:
        """Point ``branch`` of ``repo_id`` at a commit holding exactly ``files`` (path -> bytes or
        a local file); returns the commit sha (new files: a new sha)."""
        tree = {p: HubFile(p, _read(c)) for p, c in sorted(files.items())}
        h = hashlib.sha1(f"{repo_type}/{repo_id}@{branch}\n".encode())
        for f in tree.values():
            h.update(f"{f.path}\0{f.oid}\n".encode())
        sha = h.hexdigest()
        with self._lock:
            repo = self.repos.setdefault((repo_type, repo_id), HubRepo(repo_id, repo_type))
            repo.commits[sha] = tree
            repo.branches[branch] = sha
        return sha

    def delete_branch(self, repo_id: str, branch: str, repo_type: str = "model") -> None:
        with self._lock:
            self.repos[(repo_type, repo_id)].branches.pop(branch, None)

    def files(self, repo_id: str, rev: str, repo_type: str = "model") -> dict[str, bytes]:
        """The files a branch (or commit) serves: path -> bytes."""
        repo = self.repos[(repo_type, repo_id)]
        sha = repo.resolve(rev)
        if sha is None:
            raise KeyError(f"{repo_id} has no revision {rev}")
        return {p: f.data for p, f in repo.commits[sha].items()}

    # ------------------------------------------------------------------ the request log
    def requests(
        self, contains: str = "", method: str | None = None
    ) -> list[tuple[str, str, str, int]]:
        """Recorded requests whose path contains ``contains`` (and of ``method``, if given)."""
        with self._lock:
            return [r for r in self.log if contains in r[2] and (method is None or r[0] == method)]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def _record(self, method: str, host: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append((method, host, path, status))


# ---------------------------------------------------------------------- request handling


class _Reply(Exception):
    """An answer: status, headers, body (raised from deep in a route)."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, body: bytes = b""):
        self.status, self.headers, self.body = status, headers or {}, body


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(
        status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode()
    )


def _error(code: str, message: str) -> _Reply:
    return _json({"error": message}, 404, {"X-Error-Code": code, "X-Error-Message": message})


def _handler(server: HubServer, host: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self, method: str) -> None:
            body = b""
            if method == "POST":
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                route = _route_lfs if host == "lfs" else _route_hub
                route(server, method, self.path, body, self.headers.get("Content-Type", ""))
                reply = _Reply(404, {}, b"")
            except _Reply as r:
                reply = r
            server._record(method, host, self.path, reply.status)
            self.send_response(reply.status)
            headers = {"Content-Length": str(len(reply.body)), **reply.headers}
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(reply.body)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler


def _route_lfs(server: HubServer, method: str, raw: str, body: bytes, ctype: str) -> None:
    parts = urlsplit(raw).path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "lfs" and method in ("GET", "HEAD"):
        for repo in list(server.repos.values()):
            for tree in list(repo.commits.values()):
                for f in tree.values():
                    if f.is_lfs and f.sha256 == parts[1]:
                        raise _Reply(
                            200,
                            {"Content-Type": "application/octet-stream", "ETag": f'"{f.sha256}"'},
                            f.data,
                        )
    raise _json({"error": "not found"}, 404)


def _repo(server: HubServer, repo_type: str, repo_id: str) -> HubRepo:
    repo = server.repos.get((repo_type, repo_id))
    if repo is None:
        raise _error("RepoNotFound", "Repository not found")
    return repo


def _commit(repo: HubRepo, rev: str) -> tuple[str, dict[str, HubFile]]:
    sha = repo.resolve(rev)
    if sha is None:
        raise _error("RevisionNotFound", f"Invalid rev id: {rev}")
    return sha, repo.commits[sha]


def _route_hub(server: HubServer, method: str, raw: str, body: bytes, ctype: str) -> None:
    split = urlsplit(raw)
    parts = [unquote(p) for p in split.path.strip("/").split("/")]
    query = parse_qs(split.query)
    if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("models", "datasets"):
        repo = _repo(server, parts[1][:-1], "/".join(parts[2:4]))
        _route_api(repo, method, parts[4:], query, body, ctype)
    repo_type = "model"
    if parts[0] == "datasets":
        repo_type, parts = "dataset", parts[1:]
    if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
        repo = _repo(server, repo_type, "/".join(parts[:2]))
        _resolve(server, repo, parts[3], "/".join(parts[4:]))


def _route_api(
    repo: HubRepo, method: str, rest: list[str], query: dict, body: bytes, ctype: str
) -> None:
    if method == "GET" and not rest:
        raise _json(_info(repo, "main", bool(query.get("blobs"))))
    if method == "GET" and len(rest) == 2 and rest[0] == "revision":
        raise _json(_info(repo, rest[1], bool(query.get("blobs"))))
    if method == "GET" and rest == ["refs"]:
        raise _json(_refs(repo))
    if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
        recursive = query.get("recursive", ["False"])[0].lower() in ("1", "true")
        raise _json(_tree(repo, rest[1], "/".join(rest[2:]), recursive))
    if method == "POST" and len(rest) == 2 and rest[0] == "paths-info":
        if "json" in ctype:
            paths = json.loads(body or b"{}").get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        _, tree = _commit(repo, rest[1])
        raise _json(
            [tree[p].tree_entry() for p in paths if p in tree]
            + [_folder(tree, p) for p in paths if p not in tree and _under(tree, p)]
        )
    raise _json({"error": "not found"}, 404)


def _info(repo: HubRepo, rev: str, blobs: bool) -> dict[str, Any]:
    sha, tree = _commit(repo, rev)
    siblings = [
        {"rfilename": p}
        | ({"blobId": f.oid, "size": len(f.data)} if blobs else {})
        | ({"lfs": f.tree_entry()["lfs"]} if blobs and f.is_lfs else {})
        for p, f in tree.items()
    ]
    return {
        "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
        "id": repo.repo_id,
        **({"modelId": repo.repo_id} if repo.repo_type == "model" else {}),
        "author": repo.repo_id.split("/")[0],
        "sha": sha,
        "lastModified": DATE,
        "createdAt": DATE,
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
    }


def _refs(repo: HubRepo) -> dict[str, Any]:
    def ref(kind: str, name: str, sha: str) -> dict[str, str]:
        return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}

    return {
        "branches": [ref("heads", n, s) for n, s in repo.branches.items()],
        "tags": [ref("tags", n, s) for n, s in repo.tags.items()],
        "converts": [],
        "pullRequests": [],
    }


def _under(tree: dict[str, HubFile], folder: str) -> bool:
    return any(p.startswith(folder.rstrip("/") + "/") for p in tree)


def _folder(tree: dict[str, HubFile], folder: str) -> dict[str, Any]:
    inside = sorted(f.oid for p, f in tree.items() if p.startswith(folder + "/"))
    return {
        "type": "directory",
        "oid": hashlib.sha1("".join(inside).encode()).hexdigest(),
        "path": folder,
    }


def _tree(repo: HubRepo, rev: str, path: str, recursive: bool) -> list[dict[str, Any]]:
    _, tree = _commit(repo, rev)
    path = path.strip("/")
    if path and not _under(tree, path):
        raise _error("EntryNotFound", f"{path} does not exist on {rev}")
    prefix = path + "/" if path else ""
    out: dict[str, dict[str, Any]] = {}
    for p, f in tree.items():
        if not p.startswith(prefix):
            continue
        parts = p[len(prefix) :].split("/")
        for depth in range(1, len(parts)):
            if not recursive and depth > 1:
                break
            folder = prefix + "/".join(parts[:depth])
            out.setdefault(folder, _folder(tree, folder))
        if recursive or len(parts) == 1:
            out[p] = f.tree_entry()
    return [out[k] for k in sorted(out)]


def _resolve(server: HubServer, repo: HubRepo, rev: str, path: str) -> None:
    sha, tree = _commit(repo, rev)
    f = tree.get(path)
    if f is None:
        raise _error("EntryNotFound", f"{path} does not exist on {rev}")
    if f.is_lfs:
        raise _Reply(
            302,
            {
                "Location": f"{server.lfs_url}/lfs/{f.sha256}",
                "X-Repo-Commit": sha,
                "ETag": f'"{f.sha256}"',
                "X-Linked-Etag": f'"{f.sha256}"',
                "X-Linked-Size": str(len(f.data)),
            },
        )
    raise _Reply(
        200,
        {"Content-Type": "application/octet-stream", "X-Repo-Commit": sha, "ETag": f'"{f.oid}"'},
        f.data,
    )


# ---------------------------------------------------------------------- the test session's hub

SESSION_HUB: HubServer | None = None


def start_session_hub() -> HubServer:
    """Start the session's loopback hub and point ``HF_ENDPOINT`` at it. Called by
    tests/conftest.py at import, before anything imports huggingface_hub, which reads the
    endpoint into ``constants.ENDPOINT`` (and ``HfApi()`` objects) at import; if it was imported
    already, its endpoint constants are set too."""
    global SESSION_HUB
    if SESSION_HUB is None:
        SESSION_HUB = HubServer()
        os.environ["HF_ENDPOINT"] = SESSION_HUB.url
        if "huggingface_hub.constants" in sys.modules:
            constants = sys.modules["huggingface_hub.constants"]
            constants.ENDPOINT = SESSION_HUB.url
            constants.HUGGINGFACE_CO_URL_TEMPLATE = (
                SESSION_HUB.url + "/{repo_id}/resolve/{revision}/{filename}"
            )
    return SESSION_HUB


TINY_SUITE, TINY_MODEL = "smoke", "s1"
"""The tiny GPT-NeoX published as ``EleutherAI/pythia-<size>``: the smoke suite's model s1."""


class Hub:
    """What the ``hub`` fixture gives a test: the session's :class:`HubServer` (emptied), an
    empty Hugging Face cache (:attr:`cache`), online mode, and helpers to publish models."""

    def __init__(self, server: HubServer, cache: Path, tokenizer: Callable[[], Path]) -> None:
        self.server, self.cache, self._tokenizer = server, cache, tokenizer
        self.url = server.url

    def publish(self, repo_id: str, branch: str, files: dict, repo_type: str = "model") -> str:
        return self.server.publish(repo_id, branch, files, repo_type)

    def requests(self, contains: str = "", method: str | None = None) -> list:
        return self.server.requests(contains, method)

    def reset_log(self) -> None:
        self.server.reset_log()

    @staticmethod
    def model_files(seed: int, weights: str = "safetensors") -> dict[str, bytes]:
        """``config.json``, ``generation_config.json`` and the weights (``model.safetensors``, or
        ``pytorch_model.bin`` with ``weights="bin"``) of the tiny GPT-NeoX initialised with ``seed``."""
        import torch  # heavy: only tests that publish models need it

        from pythia.config import load_suite  # imports transformers: only after HF_ENDPOINT is set
        from pythia.model import build_model  # as above

        model = build_model(
            load_suite(TINY_SUITE), TINY_MODEL, seed=seed, attn_implementation="eager"
        )
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            out = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
        if weights == "bin":
            out.pop("model.safetensors")
            buf = io.BytesIO()
            torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, buf)
            out["pytorch_model.bin"] = buf.getvalue()
        return out

    def tokenizer_files(self) -> dict[str, bytes]:
        """The smoke suite's built tokenizer files (what a released branch carries)."""
        folder = self._tokenizer()
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def publish_pythia(
        self,
        repo: str = "EleutherAI/pythia-14m",
        steps: Iterable[int] = (0, 1, 2, 4),
        duplicate: dict[int, int] | None = None,
        weights: str = "safetensors",
        tokenizer: bool = True,
        seed: int = 0,
    ) -> dict[str, str]:
        """Publish the tiny model as ``repo`` with branches ``step<N>`` (weights initialised with
        seed ``seed + N``) and ``main`` (= the last step). ``duplicate={2: 1}`` serves step1's
        files on branch step2 (a planted duplicate). A step not in ``steps`` is missing. Returns
        branch -> commit sha."""
        steps = list(steps)
        tok = self.tokenizer_files() if tokenizer else {}
        files = {s: {**tok, **self.model_files(seed + s, weights)} for s in steps}
        for step, source in (duplicate or {}).items():
            files[step] = files[source]
        shas = {f"step{s}": self.publish(repo, f"step{s}", files[s]) for s in steps}
        shas["main"] = self.publish(repo, "main", files[steps[-1]])
        return shas

    @contextlib.contextmanager
    def offline(self) -> Iterator[None]:
        """``HF_HUB_OFFLINE=1`` (environment and huggingface_hub's constant) inside the block."""
        from huggingface_hub import constants  # heavy: as above

        saved = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
        os.environ["HF_HUB_OFFLINE"], constants.HF_HUB_OFFLINE = "1", True
        try:
            yield
        finally:
            os.environ["HF_HUB_OFFLINE"] = saved[0] or "0"
            constants.HF_HUB_OFFLINE = saved[1]


@pytest.fixture
def hub(tmp_path, monkeypatch, request) -> Iterator[Hub]:
    """The loopback hub, empty, online, with an empty ``HF_HOME``/``HF_HUB_CACHE`` under
    ``tmp_path`` (environment, for subprocesses, and huggingface_hub's constants, in process)."""
    from huggingface_hub import constants  # heavy: only hub tests import it

    server = start_session_hub()
    server.clear()
    home = tmp_path / "hf"
    cache = home / "hub"
    cache.mkdir(parents=True)
    for k, v in {
        "HF_ENDPOINT": server.url,
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    had_conversion_flag = "DISABLE_SAFETENSORS_CONVERSION" in os.environ
    monkeypatch.delenv("DISABLE_SAFETENSORS_CONVERSION", raising=False)

    def tokenizer() -> Path:
        return request.getfixturevalue("smoke_data") / TINY_SUITE / "data" / "tokenizer"

    yield Hub(server, cache, tokenizer)
    if not had_conversion_flag:  # the catalogue sets it in os.environ; leave no trace
        os.environ.pop("DISABLE_SAFETENSORS_CONVERSION", None)
    server.clear()
