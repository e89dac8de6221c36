"""Section 00, the suite: the Pythia paper's Table 1 for any suite, as a table, a figure and a
bar plot of where the parameters are, and the ``pythia suite`` command; beside it, how repeated
the suite's training data is (the data card's duplication profile).

Table 1 is computed from the suite's configuration; the duplication table is read from the data
card (``work/<suite>/data/card.json``, :mod:`pythia.data.card`), for suites that build their data
(a suite trained on released files, ``pythia``, has no card without the downloaded Pile).
``notebooks/00_suite.ipynb`` calls these functions and saves the tables and both figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from pythia import paths
from pythia.config import Suite
from pythia.data.released import is_released

# Columns of the table figure and their printed headers.
FIGURE_COLUMNS = {
    "model": "model",
    "total_params": "params",
    "non_embedding_params": "non-emb.",
    "layers": "layers",
    "d_model": "d_model",
    "heads": "heads",
    "d_head": "d_head",
    "peak_lr": "peak LR",
    "batch_tokens": "batch tok.",
    "steps": "steps",
    "tokens": "tokens",
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
    return _formatted(table[list(FIGURE_COLUMNS)].astype(dict.fromkeys(COUNT_COLUMNS, "int64")))


def plot_table(cells: pd.DataFrame, suite: Suite) -> plt.Figure:
    """Table 1 drawn as a figure (for the report and for slides)."""
    fig, ax = plt.subplots(figsize=(13, 0.45 * len(cells) + 1))
    ax.axis("off")
    tab = ax.table(
        cellText=cells.astype(str).values.tolist(),
        colLabels=[FIGURE_COLUMNS[c] for c in cells.columns],
        loc="center",
        cellLoc="right",
    )
    tab.auto_set_font_size(False)
    tab.set_fontsize(9)
    tab.scale(1, 1.6)
    tab.auto_set_column_width(list(range(len(cells.columns))))
    ax.set_title(f"Suite {suite.name}: {suite.description}", fontsize=10)
    return fig


def parameter_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Long frame (model, count, parameters): total and non-embedding parameters per model."""
    long = table.melt(
        id_vars="model",
        value_vars=["total_params", "non_embedding_params"],
        var_name="count",
        value_name="parameters",
    )
    return long.astype({"parameters": "int64"})


def plot_parameters(counts: pd.DataFrame, suite: Suite) -> plt.Figure:
    """Total and non-embedding parameters per model, log scale: in small models the untied
    embeddings hold most of the weights."""
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.barplot(data=counts, x="model", y="parameters", hue="count", ax=ax)
    ax.set_yscale("log")
    ax.set_title(f"Parameters per model, suite {suite.name}")
    return fig


# ------------------------------------------------------------------------------ duplication (the data card)

DUPLICATION_COLUMNS = (
    "dataset",
    "window",
    "at_least",
    "distinct_windows",
    "occurrences",
    "tokens",
    "token_share",
    "distinct_windows_places",
    "tokens_places",
    "token_share_places",
)


def builds_data(suite: Suite) -> bool:
    """Whether the suite builds all its training data (no dataset is a released pre-shuffled file),
    so that its data card profiles every dataset and section 00 reads it."""
    return not any(is_released(suite, d) for d in paths.DATASETS)


def card_file(suite: Suite) -> Path:
    """``work/<suite>/data/card.json``."""
    return paths.data_dir(suite.name) / "card.json"


def suite_card(suite: Suite) -> dict | None:
    """The suite's data card (:func:`load_card`), or None for a suite trained on released files
    (:func:`builds_data`)."""
    return load_card(card_file(suite)) if builds_data(suite) else None


def card_inputs(suite: Suite) -> dict[str, Path] | None:
    """The provenance inputs of the duplication table: the card, where the suite has one."""
    return {"card.json": card_file(suite)} if builds_data(suite) else None


def load_card(path: str | Path) -> dict:
    """The data card written by ``pythia data build`` (its ``card`` stage)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: build the data first (`pythia data build` or `make reproduce`)"
        )
    card = json.loads(path.read_text())
    if "duplication" not in card:
        raise ValueError(
            f"{path} has no duplication profile (a card from before it): rerun `pythia data build "
            f"--stage card`"
        )
    return card


def duplication_table(card: dict | None) -> pd.DataFrame:
    """One row per (dataset, at_least) of the card's duplication profile: at least 1 (every window)
    and each threshold k; distinct windows occurring >= k times in the training rows, their
    occurrences, the tokens they cover and their share of the rows' tokens; the same counted by
    places in the corpus (``*_places``: a document seen in two epochs is one place). Datasets the
    card did not profile are left out (all of them without a card)."""
    rows = []
    profiled = card["duplication"]["datasets"] if card else {}
    for d in [
        d for d in paths.DATASETS if d in profiled
    ]:  # card.json's keys are sorted: the paper's order here
        p = profiled[d]
        if "skipped" in p:
            continue
        rows.append(
            {
                "dataset": d,
                "window": p["window"],
                "at_least": 1,
                "distinct_windows": p["distinct"],
                "occurrences": p["windows"],
                "tokens": p["row_tokens"],
                "token_share": 1.0,
                "distinct_windows_places": p["distinct"],
                "tokens_places": p["row_tokens"],
                "token_share_places": 1.0,
            }
        )
        for k, a in sorted(p["at_least"].items(), key=lambda kv: int(kv[0])):
            rows.append(
                {
                    "dataset": d,
                    "window": p["window"],
                    "at_least": int(k),
                    "distinct_windows": a["distinct"],
                    "occurrences": a["windows"],
                    "tokens": a["tokens"],
                    "token_share": a["token_fraction"],
                    "distinct_windows_places": a["distinct_copies"],
                    "tokens_places": a["tokens_copies"],
                    "token_share_places": a["token_fraction_copies"],
                }
            )
    return pd.DataFrame(rows, columns=list(DUPLICATION_COLUMNS))


def deduplication_note(card: dict | None) -> str:
    """Deduplication's token reduction in the suite beside the Pile's (300B -> 207B tokens, -31%),
    and the datasets the card did not profile."""
    if card is None:
        return "This suite trains on released pre-shuffled files: no data card, no duplication profile."
    red = card["duplication"]["deduplication"]
    pile = red["pile"]
    lines = [
        f"The Pile: {pile['standard_tokens'] / 1e9:.0f}B -> {pile['deduped_tokens'] / 1e9:.0f}B tokens "
        f"({100 * pile['change']:+.0f}%) by deduplication (the Pythia paper)."
    ]
    for name, r in red.items():
        if name != "pile":
            lines.append(
                f"Suite {name}: {r['standard_tokens']:,} -> {r['deduped_tokens']:,} tokens per epoch "
                f"({100 * r['change']:+.1f}%)."
            )
    for d, p in card["duplication"]["datasets"].items():
        if "skipped" in p:
            lines.append(f"{d}: not profiled ({p['skipped']}).")
    return "\n".join(lines)


def top_windows_table(card: dict | None) -> pd.DataFrame:
    """The card's most repeated windows (one per passage): dataset, occurrences in the training rows,
    places in the corpus, the sources of the occurrences, and the decoded text."""
    rows = [
        {
            "dataset": d,
            "occurrences": t["count"],
            "places": t["copies"],
            "sources": ", ".join(f"{s} {n}" for s, n in t["sources"].items()),
            "text": t["text"],
        }
        for d, p in sorted(
            (card["duplication"]["datasets"] if card else {}).items(),
            key=lambda kv: paths.DATASETS.index(kv[0]),
        )
        for t in p.get("top", [])
    ]
    return pd.DataFrame(rows, columns=["dataset", "occurrences", "places", "sources", "text"])


# ------------------------------------------------------------------------------ CLI
