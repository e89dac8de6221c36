"""``pythia checkpoints``: the checkpoint catalogue of a suite (:mod:`pythia.runs`), and
``pythia checkpoints audit``: is every checkpoint what its step says (:mod:`pythia.audit`)."""

from __future__ import annotations

import argparse
import json
import sys

from pythia.analysis.checkpoints import audit_frame, save, summary
from pythia.audit import audit, tensor_checks
from pythia.cli import options
from pythia.runs import describe


def _hub_line(run: str, model: str, st: dict) -> str:
    """One line per hub model: its repository, the step branches it has, those it lacks."""
    head = f"  {run:>8} {model:>6}: {st['repo']}: "
    if st["error"]:
        return head + st["error"]
    n, missing = len(st["available"]), st["missing"]
    shown = ", ".join(f"step{s}" for s in missing[:8]) + (", ..." if len(missing) > 8 else "")
    return (
        head
        + f"{n} of {n + len(missing)} step branches, {len(st['selected'])} selected"
        + (f"; missing: {shown}" if missing else "")
    )


def _cmd_checkpoints(args: argparse.Namespace) -> int:
    info = describe(options.catalogue(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(
        f"suite {info['suite']}, source {info['source']}"
        + (f" ({info['path']})" if info["path"] else "")
    )
    if not info["datasets"] or not any(info["datasets"].values()):
        print("  no checkpoints")
    for d, models in info["datasets"].items():
        for m, st in models.items():
            sel = st["selected"]
            if "repo" in st:  # the hub source: what the repository's branches say
                print(_hub_line(d, m, st))
                continue
            print(
                f"  {d:>8} {m:>6}: {len(st['available'])} checkpoints, {len(sel)} selected"
                + (f" (steps {sel[0]} ... {sel[-1]})" if sel else "")
            )
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    cat = options.catalogue(args)
    errors: list[str] = []

    def on_error(line: str) -> None:
        errors.append(line)
        print(f"pythia checkpoints audit: error: {line}", file=sys.stderr)

    rows = audit(
        cat, args.models, args.datasets, args.steps, not args.no_progress, on_error=on_error
    )
    if args.tensors:
        rows = tensor_checks(cat, rows, not args.no_progress)
    written = save(
        rows,
        cat.suite,
        args.out,
        source=cat.source.value,
        checkpoints_path=str(cat.path) if cat.path else None,
    )
    df = audit_frame(rows)
    print(f"suite {cat.suite.name}, source {cat.source.value}: {len(df)} files")
    for (model, run), g in summary(df).groupby(["model", "run"], sort=False):
        counts = dict(zip(g["status"], g["checkpoints"], strict=True))
        flagged = {k: v for k, v in counts.items() if k != "ok"}
        print(
            f"  {run:>8} {model:>6}: {sum(counts.values())} checkpoints, "
            + (", ".join(f"{v} {k}" for k, v in flagged.items()) if flagged else "all ok")
        )
    print(f"wrote {written['table']} and {written['figure']}")
    return 1 if errors else 0


def _add_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="flag checkpoints that are not what their step says: duplicates, missing steps, "
        "step0 == step1, shards of another step, runs not descending from their step0",
    )
    options.add_suite(p)
    options.add_checkpoints(p)
    p.add_argument("--models", nargs="+", default=None, help="models to audit (default: all)")
    p.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="runs to audit: datasets or run names such as standard-seed1 (default: every run; "
        "hub: every run Pythia released of each model, seeds and intervention models included)",
    )
    p.add_argument(
        "--tensors",
        action="store_true",
        help="also load the weights (the hub's are downloaded): tensor fingerprints, distance to "
        "step0 and to the previous step",
    )
    p.add_argument(
        "--out", default=None, help="output directory (default results/<suite>/checkpoints)"
    )
    options.add_progress(p)
    p.set_defaults(func=_cmd_audit)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "checkpoints",
        help="list the checkpoints of a suite (trained, local or hub); `audit`: check them",
    )
    options.add_suite(p, required=False)
    options.add_checkpoints(p)
    p.add_argument("--json", action="store_true", help="print JSON")

    def listing(args: argparse.Namespace) -> int:
        if args.suite is None:
            p.error("the following arguments are required: --suite")
        return _cmd_checkpoints(args)

    p.set_defaults(func=listing)
    _add_audit(p.add_subparsers(dest="checkpoints_command", metavar="audit"))
