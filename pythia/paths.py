"""Where everything lives: the one place for paths, read by the package, the Snakemake rules
(``rules/common.smk``) and the notebooks.

    <project>/                     the repository root, or the workflow's working directory
        work/<suite>/              everything a suite builds (never in git; ``$PYTHIA_WORK``)
            data/documents/            extracted documents per source
            data/tokenizer/            tokenizer.json (AutoTokenizer-loadable)
            data/<dataset>/            .bin/.idx, order indices, pre-shuffled sequences
            data/card.json             the data card
            models/<run>/<model>/      step0 ... stepN (HF model dirs), state/, train_log.jsonl, done.json
        results/<suite>/           figures and tables (``$PYTHIA_RESULTS``; committed for micro)
            <stem>/                    one directory per section (see :mod:`pythia.sections`)
            notebooks/NN_<stem>.ipynb  the executed notebooks
        logs/<suite>/              the workflow's logs
    ~/.cache/pythia-compendium/    downloaded archives, by sha256 (``$PYTHIA_CACHE``)

The project is the current directory unless ``$PYTHIA_PROJECT`` says otherwise: a notebook
opened in JupyterLab runs in ``notebooks/`` and calls :func:`set_project` with its
``project_dir`` parameter (``..``), so it finds what the workflow wrote. Relative values of
``$PYTHIA_WORK`` and ``$PYTHIA_RESULTS`` are taken relative to the project, so the workflow
(which runs in the project) and a notebook (which does not) resolve them to the same place.

Runs: a *run* is one training of every model of a suite on one dataset. The baseline run of
a dataset is named after it (``standard``, ``deduped``); a *variant* of a run (a training
that continues a baseline's saved state on changed data, like the gender intervention)
is named ``<dataset>-<variant>``; a *seed run* (the suite's ``seeds`` key: the baseline
trained again with another initialisation and/or data-order seed, like PolyPythias) is
``<dataset>-seed<N>``, ``<dataset>-data-seed<N>`` or ``<dataset>-weight-seed<N>``
(:func:`seed_run_name`). :func:`run_name` names runs, :func:`list_runs` lists those that exist.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pythia.errors import UsageError

DATASETS: tuple[str, ...] = ("standard", "deduped")
"""The training datasets: the standard data and its near-deduplicated twin (Pythia's two
suites). The one list: config validation, rule wildcards, the CLI and the data build read it."""
STANDARD, DEDUPED = DATASETS

VARIANTS: dict[str, str] = {
    "intervention": "gender intervention: the run continued from its saved state over the last window "
    "(suite intervention.runs; Pythia 7%) with masculine pronoun tokens swapped for feminine ones",
    "intervention_long": "gender intervention over a longer window (suite intervention.runs; Pythia 21%)",
}
"""Run variants: name -> what the variant is. A section that trains a variant of a baseline
run registers it here (one entry); its runs are named ``run_name(dataset, variant)``."""

VARIANT_SEP = "-"

SEED_VARIES: dict[str, str] = {
    "both": "seed",
    "data": "data-seed",
    "weight": "weight-seed",
}
"""Seed runs (the suite's ``seeds`` key, like PolyPythias): what a seed changes -> the variant's
prefix. ``both``: the initialisation and the data order (``<dataset>-seed<N>``); ``data``: only the
data order (``<dataset>-data-seed<N>``); ``weight``: only the initialisation
(``<dataset>-weight-seed<N>``). Seed 0 is the baseline run itself."""

_SEED_VARIANT = re.compile(r"^(seed|data-seed|weight-seed)([1-9][0-9]*)$")


# ------------------------------------------------------------------------------ roots


def project_dir() -> Path:
    """The project root: ``$PYTHIA_PROJECT``, else the current directory (kept relative, so the
    workflow's paths stay relative to its working directory)."""
    return Path(os.environ.get("PYTHIA_PROJECT") or ".")


def set_project(path: str | Path) -> Path:
    """Make ``path`` the project root for this process and its children (notebooks call this
    with their ``project_dir`` parameter). Returns the absolute root."""
    root = Path(path).expanduser().resolve()
    os.environ["PYTHIA_PROJECT"] = str(root)
    return root


def _root(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return project_dir() / Path(value).expanduser() if value else project_dir() / default


def cache_dir() -> Path:
    """Downloaded archives: ``$PYTHIA_CACHE`` (default ``~/.cache/pythia-compendium``)."""
    return Path(
        os.environ.get("PYTHIA_CACHE") or Path.home() / ".cache" / "pythia-compendium"
    ).expanduser()


def work_dir() -> Path:
    """Data, checkpoints, scores: ``$PYTHIA_WORK`` (default ``<project>/work``)."""
    return _root("PYTHIA_WORK", "work")


def results_root() -> Path:
    """Figures and tables of every suite: ``$PYTHIA_RESULTS`` (default ``<project>/results``)."""
    return _root("PYTHIA_RESULTS", "results")


def logs_dir(suite: str) -> Path:
    """The workflow's logs of a suite: ``<project>/logs/<suite>``."""
    return project_dir() / "logs" / suite


# ------------------------------------------------------------------------------ data


def suite_dir(suite: str) -> Path:
    return work_dir() / suite


def data_dir(suite: str) -> Path:
    return suite_dir(suite) / "data"


def dataset_dir(suite: str, dataset: str) -> Path:
    return data_dir(suite) / check_dataset(dataset)


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise UsageError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    return dataset


# ------------------------------------------------------------------------------ runs


def run_name(dataset: str, variant: str | None = None) -> str:
    """The name of a run: the dataset for a baseline run, ``<dataset>-<variant>`` for a variant."""
    check_dataset(dataset)
    if variant is None:
        return dataset
    if variant not in VARIANTS:
        known = ", ".join(VARIANTS) or "none registered"
        raise UsageError(
            f"unknown run variant {variant!r}; variants: {known} (pythia.paths.VARIANTS)"
        )
    return f"{dataset}{VARIANT_SEP}{variant}"


def seed_run_name(dataset: str, seed: int, vary: str = "both") -> str:
    """The run of ``dataset`` with seed ``seed`` (>= 1) changing what ``vary`` says
    (:data:`SEED_VARIES`): ``standard-seed1``, ``deduped-data-seed2``, ``standard-weight-seed3``."""
    check_dataset(dataset)
    if vary not in SEED_VARIES:
        raise UsageError(f"unknown seed kind {vary!r}; choose one of: {', '.join(SEED_VARIES)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 1:
        raise UsageError(
            f"a seed run's seed is an integer >= 1 (seed 0 is the baseline), got {seed!r}"
        )
    return f"{dataset}{VARIANT_SEP}{SEED_VARIES[vary]}{seed}"


def parse_seed(run: str) -> tuple[str, int] | None:
    """``(vary, seed)`` of a seed run (``standard-data-seed2`` -> ``("data", 2)``); None for any other run."""
    m = _SEED_VARIANT.match(run.partition(VARIANT_SEP)[2])
    if m is None:
        return None
    vary = next(k for k, prefix in SEED_VARIES.items() if prefix == m.group(1))
    return vary, int(m.group(2))


def parse_run(run: str) -> tuple[str, str | None]:
    """``(dataset, variant)`` of a run name; the inverse of :func:`run_name` (a seed run's
    variant is ``seed<N>``, ``data-seed<N>`` or ``weight-seed<N>``: :func:`seed_run_name`)."""
    dataset, sep, variant = run.partition(VARIANT_SEP)
    known = variant in VARIANTS or _SEED_VARIANT.match(variant) is not None
    if dataset not in DATASETS or (sep and not known) or (sep and not variant):
        raise UsageError(
            f"unknown run {run!r}: a run is a dataset ({', '.join(DATASETS)}) or <dataset>{VARIANT_SEP}<variant> "
            f"(variants: {', '.join(VARIANTS) or 'none registered'}, or seed<N>, data-seed<N>, weight-seed<N>)"
        )
    return dataset, (variant or None)


def runs_dir(suite: str) -> Path:
    return suite_dir(suite) / "models"


def run_dir(suite: str, run: str, model: str) -> Path:
    """``work/<suite>/models/<run>/<model>``; ``run`` is a dataset or a :func:`run_name`."""
    parse_run(run)
    return runs_dir(suite) / run / model


def list_runs(suite: str) -> list[str]:
    """The runs of a suite that exist on disk (a directory holding at least one model), in
    :data:`DATASETS` order, each baseline before its variants."""
    root = runs_dir(suite)
    found = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            dataset, variant = parse_run(d.name)
        except ValueError:
            continue
        if any(p.is_dir() for p in d.iterdir()):
            found.append((DATASETS.index(dataset), _variant_key(d.name, variant), d.name))
    return [name for _, _, name in sorted(found)]


def _variant_key(run: str, variant: str | None) -> tuple[int, str, int]:
    """Sort key of a run within its dataset: the baseline, its variants, then its seed runs by seed."""
    seed = parse_seed(run)
    if seed is not None:
        return (2, seed[0], seed[1])
    return (1, variant, 0) if variant else (0, "", 0)


# ------------------------------------------------------------------------------ results


def results_dir(suite: str) -> Path:
    """``results/<suite>``."""
    return results_root() / suite


def section_dir(suite: str, stem: str) -> Path:
    """A section's figures and tables: ``results/<suite>/<stem>``."""
    return results_dir(suite) / stem


def notebooks_dir(suite: str) -> Path:
    """The executed notebooks: ``results/<suite>/notebooks``."""
    return results_dir(suite) / "notebooks"
