"""``pythia checkpoints``: the checkpoint catalogue of a suite (:mod:`pythia.runs`)."""

from __future__ import annotations

import argparse
import json

from pythia.cli import options
from pythia.runs import describe


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
            print(
                f"  {d:>8} {m:>6}: {len(st['available'])} checkpoints, {len(sel)} selected"
                + (f" (steps {sel[0]} ... {sel[-1]})" if sel else "")
            )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "checkpoints", help="list the checkpoints of a suite (trained, local or hub)"
    )
    options.add_suite(p)
    options.add_checkpoints(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_checkpoints)
