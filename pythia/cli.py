"""The ``pythia`` command line.

    pythia suite NAME [--csv PATH] [--markdown PATH]   the suite table (the paper's Table 1)
    pythia config-reference                            every configuration key, documented
    pythia data ...                                    sources, build, tokenize, order, batch viewer
    pythia train ...                                   train one model of a suite
    pythia bench train ...                             throughput and MFU

Each part of the package registers its own subcommands (``register(subparsers)``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pythia.config import ConfigError

# Modules that add subcommands; each has ``register(subparsers)``.
SUBCOMMAND_MODULES = ("pythia.suite_table", "pythia.data.cli", "pythia.train.cli", "pythia.bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pythia", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"pythia {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
