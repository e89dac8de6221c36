"""What a training step runs on, set up once per run: the process's torch settings, the model
in its training precision, the optimizer, torch's loss scaler, and the module the step calls.

    engine = build_engine(suite, spec, dataset, device, ctx, use_deepspeed=...)
    engine.net          the model with its loss (:class:`pythia.train.loss.CausalLMLoss`), as a
                        step calls it: itself, its DDP wrapper (several ranks), or a DeepSpeed engine
    engine.model        the GPTNeoXForCausalLM inside (the weights checkpoints save)

Precision (:mod:`pythia.train.precision`): CPU trains in the suite's ``training.cpu_precision``
(fp32 by default; bf16: a :class:`~pythia.train.precision.Bf16Shadow` copy of the model runs the
step, ``engine.model`` keeps the fp32 master weights, one process only); CUDA in the model's
precision on the run's dataset, through ``torch.autocast`` (fp16 with torch's loss scaler) in
the plain loop, or through DeepSpeed's own bf16/fp16 with ``--deepspeed`` (then no autocast, and
torch's scaler stays disabled: DeepSpeed scales the loss itself).

A step calls ``engine.begin_step()`` before its first forward and ``engine.end_backward()``
after each backward (both do nothing but on CPU bf16: cast the weights, collect the gradients).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import random
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedModel

from pythia.config import ModelSpec, Precision, Suite
from pythia.errors import UsageError
from pythia.model import attention_backend, build_model, sdpa_flash_first
from pythia.train.deepspeed_config import deepspeed_config
from pythia.train.distributed import DistContext, wrap_ddp
from pythia.train.loss import CausalLMLoss
from pythia.train.optim import build_optimizer, param_names
from pythia.train.precision import (
    Bf16Shadow,
    autocast_dtype,
    grad_scaler,
    training_precision,
)

# ---------------------------------------------------------------------- the process's settings


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
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]  # set on the module at import; torch's stubs do not declare it


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # already set in this process
            torch.set_num_interop_threads(1)


# ---------------------------------------------------------------------- the engine


@dataclass
class Engine:
    """The model, its optimizer and loss scaler, and the module a step calls, on one rank."""

    device: str
    precision: Precision
    amp_dtype: torch.dtype | None
    """The plain loop's autocast dtype; None: no autocast (fp32, or DeepSpeed casting itself)."""
    model: PreTrainedModel
    loss_model: CausalLMLoss
    net: torch.nn.Module
    """What a step calls: ``loss_model``, its DDP wrapper, or the DeepSpeed engine."""
    optimizer: torch.optim.Optimizer
    names: list[str]
    """Parameter names in the optimizer's order (the training state's keys)."""
    scaler: torch.amp.GradScaler
    """torch's fp16 loss scaler (enabled only in the plain loop's fp16)."""
    deepspeed: Any = None
    """The ``DeepSpeedEngine`` with ``--deepspeed`` (then it is ``net`` too), else None."""
    ds_optimizer: Any = None
    """DeepSpeed's wrapper of ``optimizer`` (ZeRO partitions, master weights, loss scaler)."""
    ds_config: dict[str, Any] | None = None
    shadow: Bf16Shadow | None = None
    """CPU bf16: the bf16 copy of ``model`` that ``loss_model`` runs (None on every other path)."""

    def begin_step(self) -> None:
        """Before a step's (or a validation's) forwards: CPU bf16 casts the master weights once."""
        if self.shadow is not None:
            self.shadow.sync()

    def end_backward(self) -> None:
        """After a backward: CPU bf16 adds the bf16 gradients into the fp32 master ``.grad``."""
        if self.shadow is not None:
            self.shadow.grads_to_master()

    def autocast(self) -> AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.split(":")[0], dtype=self.amp_dtype)

    def attention_kernels(self) -> AbstractContextManager[Any]:
        """On CUDA, SDPA's flash kernel first (Pythia trained with Flash Attention); CPU as torch picks."""
        return sdpa_flash_first() if self.device.startswith("cuda") else nullcontext()

    def set_lr(self, lr: float) -> None:
        optimizer = self.ds_optimizer if self.deepspeed is not None else self.optimizer
        for g in optimizer.param_groups:
            g["lr"] = lr


def build_engine(
    suite: Suite,
    spec: ModelSpec,
    dataset: str,
    device: str,
    ctx: DistContext,
    *,
    use_deepspeed: bool,
    seed: int | None = None,
) -> Engine:
    """The model (initialised with ``seed``, default the suite's training seed; a seed run passes
    its own) and what updates it, for ``device``; ``use_deepspeed``: wrapped by
    ``deepspeed.initialize`` (ZeRO), else by DDP across ranks."""
    gpu = device.startswith("cuda")
    precision = training_precision(spec, dataset, device, cpu=suite.training.cpu_precision)
    cpu_mixed = not gpu and precision is Precision.bf16  # (tests force fp16 on CPU: autocast)
    if cpu_mixed and (use_deepspeed or ctx.world_size > 1):
        raise UsageError(
            f"training.cpu_precision {precision.value} trains in one process; run it without "
            "--deepspeed and torchrun, or set training.cpu_precision: fp32"
        )
    compute_dtype = None if cpu_mixed else autocast_dtype(precision)
    model = build_model(
        suite,
        spec,
        seed=suite.training.seed if seed is None else seed,
        device=device,
        attn_implementation=attention_backend(compute_dtype) if gpu else "sdpa",
    )
    model.train()
    optimizer = build_optimizer(model, suite.training)  # over the fp32 (master) weights
    shadow = Bf16Shadow(model) if cpu_mixed else None
    loss_model = CausalLMLoss(
        cast(PreTrainedModel, shadow.model) if shadow is not None else model, fused=not gpu
    )
    engine = Engine(
        device=device,
        precision=precision,
        amp_dtype=None if use_deepspeed else compute_dtype,
        model=model,
        loss_model=loss_model,
        net=loss_model,
        optimizer=optimizer,
        names=param_names(optimizer),
        scaler=grad_scaler(precision if not use_deepspeed else Precision.fp32, device),
        shadow=shadow,
    )
    if use_deepspeed:
        engine.ds_config = deepspeed_config(suite, spec, ctx.world_size, device, dataset)
        engine.deepspeed, engine.ds_optimizer = _deepspeed_initialize(engine)
        engine.net = engine.deepspeed
    else:
        engine.net = wrap_ddp(engine.loss_model, ctx, device)
    return engine


def _deepspeed_initialize(engine: Engine) -> tuple[Any, Any]:
    """``deepspeed.initialize`` of the engine's loss model and optimizer: (engine, optimizer)."""
    import deepspeed  # heavy and optional: only --deepspeed runs need it

    if not engine.device.startswith("cuda"):
        # DeepSpeed's CPU backend JIT-compiles a shared-memory all-reduce op (minutes of
        # C++ compilation) used only for inference all-reduce; ZeRO training goes through
        # torch.distributed (gloo) either way, so skip the build. (The module is taken from
        # importlib: ``import deepspeed.comm.torch as m`` binds the torch package itself,
        # which ``deepspeed.comm`` re-exports under that name.)
        comm_torch: Any = importlib.import_module("deepspeed.comm.torch")
        comm_torch.build_shm_op = lambda: None
    ds_engine, ds_optimizer, _, _ = deepspeed.initialize(
        model=engine.loss_model, optimizer=engine.optimizer, config=engine.ds_config
    )
    return ds_engine, ds_optimizer
