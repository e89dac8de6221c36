"""Seed runs: a baseline trained again with other seeds (the suite's ``seeds`` key, like PolyPythias).

A seed run ``<dataset>-seed<N>`` (``vary: both``) starts from weights initialised with seed N
(:func:`pythia.model.build_model`'s generator, and torch's, numpy's and Python's RNGs) and trains
on the dataset's order built with data-order seed N (:func:`pythia.data.order.write_seed_order`);
``<dataset>-data-seed<N>`` changes only the order and ``<dataset>-weight-seed<N>`` only the
initialisation, like PolyPythias' decoupled 160M runs. Everything else (model, schedule,
corpus, validation set, checkpoint steps) is the baseline's. :meth:`pythia.config.Suite.run_seeds`
gives the two seeds of a run; the run's ``run.json``, ``done.json``, checkpoints and states record
them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pythia.config import RunSeeds, Suite
from pythia.data import batches, order


class SeedBatches:
    """The batches of a run whose data-order seed is not the baseline's: the trainer reads its
    data through this as through :mod:`pythia.data.batches` (same names, same shapes)."""

    def __init__(self, data_seed: int):
        self.data_seed = data_seed

    def get_batch(self, suite: Suite, dataset: str, step: int) -> np.ndarray:
        """Tokens of step ``step`` in the seeded order: (global_batch, seq_len + 1), int64."""
        return order.seed_batch(suite, dataset, self.data_seed, step)

    @staticmethod
    def batch_hash(batch: np.ndarray) -> str:
        return batches.batch_hash(batch)

    @staticmethod
    def validation_sequences(suite: Suite, n: int) -> np.ndarray:
        """The baseline's held-out sequences: every seed is scored on the same text."""
        return batches.validation_sequences(suite, n)


def batches_for(suite: Suite, seeds: RunSeeds) -> Any:
    """What a run reads its batches through: :mod:`pythia.data.batches` when its data order is the
    baseline's, else a :class:`SeedBatches` of its data-order seed."""
    return batches if seeds.data_seed == suite.data.seed else SeedBatches(seeds.data_seed)


def seed_fields(run: str, seeds: RunSeeds) -> dict[str, Any]:
    """What a seed run's files record beside the suite, model and dataset (nothing for a baseline,
    whose files stay as they were)."""
    if seeds.vary is None:
        return {}
    return {
        "run": run,
        "seed": seeds.seed,
        "seed_vary": seeds.vary.value,
        "init_seed": seeds.init_seed,
        "data_seed": seeds.data_seed,
    }
