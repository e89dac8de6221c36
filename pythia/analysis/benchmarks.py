"""Section 02, benchmarks: accuracy over training and scale, standard vs deduplicated, ours
beside Pythia's published numbers.

Reads what ``rules/benchmarks.smk`` wrote (``work/<suite>/benchmarks/evals/<dataset>/<model>.csv``,
one row per checkpoint, task, shot count and metric; :mod:`pythia.evaluate.benchmarks`) and the
committed table of published Pythia results (:mod:`pythia.published.evals`);
``notebooks/02_benchmarks.ipynb`` calls these functions. Each figure is drawn from one tidy frame.

Seed spread (the suite's ``seeds`` key; from the hub, PolyPythias under the same run names): the
evaluations of the baselines and seed runs of the models that have them, as accuracy over training
with a band over seeds (:mod:`pythia.analysis.seeds`).

Our offline tasks stand for the paper's (:func:`pythia.evaluate.benchmarks.paper_task`:
``lambada_incorpus`` for ``lambada_openai``, ``piqa_offline`` for ``piqa``, ...); the
``paper_task`` column puts them beside the published panels of the same benchmark.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pythia import paths
from pythia.analysis import seeds
from pythia.config import Suite, config_digest
from pythia.data.build import stage_digest
from pythia.evaluate.benchmarks import COLUMNS, OFFLINE_TASKS, TASK_VERSION, paper_task
from pythia.published import evals as published
from pythia.train.checkpoint import run_digest

CHANCE = {
    "piqa": 0.5,
    "winogrande": 0.5,
    "wsc": 0.5,
    "arc_easy": 0.25,
    "arc_challenge": 0.25,
    "sciq": 0.25,
    "logiqa": 0.25,
    "lambada_openai": 0.0,
}
"""Chance accuracy of each paper task (uniform guessing among its choices)."""


# ------------------------------------------------------------------------------ digests (rules)


def tasks_digest(suite: Suite, cfg: dict) -> str:
    """What the task folder depends on: the workflow's ``benchmarks`` config, the suite's documents
    (the cloze's test and training documents) and tokenizer (which choices fit), not deduplication."""
    return config_digest(
        {
            "benchmarks": {k: cfg[k] for k in ("tasks", "examples")},
            "version": TASK_VERSION,
            "documents": stage_digest(suite, "documents"),
            "tokenizer": stage_digest(suite, "tokenizer"),
            "seq_len": suite.training.seq_len,
        }
    )


def evaluate_digest(suite: Suite, dataset: str, model: str) -> str:
    """What one evaluation job reads: the run's weights (its run digest) and the analysed steps.
    ``dataset`` is a baseline or, for the seed runs' jobs, a seed run (``standard-seed1``)."""
    base = paths.parse_run(dataset)[0]
    return config_digest(
        {
            "run": run_digest(suite, model, base, suite.run_seeds(dataset)),
            "steps": suite.analysis_steps(),
        }
    )


def seed_evaluate_digest(suite: Suite, seedrun: str, model: str) -> str:
    """:func:`evaluate_digest` of a seed run's job (the rule's wildcard is ``seedrun``)."""
    return evaluate_digest(suite, seedrun, model)


# ------------------------------------------------------------------------------ loading


def eval_files(suite: Suite, datasets: list[str], models: list[str]) -> dict[str, Path]:
    """The evaluation CSV of every (dataset, model), keyed ``<dataset>/<model>``."""
    root = paths.suite_dir(suite.name) / "benchmarks" / "evals"
    return {f"{d}/{m}": root / d / f"{m}.csv" for d in datasets for m in models}


def load_evals(suite: Suite, datasets: list[str], models: list[str]) -> pd.DataFrame:
    """Our results, one long frame (columns of :data:`pythia.evaluate.benchmarks.COLUMNS` + ``paper_task``)."""
    frames = []
    for f in eval_files(suite, datasets, models).values():
        if not f.is_file():
            raise FileNotFoundError(
                f"{f} is missing: run the section's rules first "
                f"(`pythia workflow run ... benchmarks_notebook` or `make reproduce`)"
            )
        frames.append(pd.read_csv(f))
    df = pd.concat(frames, ignore_index=True)[COLUMNS]
    df["paper_task"] = df["task"].map(paper_task)
    return df


def published_rows(
    tasks: list[str],
    num_fewshot: list[int] | None = None,
    metrics: tuple[str, ...] = ("acc", "perplexity"),
) -> pd.DataFrame:
    """Published Pythia rows of the paper tasks our ``tasks`` stand for (COLUMNS + ``paper_task``)."""
    pub = published.load()
    wanted = sorted({paper_task(t) for t in tasks})
    pub = pub[pub["task"].isin(wanted) & pub["metric"].isin(metrics)]
    if num_fewshot is not None:
        pub = pub[pub["num_fewshot"].isin(num_fewshot)]
    pub = pub.assign(suite="pythia", paper_task=pub["task"])
    return pub[[*COLUMNS, "paper_task"]].reset_index(drop=True)


def evals_table(ours: pd.DataFrame, pub: pd.DataFrame) -> pd.DataFrame:
    """The section's one tidy table: ours, then the published rows of the same benchmarks."""
    out = pd.concat([ours, pub], ignore_index=True)
    out["stderr"] = out["stderr"].astype(float)
    return out.sort_values(
        ["source", "dataset", "params", "task", "num_fewshot", "metric", "step"], kind="stable"
    ).reset_index(drop=True)  # "ours" sorts before "published"


# ------------------------------------------------------------------------------ frames per figure


def accuracy_curves(df: pd.DataFrame, shots: int = 0) -> pd.DataFrame:
    """Accuracy of every task against training tokens (step 0 drawn at 1 token on the log axis)."""
    sub = df[(df["metric"] == "acc") & (df["num_fewshot"] == shots)].copy()
    sub["tokens_axis"] = sub["tokens"].clip(lower=1)
    sub["chance"] = sub["paper_task"].map(CHANCE)
    cols = [
        "model",
        "params",
        "dataset",
        "step",
        "tokens",
        "tokens_axis",
        "task",
        "paper_task",
        "value",
        "stderr",
        "chance",
    ]
    return sub[cols].sort_values(["task", "dataset", "params", "step"]).reset_index(drop=True)


def cloze_quality(df: pd.DataFrame, shots: int = 0) -> pd.DataFrame:
    """The in-corpus cloze over training: accuracy and perplexity per model and dataset."""
    sub = df[
        (df["task"] == "lambada_incorpus")
        & (df["num_fewshot"] == shots)
        & df["metric"].isin(["acc", "perplexity"])
    ]
    wide = sub.pivot_table(
        index=["model", "params", "dataset", "step", "tokens"], columns="metric", values="value"
    ).reset_index()
    wide.columns.name = None
    wide["tokens_axis"] = wide["tokens"].clip(lower=1)
    return wide.sort_values(["dataset", "params", "step"]).reset_index(drop=True)


def final_results(df: pd.DataFrame, shots: int = 0) -> pd.DataFrame:
    """The last checkpoint of every (model, dataset): accuracy (and cloze perplexity) per task."""
    sub = df[df["num_fewshot"] == shots]
    last = sub.groupby(["model", "dataset"])["step"].transform("max")
    sub = sub[sub["step"] == last]
    out = sub[sub["metric"].isin(["acc", "acc_norm", "perplexity"])]
    out = out[
        [
            "model",
            "params",
            "dataset",
            "step",
            "tokens",
            "task",
            "paper_task",
            "metric",
            "value",
            "stderr",
        ]
    ]
    return out.sort_values(["task", "metric", "dataset", "params"]).reset_index(drop=True)


def final_table(final: pd.DataFrame) -> pd.DataFrame:
    """The final checkpoints as a readable table: one row per (model, dataset), one column per task metric."""
    wide = final.pivot_table(
        index=["model", "params", "dataset", "step", "tokens"],
        columns=["task", "metric"],
        values="value",
    )
    wide.columns = [f"{t} {m}" for t, m in wide.columns]
    return wide.reset_index().sort_values(["dataset", "params"]).round(4).reset_index(drop=True)


def published_curves(pub: pd.DataFrame, shots: int = 0) -> pd.DataFrame:
    """Published accuracy (LAMBADA: accuracy) of each paper task against tokens, every size."""
    sub = pub[(pub["metric"] == "acc") & (pub["num_fewshot"] == shots)].copy()
    sub["tokens_axis"] = sub["tokens"].clip(lower=1)
    sub["chance"] = sub["paper_task"].map(CHANCE)
    cols = [
        "model",
        "params",
        "dataset",
        "step",
        "tokens",
        "tokens_axis",
        "paper_task",
        "value",
        "stderr",
        "chance",
    ]
    return sub[cols].sort_values(["paper_task", "dataset", "params", "step"]).reset_index(drop=True)


# ------------------------------------------------------------------------------ plots


def _size_order(df: pd.DataFrame) -> list[str]:
    return list(df.sort_values("params")["model"].drop_duplicates())


def _chance_lines(g: sns.FacetGrid, df: pd.DataFrame, col: str) -> None:
    for name, ax in g.axes_dict.items():
        c = df.loc[df[col] == name, "chance"]
        if len(c) and c.iloc[0] > 0:
            ax.axhline(c.iloc[0], color="grey", lw=1, ls=":", zorder=0)


def _stderr_bands(data: pd.DataFrame, colors: dict[str, tuple], **_: object) -> None:
    """One band of value +- stderr (lm-eval's standard error of the task's mean) around each
    (model, dataset) line of a facet, in the line's colour."""
    ax = plt.gca()
    for (model, _dataset), line in data.groupby(["model", "dataset"], sort=False):
        line = line.sort_values("tokens_axis")
        err = line["stderr"].astype(float).fillna(0.0)
        ax.fill_between(
            line["tokens_axis"],
            line["value"] - err,
            line["value"] + err,
            color=colors[model],
            alpha=0.15,
            lw=0,
        )


def plot_accuracy_curves(curves: pd.DataFrame) -> plt.Figure:
    """Accuracy against tokens, one panel per task; colour = size, solid = standard, dashed =
    deduplicated; shaded: +- one standard error (lm-eval's, of each checkpoint's mean over the
    task's examples); dotted grey = chance."""
    order = _size_order(curves)
    palette = dict(zip(order, sns.color_palette("viridis", len(order))))
    g = sns.relplot(
        data=curves,
        x="tokens_axis",
        y="value",
        hue="model",
        hue_order=order,
        style="dataset",
        col="task",
        col_wrap=min(3, curves["task"].nunique()),
        kind="line",
        palette=palette,
        height=2.8,
        aspect=1.25,
        markers=False,
        facet_kws={"sharey": False},
    )
    g.map_dataframe(_stderr_bands, colors=palette)
    g.set(xscale="log")
    _chance_lines(g, curves, "task")
    g.set_axis_labels("tokens seen (step 0 at 1)", "accuracy")
    g.figure.suptitle(
        "Our models: accuracy over training (band: +- 1 standard error), every size, "
        "standard vs deduplicated",
        y=1.03,
    )
    return g.figure


def plot_cloze_quality(cq: pd.DataFrame) -> plt.Figure:
    """The in-corpus cloze over training: accuracy and perplexity of the target word."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    order = _size_order(cq)
    for ax, metric, label in (
        (axes[0], "acc", "cloze accuracy (greedy word = target)"),
        (axes[1], "perplexity", "cloze perplexity of the target word"),
    ):
        sns.lineplot(
            data=cq,
            x="tokens_axis",
            y=metric,
            hue="model",
            hue_order=order,
            style="dataset",
            palette="viridis",
            ax=ax,
            legend=ax is axes[1],
        )
        ax.set_xscale("log")
        ax.set_xlabel("tokens seen (step 0 at 1)")
        ax.set_ylabel(label)
    axes[1].set_yscale("log")
    fig.suptitle("In-corpus LAMBADA-style cloze over training (held-out test documents)")
    fig.tight_layout()
    return fig


def plot_final_vs_params(final: pd.DataFrame) -> plt.Figure:
    """Final accuracy against total parameters per task (and cloze perplexity), both datasets."""
    sub = final[final["metric"].isin(["acc", "perplexity"])].assign(
        panel=lambda d: d["task"] + " " + d["metric"]
    )
    g = sns.relplot(
        data=sub,
        x="params",
        y="value",
        hue="dataset",
        col="panel",
        col_wrap=min(3, sub["panel"].nunique()),
        kind="line",
        marker="o",
        height=2.8,
        aspect=1.2,
        facet_kws={"sharey": False},
    )
    g.set(xscale="log")
    for name, ax in g.axes_dict.items():
        if name.endswith("perplexity"):
            ax.set_yscale("log")
    g.set_titles("{col_name}")
    g.set_axis_labels("total parameters", "final value")
    g.figure.suptitle("Final checkpoint against model size", y=1.03)
    return g.figure


def plot_published_curves(curves: pd.DataFrame) -> plt.Figure:
    """Pythia's published accuracy over training (the same benchmarks, the real sizes)."""
    g = sns.relplot(
        data=curves,
        x="tokens_axis",
        y="value",
        hue="model",
        hue_order=_size_order(curves),
        style="dataset",
        col="paper_task",
        col_wrap=min(3, curves["paper_task"].nunique()),
        kind="line",
        palette="viridis",
        height=2.8,
        aspect=1.25,
        facet_kws={"sharey": False},
    )
    g.set(xscale="log")
    _chance_lines(g, curves, "paper_task")
    g.set_axis_labels("tokens seen (step 0 at 1)", "accuracy")
    g.set_titles("{col_name} (published)")
    g.figure.suptitle(
        "Pythia, published (EleutherAI evals/pythia-v1): accuracy over training", y=1.03
    )
    return g.figure


def micro_reach(suite: Suite, pub: pd.DataFrame) -> pd.DataFrame:
    """How far our training gets on Pythia's axis: our last checkpoint's tokens and the published
    accuracy of Pythia-70M at the published step nearest to it and at the end."""
    tokens = suite.training.train_iters * suite.training.tokens_per_step
    p = pub[
        (pub["model"] == "70M")
        & (pub["dataset"] == "standard")
        & (pub["metric"] == "acc")
        & (pub["num_fewshot"] == 0)
    ]
    rows = []
    for task, d in p.groupby("paper_task"):
        near = d.iloc[int(np.argmin(np.abs(np.log1p(d["tokens"]) - np.log1p(tokens))))]
        rows.append(
            {
                "paper_task": task,
                "our_final_tokens": tokens,
                "pythia_70m_step": int(near["step"]),
                "pythia_70m_tokens": int(near["tokens"]),
                "pythia_70m_acc_there": near["value"],
                "pythia_70m_acc_final": d.loc[d["step"].idxmax(), "value"],
                "chance": CHANCE.get(task),
            }
        )
    return pd.DataFrame(rows)


__all__ = [
    "CHANCE",
    "OFFLINE_TASKS",
    "accuracy_curves",
    "cloze_quality",
    "eval_files",
    "evals_table",
    "evaluate_digest",
    "final_results",
    "final_table",
    "load_evals",
    "micro_reach",
    "plot_accuracy_curves",
    "plot_cloze_quality",
    "plot_final_vs_params",
    "plot_published_curves",
    "published_curves",
    "published_rows",
    "tasks_digest",
]


# ------------------------------------------------------------------------------ seed spread


def seed_eval_files(
    suite: Suite, datasets: list[str], models: list[str], seed_runs: list[str] | None = None
) -> dict[str, Path]:
    """The evaluation CSV of the baselines and seed runs of the shown models with seed runs,
    keyed ``<run>/<model>`` (empty without the suite's ``seeds``). ``seed_runs`` (``run/model``,
    what the workflow evaluated: from the hub, only the seed runs PolyPythias released) narrows
    the suite's seed runs."""
    seeded = [m for m in suite.seeds.models if m in models]
    runs = [(d, m) for d in datasets for m in seeded]
    runs += [
        (r, m)
        for r, m in suite.seed_runs(datasets)
        if m in seeded and (seed_runs is None or f"{r}/{m}" in seed_runs)
    ]
    root = paths.suite_dir(suite.name) / "benchmarks" / "evals"
    return {f"{r}/{m}": root / r / f"{m}.csv" for r, m in runs}


def load_seed_evals(
    suite: Suite, datasets: list[str], models: list[str], seed_runs: list[str] | None = None
) -> pd.DataFrame:
    """The seed runs' and their baselines' results (:func:`seed_eval_files`): :func:`load_evals`'s
    columns with ``run`` (the evaluated run), ``dataset`` (its base dataset), ``seed`` and ``vary``."""
    frames = []
    for f in seed_eval_files(suite, datasets, models, seed_runs).values():
        if not f.is_file():
            raise FileNotFoundError(
                f"{f} is missing: run the section's rules first (`pythia workflow run ... "
                f"benchmarks_notebook`, which evaluates the seed runs, or `make reproduce`)"
            )
        frames.append(pd.read_csv(f))
    if not frames:
        return pd.DataFrame(columns=[*COLUMNS, "paper_task", "run", "seed", "vary"])
    df = pd.concat(frames, ignore_index=True)[COLUMNS].rename(columns={"dataset": "run"})
    df["paper_task"] = df["task"].map(paper_task)
    return seeds.split_runs(df)


def accuracy_seed_bands(seed_evals: pd.DataFrame, shots: int = 0) -> pd.DataFrame:
    """Accuracy per task, model, dataset, kind of seed run and step over seeds: n_seeds, mean, sd,
    min, max (and the tokens, step 0 drawn at 1 token on the log axis)."""
    sub = seed_evals[(seed_evals["metric"] == "acc") & (seed_evals["num_fewshot"] == shots)]
    sub = seeds.with_baseline_per_kind(sub).assign(tokens_axis=lambda d: d["tokens"].clip(lower=1))
    bands = seeds.seed_bands(
        sub, "value", by=["task", "model", "dataset", "vary"], extra=["tokens_axis"]
    )
    bands["chance"] = bands["task"].map(paper_task).map(CHANCE)
    return bands.astype({"model": str})


def plot_accuracy_seed_bands(bands: pd.DataFrame) -> plt.Figure:
    """Accuracy over training per task (rows) and model (columns): the mean over seeds and the
    min-max band, standard against deduplicated; chance dotted."""
    panels = bands.assign(
        panel=bands["model"]
        + np.where(bands["vary"] == seeds.BASE, "", " · " + bands["vary"] + "-seed")
    )
    fig = seeds.plot_seed_bands(
        panels,
        row="task",
        col="panel",
        x="tokens_axis",
        xlabel="tokens seen (step 0 at 1)",
        ylabel="accuracy",
        title="Accuracy over seeds: mean (line) and min-max (band)",
    )
    chance = panels.groupby("task", sort=False)["chance"].first()  # the panels' rows, in order
    ncols = panels["panel"].nunique()
    for i, ax in enumerate(fig.axes):
        value = chance.iloc[i // ncols]
        if pd.notna(value):
            ax.axhline(float(value), color="grey", linestyle=":", linewidth=1)
    return fig
