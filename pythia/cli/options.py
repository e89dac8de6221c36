"""Options shared by the ``pythia`` commands, defined once.

Every command that takes one of these options adds it through the helper here, so each option
has one spelling, one vocabulary and one help text wherever it appears:

=========================  ================================================================
helper                     option(s)
=========================  ================================================================
:func:`add_suite`          ``--suite NAME|PATH``
:func:`add_run`            ``--model SIZE`` ``--dataset standard|deduped``
:func:`add_checkpoints`    ``--checkpoints-source trained|local|hub`` ``--checkpoints-path``
                           ``--steps N [N ...]`` ``--audit warn|skip|off``
                           ``--checkpoints-runs RUN [RUN ...]``
:func:`add_device`         ``--device cpu|cuda``
:func:`add_dtype`          ``--dtype float32|bfloat16|float16`` (torch's names; ``fp32``,
                           ``bf16`` and ``fp16`` are read as the same three)
:func:`add_resume`         ``--resume`` ``--replace-stale``
:func:`add_threads`        ``--threads N``
:func:`add_progress`       ``--no-progress``
:func:`add_validation`     ``--validation FILE``
=========================  ================================================================

Command names follow one scheme: lowercase words joined by hyphens (``pythia
training-trajectories``, ``pythia deepspeed-config``); a section's command is its stem with
hyphens. Speed measurements live under ``pythia bench``; ``pythia benchmarks`` is section 02.

This module imports nothing heavy (pydantic, through the configuration): ``pythia --help``
loads every command module's parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from pythia.audit import POLICIES, step_filter
from pythia.config import Suite
from pythia.paths import DATASETS
from pythia.runs import Catalogue, Source

CHECKPOINT_SOURCES = tuple(s.value for s in Source)
"""Where checkpoints come from (``pythia.runs.Source``)."""

DEVICES = ("cpu", "cuda")

DTYPES = ("float32", "bfloat16", "float16")
"""The one ``--dtype`` vocabulary: torch's names."""

DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""Short names (DeepSpeed's, the configuration's ``precision``) read as the same dtypes."""


def dtype_name(value: str) -> str:
    """``value`` as one of :data:`DTYPES` (an alias is translated); argparse's ``type``."""
    name = DTYPE_ALIASES.get(value, value)
    if name not in DTYPES:
        raise argparse.ArgumentTypeError(
            f"invalid dtype {value!r} (choose from {', '.join(DTYPES)})"
        )
    return name


Command = Callable[[argparse.Namespace], Any]


def subcommands(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction:
    """The required subcommands of ``parser`` (``pythia <command> <subcommand>``)."""
    return parser.add_subparsers(dest=dest, required=True, metavar=dest.upper())


def add_suite(
    parser: argparse.ArgumentParser,
    *,
    required: bool = True,
    help: str = "suite name (smoke, micro, pythia, ...) or a suite YAML path",
) -> None:
    """``--suite``: a suite's name (smoke, micro, pythia, ...) or the path of a suite YAML."""
    parser.add_argument("--suite", required=required, default=None, help=help)


def add_run(
    parser: argparse.ArgumentParser,
    *,
    required: bool = True,
    model_help: str = "model size, as the suite names it (e.g. 1.8M)",
    dataset_default: str | None = None,
) -> None:
    """``--model`` and ``--dataset``: one run of a suite."""
    parser.add_argument("--model", required=required, default=None, help=model_help)
    parser.add_argument(
        "--dataset",
        required=required and dataset_default is None,
        default=dataset_default,
        choices=DATASETS,
        help="standard or deduped" + (f" (default {dataset_default})" if dataset_default else ""),
    )


def add_checkpoints(parser: argparse.ArgumentParser) -> None:
    """``--checkpoints-source``, ``--checkpoints-path`` and ``--steps`` for a section's command
    (the workflow passes its ``checkpoints`` config through them; :func:`pythia.runs.Catalogue`
    reads them)."""
    parser.add_argument(
        "--checkpoints-source",
        default="trained",
        choices=CHECKPOINT_SOURCES,
        help="where checkpoints come from (default: the workflow's own runs)",
    )
    parser.add_argument(
        "--checkpoints-path",
        default=None,
        help="local: the directory of pythia-<size>[-deduped]/step<N>/ folders; hub: download cache",
    )
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=None,
        help="checkpoint steps to analyse (default: the suite's analysis.steps)",
    )
    parser.add_argument(
        "--checkpoints-runs",
        nargs="+",
        default=None,
        metavar="RUN",
        help="runs to read (default: standard and deduped for the hub, every run for the others); "
        "for the hub also Pythia's released variants: standard-seed<N> (PolyPythias), "
        "standard-data-seed<N>, standard-weight-seed<N>, deduped-intervention, "
        "deduped-intervention_long",
    )
    parser.add_argument(
        "--audit",
        default="warn",
        choices=POLICIES,
        help="checkpoints the audit flags (pythia checkpoints audit): warn once, skip them, or "
        "off (default warn)",
    )


def add_device(parser: argparse.ArgumentParser, *, default: str = "cpu") -> None:
    """``--device cpu|cuda``."""
    parser.add_argument(
        "--device", default=default, choices=DEVICES, help=f"cpu or cuda (default {default})"
    )


def add_dtype(parser: argparse.ArgumentParser, *, default: str | None = "float32") -> None:
    """``--dtype``, in torch's names (:data:`DTYPES`); the value reaching the command is one
    of them whatever alias was typed."""
    parser.add_argument(
        "--dtype",
        type=dtype_name,
        default=default,
        metavar="{" + ",".join(DTYPES) + "}",
        help="the weights' dtype" + (f" (default {default})" if default else ""),
    )


def add_resume(parser: argparse.ArgumentParser) -> None:
    """``--resume`` and ``--replace-stale``: what a training command does with an existing run
    directory (``pythia train``, ``pythia gender-intervention train``)."""
    parser.add_argument(
        "--resume", action="store_true", help="continue from the run's latest saved training state"
    )
    parser.add_argument(
        "--replace-stale",
        action="store_true",
        help="if the run directory holds a run of another configuration, delete it and start over",
    )


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads``: torch's CPU threads (``torch.set_num_threads``; default torch's own)."""
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: no progress bars (a log keeps its own lines)."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_validation(parser: argparse.ArgumentParser) -> None:
    """``--validation FILE``: the validation text, a tokenized file, instead of the suite's split
    (sections 03 and 06; :mod:`pythia.data.validation` reads it)."""
    parser.add_argument(
        "--validation",
        metavar="FILE",
        default=None,
        help="validation sequences from a tokenized file (a .bin/.idx pair, a .npy of token rows "
        "or a .jsonl of token lists; rows cut to the suite's seq_len + 1) instead of the "
        "suite's validation split",
    )


def catalogue(args: argparse.Namespace, suite: str | Suite | None = None) -> Catalogue:
    """The checkpoint catalogue a command was asked for through :func:`add_checkpoints`
    (``suite`` defaults to ``--suite``)."""
    cat = Catalogue(
        suite if suite is not None else args.suite,
        args.checkpoints_source,
        args.checkpoints_path or None,
        args.steps,
        getattr(args, "checkpoints_runs", None),
    )
    cat.step_filter = step_filter(cat, getattr(args, "audit", "warn"))
    return cat
