"""The ``pythia`` command line.

    pythia suite NAME [--csv PATH]                     the suite table (the paper's Table 1)
    pythia config-reference                            every configuration key, documented
    pythia data sources|evalsets|fetch|build|batch|unshard   text sources, data build, batch viewer
    pythia train ... / pythia deepspeed-config ...     train one model of a suite / its DeepSpeed JSON
    pythia checkpoints --suite S [--checkpoints-source trained|local|hub]   the checkpoint catalogue
    pythia bench train|score|memorization|harness      speed: training vs transformers.Trainer,
                                                       scoring, the scan vs generate, our lm-eval adapter vs lm_eval
    pythia workflow run|check-cluster|unlock ...       the Snakemake workflow, recovering a killed run
    pythia results compare|snapshot [--suite S]        did the rerun reproduce the committed results?
    pythia benchmarks tasks|evaluate|published         section 02: lm-eval over checkpoints, published numbers
    pythia gender-intervention train|evaluate|tasks|map|view|published   section 03
    pythia memorization scan|duplicates ...            section 04: (k, l)-memorization of every sequence seen
    pythia term-frequencies count|evaluate ...         section 05: operand counts, few-shot arithmetic
    pythia training-trajectories tasks|generate|evaluate ...   section 06: per-token losses, hallucination, ICL

One naming scheme: lowercase words joined by hyphens; a section's command is its stem with
hyphens. Speed measurements are ``pythia bench``; ``pythia benchmarks`` is section 02. Each
command is one module of this package (:data:`COMMANDS`) that builds its parser from the shared
options of :mod:`pythia.cli.options` and calls the library; the library never imports this
package.

Errors: a command stopped by a user error (:class:`pythia.errors.PythiaError` and the
foreign errors :func:`pythia.errors.user_message` knows) prints one line,
``pythia <command>: error: <what is wrong>; <what to do>``, and exits with status 2; bad
arguments do the same through argparse. Anything else is a bug and keeps its traceback.
Commands raise; they never catch to print (docs/errors.md).

Progress bars: where standard error is not a terminal (a workflow job's log), every tqdm bar,
lm-eval's and datasets' included, redraws at most every :data:`LOG_PROGRESS_SECONDS` seconds
(``$TQDM_MININTERVAL``, unless set): a log keeps a line of progress per half minute instead of
hundreds of carriage-return redraws.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pythia.errors import EXIT_USER_ERROR, user_message

# The module that adds each command (its ``register(subparsers)``). A command imports only its own
# module: importing all of them (torch, seaborn, pandas, scipy, lm-eval's helpers) took ~4.5 s, paid
# by every workflow job; ``pythia --help`` and an unknown command still import all.
COMMANDS = {
    "suite": "pythia.cli.suite",
    "config-reference": "pythia.cli.suite",
    "data": "pythia.cli.data",
    "train": "pythia.cli.train",
    "deepspeed-config": "pythia.cli.train",
    "checkpoints": "pythia.cli.checkpoints",
    "bench": "pythia.cli.bench",
    "workflow": "pythia.cli.workflow",
    "results": "pythia.cli.results",
    "benchmarks": "pythia.cli.benchmarks",
    "memorization": "pythia.cli.memorization",
    "term-frequencies": "pythia.cli.term_frequencies",
    "training-trajectories": "pythia.cli.training_trajectories",
    "gender-intervention": "pythia.cli.gender_intervention",
}
SUBCOMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))
"""Modules that add subcommands, in the order ``pythia --help`` lists them."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, and the command's name remembered for error messages.

    Subcommand parsers are made by ``add_parser`` and so are of this class too.
    """

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if not hasattr(ns, "_prog"):  # the innermost subcommand parses first
            ns._prog = self.prog
        return ns, extras


def build_parser(command: str | None = None) -> Parser:
    """The parser of ``command`` only (its module's subcommands), or of every command when
    ``command`` is None or unknown (the top-level help, argparse's list of choices)."""
    parser = Parser(prog="pythia", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [COMMANDS[command]] if command in COMMANDS else SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


LOG_PROGRESS_SECONDS = 30
"""Seconds between redraws of a progress bar written to a log (not a terminal)."""


def quiet_progress_in_logs() -> None:
    """Slow every tqdm bar to one redraw per :data:`LOG_PROGRESS_SECONDS` when standard error is
    not a terminal (tqdm reads ``$TQDM_MININTERVAL`` for every bar; a value already set wins)."""
    isatty = getattr(sys.stderr, "isatty", None)
    if not (isatty and isatty()):
        os.environ.setdefault("TQDM_MININTERVAL", str(LOG_PROGRESS_SECONDS))


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a program (a caller passing argv keeps its own environment)
        quiet_progress_in_logs()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):  # only `workflow run` forwards arguments
        parser.exit(
            EXIT_USER_ERROR,
            f"{args._prog}: error: unrecognized arguments: {' '.join(extra)}; "
            f"see `{args._prog} --help`\n",
        )
    args.extra = extra
    try:
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as e:
        message = "interrupted" if isinstance(e, KeyboardInterrupt) else user_message(e)
        if message is None or os.environ.get("PYTHIA_DEBUG"):
            raise
        print(f"{args._prog}: error: {message}", file=sys.stderr)
        return 130 if isinstance(e, KeyboardInterrupt) else EXIT_USER_ERROR
