"""The suite table (the Pythia paper's Table 1) for any suite, and its CLI commands."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pythia.config import Suite, load_suite, reference_markdown
from pythia.io import atomic_path, write_provenance


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


def format_table(df: pd.DataFrame) -> str:
    shown = df.copy()
    for col in ("total_params", "non_embedding_params", "batch_tokens", "tokens"):
        shown[col] = shown[col].map("{:,}".format)
    for col in ("peak_lr", "min_lr"):
        shown[col] = shown[col].map("{:.1e}".format)
    return shown.to_string(index=False)


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
