"""Pythia's published benchmark results over training, as one compact table.

EleutherAI published the lm-evaluation-harness results of every Pythia model at its
checkpoints (repository ``EleutherAI/pythia``, folder ``evals/pythia-v1/``, Apache-2.0): one
JSON per model, step and shot count, ``pythia-<size>[-deduped]/{zero,five}-shot/
<size>[-deduped][-5shot]_step<N>.json``, each ``{"results": {task: {metric: value,
metric_stderr: value}}, "config": {"num_fewshot": ...}}`` from the harness of early 2023.

:func:`convert` keeps the paper's eight benchmarks (:data:`TASKS`) and turns them into rows
of the section's tidy table (``model, params, dataset, step, tokens, task, num_fewshot,
metric, value, stderr, source="published"``), with the old harness's names mapped to
lm-eval 0.4's (:data:`METRICS`: ``ppl`` -> ``perplexity``; the task names are unchanged for
these eight). Folders of other training runs (``-0.25MtokBS`` etc. batch-size ablations) are
left out; ``pythia-1b-bf16`` is the released standard 1B (trained in bf16, BRIEF section 1).
Values are rounded to 6 significant digits.

The table is committed as ``pythia/published/tables/pythia_evals.csv`` beside
``pythia_evals.json`` (source, licence, how it was made); the package reads that copy
(:func:`load`) and never the reference folder. Regenerate it with::

    pythia benchmarks published --source ../shared/reference/pythia-evals/pythia-v1
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from pythia.config import load_suite
from pythia.errors import MissingInputError
from pythia.io import atomic_path, write_json

TABLES = Path(__file__).parent / "tables"
TABLE = TABLES / "pythia_evals.csv"
SIDECAR = TABLES / "pythia_evals.json"

TASKS = (
    "lambada_openai",
    "piqa",
    "winogrande",
    "wsc",
    "arc_easy",
    "arc_challenge",
    "sciq",
    "logiqa",
)
"""The paper's benchmarks, by their lm-eval 0.4 names (the same in the old harness)."""
METRICS = {"acc": "acc", "acc_norm": "acc_norm", "ppl": "perplexity"}
"""Old harness metric name -> lm-eval 0.4 name."""
TOKENS_PER_STEP = 1024 * 2048
"""Pythia's batch: 1024 sequences of 2048 tokens."""
SOURCE = "EleutherAI/pythia, evals/pythia-v1 (https://github.com/EleutherAI/pythia/tree/main/evals/pythia-v1)"
LICENSE = "Apache-2.0"
COLUMNS = [
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

_FOLDER = re.compile(r"^pythia-(\d+(?:\.\d+)?[mb])(-deduped|-bf16)?$")
_STEP = re.compile(r"_step(\d+)\.json$")


def _params() -> dict[str, int]:
    cfg = load_suite("pythia")
    return {name: cfg.total_params(m) for name, m in cfg.models.items()}


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


def folder_model(name: str) -> tuple[str, str] | None:
    """``pythia-160m-deduped`` -> ``("160M", "deduped")``; None for folders of other runs."""
    m = _FOLDER.match(name)
    if not m:
        return None
    return m.group(1).upper(), "deduped" if m.group(2) == "-deduped" else "standard"


def read_file(path: str | Path) -> list[dict]:
    """Rows of one published JSON (model and dataset from its folder, step from its name)."""
    path = Path(path)
    md, sm = folder_model(path.parent.parent.name), _STEP.search(path.name)
    if md is None or sm is None:
        raise MissingInputError(
            f"{path} is not a published Pythia result (expected pythia-<size>[-deduped]/"
            f"<shots>/<name>_step<N>.json)"
        )
    model, dataset = md
    step = int(sm.group(1))
    doc = json.loads(path.read_text())
    shots = int(
        doc.get("config", {}).get("num_fewshot", 5 if path.parent.name.startswith("five") else 0)
    )
    rows = []
    for task in TASKS:
        res = doc["results"].get(task)
        if res is None:
            continue
        for old, new in METRICS.items():
            if old in res:
                rows.append(
                    {
                        "model": model,
                        "dataset": dataset,
                        "step": step,
                        "tokens": step * TOKENS_PER_STEP,
                        "task": task,
                        "num_fewshot": shots,
                        "metric": new,
                        "value": _round(res[old]),
                        "stderr": _round(res.get(f"{old}_stderr")),
                        "source": "published",
                    }
                )
    return rows


def convert(source: str | Path) -> pd.DataFrame:
    """The published results under ``source`` (the ``pythia-v1`` folder) as one tidy frame."""
    source = Path(source)
    files = sorted(
        f for f in source.glob("pythia-*/*-shot/*.json") if folder_model(f.parent.parent.name)
    )
    if not files:
        raise MissingInputError(
            f"no published results (pythia-<size>[-deduped]/<zero|five>-shot/*.json) under "
            f"{source}; give the pythia-v1 folder of EleutherAI/pythia's evals"
        )
    df = pd.DataFrame([r for f in files for r in read_file(f)])
    params = _params()
    df["params"] = df["model"].map(params).astype("Int64")
    df = df[COLUMNS].sort_values(
        ["dataset", "params", "task", "num_fewshot", "metric", "step"], kind="stable"
    )
    return df.reset_index(drop=True)


def write(source: str | Path, table: str | Path = TABLE) -> Path:
    """Convert ``source`` and write the committed table and its sidecar (source, licence)."""
    df = convert(source)
    table = Path(table)
    with atomic_path(table, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    write_json(
        table.with_suffix(".json"),
        {
            "source": SOURCE,
            "license": LICENSE,
            "converted_by": "pythia.published.evals.write",
            "command": "pythia benchmarks published --source <pythia-v1 folder>",
            "tasks": list(TASKS),
            "metrics": METRICS,
            "rows": len(df),
            "files": int(df.groupby(["model", "dataset", "step", "num_fewshot"]).ngroups),
            "note": "values rounded to 6 significant digits; pythia-1b-bf16 is the standard 1B; batch-size ablations left out",
        },
    )
    return table


def load(table: str | Path = TABLE) -> pd.DataFrame:
    """The committed table (what the notebook draws beside our results)."""
    return pd.read_csv(table)


__all__ = [
    "LICENSE",
    "METRICS",
    "SOURCE",
    "TABLE",
    "TASKS",
    "convert",
    "folder_model",
    "load",
    "read_file",
    "write",
]
