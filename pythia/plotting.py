"""Saving figures and tables with their provenance.

Every figure and table the workflow writes records which code version, config and data
produced it: a ``<file>.provenance.json`` beside it, and for PNGs the same record in the
image's text metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from pythia.config import Suite  # noqa: E402
from pythia.io import atomic_path, provenance, write_json  # noqa: E402


def set_style() -> None:
    """The compendium's plotting style."""
    sns.set_theme(context="notebook", style="whitegrid", palette="viridis")


def _record(suite: Suite, inputs: dict[str, str | Path] | None, **extra) -> dict:
    return provenance(config_digest=suite.digest, inputs=inputs, suite=suite.name, **extra)


def save_figure(fig: plt.Figure, path: str | Path, *, suite: Suite, inputs: dict[str, str | Path] | None = None, **extra) -> Path:
    """Write ``fig`` as PNG (atomically) with its provenance in metadata and a sidecar JSON."""
    path = Path(path)
    record = _record(suite, inputs, **extra)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight", metadata={"Provenance": json.dumps(record, sort_keys=True)})
    write_json(path.with_name(path.name + ".provenance.json"), record)
    return path


def save_table(df: pd.DataFrame, path: str | Path, *, suite: Suite, inputs: dict[str, str | Path] | None = None, **extra) -> Path:
    """Write ``df`` as CSV and Markdown (atomically) with a provenance sidecar."""
    path = Path(path)
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    md = path.with_suffix(".md")
    with atomic_path(md, suffix=".md") as tmp:
        tmp.write_text(df.to_markdown(index=False) + "\n")
    write_json(path.with_name(path.name + ".provenance.json"), _record(suite, inputs, **extra))
    return path
