"""The checkpoint audit's table and figure (:mod:`pythia.audit`): ``audit.csv`` and ``audit.png``.

``audit.csv`` is the audit's tidy table, one row per model x run x step x weight file (a missing
step: one row without a file), with its status; the figure is the grid of steps x runs coloured by
status (:func:`grid_data` -> :func:`plot_grid`), saved with the data it plots. Both go through
:mod:`pythia.plotting` with their provenance into ``results/<suite>/checkpoints/`` (or the
directory asked for): ``audit.csv``, ``audit.md``, ``audit.png``, ``audit.pdf``,
``audit.data.csv`` and the ``.provenance.json`` sidecars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from pythia import paths
from pythia.audit import COLUMNS, EXPECTED, FLAGS, OK, TENSOR_COLUMNS
from pythia.config import Suite
from pythia.plotting import save_figure, save_table, set_style

STATUS_COLOURS = {
    OK: "#4c9a6a",
    "duplicate": "#d1495b",
    "step0==step1": "#edae49",
    "partial-duplicate": "#8f2d56",
    "missing": "#bdbdbd",
    "not-from-init": "#00798c",
    "jump": "#30638e",
}
"""One colour per status (:data:`pythia.audit.FLAGS` and ``ok``)."""
STATUSES = (OK, *FLAGS)


def out_dir(suite: str) -> Path:
    """``results/<suite>/checkpoints/``: where the audit's table and figure go by default."""
    return paths.results_dir(suite) / "checkpoints"


def audit_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The audit rows as the table: :data:`pythia.audit.COLUMNS` (and the tensor columns when
    computed), sorted by model, run, step and file."""
    cols = [*COLUMNS, *(c for c in TENSOR_COLUMNS if rows and c in rows[0])]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["model", "run", "step", "file"], kind="stable").reset_index(drop=True)


def grid_data(df: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """One row per (model, run, step) with its status: what the grid plots. Models in the suite's
    order, runs in the order the table lists them."""
    order = {m: i for i, m in enumerate(suite.models)}
    runs = {r: i for i, r in enumerate(dict.fromkeys(df["run"]))}
    g = df.drop_duplicates(["model", "run", "step"])[
        ["model", "run", "step", "status", "same_as"]
    ].copy()
    g["_m"] = g["model"].map(lambda m: order.get(m, len(order)))
    g["_r"] = g["run"].map(runs)
    g = g.sort_values(["_m", "_r", "step"], kind="stable").drop(columns=["_m", "_r"])
    return g.reset_index(drop=True)


def plot_grid(grid: pd.DataFrame) -> plt.Figure:
    """Steps (columns, in order, evenly spaced) x runs (rows, ``model run``), coloured by status."""
    set_style()
    labels = list(dict.fromkeys(grid["model"] + " " + grid["run"]))
    steps = sorted(grid["step"].unique())
    codes = np.full((len(labels), len(steps)), np.nan)
    col = {s: j for j, s in enumerate(steps)}
    row = {lab: i for i, lab in enumerate(labels)}
    for r in grid.itertuples():
        codes[row[f"{r.model} {r.run}"], col[r.step]] = STATUSES.index(str(r.status))
    fig, ax = plt.subplots(
        figsize=(max(7.0, 0.3 * len(steps) + 4.0), max(2.0, 0.32 * len(labels) + 1.4))
    )
    cmap = ListedColormap([STATUS_COLOURS[s] for s in STATUSES])
    ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=len(STATUSES) - 0.5, aspect="auto")
    every = max(1, len(steps) // 40)
    ax.set_xticks(
        range(0, len(steps), every), [str(s) for s in steps[::every]], rotation=90, fontsize=7
    )
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("checkpoint step")
    ax.grid(False)
    shown = [s for s in STATUSES if s in set(grid["status"])]
    ax.legend(
        handles=[Patch(color=STATUS_COLOURS[s], label=s) for s in shown],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
    )
    ax.set_title("checkpoint audit")
    fig.tight_layout()
    return fig


def save(
    rows: list[dict[str, Any]], suite: Suite, out: str | Path | None = None, **extra: Any
) -> dict[str, Path]:
    """Write ``audit.csv`` (+ ``.md``) and the grid ``audit.png`` (+ PDF and its data) with their
    provenance into ``out`` (default :func:`out_dir`); returns the paths of the table and figure."""
    out = Path(out) if out is not None else out_dir(suite.name)
    out.mkdir(parents=True, exist_ok=True)
    df = audit_frame(rows)
    table = save_table(df, out / "audit.csv", suite=suite, section="checkpoints", **extra)
    fig = plot_grid(grid_data(df, suite))
    figure = save_figure(
        fig,
        out / "audit.png",
        suite=suite,
        data=grid_data(df, suite),
        show=False,
        section="checkpoints",
        **extra,
    )
    plt.close(fig)
    return {"table": table, "figure": figure}


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Checkpoints per status and run (one row per checkpoint, not per file); a flag its note
    explains as intended (:data:`pythia.audit.EXPECTED`) is counted as ``<status> (expected)``."""
    g = df.drop_duplicates(["model", "run", "step"]).copy()
    expected = g["note"].fillna("").astype(str).str.startswith(EXPECTED)
    g.loc[expected, "status"] = g.loc[expected, "status"] + " (expected)"
    counts = g.groupby(["model", "run", "status"], sort=False).size()
    return counts.rename("checkpoints").reset_index()
