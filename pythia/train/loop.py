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
(checkpoint steps only)}``; the first record (step 0) holds the initial weights' validation loss.

Exact resume: the state of step K holds the weights (fp32: DeepSpeed's master copy), AdamW
moments and step counts, the loss scaler, the skipped-step count, the RNG states and the step;
the data order is a pure function of the step, so a resumed run replays the same arithmetic. On
CPU (deterministic algorithms, the same thread count) its final weights are bit-identical to an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pythia import locks, paths
from pythia.config import Precision, Suite, load_suite
from pythia.errors import require_device
from pythia.io import sha256_file, write_json
from pythia.model import attention_backend, build_model, sdpa_flash_first
from pythia.train import checkpoint as ckpt
from pythia.train.deepspeed_config import micro_and_accum
from pythia.train.distributed import (
    DistContext,
    all_mean,
    barrier,
    init_distributed,
    rank_batch,
    wrap_ddp,
)
from pythia.train.optim import build_optimizer, param_names
from pythia.train.precision import (
    autocast_dtype,
    deepspeed_scaler_state,
    grad_scaler,
    load_deepspeed_scaler_state,
    scaler_step,
    training_precision,
)
from pythia.train.schedule import suite_lr

log = logging.getLogger("pythia.train")


def data_api():
    """``pythia.data.batches`` (get_batch, batch_hash, validation_sequences)."""
    from pythia.data import batches

    return batches


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


def set_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_determinism(device: str) -> None:
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new uninitialised tensor with NaN (so that reading
    # garbage is reproducible). Our ops overwrite what they allocate; the fills cost ~15% of a
    # CPU step (thousands of torch.empty per step) and change no result.
    torch.utils.deterministic.fill_uninitialized_memory = False


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # already set in this process
            torch.set_num_interop_threads(1)


def lm_loss(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``tokens`` (b, L+1): inputs [:, :-1], labels [:, 1:].

    ``model`` is a :class:`CausalLMLoss` (or a DDP / DeepSpeed wrapper of one), which returns
    the loss itself, or a plain ``GPTNeoXForCausalLM`` (logits, then cross-entropy).
    """
    inner = getattr(model, "module", model)
    if isinstance(inner, CausalLMLoss):
        return model(tokens)
    logits = model(input_ids=tokens[:, :-1], use_cache=False).logits  # (b, L, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1))


class LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``h @ w.T`` against ``labels``, computed in row chunks.

    The output layer and the loss are one step: for each chunk of rows the logits (c, V) are
    formed, their log-sum-exp taken, and -- the loss being the graph's end -- the gradient
    ``(softmax - onehot) / n`` turned at once into the chunk's ``grad_h`` rows and added into
    ``grad_w``. The (n, V) logits never exist at once (64 MB per micro batch of the micro
    suite's 1.8M model), so everything stays in cache: on 2 CPU cores the output layer + loss
    takes ~115 ms instead of ~215 ms (n = 4096, d = 128, V = 4096). Same flops, same math as
    ``F.cross_entropy(h @ w.T, labels)`` (gradients agree to ~1e-9). The model itself is
    transformers' GPTNeoXForCausalLM, untouched; only where its logits meet the loss changes.
    """

    @staticmethod
    def forward(
        ctx, h: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, chunk: int
    ) -> torch.Tensor:
        n = h.shape[0]
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if need_grad else None
        grad_w = torch.zeros_like(w) if need_grad else None
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        inv = 1.0 / n
        for i in range(0, n, chunk):
            hc = h[i : i + chunk]  # (c, d)
            lc = labels[i : i + chunk, None]  # (c, 1)
            logits = hc @ w.t()  # (c, V)
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)  # (c, 1)
            target = logits.gather(1, lc)  # (c, 1)
            total += (lse.sum() - target.sum()).double()
            if need_grad:
                probs = logits.sub_(lse).exp_()  # softmax, in place
                probs.scatter_(1, lc, probs.gather(1, lc) - 1.0)
                probs.mul_(inv)
                torch.mm(probs, w, out=grad_h[i : i + chunk])
                grad_w.addmm_(probs.t(), hc)
        if need_grad:
            ctx.save_for_backward(grad_h, grad_w)
        return (total * inv).to(h.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_out, grad_w * grad_out, None, None


class CausalLMLoss(torch.nn.Module):
    """A GPTNeoXForCausalLM with its loss: ``forward(tokens (b, L+1)) -> mean loss``.

    ``fused`` (CPU default) computes the output layer and the loss with
    :class:`LinearCrossEntropy`; otherwise logits then ``F.cross_entropy`` (GPU default:
    one big matmul suits a GPU). DDP and DeepSpeed wrap this module, so every parameter,
    the output layer's included, takes part in their gradient synchronisation.
    """

    def __init__(self, model: torch.nn.Module, fused: bool = True, chunk: int | None = None):
        super().__init__()
        self.model = model
        self.fused = fused
        vocab = model.get_output_embeddings().weight.shape[0]
        self.chunk = chunk or int(
            min(1024, max(32, 2**19 // vocab))
        )  # ~2 MB of fp32 logits per chunk

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        inputs, labels = tokens[:, :-1].contiguous(), tokens[:, 1:]
        head = self.model.get_output_embeddings()
        if not self.fused or head.bias is not None:
            logits = self.model(input_ids=inputs, use_cache=False).logits  # (b, L, V)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
        hidden = self.model.base_model(
            input_ids=inputs, use_cache=False
        ).last_hidden_state  # (b, L, d)
        return LinearCrossEntropy.apply(
            hidden.reshape(-1, hidden.shape[-1]), head.weight, labels.reshape(-1), self.chunk
        )


class Trainer:
    """Builds the model, optimizer, data access and run directory; :meth:`run` trains."""

    def __init__(self, opts: TrainOptions, ctx: DistContext | None = None):
        self.opts = opts
        suite = opts.suite
        if not isinstance(suite, Suite):
            suite = load_suite(suite, opts.overrides or None)
        self.suite = suite
        self.spec = suite.model(opts.model)
        self.dataset = paths.check_dataset(opts.dataset)
        self.device = opts.device
        require_device(self.device)
        t = suite.training
        self.training = t
        set_threads(opts.threads)
        set_determinism(self.device)
        set_seeds(t.seed)
        if ctx is None:
            ctx = init_distributed(self.device, force=opts.deepspeed)
        self.ctx = ctx
        if self.device.startswith("cuda"):
            self.device = f"cuda:{ctx.local_rank}"
        self.run_dir = (
            Path(opts.out)
            if opts.out
            else paths.run_dir(suite.name, paths.run_name(opts.dataset), opts.model)
        )
        self.run_digest = ckpt.run_digest(suite, self.spec.name, self.dataset)
        self.tokenizer_dir = paths.data_dir(suite.name) / "tokenizer"
        self.micro, self.accum = micro_and_accum(suite, ctx.world_size)
        self.end = t.train_iters if opts.max_steps is None else min(t.train_iters, opts.max_steps)
        self.ckpt_steps = set(suite.checkpoint_steps())
        state_steps = set(suite.state_steps())
        if opts.state_every:
            state_steps.update(range(opts.state_every, t.train_iters + 1, opts.state_every))
        self.state_steps = state_steps

        # precision: CPU fp32; CUDA the model's precision on this dataset (precision.py): autocast
        # (fp16 with torch's loss scaler) in the plain loop, DeepSpeed's own bf16/fp16 with --deepspeed
        gpu = self.device.startswith("cuda")
        self.precision = training_precision(self.spec, self.dataset, self.device)
        compute_dtype = autocast_dtype(self.precision)
        self.amp_dtype = None if opts.deepspeed else compute_dtype
        self.model = build_model(
            suite,
            self.spec,
            seed=t.seed,
            device=self.device,
            attn_implementation=attention_backend(compute_dtype) if gpu else "sdpa",
        )
        self.model.train()
        self.optimizer = build_optimizer(self.model, t)
        self.names = param_names(self.optimizer)
        self.scaler = grad_scaler(
            self.precision if not opts.deepspeed else Precision.fp32, self.device
        )
        self.skipped_steps = (
            0  # updates the fp16 loss scaler skipped; the LR schedule lags by this many
        )
        self.engine = None
        self.loss_model = CausalLMLoss(self.model, fused=not gpu)
        self.net: torch.nn.Module = self.loss_model
        if opts.deepspeed:
            self._init_deepspeed()
        else:
            self.net = wrap_ddp(self.loss_model, ctx, self.device)
        self.batches = data_api()
        self.step = 0
        self.last: dict[str, Any] = {}

    # ------------------------------------------------------------------ set-up
    def _init_deepspeed(self) -> None:
        import deepspeed

        from pythia.train.deepspeed_config import deepspeed_config

        if not self.device.startswith("cuda"):
            # DeepSpeed's CPU backend JIT-compiles a shared-memory all-reduce op (minutes of
            # C++ compilation) used only for inference all-reduce; ZeRO training goes through
            # torch.distributed (gloo) either way, so skip the build. (The module is taken from
            # importlib: ``import deepspeed.comm.torch as m`` binds the torch package itself,
            # which ``deepspeed.comm`` re-exports under that name.)
            import importlib

            importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
        cfg = deepspeed_config(
            self.suite, self.spec, self.ctx.world_size, self.device, self.dataset
        )
        self.ds_config = cfg
        engine, optimizer, _, _ = deepspeed.initialize(
            model=self.loss_model, optimizer=self.optimizer, config=cfg
        )
        self.engine = engine
        self.ds_optimizer = optimizer
        self.net = engine

    @property
    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.split(":")[0], dtype=self.amp_dtype)

    @property
    def attention_kernels(self):
        """On CUDA, SDPA's flash kernel first (Pythia trained with Flash Attention); CPU as torch picks."""
        return sdpa_flash_first() if self.device.startswith("cuda") else nullcontext()

    def run_record(self) -> dict:
        return ckpt.run_record(self.suite.name, self.run_digest, self.spec.name, self.dataset)

    # ------------------------------------------------------------------ one step
    def set_lr(self, lr: float) -> None:
        groups = (
            self.ds_optimizer.param_groups
            if self.engine is not None
            else self.optimizer.param_groups
        )
        for g in groups:
            g["lr"] = lr

    def lr(self, step: int) -> float:
        """LR of the update on batch ``step``: the schedule held back by the skipped steps so far."""
        return suite_lr(self.suite, self.spec, step - self.skipped_steps)

    def load_batch(self, step: int) -> tuple[np.ndarray, dict[str, Any]]:
        """The batch trained on at ``step`` and extra fields for its log record: ``get_batch``'s
        batch and nothing here; a run variant changes the batch (pythia.intervene) and says how."""
        return self.batches.get_batch(self.suite, self.dataset, step), {}

    def train_step(self, step: int, batch: np.ndarray | None = None) -> dict[str, Any]:
        """One optimizer update on batch ``step``; returns loss, lr, grad norm (this rank's view)
        and whether the fp16 loss scaler skipped it (then the schedule does not advance)."""
        lr = self.lr(step)
        self.set_lr(lr)
        if batch is None:
            batch = self.batches.get_batch(self.suite, self.dataset, step)
        rows = rank_batch(batch, self.ctx)
        tokens = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64)).to(
            self.device, non_blocking=True
        )
        with self.attention_kernels:
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
        """Forward, backward and optimizer step on this rank's rows: (loss, grad norm, applied)."""
        total = torch.zeros((), dtype=torch.float32, device=self.device)
        if self.engine is not None:
            for i in range(self.accum):
                with self.autocast:
                    loss = lm_loss(self.engine, tokens[i * self.micro : (i + 1) * self.micro])
                self.engine.backward(loss)
                self.engine.step()
                total += loss.detach()
            grad_norm = self.engine.get_global_grad_norm()
            grad_norm = float(grad_norm) if grad_norm is not None else float("nan")
            applied = self.engine.was_step_applied()
        else:
            for i in range(self.accum):
                last = i == self.accum - 1
                sync = (
                    self.net.no_sync() if (self.ctx.world_size > 1 and not last) else nullcontext()
                )
                with sync:
                    with self.autocast:
                        loss = lm_loss(self.net, tokens[i * self.micro : (i + 1) * self.micro])
                    scaled = loss / self.accum if self.accum > 1 else loss
                    self.scaler.scale(scaled).backward()
                total += loss.detach()
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(
                    self.model.parameters(), self.training.grad_clip, foreach=True
                )
            )
            applied = scaler_step(self.scaler, self.optimizer)
            self.optimizer.zero_grad(set_to_none=True)
        return float(total) / self.accum, grad_norm, applied

    @cached_property
    def validation_tokens(self) -> np.ndarray:
        """The held-out sequences scored at every checkpoint, read once per run."""
        return self.batches.validation_sequences(self.suite, self.training.val_sequences)

    @torch.no_grad()
    def validate(self) -> float:
        """Mean loss over the suite's ``val_sequences`` held-out sequences (every token weighted equally)."""
        seqs = self.validation_tokens
        model = self.loss_model
        total, count = 0.0, 0
        for i in range(0, len(seqs), self.micro):
            chunk = torch.from_numpy(
                np.ascontiguousarray(seqs[i : i + self.micro], dtype=np.int64)
            ).to(self.device)
            with self.autocast, self.attention_kernels:
                loss = lm_loss(model, chunk)
            n = chunk.shape[0] * (chunk.shape[1] - 1)
            total += float(loss) * n
            count += n
        return total / max(count, 1)

    # ------------------------------------------------------------------ saving
    def model_tensors(self) -> dict[str, torch.Tensor]:
        """The weights a resumed run continues from: the model's, except under DeepSpeed bf16/fp16,
        where the module holds 16-bit copies and ZeRO the fp32 master weights the update uses."""
        tensors = dict(self.model.state_dict())
        if self.engine is None or self.precision is Precision.fp32:
            return tensors
        from deepspeed.utils import safe_get_full_fp32_param

        for name, param in self.model.named_parameters():
            master = safe_get_full_fp32_param(param)
            if master is not None:
                tensors[name] = master.detach()
        return tensors

    def optimizer_state(self) -> tuple[dict[str, torch.Tensor], list[dict]]:
        if self.engine is None:
            return ckpt.optimizer_tensors(self.optimizer, self.names)
        from deepspeed.utils import safe_get_full_optimizer_state

        tensors: dict[str, torch.Tensor] = {}
        named = dict(self.model.named_parameters())
        base = self.ds_optimizer.optimizer
        self._relink_deepspeed_state()
        steps = [s["step"] for s in base.state.values() if "step" in s]
        for name in self.names:
            for key in ("exp_avg", "exp_avg_sq"):
                val = safe_get_full_optimizer_state(named[name], key)
                if val is not None:
                    tensors[f"{name}.{key}"] = val.detach().float().cpu().contiguous()
            if steps:
                tensors[f"{name}.step"] = (
                    torch.as_tensor(steps[0]).detach().cpu().reshape(()).clone()
                )
        groups = [
            {k: v for k, v in g.items() if k != "params"}
            for g in self.optimizer.state_dict()["param_groups"]
        ]
        return tensors, groups

    def save_checkpoint(self, step: int, record: dict) -> None:
        extra = {
            "step": step,
            "suite": self.suite.name,
            "suite_digest": self.suite.digest,
            "model": self.spec.name,
            "dataset": self.dataset,
            "tokens_seen": step * self.training.tokens_per_step,
        }
        if "val_loss" in record:
            extra["val_loss"] = record["val_loss"]
        ckpt.save_model_checkpoint(
            self.model, ckpt.model_dir(self.run_dir, step), self.tokenizer_dir, extra
        )

    def save_state(self, step: int) -> None:
        # every rank takes part: gathering ZeRO-partitioned moments and master weights is collective
        optim_tensors, groups = self.optimizer_state()
        model_tensors = self.model_tensors()
        if not self.ctx.is_main:
            return
        rng_tensors, rng_meta = ckpt.rng_state((self.device.split(":")[0],))
        meta = {
            "step": step,
            "tokens_seen": step * self.training.tokens_per_step,
            "next_batch": step,
            "lr_next": self.lr(step),
            "skipped_steps": self.skipped_steps,
            "precision": self.precision.value,
            "suite": self.suite.name,
            "suite_digest": self.suite.digest,
            "run_digest": self.run_digest,
            "model": self.spec.name,
            "dataset": self.dataset,
            "world_size": self.ctx.world_size,
            "deepspeed": self.engine is not None,
            "optimizer_param_groups": groups,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "deepspeed_loss_scaler": deepspeed_scaler_state(self.ds_optimizer)
            if self.engine is not None
            else None,
            "schedule": {
                "peak_lr": self.spec.peak_lr,
                "min_lr": self.spec.min_lr,
                "warmup_iters": self.training.warmup_iters,
                "train_iters": self.training.train_iters,
            },
            "rng": rng_meta,
        }
        ckpt.save_state(
            ckpt.state_dir(self.run_dir, step),
            model_tensors=model_tensors,
            optim_tensors=optim_tensors,
            rng_tensors=rng_tensors,
            meta=meta,
        )

    def load_state(self, path: Path, previous: Path | None) -> int:
        st = ckpt.load_state(path, previous)
        meta = st["meta"]
        if meta.get("run_digest") != self.run_digest:
            raise ckpt.CheckpointError(
                f"{path} was saved by a run with another configuration "
                f"(run digest {meta.get('run_digest')}, now {self.run_digest})"
            )
        try:
            self.model.load_state_dict(st["model"], strict=True)
        except RuntimeError as e:
            raise ckpt.CheckpointError(
                f"{path / 'model.safetensors'} does not fit this model: {e}"
            ) from None
        if self.engine is None:
            ckpt.load_optimizer_tensors(
                self.optimizer, self.names, st["optimizer"], meta["optimizer_param_groups"]
            )
        else:
            self._load_deepspeed_optimizer(st["optimizer"], st["model"])
            load_deepspeed_scaler_state(self.ds_optimizer, meta.get("deepspeed_loss_scaler"))
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        self.skipped_steps = int(meta.get("skipped_steps", 0))
        ckpt.set_rng_state(st["rng"], meta["rng"])
        return int(meta["step"])

    def _relink_deepspeed_state(self) -> None:
        """Point every parameter's ZeRO fragment at the optimizer moments.

        DeepSpeed links them once, right after stepping the first parameter group, when the
        moments of the other groups (here: the no-decay group) do not exist yet; linking
        again once all exist makes ``safe_get/set_full_optimizer_state`` see every parameter.
        """
        opt = self.ds_optimizer
        if hasattr(opt, "_lazy_init_hp_params_optimizer_state") and opt.optimizer.state:
            opt._hp_optimizer_states_linked = False
            opt._lazy_init_hp_params_optimizer_state()

    def _load_deepspeed_optimizer(
        self, tensors: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]
    ) -> None:
        from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

        base = self.ds_optimizer.optimizer
        named = dict(self.model.named_parameters())
        for (
            name
        ) in self.names:  # the fp32 master copy is the saved fp32 weights (not their 16-bit cast)
            safe_set_full_fp32_param(named[name], weights[name].to(self.device, torch.float32))
        if (
            not base.state
        ):  # moments are created lazily: a no-op update (lr 0, zero grads) makes them
            saved = [(g["lr"], g["weight_decay"]) for g in base.param_groups]
            for g in base.param_groups:
                g["lr"], g["weight_decay"] = 0.0, 0.0
                for p in g["params"]:
                    p.grad = torch.zeros_like(p)
            base.step()
            for g, (lr, wd) in zip(base.param_groups, saved):
                g["lr"], g["weight_decay"] = lr, wd
                for p in g["params"]:
                    p.grad = None
        self._relink_deepspeed_state()
        for name in self.names:
            for key in ("exp_avg", "exp_avg_sq"):
                if f"{name}.{key}" in tensors:
                    safe_set_full_optimizer_state(
                        named[name], tensors[f"{name}.{key}"].to(self.device), key
                    )
        step = next((v for k, v in tensors.items() if k.endswith(".step")), None)
        if step is not None:
            for s in base.state.values():
                if "step" in s:
                    s["step"].copy_(step) if torch.is_tensor(s["step"]) else s.__setitem__(
                        "step", float(step)
                    )

    # ------------------------------------------------------------------ log
    @property
    def log_path(self) -> Path:
        return self.run_dir / "train_log.jsonl"

    def _truncate_log(self, keep_upto: int) -> None:
        """Keep records with step <= keep_upto (resume replays the rest); atomic rewrite."""
        path = self.log_path
        kept: list[str] = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                if rec.get("step", -1) <= keep_upto:
                    kept.append(json.dumps(rec, sort_keys=True))
        from pythia.io import write_text

        write_text(path, "".join(k + "\n" for k in kept))

    # ------------------------------------------------------------------ run
    def _prepare_run_dir(self) -> int:
        """Check/claim the run dir; load the latest state on --resume. Returns the start step."""
        start = 0
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.check_run_dir(
                self.run_dir, self.run_record(), replace_stale=self.opts.replace_stale
            )
        barrier(self.ctx)  # every rank sees the run dir after a stale one was replaced
        latest, previous = ckpt.latest_state(self.run_dir)
        if not self.opts.resume:
            existing = ckpt.saved_steps(self.run_dir) or ckpt.saved_steps(self.run_dir / "state")
            if existing:
                raise ckpt.CheckpointError(
                    f"{self.run_dir} already holds checkpoints of this run (up to step {max(existing)}); "
                    "pass --resume to continue it, or delete the directory to start over"
                )
        elif latest is not None:
            start = self.load_state(latest, previous)
            log.info("resumed %s from %s (step %d)", self.run_dir, latest, start)
        if self.ctx.is_main:
            self._truncate_log(start if latest is not None and self.opts.resume else -1)
        barrier(self.ctx)
        return start

    def _log_every(self) -> int:
        return self.opts.log_every or max(1, self.training.train_iters // 20)

    def run(self) -> dict[str, Any]:
        """Train from the start (or the resumed step) to ``train_iters`` (or ``--max-steps``)."""
        start = self._prepare_run_dir()
        self.step = start
        main = self.ctx.is_main
        t = self.training
        logf = open(self.log_path, "a") if main else None
        try:
            if start == 0 and main:
                rec: dict[str, Any] = {"step": 0, "tokens_seen": 0}
                if 0 in self.ckpt_steps:
                    rec["val_loss"] = self.validate()
                    self.save_checkpoint(0, rec)
                logf.write(json.dumps(rec, sort_keys=True) + "\n")
                logf.flush()
            barrier(self.ctx)
            bar = self._progress(start)
            for s in range(start, self.end):
                t0 = time.perf_counter()
                batch, extra = self.load_batch(s)
                out = self.train_step(s, batch)
                dt = time.perf_counter() - t0
                n = s + 1
                out["loss"] = all_mean(
                    out["loss"], self.ctx, self.device
                )  # nccl reduces CUDA tensors only
                self.step = n
                if main:
                    rec = {
                        "step": n,
                        "batch": s,
                        "batch_hash": self.batches.batch_hash(batch),
                        "tokens_seen": n * t.tokens_per_step,
                        "tokens_per_s": t.tokens_per_step / dt,
                        **out,
                        **extra,
                    }
                    if n in self.ckpt_steps:
                        rec["val_loss"] = self.validate()
                    logf.write(json.dumps(rec, sort_keys=True) + "\n")
                    logf.flush()
                    if n in self.ckpt_steps:
                        self.save_checkpoint(n, rec)
                    self.last = rec
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(
                            loss=f"{out['loss']:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}"
                        )
                    if n % self._log_every() == 0 or n in self.ckpt_steps or n == self.end:
                        val = f" val_loss {rec['val_loss']:.4f}" if "val_loss" in rec else ""
                        if out["skipped_steps"]:
                            val += f" (fp16 overflow: {out['skipped_steps']} steps skipped so far)"
                        log.info(
                            "step %d/%d loss %.4f lr %.3g grad_norm %.3f %.0f tok/s%s",
                            n,
                            t.train_iters,
                            out["loss"],
                            out["lr"],
                            out["grad_norm"],
                            rec["tokens_per_s"],
                            val,
                        )
                if n in self.state_steps or (n == self.end and n < t.train_iters):
                    self.save_state(n)
                    barrier(self.ctx)
            if bar is not None:
                bar.close()
        finally:
            if logf is not None:
                logf.close()
        summary = {"step": self.step, "finished": self.step >= t.train_iters}
        if main and self.step >= t.train_iters:
            summary.update(self.write_done())
        barrier(self.ctx)
        return summary

    def _progress(self, start: int):
        if not self.ctx.is_main:
            return None
        show = self.opts.progress if self.opts.progress is not None else sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

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
        records = [json.loads(x) for x in self.log_path.read_text().splitlines() if x.strip()]
        last = records[-1] if records else {}
        done = {
            "suite": self.suite.name,
            "suite_digest": self.suite.digest,
            "run_digest": self.run_digest,
            "model": self.spec.name,
            "dataset": self.dataset,
            "steps": self.training.train_iters,
            "tokens_seen": self.training.train_iters * self.training.tokens_per_step,
            "final_loss": last.get("loss"),
            "final_val_loss": last.get("val_loss"),
            "final_checkpoint": str(final),
            "final_weights_sha256": sha256_file(final / "model.safetensors")
            if (final / "model.safetensors").exists()
            else None,
            "train_log_sha256": sha256_file(self.log_path),
            "batch_hashes_sha256": _hash_list(
                [r.get("batch_hash", "") for r in records if "batch_hash" in r]
            ),
            "checkpoints": sorted(ckpt.saved_steps(self.run_dir)),
            "world_size": self.ctx.world_size,
            "deepspeed": self.engine is not None,
        }
        write_json(self.run_dir / "done.json", done)
        return done


def _hash_list(items: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def train(opts: TrainOptions, ctx: DistContext | None = None) -> dict[str, Any]:
    """Train one model (see :class:`Trainer`); returns a summary (done.json's content at the end).

    The main rank holds the run directory's write lock (:mod:`pythia.locks`) while it trains:
    a second ``pythia train`` into the same directory stops, naming this process; the lock
    dies with the process, so a killed run resumes at once.
    """
    trainer = Trainer(opts, ctx)
    with locks.exclusive(trainer.run_dir, "pythia train") if trainer.ctx.is_main else nullcontext():
        return trainer.run()
