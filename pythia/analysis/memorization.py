"""Section 04, memorization: are sequences seen later more likely memorized, and do memorized
sequences arrive like a Poisson process along the training order? (Pythia, section 4.2, Figure 3)

Reads the scans the workflow wrote (``pythia memorization scan``, :mod:`pythia.evaluate.memorization`:
one ``step<N>.parquet`` per checkpoint under ``work/<suite>/memorization/<dataset>/<model>/``, one
row per training sequence the checkpoint has seen: memorized flag, leading match run, matched
tokens of the greedy continuation; read through :mod:`pythia.evaluate.memorization_files`, which
keeps transformers out of the Snakefile) and summarises them; ``notebooks/04_memorization.ipynb``
calls these functions, each figure drawn from one tidy frame.

The Poisson test (the paper's claim, made there with a Q-Q plot only): count memorized sequences
in each window of ``w`` consecutive training sequences (Pythia used w = 512); if memorization
events are independent of the position in training, the counts follow Poisson(lambda = their mean).
We draw the Q-Q plot as Pythia did (``statsmodels.graphics.gofplots.ProbPlot`` with
``scipy.stats.poisson``, points sized by how many windows share a quantile pair, the y = x line)
and add two numbers it did not compute: the dispersion index variance / mean (1 for a Poisson;
above 1 for clustered events), with its test ((n - 1) * D ~ chi2(n - 1)), and a chi-square
goodness-of-fit test of the counts' histogram against the fitted Poisson (bins merged until each
expects at least 5 windows; one degree of freedom spent on lambda).

"Memorized" can be relaxed to "greedy decoding reproduces at least r of the l tokens before its
first miss" (``threshold`` = r, the leading match run; r = l is the paper's definition): on models
too small or too briefly trained to memorize 32 tokens the same tests run at smaller r.

Closeness to memorization against duplication (:func:`duplicates_table`): each scanned sequence's
memorization window (its first k + l tokens) has a duplicate count, its occurrences as a window of
the dataset's training rows (``duplicates.parquet``, written by the scan job:
:func:`pythia.evaluate.memorization.duplicates_model`). Per duplicate-count bin (1, 2-9, 10-99,
>= 100) at the final checkpoint: the mean leading run and the share of sequences reproducing at
least l/4 tokens (every scanned sequence), and the mean teacher-forced accuracy (the share of the
l continuation tokens that are the argmax given the true prefix) with its standard error, over the
rows the job sampled (all rows of a bin up to 1,000, a uniform sample beyond, so each bin's mean is
unbiased). In micro's data a count of 2 is mostly a document seen in both of its epochs; the
higher bins are repeated text (the GitHub licence header, generated code).

Against Pythia's released results (:func:`released_agreement`, the optional table
``released_agreement``, written when ``memorization.released`` names a source): the released sets
(``EleutherAI/pythia-memorized-evals``, one per model: the training sequences the final checkpoint
memorized, checked and written by ``pythia memorization released``,
:mod:`pythia.evaluate.memorization_released`) against our scan of the same checkpoint, on the rows
our scan covered: flagged by ours, by the release, both, only one of them, and the share of rows
on which both agree; the exact (32, 32) scan of the same rows should flag the same sequences.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from pythia import paths
from pythia.config import Suite, config_digest
from pythia.data import released
from pythia.data.batches import open_sequences
from pythia.data.layout import Layout, read_jsonl
from pythia.data.tokenizer import load_tokenizer
from pythia.evaluate.memorization_files import (
    duplicate_bin_labels,
    duplicates_file,
    read_duplicates,
    read_scan,
    summary_file,
)
from pythia.evaluate.memorization_released import agreement, read_released, released_file
from pythia.train.checkpoint import run_digest

MIN_EXPECTED = 5.0
"""Chi-square bins are merged until each expects at least this many windows (Cochran's rule)."""


# ------------------------------------------------------------------------------ digests (the workflow's rules)


def scan_digest(suite: Suite, dataset: str, model: str) -> str:
    """What one scan job reads: the trained run (model, training, data order) and the tokenizer."""
    return config_digest(
        {
            "run": run_digest(suite, model, dataset),
            "tokenizer": suite.tokenizer.model_dump(mode="json"),
        }
    )


# ------------------------------------------------------------------------------ loading


def scan_files(suite: Suite, datasets: list[str], models: list[str]) -> dict[str, Path]:
    """The ``scan.json`` of every (dataset, model), keyed ``dataset/model``."""
    return {f"{d}/{m}": summary_file(suite.name, d, m) for d in datasets for m in models}


def load_summaries(suite: Suite, datasets: list[str], models: list[str]) -> list[dict]:
    out = []
    for key, path in scan_files(suite, datasets, models).items():
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: run `pythia memorization scan` for {key} (or the workflow)"
            )
        out.append(json.loads(path.read_text()))
    return out


def load_scans(suite: Suite, datasets: list[str], models: list[str]) -> pd.DataFrame:
    """Every checkpoint's scan in one long frame: model, dataset, step, seq, memorized, match_run,
    matches (-1: not computed), score (matches / l, NaN: not computed), position (fraction of training)."""
    frames = []
    total = suite.training.train_iters * suite.training.global_batch
    for rec in load_summaries(suite, datasets, models):
        l = rec["options"]["continuation"]
        for c in rec["checkpoints"]:
            df = read_scan(
                summary_file(suite.name, rec["dataset"], rec["model"]).parent
                / f"step{c['step']}.parquet"
            )
            df.insert(0, "model", rec["model"])
            df.insert(1, "dataset", rec["dataset"])
            df.insert(2, "step", c["step"])
            df["score"] = np.where(df["matches"] >= 0, df["matches"] / l, np.nan)
            df["position"] = df["seq"] / total
            frames.append(df)
    scans = pd.concat(frames, ignore_index=True)
    scans["model"] = pd.Categorical(
        scans["model"], categories=[m for m in suite.models if m in models], ordered=True
    )
    return scans


def continuation_length(suite: Suite, datasets: list[str], models: list[str]) -> int:
    """l of the scans (all of them use the same options)."""
    ls = {rec["options"]["continuation"] for rec in load_summaries(suite, datasets, models)}
    if len(ls) != 1:
        raise ValueError(
            f"scans with different continuation lengths {sorted(ls)}; rescan with one setting"
        )
    return ls.pop()


def final_scans(scans: pd.DataFrame) -> pd.DataFrame:
    """The rows of each (model, dataset)'s last scanned checkpoint."""
    last = scans.groupby(["model", "dataset"], observed=True)["step"].transform("max")
    return scans[scans["step"] == last]


# ------------------------------------------------------------------------------ counts and rates


def memorized_counts(scans: pd.DataFrame, l: int) -> pd.DataFrame:
    """Per (model, dataset, checkpoint step): sequences scanned, memorized (and their rate), the mean
    leading match run, sequences reproducing at least l/4 and l/2 leading tokens, and the mean
    fractional score over the sequences where it was computed."""
    g = scans.assign(
        run_quarter=scans["match_run"] >= max(1, l // 4),
        run_half=scans["match_run"] >= max(1, l // 2),
    )
    out = (
        g.groupby(["model", "dataset", "step"], observed=True)
        .agg(
            sequences=("seq", "size"),
            memorized=("memorized", "sum"),
            mean_match_run=("match_run", "mean"),
            **{
                f"run_ge_{max(1, l // 4)}": ("run_quarter", "sum"),
                f"run_ge_{max(1, l // 2)}": ("run_half", "sum"),
            },
            scored=("score", "count"),
            mean_score=("score", "mean"),
        )
        .reset_index()
    )
    out["memorized"] = out["memorized"].astype(int)
    out["rate"] = out["memorized"] / out["sequences"].where(out["sequences"] > 0)
    return out


def window_counts(flags: np.ndarray, window: int) -> np.ndarray:
    """(n_windows,) events per window of ``window`` consecutive flags (an incomplete last window is dropped)."""
    flags = np.asarray(flags)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    n = len(flags) // window
    return flags[: n * window].reshape(n, window).sum(axis=1).astype(np.int64)


def _chi2_bins(counts: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Observed and expected windows per bin 0, 1, ..., K-1, >= K, adjacent bins merged until each
    expects at least :data:`MIN_EXPECTED` (the tail bin takes the rest of the Poisson's mass)."""
    n = len(counts)
    top = int(max(counts.max(), stats.poisson.ppf(0.999, lam))) + 1
    ks = np.arange(top + 1)
    exp = n * stats.poisson.pmf(ks, lam)
    exp[-1] = n * stats.poisson.sf(top - 1, lam)  # the last bin is ">= top"
    obs = np.bincount(np.minimum(counts, top), minlength=top + 1).astype(float)
    bins_o, bins_e, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(obs, exp):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= MIN_EXPECTED:
            bins_o.append(acc_o)
            bins_e.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0 or acc_o > 0:  # what is left joins the last bin
        if bins_e:
            bins_o[-1] += acc_o
            bins_e[-1] += acc_e
        else:
            bins_o, bins_e = [acc_o], [acc_e]
    return np.array(bins_o), np.array(bins_e)


def poisson_test(counts: np.ndarray) -> dict[str, float]:
    """Windows, mean, variance, dispersion index (variance / mean) with its over-dispersion p-value,
    and the chi-square goodness-of-fit statistic, degrees of freedom and p-value of Poisson(mean).
    Values that cannot be computed (no events, too few bins) are NaN."""
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    mean = float(counts.mean()) if n else float("nan")
    var = float(counts.var(ddof=1)) if n > 1 else float("nan")
    res = {
        "windows": n,
        "mean": mean,
        "variance": var,
        "dispersion": float("nan"),
        "dispersion_p": float("nan"),
        "chi2": float("nan"),
        "dof": 0,
        "p_value": float("nan"),
    }
    if n < 2 or mean <= 0:
        return res
    res["dispersion"] = var / mean
    # one-sided: over-dispersion
    res["dispersion_p"] = float(stats.chi2.sf((n - 1) * var / mean, n - 1))
    obs, exp = _chi2_bins(counts, mean)
    if len(obs) >= 3:  # >= 1 degree of freedom after estimating lambda
        chi2, p = stats.chisquare(obs, exp * obs.sum() / exp.sum(), ddof=1)
        res.update(chi2=float(chi2), dof=len(obs) - 2, p_value=float(p))
    return res


def default_windows(suite: Suite) -> list[int]:
    """One batch, 8 batches, and Pythia's 512 sequences (sorted, unique)."""
    b = suite.training.global_batch
    return sorted({b, 8 * b, 512})


def auto_threshold(final: pd.DataFrame, l: int, window: int) -> int:
    """The largest leading-run threshold r in l, l/2, l/4, ..., 1 at which every (model, dataset) has
    on average at least one event per ``window`` sequences (so the Q-Q plot does not degenerate); 1
    if none."""
    r = l
    while r > 1:
        rates = final.groupby(["model", "dataset"], observed=True)["match_run"].apply(
            lambda s, r=r: (s >= r).mean()
        )
        if (rates * window >= 1).all():
            return r
        r //= 2
    return 1


def poisson_table(final: pd.DataFrame, windows: list[int], thresholds: list[int]) -> pd.DataFrame:
    """:func:`poisson_test` of every (model, dataset, window, threshold) at the final checkpoint;
    the events are sequences whose leading match run is >= threshold (threshold = l: memorized)."""
    rows = []
    for (model, dataset), g in final.groupby(["model", "dataset"], observed=True):
        runs = g.sort_values("seq")["match_run"].to_numpy()
        for r in thresholds:
            for w in windows:
                if len(runs) // w < 2:  # fewer than two windows: nothing to compare
                    continue
                rows.append(
                    {
                        "model": model,
                        "dataset": dataset,
                        "step": int(g["step"].iloc[0]),
                        "threshold": r,
                        "window": w,
                        **poisson_test(window_counts(runs >= r, w)),
                    }
                )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ the Q-Q plot


def qq_points(counts: np.ndarray) -> pd.DataFrame:
    """Sample vs theoretical Poisson(mean) quantiles of window counts (``statsmodels`` ``ProbPlot``),
    one row per distinct pair with ``n`` = how many windows share it."""
    from statsmodels.graphics.gofplots import ProbPlot  # heavy: only the Q-Q plot needs it

    counts = np.asarray(counts, dtype=float)
    lam = float(counts.mean()) if len(counts) else 0.0
    if lam <= 0:  # no events: every window is 0 and so is every quantile of Poisson(0)
        return pd.DataFrame({"sample": [0.0], "theoretical": [0.0], "n": [len(counts)]})
    # a frozen Poisson (it takes no loc/scale arguments)
    pp = ProbPlot(counts, dist=stats.poisson(lam))
    df = pd.DataFrame({"sample": pp.sample_quantiles, "theoretical": pp.theoretical_quantiles})
    return df.groupby(["sample", "theoretical"]).size().rename("n").reset_index()


def qq_data(final: pd.DataFrame, model: str, windows: list[int], threshold: int) -> pd.DataFrame:
    """Q-Q points of ``model``'s final checkpoint, standard vs deduplicated, per window size."""
    frames = []
    for dataset, g in final[final["model"] == model].groupby("dataset", observed=True):
        runs = g.sort_values("seq")["match_run"].to_numpy()
        for w in windows:
            counts = window_counts(runs >= threshold, w)
            if len(counts) < 2:  # fewer than two windows of this size
                continue
            q = qq_points(counts)
            q.insert(0, "dataset", dataset)
            q.insert(1, "window", w)
            q["mean"] = counts.mean() if len(counts) else np.nan
            frames.append(q)
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "model", model)
    out.insert(3, "threshold", threshold)
    return out


def plot_qq(qq: pd.DataFrame) -> plt.Figure:
    """Sample vs theoretical quantiles, points sized and coloured by how many windows share them,
    the y = x line; columns: dataset, rows: window size."""
    datasets = list(dict.fromkeys(qq["dataset"]))
    windows = sorted(qq["window"].unique())
    fig, axes = plt.subplots(
        len(windows),
        len(datasets),
        figsize=(4.2 * len(datasets), 3.4 * len(windows)),
        squeeze=False,
        layout="constrained",
    )
    norm = plt.Normalize(1, max(2, qq["n"].max()))
    for i, w in enumerate(windows):
        for j, d in enumerate(datasets):
            ax = axes[i][j]
            q = qq[(qq["window"] == w) & (qq["dataset"] == d)]
            hi = max(1.0, q["sample"].max(), q["theoretical"].max())
            ax.plot([0, hi], [0, hi], color="0.5", lw=1, ls="--", zorder=0)
            sc = ax.scatter(
                q["theoretical"],
                q["sample"],
                s=20 + 180 * q["n"] / qq["n"].max(),
                c=q["n"],
                cmap="viridis",
                norm=norm,
                edgecolor="k",
                linewidth=0.3,
            )
            lam = q["mean"].iloc[0] if len(q) else np.nan
            ax.set_title(f"{d}, windows of {w} (λ = {lam:.3g})", fontsize=9)
            ax.set_xlabel("Poisson(λ) quantile")
            ax.set_ylabel("observed count")
    fig.colorbar(sc, ax=axes, shrink=0.6, label="windows at this point")
    r = int(qq["threshold"].iloc[0])
    fig.suptitle(
        f"{qq['model'].iloc[0]}: memorized sequences per window (leading run >= {r}) vs Poisson"
    )
    return fig


# ------------------------------------------------------------------------------ over training, position and size


def match_runs(scans: pd.DataFrame, l: int) -> pd.DataFrame:
    """Per (model, dataset, step): mean leading match run, mean fractional score, and the fraction of
    sequences reproducing >= 1, >= l/4 leading tokens: what moves when nothing is memorized."""
    g = scans.groupby(["model", "dataset", "step"], observed=True)
    out = g.agg(mean_match_run=("match_run", "mean"), mean_score=("score", "mean")).reset_index()
    for r in sorted({1, max(1, l // 4)}):
        out[f"frac_run_ge_{r}"] = (
            g["match_run"].apply(lambda s, r=r: float((s >= r).mean())).to_numpy()
        )
    return out


def plot_match_runs(df: pd.DataFrame) -> plt.Figure:
    """Mean leading match run and mean fractional score against checkpoint step, per size."""
    d = df[df["step"] > 0].melt(
        id_vars=["model", "dataset", "step"],
        value_vars=["mean_match_run", "mean_score"],
        var_name="measure",
        value_name="value",
    )
    g = sns.relplot(
        data=d,
        x="step",
        y="value",
        hue="model",
        style="dataset",
        col="measure",
        kind="line",
        marker="o",
        facet_kws={"sharey": False},
        height=3.2,
        aspect=1.3,
    )
    g.set(xscale="log")
    g.set_titles("{col_name}")
    g.figure.suptitle("Greedy continuation of training sequences over training", y=1.03)
    return g.figure


def rate_by_position(final: pd.DataFrame, thresholds: list[int], bins: int = 10) -> pd.DataFrame:
    """At the final checkpoint: the rate of sequences with leading run >= each threshold, and the mean
    run, per tenth of the training order (position 0 = first sequence trained on)."""
    f = final.assign(bin=np.minimum((final["position"] * bins).astype(int), bins - 1))
    rows = []
    for (model, dataset, b), g in f.groupby(["model", "dataset", "bin"], observed=True):
        rec = {
            "model": model,
            "dataset": dataset,
            "position": (b + 0.5) / bins,
            "sequences": len(g),
            "mean_match_run": float(g["match_run"].mean()),
        }
        for r in thresholds:
            rec[f"rate_run_ge_{r}"] = float((g["match_run"] >= r).mean())
        rows.append(rec)
    return pd.DataFrame(rows)


def plot_position(df: pd.DataFrame) -> plt.Figure:
    rate_cols = [c for c in df.columns if c.startswith("rate_run_ge_")]
    d = df.melt(
        id_vars=["model", "dataset", "position"],
        value_vars=[*rate_cols, "mean_match_run"],
        var_name="measure",
        value_name="value",
    )
    g = sns.relplot(
        data=d,
        x="position",
        y="value",
        hue="model",
        style="dataset",
        col="measure",
        kind="line",
        marker="o",
        facet_kws={"sharey": False},
        height=3.0,
        aspect=1.1,
    )
    g.set_titles("{col_name}")
    g.set_xlabels("position in training (fraction)")
    g.figure.suptitle("Final checkpoints: memorization against when the sequence was seen", y=1.03)
    return g.figure


def by_size(counts: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """The final checkpoint's counts per (model, dataset) with non-embedding parameters."""
    last = counts.groupby(["model", "dataset"], observed=True)["step"].transform("max")
    out = counts[counts["step"] == last].copy()
    out["non_embedding_params"] = [suite.model(str(m)).non_embedding_params() for m in out["model"]]
    return out.reset_index(drop=True)


def plot_size(df: pd.DataFrame) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    sns.lineplot(
        data=df, x="non_embedding_params", y="memorized", hue="dataset", marker="o", ax=axes[0]
    )
    sns.lineplot(
        data=df, x="non_embedding_params", y="mean_match_run", hue="dataset", marker="o", ax=axes[1]
    )
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters")
    axes[0].set_ylabel("memorized sequences (final checkpoint)")
    axes[1].set_ylabel("mean leading match run")
    fig.suptitle("Memorization against model size")
    fig.tight_layout()
    return fig


def persistence(scans: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """Of the sequences with leading run >= threshold at one checkpoint, how many still have it at
    each later checkpoint (both scans cover them), per (model, dataset, earlier step, later step)."""
    rows = []
    for (model, dataset), g in scans.groupby(["model", "dataset"], observed=True):
        steps = sorted(g["step"].unique())
        hit = {s: g[g["step"] == s].set_index("seq")["match_run"] >= threshold for s in steps}
        for i, a in enumerate(steps):
            before = hit[a][hit[a]].index
            if len(before) == 0:
                continue
            for b in steps[i + 1 :]:
                later = hit[b].reindex(before)
                rows.append(
                    {
                        "model": model,
                        "dataset": dataset,
                        "threshold": threshold,
                        "earlier": a,
                        "later": b,
                        "events_earlier": len(before),
                        "still_later": int(later.fillna(False).sum()),
                        "fraction_kept": float(later.fillna(False).mean()),
                    }
                )
    return pd.DataFrame(
        rows,
        columns=[
            "model",
            "dataset",
            "threshold",
            "earlier",
            "later",
            "events_earlier",
            "still_later",
            "fraction_kept",
        ],
    )


# ------------------------------------------------------------------------------ the memorized sequences


def sequence_sources(suite: Suite, dataset: str, seqs: np.ndarray) -> list[str]:
    """The source (as on the data card) of the document each training sequence starts in: through
    GPT-NeoX's order (shuffle_idx -> sample_idx -> doc_idx) to the document list. Pythia's released
    pre-shuffled files do not record sources: ``"released (unknown)"``."""
    if released.is_released(suite, dataset):
        return ["released (unknown)"] * len(seqs)
    L = Layout(suite.name)
    folder = L.dataset(dataset)
    shuffle_idx = np.load(folder / "shuffle_idx.npy", mmap_mode="r")
    sample_idx = np.load(folder / "sample_idx.npy", mmap_mode="r")
    doc_idx = np.load(folder / "doc_idx.npy", mmap_mode="r")
    train = read_jsonl(L.split_file("train"))
    if dataset != "standard":  # the deduplicated corpus keeps the documents dedup did not remove
        removed = set(json.loads((L.dataset("deduped") / "dedup.json").read_text())["removed"])
        train = [d for d in train if d["id"].split("#", 1)[0] not in removed]
    docs = doc_idx[sample_idx[shuffle_idx[np.asarray(seqs, dtype=np.int64)].astype(np.int64), 0]]
    return [train[int(d)]["source"] for d in docs]


def memorized_sequences(
    final: pd.DataFrame, suite: Suite, threshold: int, prompt: int, limit: int = 200
) -> pd.DataFrame:
    """The sequences with leading run >= threshold at the final checkpoints, decoded (prompt and the
    reproduced continuation) with their source: those reproduced by the most models first, then the
    longest runs; at most ``limit`` rows (only those are decoded)."""
    cols = [
        "model",
        "dataset",
        "step",
        "seq",
        "match_run",
        "models",
        "source",
        "prompt",
        "continuation",
    ]
    hits = final[final["match_run"] >= threshold].copy()
    if hits.empty:
        return pd.DataFrame(columns=cols)
    hits["models"] = hits.groupby(["dataset", "seq"], observed=True)["model"].transform("size")
    hits = hits.sort_values(
        ["models", "match_run", "dataset", "seq", "model"],
        ascending=[False, False, True, True, True],
    ).head(limit)
    tok = load_tokenizer(suite)
    parts = []
    for dataset, g in hits.groupby("dataset", observed=True, sort=False):
        seqs = g["seq"].to_numpy()
        tokens = np.asarray(open_sequences(suite, dataset)[np.sort(np.unique(seqs))])
        where = {s: i for i, s in enumerate(np.sort(np.unique(seqs)))}
        src = dict(
            zip(
                np.sort(np.unique(seqs)), sequence_sources(suite, dataset, np.sort(np.unique(seqs)))
            )
        )
        g = g.assign(
            source=[src[s] for s in seqs],
            prompt=[tok.decode(tokens[where[s], :prompt].tolist()) for s in seqs],
            continuation=[
                tok.decode(tokens[where[s], prompt : prompt + int(r)].tolist())
                for s, r in zip(seqs, g["match_run"])
            ],
        )
        parts.append(g)
    out = pd.concat(parts).sort_values(
        ["models", "match_run", "dataset", "seq", "model"],
        ascending=[False, False, True, True, True],
    )
    out["model"] = out["model"].astype(str)
    return out[cols].reset_index(drop=True)


def sources_of_memorized(table: pd.DataFrame) -> pd.DataFrame:
    """Memorized sequences per source, model and dataset."""
    if table.empty:
        return pd.DataFrame(columns=["dataset", "source", "model", "sequences"])
    return (
        table.groupby(["dataset", "source", "model"], observed=True)
        .size()
        .rename("sequences")
        .reset_index()
    )


# ------------------------------------------------------------------------------ duplication


def duplicates_files(suite: Suite, datasets: list[str], models: list[str]) -> dict[str, Path]:
    """The ``duplicates.parquet`` of every (dataset, model), keyed ``dataset/model/duplicates``."""
    return {
        f"{d}/{m}/duplicates": duplicates_file(suite.name, d, m) for d in datasets for m in models
    }


def load_duplicates(suite: Suite, datasets: list[str], models: list[str]) -> pd.DataFrame:
    """Every (dataset, model)'s duplicates in one frame: model, dataset, step, seq, duplicates, bin
    (its label), match_run, tf_matches, tf_run, tf_accuracy (tf_matches / l; NaN where not computed).
    ``.attrs["skipped"]``: {dataset/model: why} of those the job could not count (released data)."""
    frames, skipped = [], {}
    for d in datasets:
        for m in models:
            df = read_duplicates(duplicates_file(suite.name, d, m))
            meta = df.attrs
            if meta.get("skipped"):
                skipped[f"{d}/{m}"] = meta["skipped"]
            l = meta["options"]["continuation"]
            df.insert(0, "model", m)
            df.insert(1, "dataset", d)
            df.insert(2, "step", int(meta["step"]))
            df["tf_accuracy"] = np.where(df["tf_matches"] >= 0, df["tf_matches"] / l, np.nan)
            frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["model"] = pd.Categorical(
        out["model"], categories=[m for m in suite.models if m in models], ordered=True
    )
    out["dataset"] = pd.Categorical(
        out["dataset"], categories=[d for d in paths.DATASETS if d in datasets], ordered=True
    )
    out["bin"] = pd.Categorical(
        np.asarray(duplicate_bin_labels())[out["bin"].to_numpy(dtype=int)],
        categories=duplicate_bin_labels(),
        ordered=True,
    )
    out.attrs = {"skipped": skipped}
    return out


def duplicates_table(dups: pd.DataFrame, l: int) -> pd.DataFrame:
    """Per (model, dataset, final step, duplicate-count bin): sequences, their smallest and largest
    count, mean leading run, sequences with a leading run >= l/4 and memorized (run = l), and over
    the teacher-forced sample: rows, mean accuracy and its standard error (NaN below two rows)."""
    quarter = max(1, l // 4)
    cols = [
        "model",
        "dataset",
        "step",
        "bin",
        "sequences",
        "min_count",
        "max_count",
        "mean_match_run",
        f"run_ge_{quarter}",
        "memorized",
        "teacher_forced",
        "mean_tf_accuracy",
        "sem_tf_accuracy",
    ]
    if dups.empty:
        return pd.DataFrame(columns=cols)
    g = dups.assign(quarter=dups["match_run"] >= quarter, full=dups["match_run"] >= l).groupby(
        ["model", "dataset", "step", "bin"], observed=True
    )
    out = g.agg(
        sequences=("seq", "size"),
        min_count=("duplicates", "min"),
        max_count=("duplicates", "max"),
        mean_match_run=("match_run", "mean"),
        **{f"run_ge_{quarter}": ("quarter", "sum")},
        memorized=("full", "sum"),
        teacher_forced=("tf_accuracy", "count"),
        mean_tf_accuracy=("tf_accuracy", "mean"),
        sem_tf_accuracy=("tf_accuracy", "sem"),
    ).reset_index()
    for c in (f"run_ge_{quarter}", "memorized"):
        out[c] = out[c].astype(int)
    for c in ("model", "dataset", "bin"):
        out[c] = out[c].astype(str)
    return out[cols]


def plot_duplicates(
    table: pd.DataFrame, l: int, skipped: dict[str, str] | None = None
) -> plt.Figure:
    """Mean teacher-forced accuracy (with +-1.96 standard errors) and mean leading run against the
    duplicate-count bin; columns: dataset, one line per model."""
    datasets = list(dict.fromkeys(table["dataset"])) or ["(none)"]
    fig, axes = plt.subplots(
        2,
        len(datasets),
        figsize=(max(6.5, 4.8 * len(datasets)), 6.4),
        squeeze=False,
        layout="constrained",
        sharey="row",
    )
    labels = duplicate_bin_labels()
    models = list(dict.fromkeys(table["model"]))
    colours = dict(zip(models, sns.color_palette("viridis", max(1, len(models)))))
    for j, d in enumerate(datasets):
        t = table[table["dataset"] == d]
        for m, g in t.groupby("model", sort=False):
            x = [labels.index(b) for b in g["bin"]]
            axes[0][j].errorbar(
                x,
                g["mean_tf_accuracy"],
                yerr=1.96 * g["sem_tf_accuracy"].fillna(0),
                marker="o",
                capsize=3,
                color=colours[m],
                label=m,
            )
            axes[1][j].plot(x, g["mean_match_run"], marker="o", color=colours[m], label=m)
        axes[0][j].set_title(d)
        for ax in axes[:, j]:
            ax.set_xticks(range(len(labels)), labels)
            ax.set_xlim(-0.3, len(labels) - 0.7)
        if t.empty:
            why = "; ".join(f"{k}: {v}" for k, v in (skipped or {}).items()) or "no sequences"
            axes[0][j].text(
                0.5,
                0.5,
                f"not computed\n{why}"[:200],
                ha="center",
                va="center",
                wrap=True,
                transform=axes[0][j].transAxes,
                fontsize=8,
            )
    axes[0][0].set_ylabel(f"teacher-forced accuracy (of {l} tokens)")
    axes[1][0].set_ylabel("mean leading match run")
    if models:
        axes[0][-1].legend(title="model", fontsize=8)
    fig.supxlabel(
        "duplicate count: occurrences of the sequence's first k + l tokens in the training rows",
        fontsize=10,
    )
    fig.suptitle("Closeness to memorization against duplication (final checkpoints)")
    return fig


def duplicates_note(table: pd.DataFrame, l: int) -> str:
    """The trend in words: per (model, dataset) the teacher-forced accuracy and mean run of the
    lowest and highest bins with sequences."""
    if table.empty:
        return "Duplicate counts were not computed (see the figure)."
    lines = [
        f"Teacher-forced accuracy (of {l} tokens) and mean leading run, seen once vs the most repeated bin:"
    ]
    for (m, d), g in table.groupby(["model", "dataset"], sort=False):
        lo, hi = g.iloc[0], g.iloc[-1]
        lines.append(
            f"  {m}/{d}: bin {lo['bin']} ({lo['sequences']} seq.) accuracy {lo['mean_tf_accuracy']:.3f}, "
            f"run {lo['mean_match_run']:.2f}; bin {hi['bin']} ({hi['sequences']} seq.) accuracy "
            f"{hi['mean_tf_accuracy']:.3f}, run {hi['mean_match_run']:.2f}; memorized {int(g['memorized'].sum())}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ scan speed


def scan_speed(suite: Suite, datasets: list[str], models: list[str]) -> pd.DataFrame:
    """Per (model, dataset): sequences scanned over all checkpoints, scan seconds, sequences/s (what
    the scan jobs measured; a cached rerun scores nothing and reports no rate)."""
    rows = []
    for rec in load_summaries(suite, datasets, models):
        seqs = sum(c["sequences"] for c in rec["checkpoints"])
        scored = sum(c["scored_now"] for c in rec["checkpoints"])
        secs = rec["seconds"]
        rows.append(
            {
                "model": rec["model"],
                "dataset": rec["dataset"],
                "checkpoints": len(rec["checkpoints"]),
                "sequences": seqs,
                "scored": scored,
                "seconds": secs,
                "sequences_per_s": scored / secs if scored and secs else np.nan,
            }
        )
    return pd.DataFrame(rows)


def bench_table(path: str | Path) -> pd.DataFrame:
    """``pythia bench memorization``'s result as one row: tokens/s of the scan (flags and match runs),
    of the scan with every fractional score, of ``model.generate``; their ratios and the parity checks."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run `pythia bench memorization` (or the workflow's memorization_bench)"
        )
    r = json.loads(path.read_text())
    t = r["timings"]
    return pd.DataFrame(
        [
            {
                "model": r["model"],
                "dataset": r["dataset"],
                "checkpoint": r["checkpoint"],
                "sequences": r["rows"],
                "threads": r["threads"],
                "device": r["device"],
                "scan_tokens_per_s": t["scan"]["tokens_per_s"],
                "scan_scores_tokens_per_s": t["scan_scores"]["tokens_per_s"],
                "generate_tokens_per_s": t["generate"]["tokens_per_s"],
                "scan_over_generate": r["scan_over_generate"],
                "scan_scores_over_generate": r["scan_scores_over_generate"],
                "flags_identical": r["flags_identical"],
                "match_runs_identical": r["match_runs_identical"],
                "scores_identical": r["scores_identical"],
                "memorized": r["memorized"],
            }
        ]
    )


def closing_note(counts: pd.DataFrame, tests: pd.DataFrame, speed: pd.DataFrame, l: int) -> str:
    """The section's numbers in words: memorized sequences per model and dataset at the final
    checkpoint, the Poisson tests at the largest window, and the scan-vs-generate speed."""
    last = counts[
        counts["step"]
        == counts.groupby(["model", "dataset"], observed=True)["step"].transform("max")
    ]
    lines = ["Memorized sequences (all l tokens) at the final checkpoint, of the sequences seen:"]
    for dataset, g in last.groupby("dataset", observed=True):
        lines.append(
            f"  {dataset}: "
            + ", ".join(
                f"{m} {int(n)}/{int(s)}"
                for m, n, s in zip(g["model"], g["memorized"], g["sequences"])
            )
        )
    w = tests["window"].max()
    for r, g in tests[tests["window"] == w].groupby("threshold"):
        what = "memorized" if r == l else f"leading run >= {r}"
        lines.append(f"Poisson test, {what}, windows of {w}:")
        for _, t in g.iterrows():
            if not t["mean"] > 0:
                lines.append(f"  {t['model']}/{t['dataset']}: no events (mean 0): nothing to test")
                continue
            lines.append(
                f"  {t['model']}/{t['dataset']}: mean {t['mean']:.3g}, dispersion index {t['dispersion']:.3g} "
                f"(p {t['dispersion_p']:.3g}), chi-square {t['chi2']:.3g} on {int(t['dof'])} dof (p {t['p_value']:.3g})"
            )
    for _, s in speed.iterrows():
        lines.append(
            f"Scan vs model.generate ({s['model']}/{s['dataset']}, {s['sequences']} sequences, {s['threads']} "
            f"thread(s), {s['device']}): {s['scan_over_generate']:.1f}x (flags and match runs), "
            f"{s['scan_scores_over_generate']:.2f}x with every fractional score; identical flags "
            f"{s['flags_identical']}, identical scores {s['scores_identical']}."
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ the released results


AGREEMENT_COLUMNS = (
    "model",
    "dataset",
    "step",
    "source",
    "rows_compared",
    "flagged_ours",
    "flagged_released",
    "both",
    "only_ours",
    "only_released",
    "agreement",
    "released_outside",
    "tokens_checked",
    "tokens_differ",
    "note",
)
"""The columns of :func:`released_agreement`."""


def released_files(suite: Suite, datasets: list[str], models: list[str]) -> dict[str, Path]:
    """The ``released.parquet`` of every (dataset, model), keyed ``dataset/model/released``."""
    return {f"{d}/{m}/released": released_file(suite.name, d, m) for d in datasets for m in models}


def _agreement_row(scans: pd.DataFrame, rel: pd.DataFrame, l: int, prompt: int) -> dict:
    """One (model, dataset)'s row of :func:`released_agreement` (``rel``: a released file's frame)."""
    meta = rel.attrs
    step = int(meta["step"])
    mine = scans[(scans["step"] == step)]
    row = {"model": meta["model"], "dataset": meta["dataset"], "step": step}
    row.update(source=meta["origin"].get("where", meta["source"]), note="")
    row.update(tokens_checked=meta["tokens_checked"], tokens_differ=meta["tokens_differ"])
    row.update(
        agreement(
            mine["seq"].to_numpy(), mine.loc[mine["memorized"], "seq"].to_numpy(), rel["index"]
        )
    )
    width = len(rel["tokens"].iloc[0]) if "tokens" in rel.columns and len(rel) else None
    if mine.empty:
        row["note"] = f"our scans have no checkpoint at step {step}: scan it to compare"
    elif width is not None and width != prompt + l:
        row["note"] = f"released tokens hold {width}, our scan's k + l = {prompt + l}"
    n = row["rows_compared"]
    row["agreement"] = row.pop("agreeing_rows") / n if n else np.nan
    return row


def released_agreement(
    suite: Suite, scans: pd.DataFrame, datasets: list[str], models: list[str], l: int, prompt: int
) -> pd.DataFrame:
    """Per (model, dataset) with a released set: our scan at the released checkpoint against it on
    the rows our scan covered (:data:`AGREEMENT_COLUMNS`; ``agreement`` = rows where both agree /
    rows compared; ``released_outside``: released indices our scan did not cover; ``tokens_differ``:
    released rows of our data whose tokens are not our row's). A model the source has no split for
    is left out; ``.attrs["absent"]`` says which and why."""
    rows, absent = [], {}
    for d in datasets:
        for m in models:
            rel = read_released(released_file(suite.name, d, m))
            if rel.attrs.get("absent"):
                absent[f"{d}/{m}"] = rel.attrs["absent"]
                continue
            part = scans[(scans["model"] == m) & (scans["dataset"] == d)]
            rows.append(_agreement_row(part, rel, l, prompt))
    out = pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
    out.attrs = {"absent": absent}
    return out


def released_disagreements(
    suite: Suite, scans: pd.DataFrame, table: pd.DataFrame, limit: int = 20
) -> pd.DataFrame:
    """The sequences behind ``only_ours`` and ``only_released`` of :func:`released_agreement`
    (at most ``limit`` per model and dataset): model, dataset, step, seq, ours, released, match_run."""
    out = []
    for _, r in table.iterrows():
        rel = read_released(released_file(suite.name, r["dataset"], r["model"]))
        mine = scans[
            (scans["model"] == r["model"])
            & (scans["dataset"] == r["dataset"])
            & (scans["step"] == r["step"])
        ]
        theirs = np.isin(mine["seq"].to_numpy(), rel["index"].to_numpy())
        differs = mine["memorized"].to_numpy() != theirs
        differ = mine[differs].head(limit)
        out.append(
            pd.DataFrame(
                {
                    "model": r["model"],
                    "dataset": r["dataset"],
                    "step": r["step"],
                    "seq": differ["seq"].to_numpy(),
                    "ours": differ["memorized"].to_numpy(),
                    "released": theirs[differs][:limit],
                    "match_run": differ["match_run"].to_numpy(),
                }
            )
        )
    cols = ["model", "dataset", "step", "seq", "ours", "released", "match_run"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def released_note(table: pd.DataFrame, l: int) -> str:
    """The agreement in words, one line per model and dataset."""
    if table.empty:
        return "No released set to compare (the source has none of these models)."
    lines = [f"Our ({l}-token) scan against the released memorized sequences, same checkpoint:"]
    for _, r in table.iterrows():
        same = (
            "the same sequences"
            if r["only_ours"] == r["only_released"] == 0
            else "different sequences"
        )
        lines.append(
            f"  {r['model']}/{r['dataset']} step {r['step']}: {r['rows_compared']} rows, ours "
            f"{r['flagged_ours']}, released {r['flagged_released']}, both {r['both']}, only ours "
            f"{r['only_ours']}, only released {r['only_released']}: {same} "
            f"(agreement {r['agreement']:.6g}; {r['tokens_differ']} of {r['tokens_checked']} "
            f"released token rows differ from ours){'; ' + r['note'] if r['note'] else ''}"
        )
    for key, why in table.attrs.get("absent", {}).items():
        lines.append(f"  {key}: no released set ({why})")
    return "\n".join(lines)
