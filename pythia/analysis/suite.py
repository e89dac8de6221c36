"""Section 00, the suite: the Pythia paper's Table 1 for any suite, as a table, a figure and a
bar plot of where the parameters are, and the ``pythia suite`` command.

Everything here is computed from the suite's configuration; ``notebooks/00_suite.ipynb`` calls
these functions and saves the table and both figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from pythia.config import Suite, load_suite, reference_markdown
from pythia.io import atomic_path, write_provenance

# Columns of the table figure and their printed headers.
FIGURE_COLUMNS = {
    "model": "model", "total_params": "params", "non_embedding_params": "non-emb.", "layers": "layers",
    "d_model": "d_model", "heads": "heads", "d_head": "d_head", "peak_lr": "peak LR",
    "batch_tokens": "batch tok.", "steps": "steps", "tokens": "tokens",
}
COUNT_COLUMNS = ("total_params", "non_embedding_params", "batch_tokens", "tokens")
RATE_COLUMNS = ("peak_lr", "min_lr")


def suite_table(suite: Suite) -> pd.DataFrame:
    """One row per model: parameters, shape, learning rates, batch, steps and tokens."""
    t = suite.training
    rows = []
    for spec in suite.models.values():
        rows.append(
            {
                "model": spec.name,
                "total_params": suite.total_params(spec),
                "non_embedding_params": spec.non_embedding_params(),
                "layers": spec.num_layers,
                "d_model": spec.hidden_size,
                "heads": spec.num_heads,
                "d_head": spec.head_dim,
                "vocab_rows": suite.vocab_rows(spec),
                "peak_lr": spec.peak_lr,
                "min_lr": spec.min_lr,
                "init": spec.init.value,
                "batch_sequences": t.global_batch,
                "batch_tokens": t.tokens_per_step,
                "steps": t.train_iters,
                "tokens": t.tokens_per_step * t.train_iters,
            }
        )
    return pd.DataFrame(rows)


def _formatted(df: pd.DataFrame) -> pd.DataFrame:
    """Counts with thousands separators, rates in scientific notation."""
    shown = df.copy()
    for col in COUNT_COLUMNS:
        if col in shown:
            shown[col] = shown[col].map("{:,}".format)
    for col in RATE_COLUMNS:
        if col in shown:
            shown[col] = shown[col].map("{:.1e}".format)
    return shown


def format_table(df: pd.DataFrame) -> str:
    """The table as aligned text (what ``pythia suite`` prints)."""
    return _formatted(df).to_string(index=False)


def table_figure_data(table: pd.DataFrame) -> pd.DataFrame:
    """The cells the table figure shows (formatted strings, in :data:`FIGURE_COLUMNS` order)."""
    return _formatted(table[list(FIGURE_COLUMNS)].astype({c: "int64" for c in COUNT_COLUMNS}))


def plot_table(cells: pd.DataFrame, suite: Suite) -> plt.Figure:
    """Table 1 drawn as a figure (for the report and for slides)."""
    fig, ax = plt.subplots(figsize=(13, 0.45 * len(cells) + 1))
    ax.axis("off")
    tab = ax.table(cellText=cells.astype(str).values.tolist(), colLabels=[FIGURE_COLUMNS[c] for c in cells.columns],
                   loc="center", cellLoc="right")
    tab.auto_set_font_size(False)
    tab.set_fontsize(9)
    tab.scale(1, 1.6)
    tab.auto_set_column_width(list(range(len(cells.columns))))
    ax.set_title(f"Suite {suite.name}: {suite.description}", fontsize=10)
    return fig


def parameter_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Long frame (model, count, parameters): total and non-embedding parameters per model."""
    long = table.melt(id_vars="model", value_vars=["total_params", "non_embedding_params"],
                      var_name="count", value_name="parameters")
    return long.astype({"parameters": "int64"})


def plot_parameters(counts: pd.DataFrame, suite: Suite) -> plt.Figure:
    """Total and non-embedding parameters per model, log scale: in small models the untied
    embeddings hold most of the weights."""
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.barplot(data=counts, x="model", y="parameters", hue="count", ax=ax)
    ax.set_yscale("log")
    ax.set_title(f"Parameters per model, suite {suite.name}")
    return fig


# ------------------------------------------------------------------------------ CLI


def _cmd_suite(args: argparse.Namespace) -> int:
    suite = load_suite(args.name)
    df = suite_table(suite)
    print(f"suite {suite.name}: {suite.description}")
    print(format_table(df))
    if args.csv:
        with atomic_path(args.csv) as tmp:
            df.to_csv(tmp, index=False)
        write_provenance(args.csv, config_digest=suite.digest, suite=suite.name)
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    print(reference_markdown())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("suite", help="print a suite's table (parameters, shape, LR, batch, steps, tokens)")
    p.add_argument("name", help="suite name (pythia, micro, smoke) or a YAML path")
    p.add_argument("--csv", type=Path, help="also write the table as CSV (with a .provenance.json)")
    p.set_defaults(func=_cmd_suite)
    p = sub.add_parser("config-reference", help="print every suite configuration key with its description")
    p.set_defaults(func=_cmd_reference)
