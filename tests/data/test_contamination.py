"""The contamination guard catches evaluation items planted in training text."""

from __future__ import annotations

import json

import yaml

from pythia.config import load_suite
from pythia.data import contamination as C
from pythia.data.build import Layout, read_jsonl, run_stage, split_of

ITEM = ("The driver picked up the accountant from the airport because she could not find "
        "a bus there and it was late at night")


def _index(**sets):
    return C.EvalIndex.build(sets, 13)


def test_planted_item_is_dropped_and_counted():
    index = _index(winobias=[ITEM], other=["completely different words that never appear in the corpus at all ok"])
    planted = "Some story. " + ITEM.upper().replace(" ", "  ") + "!! And then more text follows."
    docs = [("a", "books", "An ordinary clean document about ships and harbours."),
            ("b", "books", planted),
            ("c", "web", "x " * 50 + ITEM[:60])]  # a prefix shorter than 13 words: not a match
    report = C.find_contaminated(docs, index)
    assert report.dropped == {"b": "winobias"}
    assert report.per_source == {"books": 1} and report.per_eval_set == {"winobias": 1}
    assert report.eval_items == {"other": 1, "winobias": 1}


def test_short_items_use_their_whole_word_sequence():
    index = _index(arith=["Q:What is 12 plus 34? A:46"], tiny=["the author is"])
    assert index.skipped_short == {"arith": 0, "tiny": 1}
    report = C.find_contaminated(
        [("x", "s", "so, q: what is 12 plus 34? a: 46 they said"),
         ("y", "s", "What is 12 plus 34? It is 46."),  # different word sequence
         ("z", "s", "the author is here")], index)  # too short an item to count
    assert report.dropped == {"x": "arith"}


def test_matches_do_not_cross_document_boundaries():
    words = ITEM.split()
    index = _index(w=[ITEM])
    assert len(words) == 23
    docs = [("a", "s", " ".join(words[:11])), ("b", "s", " ".join(words[11:]))]  # 11 + 12 words
    assert C.find_contaminated(docs, index, batch_words=10**6).dropped == {}


def test_build_drops_planted_training_documents(tmp_path, monkeypatch):
    """A suite whose extra source contains the term-frequency prompts: every training copy is dropped."""
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    docs = [{"text": f"Worksheet {i}. Q:What is {i} plus {i + 1}? A:{2 * i + 1} Well done."} for i in range(40)]
    docs += [{"text": f"Clean note number {i} about the weather in spring and autumn."} for i in range(40)]
    src = tmp_path / "planted.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    raw = yaml.safe_load(open(Path_smoke()))
    raw["name"] = "planted"
    raw["data"]["sources"] = ["arithmetic"]
    raw["data"]["max_bytes_per_source"] = 20_000
    raw["data"]["extra_sources"] = [{"name": "worksheets", "kind": "jsonl", "path": str(src), "domain": "web"}]
    path = tmp_path / "planted.yaml"
    path.write_text(yaml.safe_dump(raw))
    suite = load_suite(path)
    run_stage(suite, "documents", progress=False)
    L = Layout("planted")
    manifest = json.loads((L.documents / "manifest.json").read_text())
    expected = sum(1 for d in docs[:40] if split_of(d["text"], 0.05, 0.05) == "train")
    assert expected > 30
    c = manifest["contamination"]
    assert c["per_source"] == {"worksheets": expected}
    assert c["per_eval_set"] == {"arithmetic_prompts": expected}
    assert manifest["sources"]["worksheets"]["removed_contamination"] == expected
    train = read_jsonl(L.split_file("train"))
    assert not any("plus" in d["text"] and d["source"] == "worksheets" for d in train)
    assert sum(d["source"] == "worksheets" for d in train) == sum(
        1 for d in docs[40:] if split_of(d["text"], 0.05, 0.05) == "train")


def Path_smoke():
    from pythia.config import SUITES_DIR

    return SUITES_DIR / "smoke.yaml"
