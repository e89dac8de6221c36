"""``pythia results compare|snapshot``: did a rerun reproduce the committed results?
(:mod:`pythia.results`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pythia import paths, sections
from pythia.cli import options
from pythia.results import compare, reference_tree, report, snapshot, snapshot_dir, suite_name


def _cmd_compare(args: argparse.Namespace) -> int:
    suite = suite_name(args.suite)
    ref = reference_tree(suite, args.reference, args.rev)
    if ref is None:
        print(
            f"results/{suite}: no reference to compare with (nothing committed at {args.rev}:"
            f"{paths.results_dir(suite)}, no snapshot in {snapshot_dir(suite)}); pass --reference DIR"
        )
        return 0
    verdicts, meta = compare(suite, ref, args.section)
    print(report(suite, verdicts, meta, ref.label))
    return 1 if any(v.failed for v in verdicts) else 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    suite = suite_name(args.suite)
    dest, n = snapshot(suite, args.force)
    if n:
        print(f"snapshot of results/{suite}: {dest} ({n} files)")
    elif dest.exists():
        print(f"snapshot of results/{suite} kept: {dest}")
    else:
        print(f"results/{suite} holds no results yet: no snapshot")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="compare regenerated results with the committed reference")
    rsub = p.add_subparsers(dest="results_command", required=True, metavar="ACTION")
    q = rsub.add_parser(
        "compare", help="compare results/<suite> with the reference: a verdict per table and figure"
    )
    options.add_suite(
        q, required=False, help="suite name or YAML path (default: config/config.yaml's suite)"
    )
    q.add_argument(
        "--reference",
        type=Path,
        help="a directory holding the reference results (default: git HEAD, "
        "else the snapshot in work/<suite>/reference)",
    )
    q.add_argument(
        "--rev", default="HEAD", help="git revision holding the reference (default HEAD)"
    )
    q.add_argument(
        "--section",
        action="append",
        choices=sections.stems(),
        help="only this section (repeatable)",
    )
    q.set_defaults(func=_cmd_compare)
    q = rsub.add_parser(
        "snapshot", help="copy results/<suite> to work/<suite>/reference before a rerun (if absent)"
    )
    options.add_suite(
        q, required=False, help="suite name or YAML path (default: config/config.yaml's suite)"
    )
    q.add_argument("--force", action="store_true", help="replace an existing snapshot")
    q.set_defaults(func=_cmd_snapshot)
