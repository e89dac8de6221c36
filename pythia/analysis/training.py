"""Section 01, training: data card, data order, loss curves, validation loss, LR schedule,
throughput and the proof of data of a suite.

Seed spread (the suite's ``seeds`` key): the baselines and seed runs of the models that have them,
as bands over seeds of the training and validation loss and a table of the final validation
loss's spread and of the standard-minus-deduplicated gap against seed noise
(:mod:`pythia.analysis.seeds` computes both).

Everything here reads what the data build and the trainer wrote (``work/<suite>/data/`` and
``work/<suite>/models/<run>/<model>/train_log.jsonl``); ``notebooks/01_training.ipynb`` calls
these functions. Each figure is drawn from one tidy frame (``*_data`` -> ``plot_*``), which is
saved beside it as the figure's data.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pythia import paths
from pythia.analysis import seeds
from pythia.config import Suite
from pythia.data.batches import batch_hash, get_batch
from pythia.train.schedule import suite_lr

LOG_COLUMNS = [
    "step",
    "tokens_seen",
    "loss",
    "lr",
    "grad_norm",
    "tokens_per_s",
    "val_loss",
    "batch_hash",
]


def run_files(suite: Suite, runs: list[str], models: list[str] | None = None) -> dict[str, Path]:
    """The ``train_log.jsonl`` of every (run, model), keyed ``run/model``; a run is a dataset
    or a variant's :func:`pythia.paths.run_name`."""
    models = models or list(suite.models)
    return {
        f"{r}/{m}": paths.run_dir(suite.name, r, m) / "train_log.jsonl"
        for r in runs
        for m in models
    }


def order_files(suite: Suite, datasets: list[str]) -> dict[str, Path]:
    """The ``order.json`` of each dataset, keyed ``data/<dataset>/order.json``."""
    return {
        f"data/{d}/order.json": paths.dataset_dir(suite.name, d) / "order.json" for d in datasets
    }


def read_log(path: str | Path) -> pd.DataFrame:
    """One training log as a frame (one row per step; ``val_loss`` only at checkpoints)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: train the model first (`pythia train` or `make reproduce`)"
        )
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    df = pd.DataFrame.from_records(records)
    for col in LOG_COLUMNS:
        if col not in df:
            df[col] = np.nan
    return df.sort_values("step").drop_duplicates("step", keep="last").reset_index(drop=True)


def load_logs(suite: Suite, runs: list[str], models: list[str] | None = None) -> pd.DataFrame:
    """All runs' logs in one long frame with model, dataset (the run) and non-embedding parameters."""
    frames = []
    for key, path in run_files(suite, runs, models).items():
        dataset, model = key.split("/", 1)
        df = read_log(path)
        df.insert(0, "model", model)
        df.insert(1, "dataset", dataset)
        df["non_embedding_params"] = suite.model(model).non_embedding_params()
        frames.append(df)
    logs = pd.concat(frames, ignore_index=True)
    logs["model"] = pd.Categorical(logs["model"], categories=list(suite.models), ordered=True)
    return logs


def load_card(path: str | Path) -> dict:
    """The data card written by ``pythia data build`` (``work/<suite>/data/card.json``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: build the data first (`pythia data build` or `make reproduce`)"
        )
    return json.loads(path.read_text())


def card_frame(card: dict) -> pd.DataFrame:
    """The data card's per-source rows, standard next to deduplicated."""
    df = pd.DataFrame.from_records(card["rows"])
    cols = [
        "source",
        "domain",
        "dataset",
        "documents",
        "bytes",
        "tokens",
        "removed_duplicates",
        "removed_contamination",
        "epochs",
    ]
    return df[[c for c in cols if c in df]]


def order_table(suite: Suite, datasets: list[str]) -> pd.DataFrame:
    """The training order of each dataset: documents, epochs, sequences, and the sha256 of every
    order file (doc_idx, sample_idx, shuffle_idx, sequences): equal hashes, equal order."""
    rows = []
    for key, path in order_files(suite, datasets).items():
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: build the data first (`pythia data build` or `make reproduce`)"
            )
        o = json.loads(path.read_text())
        row = {
            "dataset": key.split("/")[1],
            "documents": o["num_documents"],
            "tokens_per_epoch": o["tokens_per_epoch"],
            "epochs": o["num_epochs"],
            "sequences": o["sequences_rows"],
            "seed": o["seed"],
        }
        row.update(
            {
                f"sha256_{name.replace('.', '_')}": digest
                for name, digest in sorted(o["sha256"].items())
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def lr_schedule(suite: Suite, points: int = 400) -> pd.DataFrame:
    """The learning rate of every model at ``points`` steps across training."""
    steps = np.unique(np.linspace(0, suite.training.train_iters, points).astype(int))
    rows = [
        (m.name, int(s), suite_lr(suite, m, int(s))) for m in suite.models.values() for s in steps
    ]
    return pd.DataFrame(rows, columns=["model", "step", "lr"])


def final_losses(logs: pd.DataFrame) -> pd.DataFrame:
    """Final training loss (mean of the last 5% of steps) and final validation loss per run."""
    out = []
    for (model, dataset), df in logs.groupby(["model", "dataset"], observed=True):
        tail = df[df["step"] >= df["step"].max() * 0.95]
        val = df.dropna(subset=["val_loss"])
        out.append(
            {
                "model": model,
                "dataset": dataset,
                "non_embedding_params": int(df["non_embedding_params"].iloc[0]),
                "final_train_loss": float(tail["loss"].mean()),
                "final_val_loss": float(val["val_loss"].iloc[-1]) if len(val) else np.nan,
            }
        )
    return pd.DataFrame(out)


def throughput(logs: pd.DataFrame) -> pd.DataFrame:
    """Median tokens/s and training wall time (sum of step times) per run."""
    out = []
    for (model, dataset), df in logs.groupby(["model", "dataset"], observed=True):
        tps = df["tokens_per_s"].replace([np.inf, 0], np.nan).dropna()
        per_step = df["tokens_seen"].diff().dropna()
        seconds = float(
            (per_step / df.loc[per_step.index, "tokens_per_s"]).replace([np.inf], np.nan).sum()
        )
        out.append(
            {
                "model": model,
                "dataset": dataset,
                "median_tokens_per_s": float(tps.median()),
                "train_seconds": seconds,
            }
        )
    return pd.DataFrame(out)


def smooth(series: pd.Series, window: int) -> pd.Series:
    """Centred rolling mean, for noisy per-step training losses."""
    return series.rolling(window, min_periods=1, center=True).mean()


def loss_curves(logs: pd.DataFrame, window: int = 9) -> pd.DataFrame:
    """Per-step training loss, smoothed over ``window`` steps within each run (steps > 0)."""
    df = logs[["model", "dataset", "step", "tokens_seen", "loss"]].copy()
    df["train_loss"] = df.groupby(["model", "dataset"], observed=True)["loss"].transform(
        lambda s: smooth(s, window)
    )
    return df[df["step"] > 0].drop(columns="loss").reset_index(drop=True)


def plot_loss_curves(curves: pd.DataFrame, window: int = 9) -> plt.Figure:
    """Training loss (smoothed) against tokens, one line per size, one panel per dataset."""
    g = sns.relplot(
        data=curves,
        x="tokens_seen",
        y="train_loss",
        hue="model",
        col="dataset",
        kind="line",
        palette="viridis",
        height=3.6,
        aspect=1.25,
        facet_kws={"sharey": True},
    )
    g.set(xscale="log")
    g.set_axis_labels("tokens seen", f"training loss (rolling mean of {window} steps)")
    g.figure.suptitle("Training loss, every size and both datasets", y=1.03)
    return g.figure


def val_losses(logs: pd.DataFrame) -> pd.DataFrame:
    """Validation loss at every checkpoint after step 0."""
    df = logs.dropna(subset=["val_loss"])
    return df.loc[
        df["step"] > 0, ["model", "dataset", "step", "tokens_seen", "val_loss"]
    ].reset_index(drop=True)


def plot_val_loss(df: pd.DataFrame) -> plt.Figure:
    """Validation loss on held-out documents at every checkpoint; standard solid, deduped dashed."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    sns.lineplot(
        data=df,
        x="tokens_seen",
        y="val_loss",
        hue="model",
        style="dataset",
        markers=True,
        dashes=True,
        palette="viridis",
        ax=ax,
    )
    ax.set_xscale("log")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("validation loss (held-out documents)")
    ax.set_title("Validation loss at each checkpoint")
    return fig


def plot_scaling(final: pd.DataFrame) -> plt.Figure:
    """Final validation loss against non-embedding parameters, both datasets."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    sns.lineplot(
        data=final, x="non_embedding_params", y="final_val_loss", hue="dataset", marker="o", ax=ax
    )
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters")
    ax.set_ylabel("final validation loss")
    ax.set_title("Loss against model size")
    return fig


def lr_data(
    schedule: pd.DataFrame, logs: pd.DataFrame | None = None, marks: int = 40
) -> pd.DataFrame:
    """The configured schedule (``source`` = configured) and about ``marks`` logged rates per
    model of the first run (``source`` = logged): columns source, model, step, lr."""
    frames = [schedule.assign(source="configured")]
    if logs is not None and len(logs):
        sub = logs[logs["dataset"] == logs["dataset"].iloc[0]]
        sub = sub[sub["step"] % max(1, int(sub["step"].max()) // marks) == 0]
        frames.append(
            sub[["model", "step", "lr"]].assign(source="logged", model=sub["model"].astype(str))
        )
    out = pd.concat(frames, ignore_index=True)[["source", "model", "step", "lr"]]
    return out.astype({"model": str, "step": "int64"})


def plot_lr_schedule(lr: pd.DataFrame) -> plt.Figure:
    """The configured LR schedule per model (lines); dots: the LR the trainer logged."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    order = list(dict.fromkeys(lr["model"]))
    sns.lineplot(
        data=lr[lr["source"] == "configured"],
        x="step",
        y="lr",
        hue="model",
        hue_order=order,
        palette="viridis",
        ax=ax,
    )
    logged = lr[lr["source"] == "logged"]
    if len(logged):
        sns.scatterplot(
            data=logged,
            x="step",
            y="lr",
            hue="model",
            hue_order=order,
            palette="viridis",
            ax=ax,
            s=12,
            legend=False,
        )
    ax.set_ylabel("learning rate")
    ax.set_title("Warmup, then cosine to 10% of peak (GPT-NeoX denominator)")
    return fig


def plot_throughput(tp: pd.DataFrame) -> plt.Figure:
    """Median training tokens/s per size and dataset."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.barplot(data=tp, x="model", y="median_tokens_per_s", hue="dataset", ax=ax)
    ax.set_ylabel("tokens / s (median over steps)")
    ax.set_title("Training throughput on this machine")
    return fig


def verify_batches(suite: Suite, logs: pd.DataFrame) -> pd.DataFrame:
    """Recompute every logged batch hash from the batch viewer's ``get_batch``.

    One row per run: steps checked and how many logged hashes differ from the viewer's. All
    sizes of a dataset share one data order, so each batch is hashed once per dataset.
    """
    rows = []
    viewer: dict[tuple[str, int], str] = {}
    for (model, dataset), df in logs.groupby(["model", "dataset"], observed=True):
        df = df.dropna(subset=["batch_hash"])
        df = df[df["step"] > 0]
        batches = df["batch"] if "batch" in df else df["step"] - 1
        mismatched = 0
        for b, logged in zip(batches.astype(int), df["batch_hash"]):
            key = (dataset, b)
            if key not in viewer:
                viewer[key] = batch_hash(get_batch(suite, dataset, b))
            mismatched += viewer[key] != logged
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "steps_checked": len(df),
                "mismatched": int(mismatched),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ seed spread

SEED_METRICS = {
    "train_loss": "training loss (rolling mean)",
    "val_loss": "validation loss",
    "val_loss_gap": "validation loss, standard - deduped",
}


def seed_run_list(suite: Suite, datasets: list[str], models: list[str]) -> list[tuple[str, str]]:
    """``(run, model)`` of the baselines (seed 0) and the seed runs of the shown models that have
    seed runs (the suite's ``seeds``); empty without them."""
    seeded = [m for m in suite.seeds.models if m in models]
    runs = [(d, m) for d in datasets for m in seeded]
    return runs + [(r, m) for r, m in suite.seed_runs(datasets) if m in seeded]


def seed_run_files(suite: Suite, datasets: list[str], models: list[str]) -> dict[str, Path]:
    """The ``train_log.jsonl`` of every run :func:`seed_run_list` names, keyed ``run/model``."""
    return {
        f"{r}/{m}": paths.run_dir(suite.name, r, m) / "train_log.jsonl"
        for r, m in seed_run_list(suite, datasets, models)
    }


def load_seed_logs(suite: Suite, datasets: list[str], models: list[str]) -> pd.DataFrame:
    """The logs of :func:`seed_run_list`'s runs in one frame: model, run, dataset (the base
    dataset), seed (0: the baseline), vary, then the log's columns."""
    frames = []
    for key, path in seed_run_files(suite, datasets, models).items():
        run, model = key.split("/", 1)
        df = read_log(path)
        df.insert(0, "model", model)
        df.insert(1, "run", run)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["model", "run", "dataset", "seed", "vary", *LOG_COLUMNS])
    logs = seeds.split_runs(pd.concat(frames, ignore_index=True))
    logs["model"] = pd.Categorical(logs["model"], categories=list(suite.models), ordered=True)
    return logs


def seed_curves(seed_logs: pd.DataFrame, window: int = 9) -> pd.DataFrame:
    """Long frame of every seed's curves after step 0: metric (``train_loss``: the loss smoothed
    over ``window`` steps; ``val_loss``: at checkpoints; ``val_loss_gap``: standard minus
    deduplicated validation loss of the same seed, dataset ``standard - deduped``), model,
    dataset, vary, seed, step, tokens_seen, value. The baseline is seed 0 of every kind of seed run."""
    keys = ["model", "dataset", "vary", "seed"]
    df = seeds.with_baseline_per_kind(seed_logs)
    train = df[[*keys, "step", "tokens_seen", "loss"]].copy()
    train["value"] = train.groupby(keys, observed=True)["loss"].transform(
        lambda s: smooth(s, window)
    )
    val = df.dropna(subset=["val_loss"])[[*keys, "step", "tokens_seen", "val_loss"]]
    frames = [
        train.drop(columns="loss").assign(metric="train_loss"),
        val.rename(columns={"val_loss": "value"}).assign(metric="val_loss"),
    ]
    gap = seeds.paired_gap(frames[1], "value", ["model", "vary", "step", "tokens_seen"])
    out = pd.concat([*frames, gap.assign(metric="val_loss_gap")], ignore_index=True)
    out = out[out["step"] > 0]
    return out[["metric", *keys, "step", "tokens_seen", "value"]].reset_index(drop=True)


def loss_seed_bands(seed_logs: pd.DataFrame, window: int = 9) -> pd.DataFrame:
    """Per metric, model, dataset, kind of seed run and step: n_seeds, mean, sd, min, max over seeds."""
    bands = seeds.seed_bands(
        seed_curves(seed_logs, window),
        "value",
        by=["metric", "model", "dataset", "vary"],
        extra=["tokens_seen"],
    )
    return bands.astype({"model": str})


def plot_loss_seed_bands(bands: pd.DataFrame) -> plt.Figure:
    """Training and validation loss over tokens, mean over seeds and the min-max band, standard
    against deduplicated, and their paired gap; one column per model (and kind of seed run)."""
    panels = bands.assign(
        panel=bands["model"]
        + np.where(bands["vary"] == seeds.BASE, "", " · " + bands["vary"] + "-seed"),
        metric=bands["metric"].map(SEED_METRICS),
    )
    return seeds.plot_seed_bands(
        panels,
        row="metric",
        col="panel",
        x="tokens_seen",
        ylabel="loss",
        title="Loss over seeds: mean (line) and min-max (band)",
    )


def seed_finals(seed_logs: pd.DataFrame) -> pd.DataFrame:
    """Per model, dataset, kind and seed: the final validation loss (last checkpoint) and the final
    training loss (mean of the last 5% of steps)."""
    rows = []
    keys = ["model", "dataset", "vary", "seed"]
    for key, df in seeds.with_baseline_per_kind(seed_logs).groupby(keys, observed=True):
        tail = df[df["step"] >= df["step"].max() * 0.95]
        val = df.dropna(subset=["val_loss"]).sort_values("step")
        rows.append(
            {
                **dict(zip(keys, key)),
                "final_train_loss": float(tail["loss"].mean()),
                "final_val_loss": float(val["val_loss"].iloc[-1]) if len(val) else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=[*keys, "final_train_loss", "final_val_loss"])


def seed_spread_table(seed_logs: pd.DataFrame) -> pd.DataFrame:
    """The final validation loss's spread over seeds per model and dataset, and the
    standard-minus-deduplicated gap against seed noise (:func:`pythia.analysis.seeds.seed_spread`),
    per kind of seed run."""
    finals = seed_finals(seed_logs)
    frames = [
        seeds.seed_spread(df, "final_val_loss").assign(vary=vary)
        for vary, df in finals.groupby("vary", sort=False)
    ]
    if not frames:
        return seeds.seed_spread(finals, "final_val_loss").assign(vary=[])
    out = pd.concat(frames, ignore_index=True)
    return out[["vary", *[c for c in out.columns if c != "vary"]]].astype({"model": str})


def gap_summary(spread: pd.DataFrame) -> str:
    """One line per model: the standard-minus-deduplicated gap in final validation loss with its
    spread over seeds, and whether it stands out of the seed noise."""
    lines = []
    for _, r in spread[spread["quantity"].str.contains(" - ")].iterrows():
        verdict = "exceeds" if r["gap_exceeds_2sd_noise"] == "yes" else "does not exceed"
        kind = "" if r["vary"] == seeds.BASE else f" ({r['vary']}-seed runs)"
        lines.append(
            f"{r['model']}{kind}: standard - deduplicated final validation loss "
            f"{r['mean']:+.4f} +/- {r['sd']:.4f} (sd over {r['n_seeds']} seeds, range "
            f"{r['min']:+.4f} to {r['max']:+.4f}); seed noise sd {r['noise_sd']:.4f}: |gap| "
            f"{verdict} 2 sd"
        )
    return "\n".join(lines)
