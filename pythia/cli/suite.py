"""``pythia suite`` (a suite's table, the paper's Table 1) and ``pythia config-reference``
(every configuration key, documented); :mod:`pythia.analysis.suite`, :mod:`pythia.config`."""

from __future__ import annotations

import argparse
from pathlib import Path

from pythia.analysis.suite import format_table, suite_table
from pythia.config import load_suite, reference_markdown
from pythia.io import atomic_path, write_provenance


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
    p = sub.add_parser(
        "suite", help="print a suite's table (parameters, shape, LR, batch, steps, tokens)"
    )
    p.add_argument("name", help="suite name (pythia, micro, smoke) or a YAML path")
    p.add_argument("--csv", type=Path, help="also write the table as CSV (with a .provenance.json)")
    p.set_defaults(func=_cmd_suite)
    p = sub.add_parser(
        "config-reference", help="print every suite configuration key with its description"
    )
    p.set_defaults(func=_cmd_reference)
