"""Section 06, training trajectories (after Xia et al. 2023, "Training Trajectories of Language
Models Across Scales"): load what ``pythia training-trajectories evaluate`` wrote, summarise, plot.

Inputs, per (dataset, model), in ``work/<suite>/training_trajectories/<dataset>/<model>/``
(:mod:`pythia.evaluate.training_trajectories`): ``losses.npz`` (steps; float16 per-token validation
losses, checkpoint x token; losses of hallucination-like and true continuations, checkpoint x
prompt x token) and ``icl.csv`` (per task and step: accuracy, chance, option perplexities).

Analyses, as the paper defines them:

* Token classes (section 3): for each token, its trajectory over the checkpoints from a start
  fraction t of training on (step >= t x train_iters, step > 0), y = ppl / ppl(first), is
  fitted by OLS y ~ 1 + log(step). Upward (the loss rises again: double descent) if the slope
  is > 0 with p < 0.05, downward if < 0 with p < 0.05; stagnant if neither and the geometric
  mean of y lies within [0.95, 1.05] of both its first and its last value; otherwise other
  (fluctuating). The fit is the closed-form OLS, vectorised over tokens (statsmodels' OLS gives
  the same slopes and p-values, tests/analysis/test_training_trajectories.py; one statsmodels
  fit per token would take ~1 ms x 10^5-10^6 tokens per size and start fraction).
* Same perplexity, same behaviour (section 3): token subsets defined on one (reference) size
  (each class; the 10% most improved tokens) have their mean perplexity, exp(mean loss over the
  subset), plotted against validation perplexity for every size. The number for "do the curves
  overlap": the spread across sizes of log subset perplexity at matched validation perplexity
  (standard deviation across sizes, averaged over a grid of the validation perplexities all
  sizes pass through), beside the same spread at matched step; reported as exp(spread) - 1.
* Hallucination-like sequences (section 4): perplexity, exp(mean token loss), of the
  contrastively decoded continuations and of the true continuations at every checkpoint.
* Perplexity vs in-context accuracy (section 5): accuracy (mean over tasks) and the gap
  log ppl(incorrect options) - log ppl(correct option) against validation perplexity, per size,
  with the chance level.

x-axes (the paper's): ``step``, ``tokens`` (step x tokens per step), ``flops`` (6 x total
parameters x tokens) or ``val_ppl`` (validation perplexity at that checkpoint).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter
from scipy import stats

from pythia import paths
from pythia.config import Suite, config_digest
from pythia.errors import MissingInputError, UsageError
from pythia.runs import RELEASED_SIZES
from pythia.train.checkpoint import run_digest

STEM = "training_trajectories"
CLASSES = ("upward", "downward", "stagnant", "other")
ALPHA = 0.05
BAND = (0.95, 1.05)
AXES = ("step", "tokens", "flops", "val_ppl")
AXIS_LABELS = {
    "step": "training step",
    "tokens": "training tokens",
    "flops": "training FLOPs (6 N D)",
    "val_ppl": "validation perplexity",
}
IMPROVED_SHARE = 0.1
"""The "most improved" subset: this share of tokens with the largest loss drop over the window."""


# ------------------------------------------------------------------------------ files and digests


def run_dir(suite: str, dataset: str, model: str) -> Path:
    """``work/<suite>/training_trajectories/<dataset>/<model>/``."""
    return paths.suite_dir(suite) / STEM / dataset / model


def evaluate_digest(suite: Suite, dataset: str, model: str) -> str:
    """What one ``evaluate`` job reads: the section's settings, the data and tokenizer settings,
    and the trained run (its run digest; hub/local checkpoints are identified in the caches)."""
    return config_digest(
        {
            "settings": suite.analysis.training_trajectories.model_dump(mode="json"),
            "data": suite.data.model_dump(mode="json"),
            "seq_len": suite.training.seq_len,
            "run": run_digest(suite, model, dataset),
        }
    )


def generate_digest(suite: Suite, dataset: str, models: list[str] | None = None) -> str:
    """What one ``generate`` job reads: the settings and the runs of the contrasted pair
    ``models`` (default: the suite's smallest and largest)."""
    pair = list(models) if models else [next(iter(suite.models)), list(suite.models)[-1]]
    return config_digest(
        {
            "settings": suite.analysis.training_trajectories.model_dump(mode="json"),
            "data": suite.data.model_dump(mode="json"),
            "seq_len": suite.training.seq_len,
            "runs": {m: run_digest(suite, m, dataset) for m in pair},
        }
    )


def tasks_digest(suite: Suite) -> str:
    """What the task files depend on: the chosen tasks and how many questions of each."""
    s = suite.analysis.training_trajectories
    return config_digest({"icl_tasks": s.icl_tasks, "icl_limit": s.icl_limit, "format": 2})


def load_run(suite: str, dataset: str, model: str) -> dict[str, np.ndarray]:
    """``steps`` (C,), ``val_losses`` (C, T) float16, ``gen_losses`` / ``true_losses`` (C, P, K) float16."""
    f = run_dir(suite, dataset, model) / "losses.npz"
    if not f.is_file():
        raise MissingInputError(
            f"{f} is missing; run `pythia training-trajectories evaluate --suite {suite} "
            f"--dataset {dataset} --model {model} ...` (the workflow's training_trajectories rules)"
        )
    with np.load(f) as z:
        return {k: z[k] for k in z.files}


def load_runs(
    suite: str, datasets: list[str], models: list[str]
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Every (dataset, model)'s arrays, by (dataset, model)."""
    return {(d, m): load_run(suite, d, m) for d in datasets for m in models}


def load_icl(suite: str, datasets: list[str], models: list[str]) -> pd.DataFrame:
    """The ICL rows of every (dataset, model)."""
    frames = []
    for d in datasets:
        for m in models:
            f = run_dir(suite, d, m) / "icl.csv"
            if not f.is_file():
                raise MissingInputError(
                    f"{f} is missing; run `pythia training-trajectories evaluate` for {m}/{d}"
                )
            frames.append(pd.read_csv(f))
    return pd.concat(frames, ignore_index=True)


def input_files(suite: str, datasets: list[str], models: list[str]) -> dict[str, Path]:
    """The files a figure or table is made from (for provenance)."""
    out = {}
    for d in datasets:
        out[f"{d}/hallucination.npz"] = paths.suite_dir(suite) / STEM / d / "hallucination.npz"
        for m in models:
            for f in ("losses.npz", "icl.csv"):
                out[f"{d}/{m}/{f}"] = run_dir(suite, d, m) / f
    return out


def job_seconds(suite: str, datasets: list[str], models: list[str]) -> float:
    """Seconds the section's generate and evaluate jobs took, summed (as recorded in their outputs;
    0 for files written before they recorded it)."""
    total = 0.0
    for f in input_files(suite, datasets, models).values():
        if f.suffix == ".npz" and f.is_file():
            with np.load(f) as z:
                total += float(z["seconds"]) if "seconds" in z.files else 0.0
    return total


# ------------------------------------------------------------------------------ x-axes


def add_axes(frame: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """``frame`` (with ``model``, ``step``) plus ``tokens`` = step x tokens per step and
    ``flops`` = 6 x total parameters x tokens (the usual C = 6 N D)."""
    out = frame.copy()
    out["tokens"] = out["step"].astype(np.int64) * suite.training.tokens_per_step
    params = {m: suite.total_params(suite.model(m)) for m in out["model"].unique()}
    out["flops"] = 6.0 * out["model"].map(params).astype(float) * out["tokens"].astype(float)
    return out


def validation_curves(runs: dict, suite: Suite) -> pd.DataFrame:
    """Per (dataset, model, step): validation loss (mean token loss) and perplexity, tokens, FLOPs."""
    rows = []
    for (d, m), r in runs.items():
        loss = np.nanmean(r["val_losses"].astype(np.float64), axis=1)  # (C,)
        rows += [
            {
                "dataset": d,
                "model": m,
                "step": int(s),
                "val_loss": float(v),
                "val_ppl": float(np.exp(v)),
            }
            for s, v in zip(r["steps"], loss)
        ]
    return add_axes(pd.DataFrame(rows), suite)


# ------------------------------------------------------------------------------ token classes


def ols_slopes(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and two-sided p-value of the OLS fit y[:, j] ~ 1 + x for every column j.

    y: (n, T), x: (n,), n >= 3. The textbook formulas (what ``statsmodels.OLS`` computes):
    slope = sum(xc y) / sum(xc^2), se = sqrt(RSS / (n - 2) / sum(xc^2)), t = slope / se,
    p = 2 sf(|t|, n - 2) with xc = x - mean(x). A perfect fit (se = 0) has p = 0 if its slope
    is not 0, else 1."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 3:
        raise UsageError(f"an OLS slope with a p-value needs at least 3 checkpoints, got {n}")
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = xc @ (y - y.mean(0)) / sxx  # (T,)
    resid = y - y.mean(0) - np.outer(xc, slope)  # (n, T)
    se = np.sqrt((resid**2).sum(0) / (n - 2) / sxx)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = slope / se
    p = 2 * stats.t.sf(np.abs(t), n - 2)
    exact = se <= 1e-12 * np.maximum(1.0, np.abs(y).max(0))
    p = np.where(exact, np.where(slope != 0, 0.0, 1.0), p)
    return slope, p


def window(steps: np.ndarray, start_fraction: float, train_iters: int) -> np.ndarray:
    """Indices of the checkpoints from ``start_fraction`` of training on (step > 0, for log step)."""
    steps = np.asarray(steps)
    idx = np.flatnonzero((steps >= start_fraction * train_iters) & (steps > 0))
    if len(idx) < 3:
        raise UsageError(
            f"only {len(idx)} checkpoints from {start_fraction:.0%} of training on; the token classes "
            f"need 3 or more (a smaller start fraction or more analysis steps)"
        )
    return idx


def classify(losses: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(T,) class index into :data:`CLASSES` of each token's trajectory ``losses`` (n, T) over
    ``steps`` (n,) (already the window; see the module docstring)."""
    logp = np.asarray(losses, dtype=np.float64)  # log ppl of a token = its loss
    logy = logp - logp[:1]  # log(ppl / ppl(first))
    y = np.exp(logy)
    slope, p = ols_slopes(y, np.log(np.asarray(steps, dtype=np.float64)))
    gm = logy.mean(0)  # log of the geometric mean of y
    lo, hi = np.log(BAND[0]), np.log(BAND[1])
    flat = (
        (gm - logy[0] >= lo) & (gm - logy[0] <= hi) & (gm - logy[-1] >= lo) & (gm - logy[-1] <= hi)
    )
    sig = p < ALPHA
    out = np.full(y.shape[1], CLASSES.index("other"), dtype=np.int8)
    out[flat & ~sig] = CLASSES.index("stagnant")
    out[sig & (slope > 0)] = CLASSES.index("upward")
    out[sig & (slope < 0)] = CLASSES.index("downward")
    return out


def token_classes(run: dict, start_fraction: float, train_iters: int) -> np.ndarray:
    """(T,) classes of a run's validation tokens over its window from ``start_fraction``."""
    idx = window(run["steps"], start_fraction, train_iters)
    losses = run["val_losses"][idx].astype(np.float64)
    ok = np.isfinite(losses).all(0)
    out = np.full(losses.shape[1], -1, dtype=np.int8)
    out[ok] = classify(losses[:, ok], run["steps"][idx])
    return out


def class_shares(runs: dict, suite: Suite, fractions: list[float] | None = None) -> pd.DataFrame:
    """Share of each class per (dataset, model, start fraction) (the paper's Figure 2)."""
    fractions = fractions or list(suite.analysis.training_trajectories.start_fractions)
    rows = []
    for (d, m), r in runs.items():
        for t in fractions:
            cls = token_classes(r, t, suite.training.train_iters)
            cls = cls[cls >= 0]
            for i, name in enumerate(CLASSES):
                rows.append(
                    {
                        "dataset": d,
                        "model": m,
                        "start_fraction": float(t),
                        "class": name,
                        "share": float((cls == i).mean()),
                        "tokens": len(cls),
                    }
                )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ same perplexity


def token_subsets(run: dict, start_fraction: float, train_iters: int) -> dict[str, np.ndarray]:
    """Boolean masks (T,) of the token subsets defined on one run: every class, and the
    :data:`IMPROVED_SHARE` most improved tokens (largest loss drop from the window's first to
    its last checkpoint)."""
    cls = token_classes(run, start_fraction, train_iters)
    out = {name: cls == i for i, name in enumerate(CLASSES)}
    idx = window(run["steps"], start_fraction, train_iters)
    drop = run["val_losses"][idx[0]].astype(np.float64) - run["val_losses"][idx[-1]].astype(
        np.float64
    )
    drop = np.where(np.isfinite(drop), drop, -np.inf)
    k = max(1, round(IMPROVED_SHARE * np.isfinite(drop).sum()))
    improved = np.zeros(len(drop), dtype=bool)
    improved[np.argsort(-drop, kind="stable")[:k]] = True
    return {"most improved": improved, **out}


def subset_curves(runs: dict, suite: Suite, reference: str, start_fraction: float) -> pd.DataFrame:
    """Per dataset, subset (defined on ``reference``'s run of that dataset), model and step: the
    subset's perplexity exp(mean loss) and the validation perplexity."""
    rows = []
    for d in dict.fromkeys(d for d, _ in runs):  # the runs' order: standard first
        if (d, reference) not in runs:
            raise UsageError(
                f"reference model {reference!r} has no run on {d!r}; models: "
                f"{', '.join(m for dd, m in runs if dd == d)}"
            )
        subsets = token_subsets(runs[d, reference], start_fraction, suite.training.train_iters)
        for (dd, m), r in runs.items():
            if dd != d:
                continue
            losses = r["val_losses"].astype(np.float64)
            val = np.nanmean(losses, axis=1)
            for name, mask in subsets.items():
                if not mask.any():
                    continue
                sub = np.nanmean(losses[:, mask], axis=1)
                rows += [
                    {
                        "dataset": d,
                        "subset": name,
                        "subset_tokens": int(mask.sum()),
                        "model": m,
                        "step": int(s),
                        "val_ppl": float(np.exp(v)),
                        "subset_ppl": float(np.exp(u)),
                    }
                    for s, v, u in zip(r["steps"], val, sub)
                ]
    return add_axes(pd.DataFrame(rows), suite)


def _spread(curves: pd.DataFrame, x: str, grid_points: int = 50) -> float:
    """Mean over a common grid of ``log x`` of the std across models of log subset ppl
    (linear interpolation of each model's curve); NaN when the models share no range."""
    per_model = []
    for _, g in curves.groupby("model"):
        g = g[g[x] > 0].sort_values(x)
        if len(g) >= 2:
            per_model.append(
                (np.log(g[x].to_numpy(float)), np.log(g["subset_ppl"].to_numpy(float)))
            )
    if len(per_model) < 2:
        return float("nan")
    lo, hi = max(xs.min() for xs, _ in per_model), min(xs.max() for xs, _ in per_model)
    if not hi > lo:
        return float("nan")
    grid = np.linspace(lo, hi, grid_points)
    ys = np.stack([np.interp(grid, xs, y) for xs, y in per_model])  # (models, grid)
    return float(ys.std(0).mean())


def overlap(curves: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and subset: the relative spread, exp(spread) - 1, of subset perplexity across
    sizes at matched validation perplexity and at matched step (the curves overlap when the
    first is small, and smaller than the second)."""
    rows = []
    for (d, name), g in curves.groupby(["dataset", "subset"], sort=False):
        at_ppl, at_step = _spread(g, "val_ppl"), _spread(g, "step")
        rows.append(
            {
                "dataset": d,
                "subset": name,
                "subset_tokens": int(g["subset_tokens"].iloc[0]),
                "models": int(g["model"].nunique()),
                "spread_at_val_ppl": float(np.expm1(at_ppl)),
                "spread_at_step": float(np.expm1(at_step)),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ hallucination


def hallucination_curves(runs: dict, suite: Suite) -> pd.DataFrame:
    """Per (dataset, model, step, kind): perplexity of the generated (hallucination-like) and of the
    true continuations, exp(mean token loss), with the validation perplexity."""
    rows = []
    for (d, m), r in runs.items():
        val = np.exp(np.nanmean(r["val_losses"].astype(np.float64), axis=1))
        for kind, key in (("generated", "gen_losses"), ("true", "true_losses")):
            lo = r[key].astype(np.float64)
            ppl = np.exp(np.nanmean(lo.reshape(len(lo), -1), axis=1))
            rows += [
                {
                    "dataset": d,
                    "model": m,
                    "step": int(s),
                    "kind": kind,
                    "ppl": float(p),
                    "val_ppl": float(v),
                }
                for s, p, v in zip(r["steps"], ppl, val)
            ]
    return add_axes(pd.DataFrame(rows), suite)


def hallucination_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): the generated sequences' lowest perplexity, its step, the final
    perplexity and their ratio (> 1: the model raised it again, the paper's large-model
    behaviour), and the true continuations' final perplexity."""
    rows = []
    for (d, m), g in curves.groupby(["dataset", "model"], sort=False):
        gen = g[g["kind"] == "generated"].sort_values("step")
        true = g[g["kind"] == "true"].sort_values("step")
        i = int(gen["ppl"].to_numpy().argmin())
        rows.append(
            {
                "dataset": d,
                "model": m,
                "min_step": int(gen["step"].iloc[i]),
                "min_ppl": float(gen["ppl"].iloc[i]),
                "final_ppl": float(gen["ppl"].iloc[-1]),
                "rise": float(gen["ppl"].iloc[-1] / gen["ppl"].iloc[i]),
                "true_final_ppl": float(true["ppl"].iloc[-1]),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ in-context accuracy


def icl_curves(icl: pd.DataFrame, val: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, step): mean over tasks of accuracy and chance, the option gap
    mean(log ppl_incorrect - log ppl_correct), and the validation perplexity."""
    df = icl.assign(gap=np.log(icl["ppl_incorrect"]) - np.log(icl["ppl_correct"]))
    g = (
        df.groupby(["dataset", "model", "step"], sort=False)
        .agg(
            acc=("acc", "mean"),
            acc_norm=("acc_norm", "mean"),
            chance=("chance", "mean"),
            gap=("gap", "mean"),
            tasks=("task", "nunique"),
        )
        .reset_index()
    )
    return g.merge(
        val[["dataset", "model", "step", "val_ppl", "tokens", "flops"]],
        on=["dataset", "model", "step"],
    )


def _spearman(x, y) -> float:
    """Spearman's rho; NaN (without a warning) when either side is constant (e.g. accuracy at chance)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def icl_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: how well log validation perplexity predicts accuracy and the option gap
    across every size and checkpoint (Spearman correlations; the paper: perplexity predicts
    ICL whatever the size), and the final accuracy range against chance."""
    rows = []
    for d, g in curves.groupby("dataset", sort=False):
        rows.append(
            {
                "dataset": d,
                "points": len(g),
                "spearman_acc_vs_log_ppl": _spearman(np.log(g["val_ppl"]), g["acc"]),
                "spearman_gap_vs_log_ppl": _spearman(np.log(g["val_ppl"]), g["gap"]),
                "acc_min": float(g["acc"].min()),
                "acc_max": float(g["acc"].max()),
                "chance": float(g["chance"].mean()),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ published Pythia

PUBLISHED_FILE = (
    Path(__file__).parents[1] / "published" / "tables" / "pythia_zero_shot_trajectories.csv"
)
"""Published Pythia zero-shot results over training, one row per (model, dataset, step):
LAMBADA (OpenAI) perplexity and accuracy, and the mean accuracy of the other zero-shot tasks.
Converted by :func:`convert_published` from EleutherAI/pythia ``evals/pythia-v1/<model>/zero-shot/``
(Apache-2.0)."""
PUBLISHED_TASKS = ("arc_challenge", "arc_easy", "piqa", "sciq", "winogrande", "logiqa", "wsc")
PUBLISHED_SOURCE = "EleutherAI/pythia evals/pythia-v1/<model>/zero-shot/*_step<N>.json (Apache-2.0)"
_PUBLISHED_STEP = re.compile(r"_step(\d+)\.json$")


def convert_published(reference: str | Path) -> pd.DataFrame:
    """The compact table of :data:`PUBLISHED_FILE` from the published ``pythia-v1`` folder (the
    standard and deduplicated models of the released sizes; batch-size and bf16 variants left out)."""
    rows = []
    names = {
        f"pythia-{m.lower()}" + s: (m, d)
        for m in RELEASED_SIZES
        for s, d in (("", "standard"), ("-deduped", "deduped"))
    }
    for folder in sorted(Path(reference).iterdir()):
        if folder.name not in names:
            continue
        model, dataset = names[folder.name]
        for f in sorted((folder / "zero-shot").glob("*_step*.json")):
            found = _PUBLISHED_STEP.search(f.name)
            if found is None:
                continue
            step = int(found.group(1))
            res = json.loads(f.read_text())["results"]
            accs = [res[t]["acc"] for t in PUBLISHED_TASKS if t in res]
            lam = res.get("lambada_openai", {})
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "step": step,
                    "lambada_ppl": lam.get("ppl"),
                    "lambada_acc": lam.get("acc"),
                    "mean_acc": float(np.mean(accs)) if accs else None,
                    "tasks": len(accs),
                }
            )
    if not rows:
        raise MissingInputError(
            f"no pythia-<size>[-deduped]/zero-shot/*_step<N>.json under {reference}; pass the "
            f"evals/pythia-v1 folder of EleutherAI/pythia"
        )
    order = {m: i for i, m in enumerate(RELEASED_SIZES)}
    df = pd.DataFrame(rows)
    return df.sort_values(
        ["dataset", "model", "step"],
        key=lambda c: c.map(order) if c.name == "model" else c,
        ignore_index=True,
    )


def load_published() -> pd.DataFrame:
    """The committed published table (:data:`PUBLISHED_FILE`)."""
    return pd.read_csv(PUBLISHED_FILE, comment="#")


def published_summary(pub: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: Spearman correlation of mean zero-shot accuracy with log LAMBADA perplexity
    over every size and checkpoint (the published analogue of Xia et al.'s third finding), and
    of accuracy with log step for comparison."""
    rows = []
    for d, g in pub.dropna(subset=["lambada_ppl", "mean_acc"]).groupby("dataset", sort=False):
        g = g[g["step"] > 0]
        rows.append(
            {
                "dataset": d,
                "points": len(g),
                "models": int(g["model"].nunique()),
                "spearman_acc_vs_log_lambada_ppl": float(
                    stats.spearmanr(np.log(g["lambada_ppl"]), g["mean_acc"]).statistic
                ),
                "spearman_acc_vs_log_step": float(
                    stats.spearmanr(np.log(g["step"]), g["mean_acc"]).statistic
                ),
            }
        )
    return pd.DataFrame(rows)


def plot_published(pub: pd.DataFrame, dataset: str = "standard"):
    """Published Pythia: mean zero-shot accuracy against LAMBADA perplexity, one colour per size."""
    g = pub[(pub["dataset"] == dataset) & (pub["step"] > 0)].dropna(
        subset=["lambada_ppl", "mean_acc"]
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(
        data=g,
        x="lambada_ppl",
        y="mean_acc",
        hue="model",
        marker="o",
        markersize=3,
        sort=False,
        ax=ax,
    )
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short range overlap
    ax.invert_xaxis()
    ax.set_xlabel("LAMBADA perplexity (published)")
    ax.set_ylabel(f"mean zero-shot accuracy ({len(PUBLISHED_TASKS)} tasks)")
    ax.set_title(f"published Pythia ({dataset}): perplexity predicts accuracy across sizes")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ plots


def _xscale(ax, axis: str) -> None:
    """A log x-axis labelled at its decades only (minor labels of a short range overlap)."""
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short range overlap
    ax.set_xlabel(AXIS_LABELS[axis])


def _positive(frame: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Rows plottable on a log x-axis (step 0 has no log)."""
    return frame[frame[axis] > 0]


def check_axis(axis: str) -> str:
    if axis not in AXES:
        raise UsageError(f"unknown x-axis {axis!r}; choose one of: {', '.join(AXES)}")
    return axis


def plot_validation(val: pd.DataFrame, axis: str = "tokens"):
    """Validation perplexity against the x-axis, one line per size (a panel per dataset)."""
    axis = check_axis(axis if axis != "val_ppl" else "tokens")
    datasets = list(val["dataset"].unique())
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False, sharey=True
    )
    for ax, d in zip(axes[0], datasets):
        sns.lineplot(
            data=_positive(val[val["dataset"] == d], axis),
            x=axis,
            y="val_ppl",
            hue="model",
            marker="o",
            markersize=3,
            ax=ax,
        )
        _xscale(ax, axis)
        ax.set_yscale("log")
        ax.set_ylabel("validation perplexity")
        ax.set_title(d)
    fig.tight_layout()
    return fig


def plot_classes(shares: pd.DataFrame):
    """Share of each token class against the start fraction t, one line per size, a panel per class
    (rows: datasets)."""
    datasets = list(shares["dataset"].unique())
    fig, axes = plt.subplots(
        len(datasets),
        len(CLASSES),
        figsize=(3.2 * len(CLASSES), 3 * len(datasets)),
        squeeze=False,
        sharex=True,
    )
    for row, d in zip(axes, datasets):
        for ax, c in zip(row, CLASSES):
            sub = shares[(shares["dataset"] == d) & (shares["class"] == c)]
            sns.lineplot(
                data=sub,
                x="start_fraction",
                y="share",
                hue="model",
                marker="o",
                ax=ax,
                legend=(c == CLASSES[-1]),
            )
            ax.set_title(f"{c} ({d})")
            ax.set_xlabel("start fraction t of training")
            ax.set_ylabel("share of tokens")
    fig.tight_layout()
    return fig


def plot_same_perplexity(curves: pd.DataFrame, dataset: str | None = None):
    """Subset perplexity against validation perplexity for every size, a panel per subset."""
    dataset = dataset or curves["dataset"].iloc[0]
    sub = curves[curves["dataset"] == dataset]
    names = list(sub["subset"].unique())
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        g = sub[sub["subset"] == name]
        sns.lineplot(
            data=g,
            x="val_ppl",
            y="subset_ppl",
            hue="model",
            marker="o",
            markersize=3,
            sort=False,
            ax=ax,
            legend=(name == names[-1]),
        )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short range overlap
        ax.set_yscale("log")
        ax.invert_xaxis()  # training runs left to right
        ax.set_title(f"{name} ({int(g['subset_tokens'].iloc[0])} tokens)")
        ax.set_xlabel("validation perplexity")
        ax.set_ylabel("subset perplexity")
    fig.suptitle(f"{dataset}: token subsets of the reference size")
    fig.tight_layout()
    return fig


def plot_hallucination(curves: pd.DataFrame, axis: str = "tokens", dataset: str | None = None):
    """Perplexity of hallucination-like (generated) and true continuations against the x-axis."""
    axis = check_axis(axis)
    dataset = dataset or curves["dataset"].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False, sharey=True)
    for ax, kind in zip(axes[0], ("generated", "true")):
        g = _positive(curves[(curves["dataset"] == dataset) & (curves["kind"] == kind)], axis)
        sns.lineplot(
            data=g,
            x=axis,
            y="ppl",
            hue="model",
            marker="o",
            markersize=3,
            sort=axis != "val_ppl",
            ax=ax,
            legend=(kind == "true"),
        )
        _xscale(ax, axis)
        if axis == "val_ppl":
            ax.invert_xaxis()
        ax.set_yscale("log")
        ax.set_ylabel("sequence perplexity")
        ax.set_title(f"{kind} continuations ({dataset})")
    fig.tight_layout()
    return fig


def plot_icl(curves: pd.DataFrame, dataset: str | None = None):
    """Accuracy (with chance) and the option perplexity gap against validation perplexity."""
    dataset = dataset or curves["dataset"].iloc[0]
    g = curves[curves["dataset"] == dataset]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False)
    a, b = axes[0]
    sns.scatterplot(data=g, x="val_ppl", y="acc", hue="model", ax=a, legend=False)
    a.axhline(float(g["chance"].mean()), color="grey", ls="--", label="chance")
    a.set_ylabel("accuracy (mean over tasks)")
    a.legend(loc="best")
    sns.scatterplot(data=g, x="val_ppl", y="gap", hue="model", ax=b)
    b.axhline(0, color="grey", ls="--")
    b.set_ylabel("log ppl(incorrect) - log ppl(correct)")
    for ax in (a, b):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short range overlap
        ax.invert_xaxis()
        ax.set_xlabel("validation perplexity")
    fig.suptitle(f"in-context (2-shot multiple choice), {dataset}")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ the closing note


def closing_note(
    shares: pd.DataFrame,
    ov: pd.DataFrame,
    hallu: pd.DataFrame,
    icl: pd.DataFrame,
    seconds: float,
    start_fraction: float,
) -> str:
    """Markdown: the class shares per size at ``start_fraction``, the overlap numbers, the
    hallucination and ICL summaries, and the section's job time, all from the frames."""
    lines = _class_lines(shares, start_fraction)
    lines += [
        "",
        "**Same perplexity, same behaviour** (relative spread of subset perplexity across sizes):",
        "",
    ]
    lines += [
        f"- {r.dataset}, {r.subset} ({r.subset_tokens} tokens): {r.spread_at_val_ppl:.1%} at matched validation "
        f"perplexity vs {r.spread_at_step:.1%} at matched step"
        for r in ov.itertuples()
    ]
    lines += [
        "",
        "**Hallucination-like sequences** (perplexity of the contrastive continuations):",
        "",
    ]
    lines += [
        f"- {r.dataset} {r.model}: lowest {r.min_ppl:.1f} at step {r.min_step}, final {r.final_ppl:.1f} "
        f"(x{r.rise:.2f}); true continuations final {r.true_final_ppl:.1f}"
        for r in hallu.itertuples()
    ]
    lines += [
        "",
        "**Perplexity vs in-context accuracy** (Spearman over every size and checkpoint):",
        "",
    ]
    lines += [
        f"- {r.dataset}: accuracy {r.acc_min:.3f}-{r.acc_max:.3f} (chance {r.chance:.3f}); rho(acc, log ppl) = "
        f"{r.spearman_acc_vs_log_ppl:.2f}, rho(option gap, log ppl) = {r.spearman_gap_vs_log_ppl:.2f}"
        for r in icl.itertuples()
    ]
    lines += [
        "",
        f"**Section job time**: {seconds / 60:.1f} min of generate + evaluate jobs (summed; the notebook "
        "itself adds seconds).",
    ]
    return "\n".join(lines)


def _class_lines(shares: pd.DataFrame, start_fraction: float) -> list[str]:
    """The closing note's table of class shares per (dataset, model) at ``start_fraction``."""
    lines = [
        f"**Token classes** (start fraction t = {start_fraction:g}; share of validation tokens):",
        "",
    ]
    at = shares[np.isclose(shares["start_fraction"], start_fraction)]
    table = at.pivot_table(index=["dataset", "model"], columns="class", values="share", sort=False)[
        list(CLASSES)
    ]
    lines += [
        "| dataset | model | " + " | ".join(CLASSES) + " |",
        "|---|---|" + "---|" * len(CLASSES),
    ]
    lines += [
        f"| {d} | {m} | " + " | ".join(f"{v:.1%}" for v in row) + " |"
        for (d, m), row in table.iterrows()
    ]
    return lines
