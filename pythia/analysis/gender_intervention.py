"""Section 03, the gender intervention: load the measures the workflow wrote, summarise, plot.

The rules (``rules/gender_intervention.smk``) train the intervened runs
(:mod:`pythia.train.intervention`) and write one CSV of measures per (run, model)
(:func:`pythia.evaluate.gender_intervention.evaluate_run`):
``work/<suite>/gender_intervention/measures/<run>/<model>.csv``. Here:

    measures(suite, jobs)          every CSV as one frame (run, variant, model, step, metric, value, stderr, n)
    trajectories(df, suite)        each metric against step over the window, the intervened curves
                                   starting at the baseline's value at their start step
    final_table(df)                the final checkpoint: baseline vs intervened, their difference
    intervention_cost(suite, jobs) swaps per step and the swap's share of a training step (train logs)
    published_final()              EleutherAI's published numbers at the last step (pythia.published.bias)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pythia import paths
from pythia.config import Suite, config_digest
from pythia.evaluate.gender_intervention import COLUMNS
from pythia.published import bias as published
from pythia.train.checkpoint import run_digest
from pythia.train.intervened_runs import intervened_runs, intervention_digest, window

METRICS = {
    "pronoun_logodds": "she/he log-odds (held-out)",
    "crows_pct_stereotype": "CrowS gender: % stereotype",
    "winobias_pro": "WinoBias: pro share",
    "winobias_pro_fem": "WinoBias: pro share (she)",
    "winobias_pro_masc": "WinoBias: pro share (he)",
    "crows_likelihood_diff": "CrowS gender: likelihood diff.",
    "val_loss": "validation loss",
    "cloze_acc": "in-corpus cloze accuracy",
}
"""The measures, in the order the figures show them."""


# ------------------------------------------------------------------------------ jobs and digests


def jobs(
    suite: Suite, models: list[str] | None = None, trained: bool = True
) -> list[tuple[str, str]]:
    """(run, model) of every evaluation job: the baseline of each model with an intervened run,
    and (with trained checkpoints) each intervened run."""
    wanted = set(models) if models else set(suite.models)
    iv = [(r, m) for r, m in intervened_runs(suite) if m in wanted]
    base = sorted(
        {(suite.intervention.dataset, m) for _, m in iv},
        key=lambda x: list(suite.models).index(x[1]),
    )
    return base + (iv if trained else [])


def train_digest(suite: Suite, variant: str, model: str) -> str:
    """What an intervened run's job depends on (its rule's ``params.digest``)."""
    return intervention_digest(suite, model, variant)


def eval_digest(suite: Suite, run: str, model: str) -> str:
    """What an evaluation job reads: the run's weights (its digest), the intervention settings and
    the validation sequences."""
    dataset, variant = paths.parse_run(run)
    weights = (
        run_digest(suite, model, dataset)
        if variant is None
        else intervention_digest(suite, model, variant)
    )
    return config_digest(
        {
            "weights": weights,
            "intervention": suite.intervention.model_dump(mode="json"),
            "val_sequences": suite.training.val_sequences,
            "seq_len": suite.training.seq_len,
        }
    )


def measures_file(suite: str, run: str, model: str) -> Path:
    return paths.suite_dir(suite) / "gender_intervention" / "measures" / run / f"{model}.csv"


# ------------------------------------------------------------------------------ load, summarise


def measures(suite: Suite, job_list: list[tuple[str, str]]) -> pd.DataFrame:
    """Every measure of every job, with the run's ``variant`` (``baseline`` for a baseline run)."""
    frames = [pd.read_csv(measures_file(suite.name, r, m)) for r, m in job_list]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    df["variant"] = [paths.parse_run(r)[1] or "baseline" for r in df["run"]]
    return df


def trajectories(df: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """The plotted frame: one row per (variant, model, metric, step); each intervened run's curve
    starts with the baseline's value at its start step (the same weights)."""
    parts = [df[df["variant"] == "baseline"].assign(window="baseline")]
    for variant in df["variant"].unique():
        if variant == "baseline":
            continue
        start = window(suite, variant)[0]
        iv = df[df["variant"] == variant]
        models = iv["model"].unique()
        at_start = df[
            (df["variant"] == "baseline") & (df["step"] == start) & df["model"].isin(models)
        ]
        parts.append(
            pd.concat([at_start.assign(variant=variant), iv]).assign(
                window=f"{variant} (from step {start})"
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out = out[out["metric"].isin(METRICS)]
    cols = ["window", "variant", "model", "metric", "step", "tokens_seen", "value", "stderr", "n"]
    order = {m: i for i, m in enumerate(suite.models)}
    return (
        out[cols]
        .sort_values(
            ["metric", "model", "variant", "step"],
            key=lambda s: s.map(order) if s.name == "model" else s,
        )
        .reset_index(drop=True)
    )


def final_table(df: pd.DataFrame) -> pd.DataFrame:
    """The final checkpoint of each run like the paper's table: per (model, variant, metric) the
    baseline's and the intervened value with standard errors and the shift; models in the order
    ``df`` lists them (the suite's), metrics in :data:`METRICS`' order."""
    last = df[df["step"] == df["step"].max()]
    base = last[last["variant"] == "baseline"].set_index(["model", "metric"])
    rows = []
    model_order = {m: i for i, m in enumerate(dict.fromkeys(df["model"]))}
    metric_order = {m: i for i, m in enumerate(METRICS)}
    iv = last[last["variant"] != "baseline"]
    keys = sorted(
        iv.groupby(["variant", "model", "metric"]).groups,
        key=lambda k: (k[0], model_order[k[1]], metric_order.get(k[2], len(metric_order))),
    )
    for variant, model, metric in keys:
        g = iv[(iv["variant"] == variant) & (iv["model"] == model) & (iv["metric"] == metric)]
        if (model, metric) not in base.index or metric not in METRICS:
            continue
        b = base.loc[(model, metric)]
        v = g.iloc[0]
        rows.append(
            {
                "model": model,
                "variant": variant,
                "metric": metric,
                "step": int(v["step"]),
                "baseline": float(b["value"]),
                "baseline_stderr": _f(b["stderr"]),
                "intervened": float(v["value"]),
                "intervened_stderr": _f(v["stderr"]),
                "shift": float(v["value"] - b["value"]),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "model",
            "variant",
            "metric",
            "step",
            "baseline",
            "baseline_stderr",
            "intervened",
            "intervened_stderr",
            "shift",
        ],
    )


def _f(x) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def intervention_cost(suite: Suite, job_list: list[tuple[str, str]]) -> pd.DataFrame:
    """Per intervened run: steps, tokens swapped (total, per step), the swap's median time and its
    share of the median training step (from ``train_log.jsonl``), replayed steps, and whether the
    start weights equal the baseline's checkpoint."""
    rows = []
    for run, model in job_list:
        if paths.parse_run(run)[1] is None:
            continue
        log = paths.run_dir(suite.name, run, model) / "train_log.jsonl"
        recs = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        start: dict[str, Any] = next((r for r in recs if r.get("start")), {})
        steps = [r for r in recs if "swaps" in r]
        step_s = np.median([suite.training.tokens_per_step / r["tokens_per_s"] for r in steps])
        swap_s = np.median([r["swap_seconds"] for r in steps])
        rows.append(
            {
                "run": run,
                "model": model,
                "start_step": start.get("step"),
                "steps": len(steps),
                "replayed_steps": start.get("replayed_steps"),
                "start_matches_baseline": start.get("start_matches_baseline"),
                "swaps": int(sum(r["swaps"] for r in steps)),
                "swaps_per_step": float(np.mean([r["swaps"] for r in steps])),
                "median_step_s": float(step_s),
                "median_swap_s": float(swap_s),
                "swap_pct_of_step": float(100 * swap_s / step_s),
            }
        )
    return pd.DataFrame(rows)


def published_final() -> pd.DataFrame:
    """EleutherAI's published CrowS-Pairs gender, WinoBias and LAMBADA numbers of the intervention
    models and their baselines at the last evaluated step of each (model, variant)."""
    pub = published.load()
    pub = pub[pub["variant"].isin(["baseline", "intervention", "intervention_long"])]
    last = pub.loc[pub.groupby(["model", "variant", "metric"])["step"].idxmax()]
    return last.sort_values(["metric", "model", "variant"]).reset_index(drop=True)


def published_trajectories(
    metrics=("crows_pct_stereotype", "winobias_pro_em", "lambada_acc"),
) -> pd.DataFrame:
    """The published numbers over the intervened window (from the earliest intervened step)."""
    pub = published.load()
    pub = pub[
        pub["metric"].isin(metrics)
        & pub["variant"].isin(["baseline", "intervention", "intervention_long"])
    ]
    # per size and measure (the v0 WinoBias evaluations number their steps apart from the rest)
    starts = pub[pub["variant"] != "baseline"].groupby(["model", "metric"])["step"].min()
    first = pd.Series(
        [starts.get((m, k), np.nan) for m, k in zip(pub["model"], pub["metric"])], index=pub.index
    )
    out = pub[
        first.notna() & (pub["step"] >= first - 10000)
    ]  # the window and the 10k steps before it
    return out.sort_values(["metric", "model", "variant", "step"]).reset_index(drop=True)


# ------------------------------------------------------------------------------ plots


def plot_trajectories(traj: pd.DataFrame):
    """Each measure (rows) against step for each model (columns): baseline and intervened runs,
    with +-1 standard error bands."""
    metrics = [m for m in METRICS if m in set(traj["metric"])]
    models = list(dict.fromkeys(traj["model"]))
    fig, axes = plt.subplots(
        len(metrics),
        len(models),
        figsize=(3.2 * len(models), 2.2 * len(metrics)),
        squeeze=False,
        sharex="col",
    )
    colours = {w: f"C{i}" for i, w in enumerate(dict.fromkeys(traj["window"]))}
    for i, metric in enumerate(metrics):
        for j, model in enumerate(models):
            ax = axes[i, j]
            for w, g in traj[(traj["metric"] == metric) & (traj["model"] == model)].groupby(
                "window", sort=False
            ):
                g = g.sort_values("step")
                ax.plot(g["step"], g["value"], marker="o", ms=3, color=colours[w], label=w)
                err = g["stderr"].fillna(0).to_numpy()
                ax.fill_between(
                    g["step"], g["value"] - err, g["value"] + err, color=colours[w], alpha=0.2, lw=0
                )
            if i == 0:
                ax.set_title(model)
            if j == 0:
                ax.set_ylabel(METRICS[metric], fontsize=7)
            if i == len(metrics) - 1:
                ax.set_xlabel("step")
    seen: dict = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(
        list(seen.values()),
        list(seen.keys()),
        loc="upper center",
        ncol=len(seen),
        fontsize=8,
        bbox_to_anchor=(0.5, 1.0),
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def plot_published(pub: pd.DataFrame):
    """EleutherAI's published numbers over the intervened windows: baseline vs intervention per size."""
    metrics = list(dict.fromkeys(pub["metric"]))
    models = [m for m in ("70M", "410M", "1.4B", "6.9B") if m in set(pub["model"])]
    fig, axes = plt.subplots(
        len(metrics), len(models), figsize=(3.2 * len(models), 2.2 * len(metrics)), squeeze=False
    )
    colours = {"baseline": "C0", "intervention": "C1", "intervention_long": "C2"}
    for i, metric in enumerate(metrics):
        for j, model in enumerate(models):
            ax = axes[i, j]
            panel = pub[(pub["metric"] == metric) & (pub["model"] == model)]
            if panel.empty:
                ax.text(
                    0.5,
                    0.5,
                    "not published",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=8,
                )
                ax.set_xticks([])
                ax.set_yticks([])
            for v, g in panel.groupby("variant"):
                g = g.sort_values("step")
                ax.errorbar(
                    g["step"],
                    g["value"],
                    yerr=g["stderr"].fillna(0),
                    marker="o",
                    ms=3,
                    capsize=2,
                    color=colours[v],
                    label=v,
                )
            if i == 0:
                ax.set_title(f"Pythia {model} (published)")
            if j == 0:
                ax.set_ylabel(metric, fontsize=8)
            ax.tick_params(labelsize=7)
    legend: dict[str, Any] = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, h)
    order = [v for v in colours if v in legend]
    fig.legend([legend[v] for v in order], order, loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def closing_note(final: pd.DataFrame, cost: pd.DataFrame) -> str:
    """The measured effect in words: per intervened run the shift of each measure at the last step
    with both standard errors, and the swap's cost."""
    if final.empty:
        return "No intervened run was evaluated (with local or hub checkpoints only the baselines' windows are)."
    lines = []
    for (variant, model), g in final.groupby(["variant", "model"], sort=False):
        parts = []
        for _, r in (
            g.set_index("metric")
            .reindex([m for m in METRICS if m in set(g["metric"])])
            .reset_index()
            .iterrows()
        ):
            parts.append(
                f"{r['metric']} {r['baseline']:.3f}±{r['baseline_stderr'] or 0:.3f} -> "
                f"{r['intervened']:.3f}±{r['intervened_stderr'] or 0:.3f} ({r['shift']:+.3f})"
            )
        lines.append(f"{model} {variant} (step {int(g['step'].iloc[0])}): " + "; ".join(parts))
    if not cost.empty:
        lines.append(
            f"swap cost: median {cost['swap_pct_of_step'].median():.4f}% of a training step "
            f"(max {cost['swap_pct_of_step'].max():.4f}%), {int(cost['swaps'].sum())} tokens swapped in all"
        )
    return "\n".join(lines)
