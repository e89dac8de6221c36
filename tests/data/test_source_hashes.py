"""Every built-in source yields the same documents, byte for byte, as when the table was made.

``tests/data/source_hashes.json`` pins, per source, the sha256 of its first documents (id and
text, in order, up to ``budget`` bytes: more than any suite takes from a source except
``shakespeare``, whose 3 MB are all of it that matters), with their count and size. A
refactor of the source code must leave them unchanged; a deliberate change to a source
regenerates the table (``python -m tests.data.test_source_hashes > tests/data/source_hashes.json``)
and says why in its commit.

Sources read from an archive read it from the cache, which ``make test`` fills, and fail
(never skip) when it is not there; ``stdlib`` depends on the interpreter and runs only on
the Python version the table was made with. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from pythia.data import sources as S
from tests.cached import cached_archive

TABLE = Path(__file__).with_name("source_hashes.json")
BUDGET = 3_000_000
BUDGETS = {"math": 60_000}  # the generator is slow (~100 kB/s): its first 19 documents
SKIP = {"gcide", "python_doc"}  # optional Debian packages: not on every machine


def source_digest(name: str) -> dict:
    """sha256 of the source's first documents (``[id, text]`` JSON lines) up to its budget."""
    budget = BUDGETS.get(name, BUDGET)
    h = hashlib.sha256()
    docs = size = 0
    for doc_id, text in S.iter_source(name, budget):
        h.update(json.dumps([doc_id, text], ensure_ascii=False).encode("utf-8") + b"\n")
        docs += 1
        size += len(text.encode("utf-8"))
        if size >= budget:
            break
    return {"budget": budget, "documents": docs, "bytes": size, "sha256": h.hexdigest()}


@pytest.mark.parametrize("name", [n for n in S.SOURCES if n not in SKIP])
def test_source_documents_are_unchanged(name, monkeypatch):
    if name == "stdlib":
        made = json.loads(TABLE.read_text())["python"]
        if made != sys.version.split()[0]:
            pytest.skip(f"the stdlib's digest was pinned on Python {made}")
    if S.SOURCES[name].archive:
        cached_archive(S.SOURCES[name].archive)  # fails, saying how to fetch it, if missing
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    expected = json.loads(TABLE.read_text())["sources"][name]
    assert source_digest(name) == expected


def test_table_covers_every_source():
    assert set(json.loads(TABLE.read_text())["sources"]) == set(S.SOURCES) - SKIP


if __name__ == "__main__":
    table = {
        "python": sys.version.split()[0],
        "sources": {n: source_digest(n) for n in S.SOURCES if n not in SKIP},
    }
    print(json.dumps(table, indent=2))
