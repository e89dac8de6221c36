"""The gender intervention's trainer (the Pythia paper, section 4.1): continue a trained run from
its saved state over the last part of training, on the same batches with masculine pronoun
tokens replaced by feminine ones (:mod:`pythia.data.pronouns`).

An intervened run (:mod:`pythia.train.intervened_runs`: its variant, window and digest) writes
checkpoints on the suite's schedule, a ``train_log.jsonl`` like the baseline's (``batch_hash`` of
the swapped batch, ``original_batch_hash`` of the baseline's, ``swaps`` per step,
``swap_seconds``) and ``done.json``. It starts at ``Suite.step_before_end(fraction)``: from the
baseline's state there, or, if that step has no saved state, from the nearest earlier state,
replaying the unmodified batches up to the start (deterministic, so the replayed weights are the
baseline's: :meth:`InterventionTrainer.replay_proof` checks them against the baseline's checkpoint
there). The start point is written as the run's first checkpoint, its state too, so a killed run
resumes from its own states like any run.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file

from pythia import locks, paths
from pythia.config import Suite, load_suite
from pythia.data.pronouns import suite_map, swap
from pythia.errors import MissingInputError, UsageError
from pythia.io import write_json
from pythia.train import checkpoint as ckpt
from pythia.train.distributed import DistContext
from pythia.train.intervened_runs import intervention_digest, run_spec, window
from pythia.train.loop import Trainer, TrainOptions
from pythia.train.rundir import append_record, hash_list, read_log

log = logging.getLogger("pythia.train.intervention")

LOCK_HOLDER = "pythia gender-intervention train"
"""How the run directory's lock names the process that trains an intervened run."""

_OUTPUT_LAYER = {"embed_out.weight": "lm_head.weight"}
"""The same output layer is ``embed_out`` in GPT-NeoX checkpoints and ``lm_head`` in
transformers 5's module."""


class InterventionError(MissingInputError):
    """An intervened run cannot start: no saved state of the baseline before its start step."""


class InterventionTrainer(Trainer):
    """The trainer of an intervened run: starts from the baseline's state at the window's start
    (replaying unmodified batches from an earlier state if needed), swaps pronouns in every batch
    after it, and logs both batches' hashes."""

    def __init__(self, opts: TrainOptions, variant: str, ctx: DistContext | None = None):
        super().__init__(opts, ctx)
        self.variant = variant
        self.start, _ = window(self.suite, variant)
        self.baseline_dir = paths.run_dir(self.suite.name, self.dataset, self.spec.name)
        self.baseline_digest = self.run_digest
        self.run_dir = (
            Path(opts.out)
            if opts.out
            else paths.run_dir(
                self.suite.name, paths.run_name(self.dataset, variant), self.spec.name
            )
        )
        self.run_digest = intervention_digest(self.suite, self.spec.name, variant)
        self.map = suite_map(self.suite)
        self.lut = self.map.lut(self.suite.vocab_rows(self.spec))
        self.replay: dict[str, Any] = {}

    def run_record(self) -> dict:
        return {
            **super().run_record(),
            "variant": self.variant,
            "start_step": self.start,
            "baseline": str(self.baseline_dir),
            "baseline_run_digest": self.baseline_digest,
            "pronoun_map": self.map.to_json(),
        }

    def load_batch(self, step: int) -> tuple[np.ndarray, dict[str, Any]]:
        """The baseline's batch ``step``, pronoun-swapped from the start on, with what the log
        records of the swap."""
        original = self.batches.get_batch(self.suite, self.dataset, step)
        if step < self.start:
            return original, {}
        t0 = time.perf_counter()
        swapped, n = swap(original, self.lut)
        dt = time.perf_counter() - t0
        return swapped, {
            "original_batch_hash": self.batches.batch_hash(original),
            "swaps": n,
            "swap_seconds": dt,
        }

    # ------------------------------------------------------------------ the start
    def baseline_start_state(self) -> tuple[Path, int]:
        """The baseline's saved state at or before the start step; none is a one-line error."""
        have = ckpt.saved_steps(self.baseline_dir / "state")
        usable = [s for s in have if s <= self.start]
        if not usable:
            raise InterventionError(
                f"no saved training state of {self.baseline_dir} at or before step {self.start} (the start of "
                f"{self.variant}); states saved at steps: {', '.join(map(str, have)) or 'none'}; train the "
                f"baseline with that state (training.checkpoints.state_at_fractions_before_end or state_every) "
                f"or choose a later intervention fraction"
            )
        return ckpt.state_dir(self.baseline_dir, usable[-1]), usable[-1]

    def _prepare_run_dir(self) -> int:
        """Resume the run's own state, or start it: the baseline's state, the replayed unmodified
        steps up to the start, and the start written as the run's first checkpoint and state."""
        if self.opts.resume and ckpt.latest_state(self.run_dir)[0] is not None:
            return super()._prepare_run_dir()  # our own state: resume like any run
        if self.ctx.is_main:
            self._claim_run_dir()
        step = self._load_baseline_state()
        self._replay_to_start(step)
        if self.ctx.is_main:
            self._write_start()
        self.save_state(self.start)
        return self.start

    def _claim_run_dir(self) -> None:
        """Create the run directory, or check it holds this run and no checkpoint of it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.check_run_dir(self.run_dir, self.run_record(), replace_stale=self.opts.replace_stale)
        if ckpt.saved_steps(self.run_dir) and not self.opts.resume:
            raise ckpt.CheckpointError(
                f"{self.run_dir} already holds checkpoints of this run; pass --resume "
                "to continue it, or delete the directory to start over"
            )

    def _load_baseline_state(self) -> int:
        """Load the baseline's state at or before the start (checked to be the baseline's: its
        digest); returns its step."""
        state, step = self.baseline_start_state()
        digest, self.run_digest = self.run_digest, self.baseline_digest
        try:
            self.load_state(state, None)
        finally:
            self.run_digest = digest
        log.info("%s: loaded the baseline state of step %d from %s", self.variant, step, state)
        return step

    def _replay_to_start(self, step: int) -> None:
        """Train the baseline's own (unmodified) batches from ``step`` up to the start, and
        record the replay and its proof in :attr:`replay`."""
        t0 = time.perf_counter()
        for s in range(step, self.start):
            self.train_step(s, self.batches.get_batch(self.suite, self.dataset, s))
        self.replay = {
            "state_step": step,
            "replayed_steps": self.start - step,
            "replay_seconds": time.perf_counter() - t0,
            **self.replay_proof(),
        }

    def _write_start(self) -> None:
        """The start as the run's first checkpoint and the first record of its new log."""
        self._truncate_log(-1)
        rec: dict[str, Any] = {
            "step": self.start,
            "tokens_seen": self.start * self.training.tokens_per_step,
            "start": True,
            **self.replay,
        }
        rec["val_loss"] = self.validate()
        self.save_checkpoint(self.start, rec)
        with open(self.log_path, "a") as f:
            append_record(f, rec)

    def replay_proof(self) -> dict[str, Any]:
        """Whether the weights at the start equal the baseline's checkpoint there, bit for bit
        (None where the baseline has no checkpoint at the start)."""
        path = ckpt.model_dir(self.baseline_dir, self.start) / "model.safetensors"
        if not path.is_file():
            return {"start_matches_baseline": None}
        saved = {_OUTPUT_LAYER.get(k, k): v for k, v in load_file(str(path)).items()}
        mine = {_OUTPUT_LAYER.get(k, k): v for k, v in self.model.state_dict().items()}
        same = saved.keys() == mine.keys() and all(mine[k].cpu().equal(v) for k, v in saved.items())
        if not same:
            log.warning(
                "the weights at step %d differ from the baseline's checkpoint %s", self.start, path
            )
        return {"start_matches_baseline": bool(same)}

    # ------------------------------------------------------------------ the end
    def write_done(self) -> dict[str, Any]:
        """The baseline's ``done.json`` with the intervention's: variant, start, swaps, the
        original batches' hashes and the replay."""
        done = super().write_done()
        records = read_log(self.log_path)
        swaps = [r["swaps"] for r in records if "swaps" in r]
        replay_keys = ("state_step", "replayed_steps", "start_matches_baseline")
        done.update(
            {
                "variant": self.variant,
                "start_step": self.start,
                "baseline_run_digest": self.baseline_digest,
                "swaps": int(sum(swaps)),
                "swapped_steps": len(swaps),
                "original_batch_hashes_sha256": hash_list(
                    [r["original_batch_hash"] for r in records if "original_batch_hash" in r]
                ),
                **{k: v for k, v in records[0].items() if k in replay_keys},
            }
        )
        write_json(self.run_dir / "done.json", done)
        return done


def _check_variant(suite: Suite, variant: str, model: str) -> None:
    """One-line errors for a variant the suite lacks, an empty window, or a model without it."""
    spec = run_spec(suite, variant)
    window(suite, variant)
    if model not in spec.models:
        raise UsageError(
            f"suite {suite.name!r} has no intervened run {variant!r} of model {model!r}; its "
            f"models: {', '.join(spec.models)} (intervention.runs.{variant}.models)"
        )


def train_intervention(
    opts: TrainOptions, variant: str, ctx: DistContext | None = None
) -> dict[str, Any]:
    """Train one intervened run (``opts``: :class:`pythia.train.loop.TrainOptions` of the baseline's
    model; the dataset is the suite's ``intervention.dataset``); returns the summary
    (``done.json`` at the end). Holds the run's lock."""
    suite = (
        opts.suite
        if isinstance(opts.suite, Suite)
        else load_suite(opts.suite, opts.overrides or None)
    )
    opts.suite = suite
    opts.dataset = suite.intervention.dataset
    _check_variant(suite, variant, opts.model)
    trainer = InterventionTrainer(opts, variant, ctx)
    main = trainer.ctx.is_main
    with locks.exclusive(trainer.run_dir, LOCK_HOLDER) if main else nullcontext():
        return trainer.run()
