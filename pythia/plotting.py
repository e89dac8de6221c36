"""Saving figures and tables with their provenance, and showing them in notebooks.

Every figure and table the workflow writes records which code version, config and data
produced it: a ``<file>.provenance.json`` beside it, and the same record in the PNG's text
metadata and the PDF's ``Subject``. A figure is written as PNG (for the report and the
notebooks), PDF (vector, for papers) and ``<name>.data.csv``, the data it plots, which
``pythia results compare`` checks against the committed reference. Records carry no
timestamp: a rerun of the same code on the same inputs rewrites identical files (the time of
a run is in the executed notebook's metadata).

The matplotlib backend is left alone: in a notebook (JupyterLab or papermill) it is the inline
backend, so :func:`save_figure` also displays the figure there; elsewhere matplotlib picks a
non-interactive backend when there is no display.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pythia.config import Suite
from pythia.io import atomic_path, provenance, write_json

if TYPE_CHECKING:
    import matplotlib.pyplot as plt
    import pandas as pd

DPI = 150


def set_style() -> None:
    """The compendium's plotting style."""
    import seaborn as sns  # heavy (matplotlib, scipy): this module is imported by the workflow

    sns.set_theme(context="notebook", style="whitegrid", palette="viridis")


def record(suite: Suite, inputs: dict[str, str | Path] | None = None, **extra: Any) -> dict:
    """The provenance record of a result: code version, config digest, sha256 of each input."""
    return provenance(
        config_digest=suite.digest, inputs=inputs, suite=suite.name, timestamp=False, **extra
    )


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, papermill), where figures can be displayed."""
    try:
        from IPython import get_ipython  # optional: present only where Jupyter is
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def display_figure(fig: plt.Figure) -> None:
    """Display ``fig`` once in a notebook's output (then close it, so the inline backend does not
    draw it a second time at the end of the cell). Outside a notebook: nothing."""
    if in_notebook():
        import matplotlib.pyplot as plt  # heavy: this module is imported by the workflow
        from IPython.display import display  # optional: present only where Jupyter is

        display(fig)
        plt.close(fig)


def save_figure(
    fig: plt.Figure,
    path: str | Path,
    *,
    suite: Suite,
    data: pd.DataFrame | None = None,
    inputs: dict[str, str | Path] | None = None,
    show: bool = True,
    **extra: Any,
) -> Path:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` (atomically, provenance in both) and
    ``data``, the frame it plots, as ``<stem>.data.csv``; display it in a notebook.

    ``path`` is the PNG path (``<stem>.png``); returns it.
    """
    path = Path(path).with_suffix(".png")
    rec = record(suite, inputs, **extra)
    if data is not None:
        data_path = path.with_suffix(".data.csv")
        with atomic_path(data_path, suffix=".csv") as tmp:
            data.to_csv(tmp, index=False)
        rec["data"] = data_path.name
    blob = json.dumps(rec, sort_keys=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Provenance": blob})
    with atomic_path(path.with_suffix(".pdf"), suffix=".pdf") as tmp:
        # no CreationDate: the same figure gives the same bytes
        fig.savefig(
            tmp, format="pdf", bbox_inches="tight", metadata={"Subject": blob, "CreationDate": None}
        )
    write_json(path.with_name(path.name + ".provenance.json"), rec)
    if show:
        display_figure(fig)
    return path


def save_table(
    df: pd.DataFrame,
    path: str | Path,
    *,
    suite: Suite,
    inputs: dict[str, str | Path] | None = None,
    **extra: Any,
) -> Path:
    """Write ``df`` as CSV and Markdown (atomically) with a provenance sidecar."""
    path = Path(path)
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    md = path.with_suffix(".md")
    with atomic_path(md, suffix=".md") as tmp:
        tmp.write_text(df.to_markdown(index=False) + "\n")
    write_json(path.with_name(path.name + ".provenance.json"), record(suite, inputs, **extra))
    return path
