"""Seed spread, shared by the sections that draw it (01 training, 02 benchmarks).

A run's seed comes from its name (:func:`pythia.paths.parse_seed`): the baseline ``standard`` is
seed 0 of ``standard``; ``standard-seed2`` is seed 2, as are the decoupled ``standard-data-seed2``
and ``standard-weight-seed2`` (``vary`` tells them apart). Our trained seed runs and the hub's
PolyPythias runs (read through the catalogue under the same run names) give frames of the same
shape, so everything here works on any frame with ``dataset`` (the base dataset), ``seed`` and
``vary`` columns, whatever the source.

- :func:`split_runs` adds those columns to a frame keyed by run name;
  :func:`with_baseline_per_kind` counts the baseline as seed 0 of each kind of seed run.
- :func:`seed_bands`: per group and step, the mean over seeds, their sample standard deviation
  (``ddof=1``), minimum, maximum and count.
- :func:`paired_gap`: the standard-minus-deduplicated difference per seed, to band like a value.
- :func:`plot_seed_bands`: the mean as a line and the min-max range as a band, one panel per
  (row, column) of the groups, one colour per dataset (and the gap, with a zero line).
- :func:`seed_spread`: the final value's spread per model and dataset, and the
  standard-minus-deduplicated gap per seed (the runs of one seed number share their init seed),
  its mean and standard deviation over seeds, the seed noise (the two datasets' standard
  deviations pooled, ``sqrt((sd_standard^2 + sd_deduped^2) / 2)``) and whether |mean gap| exceeds
  twice that noise.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pythia import paths

BASE = "both"
"""``vary`` of a baseline run (seed 0 belongs to every kind of seed run)."""

STAT_COLUMNS = ["n_seeds", "mean", "sd", "min", "max"]


def split_runs(df: pd.DataFrame, column: str = "run") -> pd.DataFrame:
    """``df`` with ``dataset`` (the base dataset), ``seed`` (0: the baseline) and ``vary`` (``both``,
    ``data``, ``weight``) taken from the run names in ``column``."""
    out = df.copy()
    names = out[column].astype(str)
    parsed = [paths.parse_seed(r) for r in names]
    out["dataset"] = [paths.parse_run(r)[0] for r in names]
    out["seed"] = [p[1] if p else 0 for p in parsed]
    out["vary"] = [p[0] if p else BASE for p in parsed]
    return out


def with_baseline_per_kind(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (from :func:`split_runs`) with the baseline's rows (seed 0) repeated for every kind of
    seed run present (``data``, ``weight``): seed 0 is one of the seeds of each kind."""
    kinds = [v for v in dict.fromkeys(df["vary"]) if v != BASE]
    base = df[df["seed"] == 0]
    return pd.concat([df, *(base.assign(vary=v) for v in kinds)], ignore_index=True)


GAP = f"{paths.STANDARD} - {paths.DEDUPED}"
"""The ``dataset`` of a standard-minus-deduplicated difference (paired by seed)."""


def paired_gap(df: pd.DataFrame, value: str, keys: list[str]) -> pd.DataFrame:
    """The standard-minus-deduplicated difference of ``value`` per seed (the runs of one seed number
    share their init seed) and ``keys`` (e.g. model, vary, step): ``df``'s shape with ``dataset``
    :data:`GAP`; only seeds and keys both datasets have."""
    wide = df.pivot_table(index=[*keys, "seed"], columns="dataset", values=value, observed=True)
    if not set(paths.DATASETS) <= set(wide.columns):
        return df.iloc[0:0].assign(dataset=GAP)
    gap = (wide[paths.STANDARD] - wide[paths.DEDUPED]).dropna().rename(value).reset_index()
    return gap.assign(dataset=GAP)


def seed_bands(
    df: pd.DataFrame, value: str, by: list[str], x: str = "step", extra: list[str] | None = None
) -> pd.DataFrame:
    """Per group ``by`` and ``x``: ``n_seeds``, ``mean``, ``sd`` (sample, NaN for one seed), ``min``
    and ``max`` of ``value`` over the seeds; ``extra`` columns (e.g. ``tokens_seen``) are carried
    (their first value). Groups with a single seed are kept (their band is a line)."""
    keys = [*by, x]
    grouped = df.dropna(subset=[value]).groupby(keys, observed=True, sort=True)
    out = grouped[value].agg(n_seeds="count", mean="mean", sd="std", min="min", max="max")
    for col in extra or []:
        out[col] = grouped[col].first()
    return out.reset_index()


def seed_spread(finals: pd.DataFrame, value: str) -> pd.DataFrame:
    """The spread of ``value`` (one row per model, dataset and seed) over seeds, and the
    standard-minus-deduplicated gap with its spread; one row per model and ``quantity``
    (``standard``, ``deduped``, ``standard - deduped``). Gap rows also give the seed ``noise_sd``
    and ``gap_exceeds_2sd_noise`` (``yes``/``no``; the test is |mean gap| > 2 noise_sd)."""
    rows = []
    for model, df in finals.groupby("model", observed=True, sort=False):
        by_ds = {d: g.set_index("seed")[value] for d, g in df.groupby("dataset", observed=True)}
        for d in paths.DATASETS:
            if d in by_ds:
                rows.append({"model": model, "quantity": d, **_stats(by_ds[d])})
        if not set(paths.DATASETS) <= set(by_ds):
            continue
        std, ded = (by_ds[d] for d in paths.DATASETS)
        gap = (std - ded).dropna()  # paired by seed number
        noise = float(np.sqrt((_var(std) + _var(ded)) / 2))
        exceeds = "yes" if abs(gap.mean()) > 2 * noise else "no"
        rows.append(
            {
                "model": model,
                "quantity": GAP,
                **_stats(gap),
                "noise_sd": noise,
                "gap_exceeds_2sd_noise": exceeds if np.isfinite(noise) else "",
            }
        )
    return pd.DataFrame(
        rows,
        columns=["model", "quantity", *STAT_COLUMNS, "values", "noise_sd", "gap_exceeds_2sd_noise"],
    )


def _var(s: pd.Series) -> float:
    """Sample variance over seeds (NaN below two seeds)."""
    s = s.dropna()
    return float(s.var(ddof=1)) if len(s) > 1 else np.nan


def _stats(s: pd.Series) -> dict:
    """n, mean, sample sd, min, max of a seed-indexed series, and its values by seed."""
    s = s.dropna().sort_index()
    return {
        "n_seeds": len(s),
        "mean": float(s.mean()),
        "sd": float(s.std(ddof=1)) if len(s) > 1 else np.nan,
        "min": float(s.min()),
        "max": float(s.max()),
        "values": "; ".join(f"seed {k}: {v:.4f}" for k, v in s.items()),
    }


def plot_seed_bands(
    bands: pd.DataFrame,
    *,
    row: str | None,
    col: str,
    x: str,
    ylabel: str,
    title: str,
    xlabel: str | None = None,
    logx: bool = True,
) -> plt.Figure:
    """The mean over seeds (line) and the min-max range (band) per dataset, one panel per ``row``
    value (or one row) and ``col`` value; ``n`` seeds in each panel's title."""
    rows = list(dict.fromkeys(bands[row])) if row else [None]
    cols = list(dict.fromkeys(bands[col]))
    fig, axes = plt.subplots(
        len(rows),
        len(cols),
        figsize=(max(3.6 * len(cols), 6.0), 3.0 * len(rows)),
        squeeze=False,
        sharex=True,
    )
    colours = dict(zip((*paths.DATASETS, GAP), ("tab:blue", "tab:orange", "tab:green")))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            panel = bands[(bands[col] == c) & ((bands[row] == r) if row else True)]
            present = set(panel["dataset"].astype(str))
            for d in [d for d in colours if d in present]:  # standard first, then the gap
                g = panel[panel["dataset"].astype(str) == d].sort_values(x)
                colour = colours[d]
                ax.plot(g[x], g["mean"], color=colour, label=f"{d} (n={int(g['n_seeds'].max())})")
                ax.fill_between(g[x], g["min"], g["max"], color=colour, alpha=0.25, linewidth=0)
            if GAP in present:
                ax.axhline(0.0, color="grey", linestyle=":", linewidth=1)
            if logx:
                ax.set_xscale("log")
            ax.set_title(f"{c}" + (f" · {r}" if r is not None else ""), fontsize=9)
            ax.set_xlabel(xlabel or x.replace("_", " "))
            ax.set_ylabel(ylabel if j == 0 else "")
            ax.legend(fontsize=7)
    fig.suptitle(title, y=1.0)
    fig.tight_layout()
    return fig
