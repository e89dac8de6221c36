"""Section 05, term frequencies, the tables and figures: few-shot arithmetic accuracy per operand
against how often the operand occurs in the training data seen up to the checkpoint (the Pythia
paper's section 4.3, after Razeghi et al. 2022), read from what
:mod:`pythia.evaluate.term_frequencies` counted and evaluated (the counting rule, the prompts and
the lm-eval tasks are described there).

Tables: cumulative operand counts per checkpoint and how skewed they are; accuracy per x1 with
its count, binned on a log scale over the observed range; the gap between the 10 most and the 10
least frequent x1 (accuracy x 100) per k, size and checkpoint; the jobs' timings.

Figures: operand counts by rank; accuracy per x1 against its cumulative count, one line per
checkpoint, one panel per size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pythia import paths
from pythia.config import Suite
from pythia.errors import MissingInputError
from pythia.evaluate.term_frequencies import NUMBERS, STEM, cumulative, load_counts

GAP_SHOTS = (0, 4, 16)
"""k of the gap table (the paper's)."""
TOP = 10
"""The gap compares the TOP most and TOP least frequent x1."""


# --------------------------------------------------------------------------------------
# The workflow's files
# --------------------------------------------------------------------------------------


def counts_files(suite: Suite, datasets: Sequence[str]) -> dict[str, Path]:
    """``work/<suite>/term_frequencies/counts/<dataset>.npz`` of each dataset."""
    return {d: paths.suite_dir(suite.name) / STEM / "counts" / f"{d}.npz" for d in datasets}


def results_files(suite: Suite, datasets: Sequence[str], models: Sequence[str]) -> dict[str, Path]:
    """``work/<suite>/term_frequencies/eval/<dataset>/<model>.parquet``, keyed ``dataset/model``."""
    return {
        f"{d}/{m}": paths.suite_dir(suite.name) / STEM / "eval" / d / f"{m}.parquet"
        for d in datasets
        for m in models
    }


def load_results(files: dict[str, str | Path]) -> pd.DataFrame:
    """Every evaluation's prompts in one frame."""
    frames = []
    for key, f in files.items():
        if not Path(f).is_file():
            raise MissingInputError(
                f"{f} is missing: run `pythia term-frequencies evaluate` for {key} (or the "
                f"workflow's term_frequencies_evaluate rule) first"
            )
        frames.append(pd.read_parquet(f))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------
# Operand counts
# --------------------------------------------------------------------------------------


def counts_frame(counts_files: dict[str, str | Path], steps: Sequence[int]) -> pd.DataFrame:
    """Long frame: dataset, step, x1 (the number), count (cumulative up to the step)."""
    rows = []
    for dataset, f in counts_files.items():
        c = load_counts(f)
        for step in steps:
            cum = cumulative(c, step)
            rows += [
                {"dataset": dataset, "step": int(step), "x1": n, "count": int(cum[n])}
                for n in range(NUMBERS)
            ]
    return pd.DataFrame(rows)


def count_distribution(counts: pd.DataFrame) -> pd.DataFrame:
    """Rank-frequency of the operands: dataset, step, rank (1 = most frequent), x1, count."""
    df = counts.sort_values(
        ["dataset", "step", "count", "x1"], ascending=[True, True, False, True]
    ).copy()
    df["rank"] = df.groupby(["dataset", "step"]).cumcount() + 1
    return df[["dataset", "step", "rank", "x1", "count"]].reset_index(drop=True)


def skew(counts: pd.DataFrame) -> pd.DataFrame:
    """How skewed the operand counts are at each step: share of the 10 most frequent operands,
    ratio of the most to the least frequent, counts of the extremes."""
    rows = []
    for (dataset, step), g in counts.groupby(["dataset", "step"]):
        c = np.sort(g["count"].to_numpy())[::-1]
        rows.append(
            {
                "dataset": dataset,
                "step": step,
                "total": int(c.sum()),
                "max": int(c[0]),
                "min": int(c[-1]),
                "top10_share": round(float(c[:TOP].sum() / max(c.sum(), 1)), 4),
                "max_over_min": round(float(c[0] / max(c[-1], 1)), 2),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Accuracy against frequency
# --------------------------------------------------------------------------------------


def accuracy_per_x1(results: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (model, dataset, step, set, op, k, x1) with x1's cumulative count at the step."""
    keys = ["model", "dataset", "step", "set", "op", "k", "x1"]
    acc = results.groupby(keys, as_index=False).agg(
        accuracy=("correct", "mean"), prompts=("correct", "size")
    )
    return acc.merge(counts, on=["dataset", "step", "x1"], how="left")


def binned(acc: pd.DataFrame, bins: int = 8) -> pd.DataFrame:
    """Accuracy per log-frequency bin: for each (dataset, step, set) the x1 counts (+1) are cut
    into ``bins`` equal bins of log count over their observed range; ``count`` is the bin's
    geometric centre, ``accuracy`` the mean over its x1 (bins without an x1 are left out)."""
    out = []
    for _key, g in acc.groupby(["dataset", "step", "set"]):
        logc = np.log10(g["count"].to_numpy() + 1.0)
        lo, hi = logc.min(), logc.max()
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, bins + 1)
        idx = np.clip(np.searchsorted(edges, logc, side="right") - 1, 0, bins - 1)
        g = g.assign(bin=idx, count_bin=10 ** ((edges[idx] + edges[idx + 1]) / 2) - 1)
        out.append(
            g.groupby(["model", "dataset", "step", "set", "op", "k", "bin"], as_index=False).agg(
                count=("count_bin", "first"), accuracy=("accuracy", "mean"), x1s=("x1", "size")
            )
        )
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def frequency_gap(
    acc: pd.DataFrame, shots: Sequence[int] = GAP_SHOTS, top: int = TOP
) -> pd.DataFrame:
    """Accuracy of the ``top`` most frequent x1 minus the ``top`` least frequent (x 100), per
    model, dataset, set, op, k and step; ties in count broken by x1."""
    rows = []
    for key, g in acc[acc["k"].isin(shots)].groupby(["model", "dataset", "set", "op", "k", "step"]):
        g = g.sort_values(["count", "x1"])
        n = min(top, len(g) // 2)
        rows.append(
            dict(
                zip(["model", "dataset", "set", "op", "k", "step"], key),
                top_accuracy=100 * g["accuracy"].iloc[-n:].mean(),
                bottom_accuracy=100 * g["accuracy"].iloc[:n].mean(),
                gap=100 * (g["accuracy"].iloc[-n:].mean() - g["accuracy"].iloc[:n].mean()),
                top_count=int(g["count"].iloc[-n:].min()),
                bottom_count=int(g["count"].iloc[:n].max()),
            )
        )
    df = pd.DataFrame(rows)
    return df.round({"top_accuracy": 2, "bottom_accuracy": 2, "gap": 2}) if len(df) else df


def main_dataset(datasets: Sequence[str]) -> str:
    """The dataset the figures show: ``deduped`` (the paper used the deduplicated models) when there."""
    return "deduped" if "deduped" in datasets else next(iter(datasets))


def figure_data(
    bins: pd.DataFrame,
    *,
    dataset: str,
    set_name: str | Sequence[str] = "paper",
    k: int | None = None,
    step: int | None = None,
) -> pd.DataFrame:
    """The rows of :func:`binned` one figure plots: one dataset, the prompt set(s), at ``k``
    (default: the largest) and/or ``step``."""
    names = [set_name] if isinstance(set_name, str) else list(set_name)
    df = bins[(bins["dataset"] == dataset) & (bins["set"].isin(names))]
    if k is None and step is None:
        k = int(df["k"].max())
    if k is not None:
        df = df[df["k"] == k]
    if step is not None:
        df = df[df["step"] == step]
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------------------
# Timings and the closing note
# --------------------------------------------------------------------------------------


PYTHIA_TOKENS = 299_892_736_000
"""Tokens of Pythia's training order (143,000 steps x 1024 x 2048)."""


def timings(
    counts_files: dict[str, str | Path], results_files: dict[str, str | Path], cores: int = 64
) -> pd.DataFrame:
    """What the jobs measured: per counting job the tokens, seconds, tokens/s on its workers and the
    projected hours for Pythia's 300B tokens on ``cores`` cores (tokens/s per worker x cores: the
    count is embarrassingly parallel over step ranges); per evaluation job the prompts and seconds.
    A count resumed from finished ranges reports every range's tokens and the seconds measured when
    it was counted (missing, not zero, for ranges cached before their time was kept)."""
    rows = [_count_timing(dataset, _info(f), cores) for dataset, f in counts_files.items()]
    rows += [_evaluation_timing(_info(f)) for f in results_files.values()]
    return pd.DataFrame(rows)


def _info(path: str | Path) -> dict[str, Any]:
    """The JSON a job wrote beside its output."""
    return json.loads(Path(path).with_suffix(".json").read_text())


def _count_timing(dataset: str, info: dict[str, Any], cores: int) -> dict[str, Any]:
    """The row of one counting job (:func:`timings`); a count written before the measured
    speed was kept reports its own run's."""
    if "measured_tokens" in info:
        keys = ("measured_tokens", "measured_seconds", "measured_tokens_per_s", "measured_workers")
    else:
        keys = ("counted_tokens", "seconds", "tokens_per_s", "workers")
    items, secs, tps, workers = (info[k] for k in keys)
    return {
        "job": "count",
        "dataset": dataset,
        "model": "",
        "items": items,
        "seconds": secs,
        "tokens_per_s": tps,
        "workers": workers,
        "projected_hours": round(PYTHIA_TOKENS / (tps / workers * cores) / 3600, 1)
        if tps
        else None,
    }


def _evaluation_timing(info: dict[str, Any]) -> dict[str, Any]:
    """The row of one evaluation job (:func:`timings`)."""
    return {
        "job": "evaluate",
        "dataset": info["dataset"],
        "model": info["model"],
        "items": info["prompts"],
        "seconds": info["seconds"],
        "tokens_per_s": None,
        "workers": 1,
        "projected_hours": None,
    }


def summary(times: pd.DataFrame, gap: pd.DataFrame) -> str:
    """The closing note: counting tokens/s and its 300B projection, the section's job time (sum
    over jobs: the wall time on one core; the workflow runs jobs side by side on more), and the
    top-10 minus bottom-10 gaps at the last evaluated step."""
    count = times[times["job"] == "count"]
    ev = times[times["job"] == "evaluate"]
    lines = []
    for r in count.itertuples():
        lines.append(
            f"counting {r.dataset}: {r.items:,} tokens in {r.seconds:.1f} s = {r.tokens_per_s or 0:,.0f} "
            f"tokens/s on {r.workers} workers; Pythia's 300B tokens on 64 cores: ~{r.projected_hours} h"
        )
    lines.append(
        f"section job time: counting {count['seconds'].sum():.0f} s + evaluation {ev['seconds'].sum():.0f} s "
        f"({ev['items'].sum():,} prompts) = {(count['seconds'].sum() + ev['seconds'].sum()) / 60:.1f} min"
    )
    if len(gap):
        last = gap[gap["step"] == gap["step"].max()]
        for (name, k), g in last.groupby(["set", "k"]):
            lines.append(
                f"top-10 minus bottom-10 ({name}, k={k}, step {g['step'].iloc[0]}): mean {g['gap'].mean():+.1f}, "
                f"range {g['gap'].min():+.1f} .. {g['gap'].max():+.1f} points over {len(g)} model x dataset x op"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def plot_count_distribution(dist: pd.DataFrame) -> plt.Figure:
    """Operand counts by rank (log scale), one line per checkpoint, one panel per dataset."""
    g = sns.relplot(
        dist,
        x="rank",
        y="count",
        hue="step",
        col="dataset",
        kind="line",
        palette="viridis",
        height=3.2,
        aspect=1.2,
        facet_kws={"sharey": False},
    )
    g.set(
        yscale="symlog",
        ylim=(0, None),
        xlabel="operand rank (1 = most frequent)",
        ylabel="cumulative count",
    )
    g.figure.suptitle(
        "How often each number 0-99 occurs in the numeric windows of the training data", y=1.03
    )
    return g.figure


def _by_size(models) -> list[str]:
    """Model names ("138K", "1.8M", "70M", "1.4B") smallest first (panels in size order, not alphabetical)."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}

    def size(name: str) -> float:
        try:
            return float(name[:-1]) * scale[name[-1].upper()]
        except (KeyError, ValueError, IndexError):
            return float("inf")

    return sorted(models, key=lambda m: (size(str(m)), str(m)))


def plot_accuracy_vs_frequency(
    data: pd.DataFrame,
    hue: str = "step",
    row: str = "op",
    style: str | None = None,
    title: str = "",
) -> plt.Figure:
    """Accuracy against binned operand frequency: one line per ``hue`` (and ``style``), one panel
    per model (columns) and ``row``."""
    g = sns.relplot(
        data,
        x="count",
        y="accuracy",
        hue=hue,
        style=style,
        col="model",
        row=row,
        kind="line",
        col_order=_by_size(data["model"].unique()),
        marker="o",
        palette="viridis",
        height=2.6,
        aspect=1.1,
        errorbar=None,
    )
    g.set(
        xscale="symlog",
        xlim=(0, None),
        ylim=(-0.02, 1.02),
        xlabel="count of x1 (log bins)",
        ylabel="accuracy",
    )
    if title:
        g.figure.suptitle(title, y=1.02)
    return g.figure
