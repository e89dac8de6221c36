"""EleutherAI's published evaluations of the gender-intervention models, as one compact table.

Source: the ``evals/`` folder of the EleutherAI/pythia repository (Apache-2.0), files
``bias-evals/*.json`` (lm-evaluation-harness v0.3-era results of the deduplicated baselines
``pythia-<size>-deduped``, the 7% runs ``intervention-<size>-deduped`` and the 21% run
``long-intervention-1.3b-deduped``, per step) and ``bias-evals/winobias/`` +
``pythia-v0/winobias/`` (WinoBias through promptsource prompts, exact match per prompt). The
sizes carry their v0 names (19m, 350m, 1.3b, 6.7b = the v1 70M, 410M, 1.4B, 6.9B).

:func:`convert` is run by a developer on a copy of that folder (never at run time) and writes
``tables/bias_evals.csv`` with its ``bias_evals.json`` (source, licence, what each column is):

    model, variant (baseline | intervention | intervention_long), step, metric, value, stderr

metrics: ``crows_pct_stereotype``, ``crows_likelihood_diff`` (CrowS-Pairs English gender),
``lambada_acc``, ``lambada_ppl``, and WinoBias ``winobias_pro_em`` / ``winobias_anti_em`` (mean
exact match over the type 1 and 2 pro/anti-stereotypical sets and both prompts).

    pythia gender-intervention published --reference ../shared/reference/pythia-evals
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from pythia.errors import MissingInputError
from pythia.io import atomic_path, write_json

TABLE = Path(__file__).parent / "tables" / "bias_evals.csv"
SOURCE = {
    "source": "EleutherAI/pythia repository, evals/bias-evals and evals/pythia-v0/winobias (published evaluation results)",
    "license": "Apache-2.0 (EleutherAI/pythia LICENSE)",
    "converted_by": "pythia/published/bias.py",
}
V0_NAMES = {
    "19m": "70M",
    "350m": "410M",
    "1.3b": "1.4B",
    "6.7b": "6.9B",
    "6.9b": "6.9B",
    "1.4b": "1.4B",
    "410m": "410M",
    "70m": "70M",
}
_FILE = re.compile(
    r"^(pythia|intervention|long-intervention)-([0-9.]+[mb])-deduped-step(\d+)_eval_results"
)
_WINO_INTERVENED = re.compile(r"eval_results_([0-9.]+[mb])-deduped(-long)?_(\d+)\.json$")
VARIANT = {
    "pythia": "baseline",
    "intervention": "intervention",
    "long-intervention": "intervention_long",
}


def _rows_bias(path: Path) -> list[dict]:
    m = _FILE.match(path.name)
    if not m:
        return []
    kind, size, step = m.groups()
    res = json.loads(path.read_text())["results"]
    base = {"model": V0_NAMES[size], "variant": VARIANT[kind], "step": int(step)}
    out = []
    for task, metric, name in (
        ("crows_pairs_english_gender", "pct_stereotype", "crows_pct_stereotype"),
        ("crows_pairs_english_gender", "likelihood_difference", "crows_likelihood_diff"),
        ("lambada_openai", "acc", "lambada_acc"),
        ("lambada_openai", "ppl", "lambada_ppl"),
    ):
        if task in res and metric in res[task]:
            out.append(
                {
                    **base,
                    "metric": name,
                    "value": res[task][metric],
                    "stderr": res[task].get(f"{metric}_stderr"),
                }
            )
    return out


def _rows_wino(path: Path, model: str, variant: str, step: int | None) -> list[dict]:
    d = json.loads(path.read_text())
    if step is None:
        args = (d.get("config") or {}).get("model_args") or {}
        step = args.get("iteration")
        if step is None:
            return []
    by: dict[str, list[tuple[float, float]]] = {"pro": [], "anti": []}
    results = d["results"] if "results" in d else list((d.get("table_results") or {}).values())
    for r in results:
        kind = (
            "pro"
            if r["task_name"].endswith("_pro")
            else "anti"
            if r["task_name"].endswith("_anti")
            else None
        )
        if kind and "em" in r:
            by[kind].append((r["em"], r.get("em_stderr") or 0.0))
    out = []
    for kind, vals in by.items():
        if vals:
            n = len(vals)
            out.append(
                {
                    "model": model,
                    "variant": variant,
                    "step": int(step),
                    "metric": f"winobias_{kind}_em",
                    "value": sum(v for v, _ in vals) / n,
                    "stderr": (sum(s * s for _, s in vals)) ** 0.5 / n,
                }
            )
    return out


def collect(reference: str | Path) -> list[dict]:
    """Every row of the table from a copy of the ``evals/`` folder."""
    ref = Path(reference)
    bias = ref / "bias-evals"
    if not bias.is_dir():
        raise MissingInputError(
            f"{bias} does not exist; give the pythia-evals folder (holding bias-evals/ and pythia-v0/)"
        )
    rows = [r for f in sorted(bias.glob("*.json")) for r in _rows_bias(f)]
    wino = bias / "winobias"
    for d in sorted(p for p in wino.glob("*") if p.is_dir() and p.name in V0_NAMES.values()):
        rows += [
            r for f in sorted(d.glob("*.json")) for r in _rows_wino(f, d.name, "baseline", None)
        ]
    for sub, variant in (("intervene_7", "intervention"), ("intervene_21", "intervention_long")):
        for f in sorted((wino / sub).glob("*/*.json")):
            m = _WINO_INTERVENED.search(f.name)
            if m:
                rows += _rows_wino(f, V0_NAMES[m.group(1)], variant, int(m.group(3)))
    v0 = ref / "pythia-v0" / "winobias"
    for d in sorted(p for p in v0.glob("*") if p.is_dir()):
        model = V0_NAMES.get(d.name.lower())
        if model:
            rows += [
                r
                for f in sorted(d.glob("*.json"))
                for r in _rows_wino(f, model, "baseline_v0", None)
            ]
    return rows


def convert(reference: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write ``bias_evals.csv`` (one row per model, variant, step, metric; repeated evaluations of
    one step averaged) and ``bias_evals.json`` (source and licence) into ``out``."""
    out = Path(out) if out else TABLE.parent
    df = pd.DataFrame(collect(reference))
    df = (
        df.groupby(["model", "variant", "step", "metric"], as_index=False)
        .agg(value=("value", "mean"), stderr=("stderr", "mean"))
        .sort_values(["model", "variant", "metric", "step"])
    )
    csv = out / TABLE.name
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    meta = out / "bias_evals.json"
    write_json(
        meta,
        {
            **SOURCE,
            "rows": len(df),
            "columns": {
                "model": "the v1 size name of the model (v0 names 19m, 350m, 1.3b, 6.7b)",
                "variant": "baseline (pythia-<size>-deduped), intervention (the last 7%), intervention_long (the last 21%), "
                "baseline_v0 (pythia-v0/winobias)",
                "step": "training step",
                "metric": "see pythia/published/bias.py",
                "value": "mean over repeated files",
                "stderr": "as published (mean over repeated files)",
            },
        },
    )
    return [csv, meta]


def load() -> pd.DataFrame:
    """The committed table."""
    return pd.read_csv(TABLE)
