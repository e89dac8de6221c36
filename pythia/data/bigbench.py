"""BIG-bench from the ``bigbench==1.0.0`` sdist: training text and evaluation items.

The sdist (358 MB) ships every task's ``task.json``. It is read in one pass into a prepared
copy in ``$PYTHIA_CACHE/extracted/bigbench-<version>/``, made once per cache:

* the four text-rich tasks used as training text (:data:`TRAINING_ONLY_BIGBENCH_TASKS`) are
  kept as they are, under ``train/``; they must never be evaluated;
* the evaluation items of every multiple-choice task and of the named tasks
  (:data:`BIGBENCH_EVAL_TASKS`) are written to one ``eval_items.jsonl`` for the
  contamination guard.

The extractors here turn the training tasks into documents (conversations, contexts,
paragraphs, dialogues) in the tasks' own order.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from pythia.data.archives import ARCHIVES, fetch_archive
from pythia.io import atomic_dir, write_json
from pythia.paths import cache_dir

log = logging.getLogger(__name__)

Document = tuple[str, str]  # (id, text)

TRAINING_ONLY_BIGBENCH_TASKS = ("topical_chat", "squad_shifts", "paragraph_segmentation",
                                "movie_dialog_same_or_different")
"""BIG-bench tasks used as training text: never evaluate them."""
BIGBENCH_EVAL_TASKS = ("arithmetic", "qa_wikidata", "winowhy", "subject_verb_agreement", "hyperbaton")
"""BIG-bench tasks the compendium evaluates by name (besides the multiple-choice tasks)."""
BIGBENCH_MC_MAX_EXAMPLES = 1000
"""Multiple-choice tasks other than the named ones: the first this many multiple-choice
examples of each task (its files in archive order) are guarded against; evaluation should use
at most these. The named tasks are guarded in full."""
_SQUAD_FILES = ("nyt_v1.0.json", "new_wiki_v1.0.json", "reddit_v1.0.json", "amazon_reviews_v1.0.json")
_BB_PREP_VERSION = 2


def prepared_dir() -> Path:
    """Where the prepared copy lives (it may not exist yet; :func:`bigbench_dir` makes it)."""
    return cache_dir() / "extracted" / f"bigbench-{ARCHIVES['bigbench'].version}"


def bigbench_dir(download: bool | None = None, progress: bool = True) -> Path:
    """The prepared BIG-bench copy (training tasks + evaluation items), made once per cache."""
    a = ARCHIVES["bigbench"]
    out = prepared_dir()
    stamp = out / "prepared.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("sha256") == a.sha256 \
            and json.loads(stamp.read_text()).get("version") == _BB_PREP_VERSION:
        return out
    path = fetch_archive(a, download=download, progress=progress)
    log.info("preparing BIG-bench from %s (one pass over the archive, ~1 min)", path.name)
    with atomic_dir(out) as tmp:
        n_items = 0
        per_task: dict[str, int] = {}
        with tarfile.open(path, "r:gz") as tar, open(tmp / "eval_items.jsonl", "w") as ev:
            for m in tar:
                if not (m.isfile() and m.name.endswith(".json") and "/benchmark_tasks/" in m.name):
                    continue
                rel = m.name.split("/benchmark_tasks/", 1)[1]
                task = rel.split("/", 1)[0]
                raw = tar.extractfile(m).read()
                if task in TRAINING_ONLY_BIGBENCH_TASKS:
                    dst = tmp / "train" / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(raw)
                    continue
                try:
                    d = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(d, dict) or not isinstance(d.get("examples"), list):
                    continue
                named = task in BIGBENCH_EVAL_TASKS
                exs = d["examples"]
                if not named:
                    exs = [e for e in exs if isinstance(e, dict) and "target_scores" in e]
                    room = BIGBENCH_MC_MAX_EXAMPLES - per_task.get(task, 0)
                    exs = exs[: max(room, 0)]
                    per_task[task] = per_task.get(task, 0) + len(exs)
                for e in exs:
                    text = _bb_item_text(e)
                    if text:
                        ev.write(json.dumps({"set": f"bigbench/{task}", "file": rel, "text": text}) + "\n")
                        n_items += 1
        write_json(tmp / "prepared.json", {"sha256": a.sha256, "version": _BB_PREP_VERSION, "eval_items": n_items})
    return out


def _bb_item_text(e: dict) -> str:
    if not isinstance(e, dict):
        return ""
    inp = e.get("input", "")
    if not isinstance(inp, str):
        return ""
    answer = ""
    ts = e.get("target_scores")
    if isinstance(ts, dict) and ts:
        answer = max(ts, key=lambda k: (ts[k] if isinstance(ts[k], (int, float)) else 0))
    elif isinstance(e.get("target"), list) and e["target"]:
        answer = str(e["target"][0])
    elif isinstance(e.get("target"), str):
        answer = e["target"]
    return f"{inp} {answer}".strip()


def _bb_task(rel: str) -> dict:
    return json.loads((bigbench_dir() / "train" / rel).read_text())


def extract_topical_chat(budget: int | None) -> Iterator[Document]:
    convs: dict[str, dict] = {}
    for e in _bb_task("topical_chat/task.json")["examples"]:
        cid = e.get("comment", "")
        if cid not in convs or len(e["input"]) > len(convs[cid]["input"]):
            convs[cid] = e
    for cid, e in convs.items():  # first-appearance order
        turns = re.split(r'\s*(?=agent_[AB]: ")', e["input"].strip())
        speakers = [t[:7] for t in turns if t]
        last = "agent_B" if speakers and speakers[-1] == "agent_A" else "agent_A"
        lines = [t.strip() for t in turns if t.strip()] + [f"{last}: {e['target'].strip()}"]
        yield f"topical_chat/{cid}", "\n".join(lines)


def extract_squad_shifts(budget: int | None) -> Iterator[Document]:
    for fname in _SQUAD_FILES:
        data = _bb_task(f"squad_shifts/{fname}")["data"]
        for i, art in enumerate(data):
            for j, para in enumerate(art.get("paragraphs", [])):
                ctx = para.get("context", "").strip()
                if ctx:
                    yield f"squad_shifts/{fname.split('_v1')[0]}/{i}/{j}", ctx


def extract_paragraph_segmentation(budget: int | None) -> Iterator[Document]:
    for i, e in enumerate(_bb_task("paragraph_segmentation/task.json")["examples"]):
        sents = e["input"].split("\n")
        marks = str(e.get("target", "")).split()
        paras: list[list[str]] = []
        for k, s in enumerate(sents):
            if not paras or (k < len(marks) and marks[k] == "1"):
                paras.append([])
            paras[-1].append(s.strip())
        yield f"paragraph_segmentation/{i}", "\n\n".join(" ".join(p) for p in paras)


def extract_movie_dialog(budget: int | None) -> Iterator[Document]:
    for i, e in enumerate(_bb_task("movie_dialog_same_or_different/task.json")["examples"]):
        dialog = e["input"].split("-----", 1)[0].strip()
        if dialog:
            yield f"movie_dialog/{i}", dialog

