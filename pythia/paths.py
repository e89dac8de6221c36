"""Where the workflow keeps things. Data, checkpoints and caches live outside git.

    $PYTHIA_CACHE (default ~/.cache/pythia-compendium)   downloaded archives, by sha256
    $PYTHIA_WORK  (default ./work)                        everything a suite builds:
        <suite>/data/documents/                 extracted documents per source
        <suite>/data/tokenizer/                 tokenizer.json (AutoTokenizer-loadable)
        <suite>/data/{standard,deduped}/        .bin/.idx, order indices, pre-shuffled sequences
        <suite>/data/card.json                  the data card
        <suite>/models/<dataset>/<model>/       step0 ... stepN (HF model dirs), state/, train_log.jsonl
    results/<suite>/                            figures and tables (committed for the default suite)
"""

from __future__ import annotations

import os
from pathlib import Path

from pythia.errors import UsageError

DATASETS = ("standard", "deduped")


def cache_dir() -> Path:
    return Path(os.environ.get("PYTHIA_CACHE", Path.home() / ".cache" / "pythia-compendium"))


def work_dir() -> Path:
    return Path(os.environ.get("PYTHIA_WORK", "work"))


def suite_dir(suite: str) -> Path:
    return work_dir() / suite


def data_dir(suite: str) -> Path:
    return suite_dir(suite) / "data"


def dataset_dir(suite: str, dataset: str) -> Path:
    check_dataset(dataset)
    return data_dir(suite) / dataset


def run_dir(suite: str, dataset: str, model: str) -> Path:
    check_dataset(dataset)
    return suite_dir(suite) / "models" / dataset / model


def results_dir(suite: str) -> Path:
    return Path(os.environ.get("PYTHIA_RESULTS", "results")) / suite


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise UsageError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    return dataset
