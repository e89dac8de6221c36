"""The in-corpus cloze: a passage ends on a content word that occurs earlier in it, and a
passage that shares 13 words with the training documents is dropped."""

from __future__ import annotations

import json

import pytest

from pythia.data.cloze import FUNCTION_WORDS, cloze_examples, passages, write_jsonl
from pythia.errors import MissingInputError

TEXT = (
    "the garden was green and the lantern hung over the gate where Mara waited "
    "for her brother who had gone to town with the cart before dawn and she thought of the "
    "lantern again"
)


def test_passage_ends_on_a_repeated_content_word():
    (ex,) = passages("d", TEXT, min_words=10, max_words=40)
    assert ex.target == " lantern" and ex.context.endswith("of the") and "lantern" in ex.context
    assert ex.id == "d@0" and TEXT.startswith(ex.context + ex.target)


def test_no_passage_without_a_repeat_or_with_function_words_only():
    assert passages("d", " ".join(f"w{i}x" for i in range(60)), min_words=10, max_words=40) == []
    assert passages("d", "the which and the from and the " * 10, min_words=5, max_words=20) == []
    assert "the" in FUNCTION_WORDS


def _suite_docs(root, test, train):
    docs = root / "micro" / "data" / "documents"
    docs.mkdir(parents=True)
    for name, texts in (("test", test), ("train", train)):
        (docs / f"{name}.jsonl").write_text(
            "".join(
                json.dumps({"id": f"{name}{i}", "source": "x", "text": t}) + "\n"
                for i, t in enumerate(texts)
            )
        )


def test_contaminated_passages_are_dropped(tmp_path, monkeypatch):
    clean = (
        "Ruth kept bees behind the mill and every spring the bees "
        + " ".join(f"v{i}" for i in range(12))
        + " when the frost came Ruth sold the honey to the baker and the baker paid her in bread for the bees"
    )
    _suite_docs(tmp_path, [TEXT, clean], ["an unrelated training text " + TEXT[40:200] + " more"])
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    kept = cloze_examples("micro", min_words=10, max_words=40)
    assert passages(
        "test0", TEXT, 10, 40
    )  # test0 has a passage, but it shares 13+ words with train0
    assert {e.id.split("@")[0] for e in kept} == {"test1"}
    assert all(e.target.strip() in e.context.split() or e.target.strip() in e.context for e in kept)
    write_jsonl(kept, tmp_path / "c.jsonl")
    assert (
        json.loads((tmp_path / "c.jsonl").read_text().splitlines()[0])["target"] == kept[0].target
    )


def test_missing_documents_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    with pytest.raises(MissingInputError, match=r"test.jsonl"):
        cloze_examples("micro")
