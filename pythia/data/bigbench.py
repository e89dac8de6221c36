"""BIG-bench from the ``bigbench==1.0.0`` sdist: training text and evaluation examples.

The sdist (358 MB) ships every task's ``task.json``. It is read in one pass into a prepared
copy in ``$PYTHIA_CACHE/extracted/bigbench-<version>-prep<N>/``, made once per cache
(:func:`bigbench_dir`):

* the four text-rich tasks used as training text (:data:`TRAINING_ONLY_BIGBENCH_TASKS`) are
  kept as they are, under ``train/``; they must never be evaluated;
* every example of every evaluation task (the 122 tasks with multiple-choice examples and
  the named :data:`BIGBENCH_EVAL_TASKS`) is kept as a structured record, one compressed
  jsonl per task, for :mod:`pythia.data.evalsets` (and so for the contamination guard).

The extractors here turn the training tasks into documents (conversations, contexts,
paragraphs, dialogues) in the tasks' own order.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from pythia.data.archives import ARCHIVES, cache_lock, fetch_archive
from pythia.io import atomic_dir, write_json
from pythia.paths import cache_dir

log = logging.getLogger(__name__)

Document = tuple[str, str]  # (id, text)

TRAINING_ONLY_BIGBENCH_TASKS = ("topical_chat", "squad_shifts", "paragraph_segmentation",
                                "movie_dialog_same_or_different")
"""BIG-bench tasks used as training text: never evaluate them."""
BIGBENCH_EVAL_TASKS = ("arithmetic", "qa_wikidata", "winowhy", "subject_verb_agreement", "hyperbaton")
"""BIG-bench tasks the compendium evaluates by name (besides the multiple-choice tasks)."""
FORMAT_KEYS = ("task_prefix", "example_input_prefix", "example_output_prefix", "choice_prefix",
               "append_choices_to_input", "few_shot_example_separator", "stop_string", "output_regex",
               "preferred_score", "metrics")
"""Keys of a BIG-bench task file that say how its examples are shown and scored (kept per file)."""
_SQUAD_FILES = ("nyt_v1.0.json", "new_wiki_v1.0.json", "reddit_v1.0.json", "amazon_reviews_v1.0.json")
_BB_PREP_VERSION = 3


def prepared_dir() -> Path:
    """Where the prepared copy lives (it may not exist yet; :func:`bigbench_dir` makes it).

    The preparation version is part of the name, so checkouts that prepare differently
    never overwrite each other's copy in a shared cache."""
    return cache_dir() / "extracted" / f"bigbench-{ARCHIVES['bigbench'].version}-prep{_BB_PREP_VERSION}"


def bigbench_dir(download: bool | None = None, progress: bool = True) -> Path:
    """The prepared BIG-bench copy, made once per cache (one pass over the 358 MB sdist, ~2 min).

    ``train/<task>/...``: the training-only tasks' files as they are.
    ``eval/<task>.jsonl.gz``: every example of every evaluation task (a task with at least
    one multiple-choice example, or one of :data:`BIGBENCH_EVAL_TASKS`), in archive order, as
    ``{"id", "question", "choices", "gold", "targets", "meta"}`` (see :func:`example_record`).
    ``eval/index.json``: per evaluation task its description, example counts, and the
    display settings of each of its files (:data:`FORMAT_KEYS`).
    """
    out = prepared_dir()
    if _prepared(out):
        return out
    with cache_lock(out, "BIG-bench"):  # one process prepares; others wait, then find it
        if not _prepared(out):
            _prepare(out, download, progress)
    return out


def _prepared(out: Path) -> bool:
    stamp = out / "prepared.json"
    if not stamp.exists():
        return False
    info = json.loads(stamp.read_text())
    return info.get("sha256") == ARCHIVES["bigbench"].sha256 and info.get("version") == _BB_PREP_VERSION


def _prepare(out: Path, download: bool | None, progress: bool) -> None:
    a = ARCHIVES["bigbench"]
    path = fetch_archive(a, download=download, progress=progress)
    log.info("preparing BIG-bench from %s (one pass over the archive, ~2 min)", path.name)
    with atomic_dir(out) as tmp:
        (tmp / "eval").mkdir()
        index: dict[str, dict] = {}
        writers: dict[str, gzip.GzipFile] = {}
        try:
            with tarfile.open(path, "r:gz") as tar:
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
                    _add_task_file(task, rel, raw, index, writers, tmp / "eval")
        finally:
            for w in writers.values():
                w.close()
        for task in list(index):
            entry = index[task]
            if not entry["examples"] or not (entry["multiple_choice_examples"] or task in BIGBENCH_EVAL_TASKS):
                (tmp / "eval" / f"{task}.jsonl.gz").unlink(missing_ok=True)
                del index[task]
        write_json(tmp / "eval" / "index.json", dict(sorted(index.items())))
        write_json(tmp / "prepared.json", {"sha256": a.sha256, "version": _BB_PREP_VERSION,
                                           "eval_tasks": len(index),
                                           "eval_examples": sum(t["examples"] for t in index.values())})


def _add_task_file(task: str, rel: str, raw: bytes, index: dict, writers: dict, eval_dir: Path) -> None:
    """Append one task file's examples to ``eval/<task>.jsonl.gz`` and record it in ``index``."""
    try:
        d = json.loads(raw)
    except ValueError:  # a few data files that are not task files (e.g. factuality_of_summary)
        return
    if not isinstance(d, dict):
        return
    entry = index.setdefault(task, {"description": "", "keywords": [], "examples": 0,
                                    "multiple_choice_examples": 0, "files": {}})
    if not entry["description"] and isinstance(d.get("description"), str):
        entry["description"] = d["description"]
        entry["keywords"] = [k for k in d.get("keywords", []) if isinstance(k, str)]
    if not isinstance(d.get("examples"), list):
        return  # a task's top-level task.json that only lists its subtasks
    subtask = rel[len(task) + 1: -len(".json")]  # e.g. "task", "1_digit_addition/task"
    if task not in writers:
        writers[task] = gzip.GzipFile(eval_dir / f"{task}.jsonl.gz", "wb", compresslevel=5, mtime=0)
    n = mc = 0
    for i, e in enumerate(d["examples"]):
        rec = example_record(e, f"{subtask}#{i}", subtask)
        if rec is None:
            continue
        writers[task].write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
        n += 1
        mc += bool(rec["choices"])
    entry["examples"] += n
    entry["multiple_choice_examples"] += mc
    entry["files"][subtask] = {"examples": n, "multiple_choice_examples": mc,
                               **{k: d[k] for k in FORMAT_KEYS if k in d}}


def example_record(e: object, example_id: str, subtask: str) -> dict | None:
    """A BIG-bench example as a structured record, or None if it has no string ``input``.

    ``choices`` are the keys of ``target_scores`` in file order and ``gold`` the first with
    the highest score (``meta.scores`` keeps all scores when more than one choice scores
    highest or scores are not 0/1); ``targets`` are the generation targets (``target``, a
    string or a list of accepted answers). The ``input`` is kept as it is: the task's
    prefixes (``meta`` of the file in ``index.json``) say how it is shown to a model.
    """
    if not isinstance(e, dict) or not isinstance(e.get("input"), str):
        return None
    choices: list[str] = []
    gold = None
    meta: dict = {"subtask": subtask}
    ts = e.get("target_scores")
    if isinstance(ts, dict) and ts:
        choices = [str(k) for k in ts]
        scores = [v if isinstance(v, (int, float)) else 0 for v in ts.values()]
        best = max(scores)
        gold = scores.index(best)
        if scores.count(best) > 1 or any(v not in (0, 1) for v in scores):
            meta["scores"] = scores
    target = e.get("target")
    targets = [str(t) for t in target] if isinstance(target, list) else [target] if isinstance(target, str) else []
    if isinstance(e.get("comment"), str):
        meta["comment"] = e["comment"]
    return {"id": example_id, "question": e["input"], "choices": choices, "gold": gold, "targets": targets,
            "meta": meta}


def eval_index(download: bool | None = None, progress: bool = True) -> dict[str, dict]:
    """Per evaluation task: description, keywords, example counts and per-file settings."""
    return json.loads((bigbench_dir(download, progress) / "eval" / "index.json").read_text())


def eval_records(task: str, download: bool | None = None, progress: bool = True) -> Iterator[dict]:
    """The structured examples of one evaluation task (see :func:`example_record`), in order."""
    path = bigbench_dir(download, progress) / "eval" / f"{task}.jsonl.gz"
    if not path.exists():
        raise FileNotFoundError(f"BIG-bench task {task!r} is not an evaluation task here ({path} missing); "
                                f"evaluation tasks are listed by `pythia data evalsets`")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


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

