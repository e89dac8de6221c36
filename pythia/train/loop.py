"""The trainer: one model of a suite on its pre-shuffled data, batch s at step s.

    for s in start .. train_iters - 1:
        tokens = get_batch(suite, dataset, s)              # (global_batch, seq_len + 1)
        rows   = this rank's share, cut into micro batches
        loss   = mean cross-entropy of tokens[:, 1:] given tokens[:, :-1]   (summed over
                 micro batches with weight 1/accum, averaged over ranks by DDP: the result
                 is the loss of the whole global batch)
        clip the gradient norm to grad_clip; AdamW update at lr = lr_at(s - k)  (schedule.py;
                 k = updates fp16's loss scaler skipped so far, 0 in bf16/fp32: precision.py)
        -> the weights are now checkpoint "step{s+1}" (Pythia: step N = after N updates)

Every record of ``train_log.jsonl`` describes the weights after ``step`` updates:
``{"step": N, "batch": N - 1, "batch_hash": batch_hash(get_batch(..., N - 1)), "loss": the
training loss of that batch (computed with the step N-1 weights), "lr", "grad_norm",
"skipped": whether fp16's loss scaler skipped this update, "skipped_steps": how many it skipped
up to and including it, "tokens_seen": N x tokens per step, "tokens_per_s", "val_loss"
(checkpoint steps only), "precision" (runs not in fp32 only: ``bf16`` / ``fp16``; CPU bf16 is
``training.cpu_precision``)}``; the first record (step 0) holds the initial weights' validation
loss.

Exact resume: the state of step K holds the weights (fp32: DeepSpeed's master copy), AdamW
moments and step counts, the loss scaler, the skipped-step count, the RNG states and the step;
the data order is a pure function of the step, so a resumed run replays the same arithmetic. On
CPU (deterministic algorithms, the same thread count) its final weights are bit-identical to an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from pythia import locks, paths
from pythia.config import Precision, Suite, load_suite
from pythia.errors import require_device
from pythia.io import sha256_file, write_json
from pythia.train import checkpoint as ckpt
from pythia.train.deepspeed_config import micro_and_accum
from pythia.train.distributed import DistContext, all_mean, barrier, init_distributed, rank_batch
from pythia.train.engine import build_engine, set_determinism, set_seeds, set_threads
from pythia.train.loss import lm_loss
from pythia.train.precision import scaler_step
from pythia.train.rundir import (
    LOG_NAME,
    append_record,
    claim,
    hash_list,
    read_log,
    resume_from,
    truncate_log,
)
from pythia.train.schedule import suite_lr
from pythia.train.seeds import batches_for, seed_fields
from pythia.train.state import load_training_state, save_training_state

log = logging.getLogger("pythia.train")


@dataclass
class TrainOptions:
    """What ``pythia train`` was asked to do (nothing here changes the trained weights)."""

    suite: str | Path | Suite
    model: str
    dataset: str = "standard"
    out: Path | None = None
    resume: bool = False
    replace_stale: bool = False
    max_steps: int | None = None
    threads: int | None = None
    device: str = "cpu"
    deepspeed: bool = False
    state_every: int | None = None
    progress: bool | None = None
    log_every: int | None = None
    overrides: dict = field(default_factory=dict)
    seed: int = 0
    """A seed run (the suite's ``seeds`` key): seed N >= 1; 0 is the baseline."""
    vary: str = "both"
    """What the seed changes: ``both``, ``data`` or ``weight`` (:data:`pythia.paths.SEED_VARIES`)."""


class Trainer:
    """One run: its settings, run directory and engine (:mod:`pythia.train.engine`);
    :meth:`train_step` is one update, :meth:`run` the whole loop."""

    def __init__(self, opts: TrainOptions, ctx: DistContext | None = None):
        self.opts = opts
        suite = opts.suite
        if not isinstance(suite, Suite):
            suite = load_suite(suite, opts.overrides or None)
        self.suite = suite
        self.spec = suite.model(opts.model)
        self.dataset = paths.check_dataset(opts.dataset)
        self.run_name = (
            paths.seed_run_name(self.dataset, opts.seed, opts.vary) if opts.seed else self.dataset
        )
        self.seeds = suite.run_seeds(self.run_name)
        self.training = t = suite.training
        self.device = require_device(opts.device)
        set_threads(opts.threads)
        set_determinism(self.device)
        set_seeds(self.seeds.init_seed)
        self.ctx = ctx if ctx is not None else init_distributed(self.device, force=opts.deepspeed)
        if self.device.startswith("cuda"):
            self.device = f"cuda:{self.ctx.local_rank}"
        self.run_dir = (
            Path(opts.out) if opts.out else paths.run_dir(suite.name, self.run_name, opts.model)
        )
        self.run_digest = ckpt.run_digest(suite, self.spec.name, self.dataset, self.seeds)
        self.tokenizer_dir = paths.data_dir(suite.name) / "tokenizer"
        self.micro, self.accum = micro_and_accum(suite, self.ctx.world_size)
        self.end = t.train_iters if opts.max_steps is None else min(t.train_iters, opts.max_steps)
        self.ckpt_steps = set(suite.checkpoint_steps())
        self.state_steps = set(suite.state_steps())
        if opts.state_every:
            self.state_steps.update(range(opts.state_every, t.train_iters + 1, opts.state_every))
        self.engine = build_engine(
            suite,
            self.spec,
            self.dataset,
            self.device,
            self.ctx,
            use_deepspeed=opts.deepspeed,
            seed=self.seeds.init_seed,
        )
        # updates the fp16 loss scaler skipped; the LR schedule lags by this many
        self.skipped_steps = 0
        # the data (a seed run's own order, a run variant's changed batches read through this too)
        self.batches: Any = batches_for(suite, self.seeds)
        self.step = 0
        self.last: dict[str, Any] = {}

    @property
    def model(self) -> PreTrainedModel:
        """The GPT-NeoX model being trained (the engine's)."""
        return self.engine.model

    @property
    def precision(self) -> Precision:
        return self.engine.precision

    def run_record(self) -> dict:
        return ckpt.run_record(self.suite.name, self.run_digest, self.spec.name, self.dataset)

    def _identity(self) -> dict[str, Any]:
        """Which suite, model and dataset: the fields every file of the run records."""
        return {
            "suite": self.suite.name,
            "suite_digest": self.suite.digest,
            "model": self.spec.name,
            "dataset": self.dataset,
            **seed_fields(self.run_name, self.seeds),
        }

    # ------------------------------------------------------------------ one step
    def lr(self, step: int) -> float:
        """LR of the update on batch ``step``: the schedule held back by the skipped steps so far."""
        return suite_lr(self.suite, self.spec, step - self.skipped_steps)

    def load_batch(self, step: int) -> tuple[np.ndarray, dict[str, Any]]:
        """The batch trained on at ``step`` and extra fields for its log record: ``get_batch``'s
        batch and nothing here; a run variant changes the batch (pythia.train.intervention) and says how."""
        return self.batches.get_batch(self.suite, self.dataset, step), {}

    def train_step(self, step: int, batch: np.ndarray | None = None) -> dict[str, Any]:
        """One optimizer update on batch ``step``; returns loss, lr, grad norm (this rank's view)
        and whether the fp16 loss scaler skipped it (then the schedule does not advance)."""
        lr = self.lr(step)
        self.engine.set_lr(lr)
        if batch is None:
            batch = self.batches.get_batch(self.suite, self.dataset, step)
        rows = rank_batch(batch, self.ctx)
        tokens = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64)).to(
            self.device, non_blocking=True
        )
        with self.engine.attention_kernels():
            if self.engine.deepspeed is not None:
                loss_value, grad_norm, applied = self._update_deepspeed(tokens)
            else:
                loss_value, grad_norm, applied = self._update(tokens)
        if not applied:
            self.skipped_steps += 1
        return {
            "loss": loss_value,
            "lr": lr,
            "grad_norm": grad_norm,
            "skipped": not applied,
            "skipped_steps": self.skipped_steps,
        }

    def _update(self, tokens: torch.Tensor) -> tuple[float, float, bool]:
        """Forward, backward (micro batches accumulated; DDP syncs on the last) and the clipped
        AdamW step on this rank's rows: (mean loss, grad norm, whether the update was applied)."""
        e = self.engine
        e.begin_step()
        total = torch.zeros((), dtype=torch.float32, device=self.device)
        for i in range(self.accum):
            last = i == self.accum - 1
            ddp = self.ctx.world_size > 1  # then e.net is the DistributedDataParallel wrapper
            sync = cast(DDP, e.net).no_sync() if (ddp and not last) else nullcontext()
            with sync:
                with e.autocast():
                    loss = lm_loss(e.net, tokens[i * self.micro : (i + 1) * self.micro])
                scaled = loss / self.accum if self.accum > 1 else loss
                e.scaler.scale(scaled).backward()
            e.end_backward()
            total += loss.detach()
        e.scaler.unscale_(e.optimizer)
        grad_norm = float(
            torch.nn.utils.clip_grad_norm_(
                e.model.parameters(), self.training.grad_clip, foreach=True
            )
        )
        applied = scaler_step(e.scaler, e.optimizer)
        e.optimizer.zero_grad(set_to_none=True)
        return float(total) / self.accum, grad_norm, applied

    def _update_deepspeed(self, tokens: torch.Tensor) -> tuple[float, float, bool]:
        """:meth:`_update` through the DeepSpeed engine (it accumulates, clips and scales)."""
        e = self.engine
        total = torch.zeros((), dtype=torch.float32, device=self.device)
        for i in range(self.accum):
            with e.autocast():
                loss = lm_loss(e.deepspeed, tokens[i * self.micro : (i + 1) * self.micro])
            e.deepspeed.backward(loss)
            e.deepspeed.step()
            total += loss.detach()
        grad_norm = e.deepspeed.get_global_grad_norm()
        grad_norm = float(grad_norm) if grad_norm is not None else float("nan")
        return float(total) / self.accum, grad_norm, e.deepspeed.was_step_applied()

    @cached_property
    def validation_tokens(self) -> np.ndarray:
        """The held-out sequences scored at every checkpoint, read once per run."""
        return self.batches.validation_sequences(self.suite, self.training.val_sequences)

    @torch.no_grad()
    def validate(self) -> float:
        """Mean loss over the suite's ``val_sequences`` held-out sequences (every token weighted equally)."""
        seqs = self.validation_tokens
        self.engine.begin_step()
        total, count = 0.0, 0
        for i in range(0, len(seqs), self.micro):
            chunk = torch.from_numpy(
                np.ascontiguousarray(seqs[i : i + self.micro], dtype=np.int64)
            ).to(self.device)
            with self.engine.autocast(), self.engine.attention_kernels():
                loss = lm_loss(self.engine.loss_model, chunk)
            n = chunk.shape[0] * (chunk.shape[1] - 1)
            total += float(loss) * n
            count += n
        return total / max(count, 1)

    # ------------------------------------------------------------------ saving and resuming
    def save_checkpoint(self, step: int, record: dict) -> None:
        extra = {
            "step": step,
            **self._identity(),
            "tokens_seen": step * self.training.tokens_per_step,
        }
        if "val_loss" in record:
            extra["val_loss"] = record["val_loss"]
        ckpt.save_model_checkpoint(
            self.model, ckpt.model_dir(self.run_dir, step), self.tokenizer_dir, extra
        )

    def save_state(self, step: int) -> None:
        """The training state after ``step`` updates (every rank takes part: ZeRO gathers)."""
        meta = {
            "step": step,
            "tokens_seen": step * self.training.tokens_per_step,
            "next_batch": step,
            "lr_next": self.lr(step),
            "skipped_steps": self.skipped_steps,
            **self._identity(),
            "run_digest": self.run_digest,
            "world_size": self.ctx.world_size,
            "schedule": {
                "peak_lr": self.spec.peak_lr,
                "min_lr": self.spec.min_lr,
                "warmup_iters": self.training.warmup_iters,
                "train_iters": self.training.train_iters,
            },
        }
        save_training_state(
            ckpt.state_dir(self.run_dir, step), self.engine, meta, is_main=self.ctx.is_main
        )

    def load_state(self, path: Path, previous: Path | None) -> int:
        """Continue from the state directory ``path``; returns its step."""
        meta = load_training_state(path, previous, self.engine, self.run_digest)
        self.skipped_steps = int(meta.get("skipped_steps", 0))
        return int(meta["step"])

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_NAME

    def _truncate_log(self, keep_upto: int) -> None:
        truncate_log(self.log_path, keep_upto)

    def _prepare_run_dir(self) -> int:
        """Check/claim the run dir; load the latest state on --resume. Returns the start step."""
        claim(self.run_dir, self.run_record(), self.ctx, replace_stale=self.opts.replace_stale)
        latest, previous = resume_from(self.run_dir, self.opts.resume)
        start = 0
        if latest is not None:
            start = self.load_state(latest, previous)
            log.info("resumed %s from %s (step %d)", self.run_dir, latest, start)
        if self.ctx.is_main:
            self._truncate_log(start if latest is not None else -1)
        barrier(self.ctx)
        return start

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        """Train from the start (or the resumed step) to ``train_iters`` (or ``--max-steps``)."""
        start = self._prepare_run_dir()
        self.step = start
        with contextlib.ExitStack() as stack:
            log_file = stack.enter_context(open(self.log_path, "a")) if self.ctx.is_main else None
            if start == 0 and log_file is not None:
                self._log_initial_weights(log_file)
            barrier(self.ctx)
            bar = self._progress(start)
            for s in range(start, self.end):
                self._train_on(s, log_file, bar)
            if bar is not None:
                bar.close()
        summary = {"step": self.step, "finished": self.step >= self.training.train_iters}
        if self.ctx.is_main and self.step >= self.training.train_iters:
            summary.update(self.write_done())
        barrier(self.ctx)
        return summary

    def _log_initial_weights(self, log_file: IO[str]) -> None:
        """Step 0's record (and checkpoint, when step 0 is one): the initial weights."""
        rec: dict[str, Any] = {"step": 0, "tokens_seen": 0}
        if 0 in self.ckpt_steps:
            rec["val_loss"] = self.validate()
            self.save_checkpoint(0, rec)
        append_record(log_file, rec)

    def _train_on(self, s: int, log_file: IO[str] | None, bar: tqdm | None) -> None:
        """The update on batch ``s``, then what the weights of step s + 1 get: a log record and,
        at the suite's steps, a validation loss, a checkpoint and a training state."""
        t0 = time.perf_counter()
        batch, extra = self.load_batch(s)
        out = self.train_step(s, batch)
        dt = time.perf_counter() - t0
        n = s + 1
        out["loss"] = all_mean(out["loss"], self.ctx, self.device)  # nccl reduces CUDA tensors only
        self.step = n
        if log_file is not None:  # the main rank
            rec = {
                "step": n,
                "batch": s,
                "batch_hash": self.batches.batch_hash(batch),
                "tokens_seen": n * self.training.tokens_per_step,
                "tokens_per_s": self.training.tokens_per_step / dt,
                **out,
                **extra,
            }
            if self.precision is not Precision.fp32:
                rec["precision"] = self.precision.value
            if n in self.ckpt_steps:
                rec["val_loss"] = self.validate()
            append_record(log_file, rec)
            if n in self.ckpt_steps:
                self.save_checkpoint(n, rec)
            self.last = rec
            self._report(rec, bar)
        if n in self.state_steps or (n == self.end and n < self.training.train_iters):
            self.save_state(n)
            barrier(self.ctx)

    def _report(self, rec: dict[str, Any], bar: tqdm | None) -> None:
        """Progress bar, and a log line every ``log_every`` steps, at checkpoints and at the end."""
        n = rec["step"]
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}")
        log_every = self.opts.log_every or max(1, self.training.train_iters // 20)
        if n % log_every == 0 or n in self.ckpt_steps or n == self.end:
            val = f" val_loss {rec['val_loss']:.4f}" if "val_loss" in rec else ""
            if rec["skipped_steps"]:
                val += f" (fp16 overflow: {rec['skipped_steps']} steps skipped so far)"
            log.info(
                "step %d/%d loss %.4f lr %.3g grad_norm %.3f %.0f tok/s%s",
                n,
                self.training.train_iters,
                rec["loss"],
                rec["lr"],
                rec["grad_norm"],
                rec["tokens_per_s"],
                val,
            )

    def _progress(self, start: int) -> tqdm | None:
        if not self.ctx.is_main:
            return None
        show = self.opts.progress if self.opts.progress is not None else sys.stderr.isatty()
        if not show:
            return None
        return tqdm(
            total=self.end,
            initial=start,
            desc=f"{self.suite.name}/{self.dataset}/{self.spec.name}",
            unit="step",
            dynamic_ncols=True,
        )

    def write_done(self) -> dict[str, Any]:
        """``done.json``: final loss, validation loss and the hashes of the final weights and log."""
        final = ckpt.model_dir(self.run_dir, self.training.train_iters)
        weights = final / "model.safetensors"
        records = read_log(self.log_path)
        last = records[-1] if records else {}
        done = {
            **self._identity(),
            "run_digest": self.run_digest,
            "steps": self.training.train_iters,
            "tokens_seen": self.training.train_iters * self.training.tokens_per_step,
            "final_loss": last.get("loss"),
            "final_val_loss": last.get("val_loss"),
            "final_checkpoint": str(final),
            "final_weights_sha256": sha256_file(weights) if weights.exists() else None,
            "train_log_sha256": sha256_file(self.log_path),
            "batch_hashes_sha256": hash_list(
                [r.get("batch_hash", "") for r in records if "batch_hash" in r]
            ),
            "checkpoints": sorted(ckpt.saved_steps(self.run_dir)),
            "world_size": self.ctx.world_size,
            "deepspeed": self.engine.deepspeed is not None,
        }
        write_json(self.run_dir / "done.json", done)
        return done


def train(opts: TrainOptions, ctx: DistContext | None = None) -> dict[str, Any]:
    """Train one model (see :class:`Trainer`); returns a summary (done.json's content at the end).

    The main rank holds the run directory's write lock (:mod:`pythia.locks`) while it trains:
    a second ``pythia train`` into the same directory stops, naming this process; the lock
    dies with the process, so a killed run resumes at once.
    """
    trainer = Trainer(opts, ctx)
    with locks.exclusive(trainer.run_dir, "pythia train") if trainer.ctx.is_main else nullcontext():
        return trainer.run()
