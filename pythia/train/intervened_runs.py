"""The intervened runs a suite configures (the gender intervention, section 03): which models
continue which baseline from which step, and what their weights depend on.

Intervened runs are run *variants* (:data:`pythia.paths.VARIANTS`, the suite's
``intervention.runs``): ``work/<suite>/models/<dataset>-<variant>/<model>/``. A variant's window
runs from ``Suite.step_before_end(fraction)`` to the end of training. The trainer that fills it
is :mod:`pythia.train.intervention`; the swap it applies, :mod:`pythia.data.pronouns`.

This module stays light (no model code): the workflow's rules and the analysis read it.
"""

from __future__ import annotations

from pythia import paths
from pythia.config import InterventionRun, Suite, config_digest
from pythia.data.pronouns import PRONOUN_PAIRS
from pythia.errors import UsageError
from pythia.train.checkpoint import run_digest


def run_spec(suite: Suite, variant: str) -> InterventionRun:
    """The suite's ``intervention.runs.<variant>``; an unknown variant is a one-line error."""
    runs = suite.intervention.runs
    if variant not in runs:
        raise UsageError(
            f"suite {suite.name!r} has no intervened run {variant!r}; its intervention.runs: "
            f"{', '.join(runs) or 'none'}"
        )
    return runs[variant]


def window(suite: Suite, variant: str) -> tuple[int, int]:
    """(start step, end step) of an intervened run variant of ``suite``; an empty window (a suite
    too short for the fraction) is a one-line error."""
    run = run_spec(suite, variant)
    start, end = suite.step_before_end(run.fraction), suite.training.train_iters
    if start >= end:
        raise UsageError(
            f"intervention.runs.{variant}: fraction {run.fraction} of suite {suite.name!r} starts at step "
            f"{start}, the last step (no window); use a larger fraction"
        )
    return start, end


def intervened_runs(suite: Suite) -> list[tuple[str, str]]:
    """(run name, model) of every intervened run the suite configures."""
    ds = suite.intervention.dataset
    return [
        (paths.run_name(ds, v), m)
        for v, r in suite.intervention.runs.items()
        for m in r.models
        if m in suite.models
    ]


def intervention_digest(suite: Suite, model: str, variant: str) -> str:
    """What an intervened run's weights depend on: the baseline run, the start step and the map's
    definition (the tokenizer is in the baseline's digest)."""
    dataset = suite.intervention.dataset
    return config_digest(
        {
            "baseline": run_digest(suite, model, dataset),
            "variant": variant,
            "start": window(suite, variant)[0],
            "pairs": suite.intervention.pairs or PRONOUN_PAIRS,
        }
    )
