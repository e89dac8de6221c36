"""lm-evaluation-harness on an already-loaded checkpoint, cached per checkpoint and task.

lm-eval's ``HFLM`` accepts a model object (``HFLM(pretrained=model, tokenizer=tok)``), so a
section loads a checkpoint once (through :mod:`pythia.runs`, from any source) and runs all its
tasks on it; lm-eval itself does the prompting, batching and metrics, exactly as its command
line does (``lm_eval --model hf --model_args pretrained=DIR --tasks ... --include_path ...``
gives the same numbers on the same checkpoint directory).

Results are cached per checkpoint, task and shot count under
``work/<suite>/cache/lm_eval/<checkpoint>/<task>-<n>shot-<task digest>.json``; the task digest
covers the task's YAML (with its includes) and the local data files it names, so editing a
task or rebuilding its data evaluates it again. A rerun evaluates only the (checkpoint,
task) pairs that are new, and loads a checkpoint only if one of its tasks is.

Offline tasks are YAML files with ``dataset_path: json`` and absolute ``data_files`` in a folder
passed as ``include_path`` (relative ``data_files`` would resolve against the working
directory, not the YAML's folder).

This module imports lm-eval only when it needs it (a task's digest, a task to run): what runs
lm-eval on a loaded model, :class:`~pythia.evaluate.lm_eval_adapter.AdapterHFLM` and the
once-per-process patches, is :mod:`pythia.evaluate.lm_eval_adapter`.

Example::

    from pythia.evaluate.harness import evaluate_tasks, tidy
    records = evaluate_tasks(ckpt, ["cloze", "piqa_local"], include_path="work/micro/tasks", num_fewshot=0)
    rows = tidy(records)   # [{"task", "metric", "filter", "value", "stderr"}, ...]
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pythia import paths
from pythia.config import config_digest
from pythia.errors import PythiaError
from pythia.evaluate.cache import cache_root, checkpoint_dir
from pythia.io import write_json

log = logging.getLogger(__name__)


class TaskError(PythiaError, ValueError):
    """An unknown task or a task whose data file is missing; the message names it."""


def lm_eval_model(model, tokenizer, batch_size: int = 16, max_length: int | None = None):
    """An lm-eval ``HFLM`` wrapping a loaded causal LM and its tokenizer (no reload, no copy;
    tokenizations remembered on the tokenizer object, see
    :class:`pythia.evaluate.lm_eval_adapter.AdapterHFLM`)."""
    from pythia.evaluate import lm_eval_adapter  # heavy: imports lm-eval (seconds)

    return lm_eval_adapter.hflm(model, tokenizer, batch_size=batch_size, max_length=max_length)


@functools.lru_cache(maxsize=8)
def _task_manager(include_path: str | None, defaults: bool):
    from lm_eval.tasks import TaskManager  # heavy: imports lm-eval (seconds)

    return TaskManager(include_path=include_path, include_defaults=defaults)


def task_manager(include_path: str | Path | None = None, tasks: list[str] | None = None):
    """lm-eval's ``TaskManager`` with ``include_path`` (built once per process and path).

    When every one of ``tasks`` is defined in ``include_path``, lm-eval's own ~15,000 task
    definitions are not indexed (0.1 s instead of ~15 s); otherwise they are."""
    path = str(Path(include_path).resolve()) if include_path else None
    if path and tasks:
        local = _task_manager(path, False)
        if all(t in local.task_index for t in tasks):
            return local
    return _task_manager(path, True)


def folder_digest(folder: str | Path) -> str:
    """16 hex digits of the files in ``folder`` (names and bytes; hidden files, such as a write in
    progress, left out): a key for written task files that needs no lm-eval import."""
    h = hashlib.sha256()
    for f in sorted(
        p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")
    ):
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def request_cache(suite: str, key: Any) -> Path | None:
    """Point lm-eval's request cache (``$LM_HARNESS_CACHE_PATH``, read when lm-eval is imported) at
    ``work/<suite>/cache/lm_eval_requests/<digest of key>``, so that the requests (prompts, few-shot
    contexts) built for one checkpoint serve every other. lm-eval names its cache entries by task
    name and shot count only: ``key`` (JSON) must name everything else they depend on (the tasks'
    digests, their data), so an edited task never reuses stale requests; lm-eval's installed
    version is added here (the requests are its objects, built by its task code). Returns the
    folder, or None when lm-eval was imported already (then requests are rebuilt per checkpoint)."""
    if "lm_eval" in sys.modules:
        return None
    try:
        lm_eval_version = version("lm_eval")  # read without importing lm-eval
    except PackageNotFoundError:
        lm_eval_version = None
    folder = (
        paths.suite_dir(suite)
        / "cache"
        / "lm_eval_requests"
        / config_digest({"key": key, "lm_eval": lm_eval_version})
    )
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["LM_HARNESS_CACHE_PATH"] = str(folder)
    return folder


def _data_files(cfg: dict) -> list[Path]:
    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if isinstance(files, dict):
        files = list(files.values())
    if isinstance(files, str):
        files = [files]
    out: list[Path] = []
    for f in files or []:
        out += [Path(x) for x in (f if isinstance(f, list) else [f])]
    return out


def task_digest(name: str, include_path: str | Path | None = None) -> str:
    """16 hex digits of a task's YAML (includes resolved) and the local data files it names;
    an unknown task or a missing data file is a :class:`TaskError`."""
    from lm_eval.tasks._yaml_loader import load_yaml  # heavy: imports lm-eval (seconds)

    tm = task_manager(include_path, [name])
    entry = tm.task_index.get(name)
    if entry is None:
        near = difflib.get_close_matches(name, list(tm.task_index), n=3)
        raise TaskError(
            f"unknown lm-eval task {name!r}"
            + (f" (similar: {', '.join(near)})" if near else "")
            + (
                f"; tasks in {include_path} are found by their YAML's task: name"
                if include_path
                else "; give include_path for local task YAMLs"
            )
        )
    h = hashlib.sha256(name.encode())
    if entry.yaml_path is not None:
        cfg = load_yaml(entry.yaml_path, resolve_func=False)
        h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
        for f in _data_files(cfg):
            if not f.is_absolute():
                raise TaskError(
                    f"task {name!r} ({entry.yaml_path}) names the relative data file {f}; lm-eval "
                    f"resolves it against the working directory: give an absolute path"
                )
            if not f.is_file():
                raise TaskError(f"data file {f} of task {name!r} ({entry.yaml_path}) is missing")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def _record_file(folder: Path, task: str, num_fewshot: int, digest: str, limit) -> Path:
    lim = "" if limit is None else f"-limit{limit}"
    return folder / f"{task}-{num_fewshot}shot{lim}-{digest}.json"


def _subtasks(results: dict, name: str) -> list[str]:
    """``name`` and every task below it in lm-eval's group tree."""
    out, todo = [], [name]
    groups = results.get("group_subtasks", {})
    while todo:
        t = todo.pop(0)
        out.append(t)
        todo += groups.get(t, [])
    return out


def evaluate_tasks(
    checkpoint,
    tasks: list[str],
    *,
    num_fewshot: int = 0,
    include_path: str | Path | None = None,
    limit: int | None = None,
    log_samples: bool = False,
    batch_size: int = 16,
    bootstrap_iters: int = 100000,
    root: str | Path | None = None,
    model=None,
    tokenizer=None,
    dtype=None,
    device: str = "cpu",
    cache_requests: bool = False,
    max_length: int | None = None,
    sweep: Sweep | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate lm-eval ``tasks`` on ``checkpoint`` (a :class:`pythia.runs.Checkpoint`), cached.

    Returns ``{task: record}`` (:func:`_record`). Only missing tasks run, on ``model`` and
    ``tokenizer`` if given, else loaded from the checkpoint (``dtype``, ``device``) when needed.
    ``bootstrap_iters`` as lm-eval (its CLI default: 100000). ``cache_requests``: lm-eval's cache
    of built requests (:func:`request_cache`). ``max_length``: lm-eval's context window (default:
    the model's ``max_position_embeddings``). ``sweep``: a :class:`Sweep` shared by the calls
    for the checkpoints of one run (lm-eval's task objects and model wrapper built once).
    """
    folder = checkpoint_dir(
        Path(root) if root else cache_root(checkpoint.suite) / "lm_eval", checkpoint
    )
    files = {
        t: _record_file(folder, t, num_fewshot, task_digest(t, include_path), limit) for t in tasks
    }
    records = _cached_records(files, log_samples)
    todo = [t for t in tasks if t not in records]
    if not todo:
        return {t: records[t] for t in tasks}
    model = model if model is not None else checkpoint.load_model(dtype=dtype, device=device)
    tokenizer = tokenizer if tokenizer is not None else checkpoint.load_tokenizer()
    log.info("lm-eval %s on %s (%d-shot)", ", ".join(todo), checkpoint.name, num_fewshot)
    out = (sweep or Sweep(cached=False)).evaluate(
        model,
        tokenizer,
        todo,
        batch_size=batch_size,
        max_length=max_length,
        num_fewshot=num_fewshot,
        task_manager=task_manager(include_path, todo),
        limit=limit,
        log_samples=log_samples,
        bootstrap_iters=bootstrap_iters,
        cache_requests=cache_requests,
    )
    for t in todo:
        write_json(files[t], _record(out, t, files[t], checkpoint, num_fewshot, limit, log_samples))
        records[t] = json.loads(files[t].read_text())  # as a rerun will see it (JSON types)
    return {t: records[t] for t in tasks}


class Sweep:
    """Evaluations of one run's checkpoints in one process, sharing what lm-eval builds per call
    (:class:`pythia.evaluate.lm_eval_adapter.Sweep`); lm-eval is imported at the first
    evaluation, not before (a fully cached run never imports it). ``cached=False``: one
    evaluation, through ``lm_eval.simple_evaluate`` itself (what a single checkpoint needs)."""

    def __init__(self, cached: bool = True) -> None:
        self._inner: Any = None
        self.cached = cached

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from pythia.evaluate import lm_eval_adapter  # heavy: imports lm-eval (seconds)

        if not self.cached:
            return lm_eval_adapter.simple_evaluate(*args, **kwargs)
        if self._inner is None:
            self._inner = lm_eval_adapter.Sweep()
        return self._inner.evaluate(*args, **kwargs)


def _cached_records(files: dict[str, Path], log_samples: bool) -> dict[str, dict]:
    """The records of the tasks whose file is on disk, readable and (with ``log_samples``) holds
    the per-sample logs; a missing or damaged file is evaluated again."""
    records: dict[str, dict] = {}
    for t, f in files.items():
        try:
            rec = json.loads(f.read_text()) if f.is_file() else None
        except (OSError, json.JSONDecodeError):
            rec = None
        if rec is not None and (not log_samples or "samples" in rec):
            records[t] = rec
    return records


def _record(
    out: dict, task: str, file: Path, checkpoint, num_fewshot: int, limit, log_samples: bool
) -> dict[str, Any]:
    """The cache record of ``task`` from lm-eval's output ``out``: ``results`` (``{task or subtask:
    {"acc,none": .., "acc_stderr,none": .., ...}}`` as lm-eval reports them), ``n_samples``,
    ``num_fewshot``, ``higher_is_better``, the checkpoint ``identity``, the ``task_digest`` and,
    with ``log_samples``, ``samples`` (lm-eval's per-document records)."""
    names = [n for n in _subtasks(out, task) if n in out["results"]]

    def each(key: str) -> dict:
        return {n: out[key][n] for n in names if n in out.get(key, {})}

    rec = {
        "task": task,
        "identity": checkpoint.identity,
        "checkpoint": checkpoint.name,
        "step": checkpoint.step,
        "num_fewshot": num_fewshot,
        "limit": limit,
        "task_digest": file.stem.rsplit("-", 1)[-1],
        "results": {n: out["results"][n] for n in names},
        "n_samples": each("n-samples"),
        "higher_is_better": each("higher_is_better"),
        "versions": each("versions"),
        "lm_eval_version": out.get("lm_eval_version"),
    }
    if log_samples:
        rec["samples"] = each("samples")
    return rec


def tidy(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task or subtask, metric, filter): ``task``, ``metric``, ``filter``, ``value``,
    ``stderr`` (None where lm-eval gives none), ``num_fewshot``, ``step``."""
    rows = []
    for rec in records.values():
        for task, metrics in rec["results"].items():
            for key, value in metrics.items():
                if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                    continue
                metric, filt = key.split(",", 1)
                err = metrics.get(f"{metric}_stderr,{filt}")
                rows.append(
                    {
                        "task": task,
                        "metric": metric,
                        "filter": filt,
                        "value": float(value),
                        "stderr": float(err) if isinstance(err, (int, float)) else None,
                        "num_fewshot": rec["num_fewshot"],
                        "step": rec["step"],
                    }
                )
    return rows
