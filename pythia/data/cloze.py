"""An in-corpus LAMBADA-style cloze: passages of the held-out test documents and their last word.

LAMBADA (Paperno et al. 2016) asks a model for the last word of a narrative passage, a word
that is easy to guess from the whole passage (its automatic pre-filter kept passages whose
target word occurs earlier in the passage; people then kept the ones only the whole context
resolves). LAMBADA itself cannot be obtained offline, so this builds the same kind of task
from text every suite already has and never trains on: the test split of its documents
(``work/<suite>/data/documents/test.jsonl``, split by a hash of the text before deduplication,
so the standard and deduplicated runs share it).

Algorithm (deterministic; documents in file order)::

    for each test document, its whitespace-separated tokens t_0 .. t_k (with their offsets):
        start = 0
        while start + min_words < k:
            end = the first i in [start + min_words, start + max_words) such that
                  t_i is a plain word (letters only, >= min_word_chars, optionally followed by
                  closing punctuation, not a function word such as "the" or "which"), it
                  follows a single space, and the same word (case
                  sensitive, punctuation stripped) occurs among t_start .. t_(i-1)
            if there is one: passage = text from t_start up to t_i's space, target = " " + word
                             start = end + 1            (passages never overlap)
            else:            start += max_words

Each passage is then checked against the suite's training documents with the contamination
guard's rules (:mod:`pythia.data.contamination`, 13-word n-grams): a passage sharing any 13
consecutive words with a training document (standard data, a superset of the deduplicated
data), or containing a whole short training document, is dropped. The examples are scored
as ``lambada_openai`` is in lm-evaluation-harness: accuracy = the target is the greedy
continuation of the context, perplexity = exp(-mean log-likelihood of the target).

Usage::

    from pythia.data.cloze import cloze_examples, write_jsonl
    examples = cloze_examples("micro")        # [ClozeExample(id, context, target), ...]
    write_jsonl(examples, "cloze.jsonl")      # {"id", "context", "target"} per line
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from pythia import paths
from pythia.config import Suite
from pythia.data.contamination import EvalIndex, find_contaminated
from pythia.data.layout import Layout, read_jsonl
from pythia.errors import MissingInputError
from pythia.io import atomic_path

MIN_WORDS = 30
"""Fewest words of context before the target (LAMBADA's passages average ~75 words)."""
MAX_WORDS = 90
"""Most words of context (stays well inside a 256-token micro sequence)."""
MIN_WORD_CHARS = 3
"""Shortest target word."""
FUNCTION_WORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "also",
        "among",
        "and",
        "any",
        "are",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "can",
        "cannot",
        "could",
        "did",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "either",
        "else",
        "even",
        "every",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "into",
        "its",
        "itself",
        "just",
        "let",
        "may",
        "might",
        "mine",
        "more",
        "most",
        "must",
        "myself",
        "neither",
        "nor",
        "not",
        "now",
        "off",
        "once",
        "only",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "per",
        "same",
        "shall",
        "she",
        "should",
        "since",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "though",
        "thou",
        "thee",
        "thy",
        "through",
        "thus",
        "too",
        "under",
        "until",
        "upon",
        "very",
        "was",
        "were",
        "what",
        "when",
        "where",
        "whether",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "yet",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)
"""Words guessed from grammar alone, never targets (LAMBADA's targets are mostly content words)."""

_TOKEN = re.compile(r"\S+")
_TARGET = re.compile(r"^([A-Za-z]+)[.,;:!?'\")\]]*$")
_STRIP = re.compile(r"^[^\w]+|[^\w]+$")


@dataclass(frozen=True)
class ClozeExample:
    """One passage: ``context`` (no trailing space) and ``target`` (``" " + word``)."""

    id: str
    """``<document id>@<character offset of the passage>``."""
    context: str
    target: str

    def to_json(self) -> dict:
        return asdict(self)


def passages(
    doc_id: str,
    text: str,
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
    min_word_chars: int = MIN_WORD_CHARS,
) -> list[ClozeExample]:
    """The cloze passages of one document (see the module docstring), before the guard."""
    toks = [(m.start(), m.group()) for m in _TOKEN.finditer(text)]
    words = [_STRIP.sub("", t) for _, t in toks]
    out: list[ClozeExample] = []
    start = 0
    while start + min_words < len(toks):
        for i in range(start + min_words, min(start + max_words, len(toks))):
            m = _TARGET.match(toks[i][1])
            at = toks[i][0]
            if (
                m
                and len(m.group(1)) >= min_word_chars
                and m.group(1).lower() not in FUNCTION_WORDS
                and text[at - 1] == " "
                and not text[at - 2].isspace()
                and m.group(1) in words[start:i]
            ):
                begin = toks[start][0]
                out.append(
                    ClozeExample(f"{doc_id}@{begin}", text[begin : at - 1], " " + m.group(1))
                )
                start = i + 1
                break
        else:
            start += max_words
    return out


def _clean(examples: list[ClozeExample], train_docs: Iterable[dict], n: int) -> list[ClozeExample]:
    """``examples`` without those that share an ``n``-word sequence with a training document."""
    index = EvalIndex.build({"train": (d["text"] for d in train_docs)}, n)
    report = find_contaminated(((e.id, "cloze", e.context + e.target) for e in examples), index)
    return [e for e in examples if e.id not in report.dropped]


def cloze_examples(
    suite: str | Suite,
    dataset: str = "standard",
    *,
    max_examples: int | None = None,
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
    ngram: int = 13,
) -> list[ClozeExample]:
    """The cloze examples of ``suite``'s held-out test documents, without contaminated ones.

    ``dataset`` (``standard`` or ``deduped``) names the runs to evaluate; both share the test
    documents and the check uses the standard training documents (a superset of the
    deduplicated ones), so the examples are the same for both, as a comparison needs.
    ``max_examples`` keeps the first N (documents in file order). Needs the suite's
    ``documents`` stage (``pythia data build --suite S --stage documents``).
    """
    paths.check_dataset(dataset)
    name = suite if isinstance(suite, str) else suite.name
    layout = Layout(name)
    test, train = layout.split_file("test"), layout.split_file("train")
    for f in (test, train):
        if not f.is_file():
            raise MissingInputError(
                f"{f} is missing; build the suite's documents first "
                f"(`pythia data build --suite {name} --stage documents`)"
            )
    found = [
        p for d in read_jsonl(test) for p in passages(d["id"], d["text"], min_words, max_words)
    ]
    kept = _clean(found, read_jsonl(train), ngram)
    return kept[:max_examples] if max_examples is not None else kept


def write_jsonl(examples: Iterable[ClozeExample], path: str | Path) -> Path:
    """Write examples as JSON lines ``{"id", "context", "target"}`` (atomically)."""
    path = Path(path)
    with atomic_path(path, suffix=".jsonl") as tmp:
        tmp.write_text(
            "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in examples),
            encoding="utf-8",
        )
    return path


__all__ = ["MAX_WORDS", "MIN_WORDS", "ClozeExample", "cloze_examples", "passages", "write_jsonl"]
