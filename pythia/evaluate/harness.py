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


def _batches(
    requests, max_length: int, batch_size: int, group: bool
) -> tuple[list[list[tuple]], int]:
    """The forward passes lm-eval's ``HFLM`` makes for loglikelihood ``requests``, in its order.

    A request ``(key, context tokens, continuation tokens)`` is scored on the last
    ``max_length + 1`` tokens of context + continuation without the final one (the context is
    cut from the left when too long); the continuation's log-probabilities are the logits at the
    input's last ``len(continuation)`` positions. With ``group`` (``HFLM``'s ``logits_cache``),
    requests with the same context + continuation[:-1] (the choices of a one-token
    multiple-choice question) share the input of the one with the longest continuation.
    Inputs are ordered by descending length (then tokens) of their context + continuation and
    cut into batches of ``batch_size``, as lm-eval does: the same batches give bit-identical
    numbers. Returns the batches, each a list of ``(input, [(request index, continuation), ...])``,
    and how many requests were cut."""
    groups: dict[tuple, list[int]] = {}
    cut = 0
    for i, (_, ctx, cont) in enumerate(requests):
        if not ctx or not cont or len(cont) > max_length:
            raise ValueError(
                f"lm-eval request with {len(ctx)} context and {len(cont)} continuation tokens: "
                f"both must be non-empty and the continuation at most {max_length} tokens"
            )
        cut += len(ctx) + len(cont) > max_length + 1
        groups.setdefault(tuple(ctx + cont[:-1]) if group else (i,), []).append(i)
    heads = [max(members, key=lambda i: len(requests[i][2])) for members in groups.values()]
    passes = []
    for head, members in zip(heads, groups.values()):
        full = requests[head][1] + requests[head][2]
        passes.append(
            (
                (-len(full), tuple(full)),
                full[-(max_length + 1) :][:-1],
                [(i, requests[i][2]) for i in members],
            )
        )
    passes.sort(key=lambda p: p[0])
    batches = [
        [p[1:] for p in passes[k : k + batch_size]] for k in range(0, len(passes), batch_size)
    ]
    return batches, cut


@functools.lru_cache(maxsize=1)
def _hflm_class():
    """lm-eval's ``HFLM`` with tokenizations remembered and only continuations scored.

    - ``tok_encode`` is remembered per tokenizer object: lm-eval tokenizes every request again
      for every model it evaluates; evaluating the same tasks on many checkpoints with one
      tokenizer (pass the same ``tokenizer`` object) then tokenizes each string once. The tokens
      are those ``HFLM.tok_encode`` returns.
    - ``_loglikelihood_tokens`` (causal models, a fixed batch size): ``HFLM`` projects every
      input position onto the vocabulary and takes the log-softmax of all of them, then keeps
      the continuation's positions. Here the model computes logits only at those positions
      (transformers' ``logits_to_keep`` with a per-row mask), and requests with the same input
      (the choices of a one-token multiple-choice question) share one forward pass. Inputs,
      truncation and the answers ``(sum of log-probs, continuation is greedy)`` are lm-eval's;
      with a small model (micro: hidden 16-128, vocabulary 4,096) the vocabulary projection
      and its log-softmax are most of lm-eval's time. Otherwise lm-eval's own method runs."""
    import inspect

    from lm_eval.models.huggingface import HFLM

    class AdapterHFLM(HFLM):
        def tok_encode(self, string, add_special_tokens=None, left_truncate_len=None, **kwargs):
            if kwargs:
                return super().tok_encode(string, add_special_tokens, left_truncate_len, **kwargs)
            memo = self.tokenizer.__dict__.setdefault("_pythia_tok_encode", {})
            key = (string, add_special_tokens, left_truncate_len, self.add_bos_token)
            if key not in memo:
                memo[key] = super().tok_encode(string, add_special_tokens, left_truncate_len)
            return list(memo[key])

        def _scores_continuations_only(self, override_bs) -> bool:
            forward = getattr(self.model, "forward", None)
            return (
                self.backend == "causal"
                and isinstance(override_bs or self.batch_size, int)
                and forward is not None
                and "logits_to_keep" in inspect.signature(forward).parameters
                and not hasattr(self.model, "peft_config")
            )

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
            if not self._scores_continuations_only(override_bs):
                return super()._loglikelihood_tokens(
                    requests, disable_tqdm=disable_tqdm, override_bs=override_bs
                )
            import torch
            import torch.nn.functional as F
            from tqdm.auto import tqdm

            bs = max(1, int(override_bs or self.batch_size))
            batches, cut = _batches(
                requests, self.max_length, bs, group=bool(getattr(self, "logits_cache", True))
            )
            if cut:
                log.warning(
                    "%d of %d lm-eval requests are longer than the model's %d tokens: their contexts "
                    "are cut from the left",
                    cut,
                    len(requests),
                    self.max_length,
                )
            answers: list[tuple[float, bool] | None] = [None] * len(requests)
            bar = tqdm(
                total=len(requests),
                disable=disable_tqdm or self.rank != 0,
                desc="Running loglikelihood requests",
            )
            for batch in batches:
                width = max(len(inp) for inp, _ in batch)
                ids = torch.zeros(len(batch), width, dtype=torch.long)
                keep = torch.zeros(len(batch), width, dtype=torch.bool)
                for row, (inp, reads) in enumerate(batch):
                    ids[row, : len(inp)] = torch.tensor(inp)
                    keep[row, len(inp) - max(len(c) for _, c in reads) : len(inp)] = True
                with (
                    torch.no_grad(),
                    torch.autocast(
                        device_type=self.device.type,
                        dtype=self.mixed_precision_dtype,
                        enabled=self.mixed_precision_dtype is not None,
                    ),
                ):
                    logits = self.model(
                        ids.to(self.device), logits_to_keep=keep.to(self.device)
                    ).logits
                logp = F.log_softmax(
                    logits.reshape(-1, logits.shape[-1]), dim=-1, dtype=self.softmax_dtype
                )
                if logp.shape[0] != int(keep.sum()):
                    raise RuntimeError(
                        f"{type(self.model).__name__} returned {logp.shape[0]} logits for "
                        f"{int(keep.sum())} kept positions"
                    )
                end = keep.sum(1).cumsum(0).tolist()  # a row's kept positions end here in logp
                for row, (_inp, reads) in enumerate(batch):
                    for r, cont in reads:
                        sel = logp[end[row] - len(cont) : end[row]]
                        target = torch.tensor(cont, dtype=torch.long, device=logp.device)
                        answer = (
                            float(sel.gather(1, target[:, None]).sum()),
                            bool((sel.argmax(-1) == target).all()),
                        )
                        answers[r] = answer
                        if requests[r][0] is not None:
                            self.cache_hook.add_partial("loglikelihood", requests[r][0], answer)
                        bar.update(1)
            bar.close()
            return answers

    return AdapterHFLM


def lm_eval_model(model, tokenizer, batch_size: int = 16, max_length: int | None = None):
    """An lm-eval ``HFLM`` wrapping a loaded causal LM and its tokenizer (no reload, no copy;
    tokenizations remembered on the tokenizer object, see :func:`_hflm_class`)."""
    kwargs: dict[str, Any] = {"backend": "causal", "batch_size": batch_size}
    if max_length is not None:
        kwargs["max_length"] = max_length
    return _hflm_class()(pretrained=model, tokenizer=tokenizer, **kwargs)


@functools.lru_cache(maxsize=8)
def _task_manager(include_path: str | None, defaults: bool):
    from lm_eval.tasks import TaskManager

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


def _env_info_once() -> None:
    """Make lm-eval collect its environment record once per process.

    ``simple_evaluate`` adds the environment to every result (``add_env_info``: torch's
    ``collect_env``, which runs ``pip list`` and other subprocesses): 2-9 s per call on a busy
    2-core machine, several times the evaluation of a small model, and paid again for every
    checkpoint a section evaluates. It cannot change within a process, so the first call's
    record is kept and copied into later results."""
    from lm_eval import evaluator

    if getattr(evaluator.add_env_info, "once", False):
        return
    collect, kept = evaluator.add_env_info, {}

    def add_env_info(storage: dict) -> None:
        if not kept:
            collect(kept)
        storage.update(json.loads(json.dumps(kept, default=str)))

    add_env_info.once = True
    evaluator.add_env_info = add_env_info


def _compiled_templates_once() -> None:
    """Make lm-eval compile each Jinja template once per process.

    lm-eval renders a task's ``doc_to_text``/``doc_to_target``/``doc_to_choice`` templates with
    ``utils.apply_template``, which compiles the template string again on every call (jinja's
    ``from_string`` keeps no cache): ~19,000 compilations for one model's term-frequency
    evaluation, a third of its time at 138K. The compiled template is kept per template string, in
    lm-eval's own environment (same filters, same undefined handling), and renders the same text."""
    from lm_eval import utils

    if getattr(utils.apply_template, "once", False):
        return
    compiled = functools.lru_cache(maxsize=4096)(utils.env.from_string)

    def apply_template(template: str, doc: dict) -> str:
        return compiled(template).render(**doc)

    apply_template.once, apply_template.compiled, apply_template.original = (
        True,
        compiled,
        utils.apply_template,
    )
    utils.apply_template = apply_template


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
    from importlib.metadata import PackageNotFoundError, version

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
    from lm_eval.tasks._yaml_loader import load_yaml

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
) -> dict[str, dict[str, Any]]:
    """Evaluate lm-eval ``tasks`` on ``checkpoint`` (a :class:`pythia.runs.Checkpoint`), cached.

    Returns ``{task: record}``; a record holds ``results`` (``{task or subtask: {"acc,none": ..,
    "acc_stderr,none": .., ...}}`` as lm-eval reports them), ``n_samples``, ``num_fewshot``,
    ``higher_is_better``, the checkpoint ``identity``, the ``task_digest`` and, with
    ``log_samples``, ``samples`` (lm-eval's per-document records). Only missing tasks run; the
    model is ``model``/``tokenizer`` if given, else loaded from the checkpoint (``dtype``,
    ``device``) when needed. ``bootstrap_iters`` as lm-eval (its CLI default: 100000).
    ``cache_requests``: lm-eval's cache of built requests (prompts, few-shot contexts), which
    saves rebuilding them for every checkpoint; lm-eval keys it by task name and shot count
    only, so point ``$LM_HARNESS_CACHE_PATH`` at a folder named after the tasks' digests
    before lm-eval is imported (:func:`request_cache`).
    ``max_length``: lm-eval's context window (default: the model's ``max_position_embeddings``).
    """
    folder = checkpoint_dir(
        Path(root) if root else cache_root(checkpoint.suite) / "lm_eval", checkpoint
    )
    files = {
        t: _record_file(folder, t, num_fewshot, task_digest(t, include_path), limit) for t in tasks
    }
    records: dict[str, dict] = {}
    for t, f in files.items():
        try:
            rec = json.loads(f.read_text()) if f.is_file() else None
        except (OSError, json.JSONDecodeError):
            rec = None
        if rec is not None and (not log_samples or "samples" in rec):
            records[t] = rec
    todo = [t for t in tasks if t not in records]
    if not todo:
        return {t: records[t] for t in tasks}

    import lm_eval

    if model is None:
        model = checkpoint.load_model(dtype=dtype, device=device)
    if tokenizer is None:
        tokenizer = checkpoint.load_tokenizer()
    log.info("lm-eval %s on %s (%d-shot)", ", ".join(todo), checkpoint.name, num_fewshot)
    _env_info_once()
    _compiled_templates_once()
    out = lm_eval.simple_evaluate(
        model=lm_eval_model(model, tokenizer, batch_size=batch_size, max_length=max_length),
        tasks=todo,
        num_fewshot=num_fewshot,
        task_manager=task_manager(include_path, todo),
        limit=limit,
        log_samples=log_samples,
        bootstrap_iters=bootstrap_iters,
        verbosity="WARNING",
        cache_requests=cache_requests,
    )
    for t in todo:
        names = [n for n in _subtasks(out, t) if n in out["results"]]
        rec = {
            "task": t,
            "identity": checkpoint.identity,
            "checkpoint": checkpoint.name,
            "step": checkpoint.step,
            "num_fewshot": num_fewshot,
            "limit": limit,
            "task_digest": files[t].stem.rsplit("-", 1)[-1],
            "results": {n: out["results"][n] for n in names},
            "n_samples": {n: out["n-samples"][n] for n in names if n in out.get("n-samples", {})},
            "higher_is_better": {
                n: out["higher_is_better"][n] for n in names if n in out.get("higher_is_better", {})
            },
            "versions": {n: out["versions"][n] for n in names if n in out.get("versions", {})},
            "lm_eval_version": out.get("lm_eval_version"),
        }
        if log_samples:
            rec["samples"] = {n: out["samples"][n] for n in names if n in out.get("samples", {})}
        write_json(files[t], rec)
        records[t] = json.loads(files[t].read_text())  # as a rerun will see it (JSON types)
    return {t: records[t] for t in tasks}


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
