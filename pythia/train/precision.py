"""Training precision on GPUs and CPUs, and the steps fp16's loss scaler skips, as in Pythia's runs.

Which precision: on CUDA ``ModelSpec.precision_for(dataset)`` (Pythia: fp16 everywhere but the
standard 1B, which is bf16); on CPU the suite's ``training.cpu_precision``: fp32 (the default,
what every committed result was trained in) or bf16, the opt-in mixed-precision CPU path.

CPU bf16 (:class:`Bf16Shadow`, :class:`pythia.train.loss.LinearCrossEntropyMixed`). As Pythia's
bf16 run (DeepSpeed ``bf16``: the module cast to 16 bits, fp32 master weights in the optimizer)
and not as ``torch.autocast`` (which casts each weight again at every op that uses it, and on CPU
costs more than the bf16 GEMMs save): a bf16 copy of the model's parameters is cast from the fp32
master weights once per step, forward and backward run in it (LayerNorm, softmax and the
attention kernels accumulate in fp32 inside), each micro batch's bf16 gradients are added into
fp32 ``.grad`` of the master weights, and clipping, AdamW's moments and the update are all fp32.
The output layer and the loss run as bf16 GEMMs with the log-sum-exp, the softmax and the
output layer's gradient accumulated in fp32. Checkpoints and training states hold the fp32
master weights, as on every other path; buffers (the rotary tables) stay fp32.

It pays only where the CPU multiplies bf16 natively (AVX512-BF16 or AMX: oneDNN's bf16 GEMMs,
``torch.ops.mkldnn._is_mkldnn_bf16_supported()``, :func:`cpu_bf16_native`); elsewhere torch
falls back to a scalar bf16 GEMM, measured 30-100x slower than fp32 on an AVX2-only AMD EPYC
(``pythia bench train`` records the GEMM rates of both). It runs (slowly) there too, so tests
check its arithmetic on any CPU. One process only (no DDP, no DeepSpeed).

How each path runs it:

* the plain loop (one GPU, or torchrun DDP): ``torch.autocast`` in bf16/fp16 over fp32 weights;
  fp16 adds torch's ``GradScaler``, started like Pythia's DeepSpeed loss scaler (scale 2^12,
  doubled after 1000 clean steps, halved on an overflow). torch's scaler has no hysteresis and
  no minimum scale, so only the DeepSpeed path reproduces Pythia's scaler step for step;
* DeepSpeed (``--deepspeed``): the engine's own ``bf16`` / ``fp16`` (weights cast to 16 bits,
  fp32 master weights in ZeRO, ``DynamicLossScaler`` with Pythia's settings: initial scale
  2^12, window 1000, hysteresis 2, min 1; see ``deepspeed_config.py``).

Skipped steps. When fp16 gradients overflow, the loss scaler skips the update (weights and
AdamW state unchanged) and lowers the scale; the batch is consumed all the same. DeepSpeed
then does not step the LR scheduler either (``DeepSpeedEngine._take_model_step``: the scheduler
steps only when ``optimizer.overflow`` is False), so GPT-NeoX's AnnealingLR lags the iteration
count by the number of skipped steps: the update on batch s runs at ``lr_at(s - k)``, k = the
updates skipped before it (``schedule.py``). The trainer counts k: :func:`scaler_step` tells
whether torch's GradScaler applied an update, ``DeepSpeedEngine.was_step_applied()`` whether the
engine did. k goes into every ``train_log.jsonl`` record and into the training state (with
the loss scaler's own state), so a resumed run continues the same schedule.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from pythia.config import ModelSpec, Precision, Suite

# Pythia's fp16 dynamic loss scaling (every models/*/pythia-*.yml "fp16" block).
INITIAL_SCALE_POWER = 12
LOSS_SCALE_WINDOW = 1000
HYSTERESIS = 2
MIN_LOSS_SCALE = 1

# DynamicLossScaler attributes that change while training: what a resumed run must restore.
DS_SCALER_FIELDS = ("cur_scale", "cur_iter", "last_overflow_iter", "cur_hysteresis")


def training_precision(
    spec: ModelSpec, dataset: str, device: str, cpu: Precision = Precision.fp32
) -> Precision:
    """Precision a run trains in: the model's precision on ``dataset`` on CUDA, ``cpu`` (the
    suite's ``training.cpu_precision``; default fp32) elsewhere."""
    precision = spec.precision_for(dataset)
    return precision if device.startswith("cuda") else cpu


def with_cpu_precision(suite: Suite, precision: Precision) -> Suite:
    """``suite`` with ``training.cpu_precision`` set to ``precision`` (itself when it already is)."""
    if suite.training.cpu_precision is precision:
        return suite
    training = suite.training.model_copy(update={"cpu_precision": precision})
    out = suite.model_copy(update={"training": training})
    out.__dict__.pop("digest", None)  # a cached_property of the original: computed again
    return out


def cpu_bf16_native() -> bool:
    """Whether this CPU multiplies bf16 natively (oneDNN's bf16 kernels: AVX512-BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class Bf16Shadow:
    """The bf16 working copy of an fp32 model: ``shadow.model`` runs forward and backward,
    ``master`` keeps the fp32 weights the optimizer updates (see the module docstring).

        shadow.sync()            before a step's first forward: cast the master weights once
        shadow.grads_to_master() after each backward: add the bf16 gradients into master .grad (fp32)
    """

    def __init__(self, master: torch.nn.Module) -> None:
        self.master = master
        self.model = copy.deepcopy(master)
        for p in self.model.parameters():  # parameters only: buffers (rotary tables) stay fp32
            p.data = p.data.to(torch.bfloat16)
        self.pairs = list(zip(master.parameters(), self.model.parameters(), strict=True))
        self.sync()

    @torch.no_grad()
    def sync(self) -> None:
        """Cast the fp32 master weights into the bf16 copy (round to nearest even)."""
        torch._foreach_copy_([s for _, s in self.pairs], [m for m, _ in self.pairs])

    @torch.no_grad()
    def grads_to_master(self) -> None:
        """Add the bf16 copy's gradients into the master weights' fp32 ``.grad`` and drop them."""
        for m, s in self.pairs:
            if s.grad is None:
                continue
            if m.grad is None:
                m.grad = s.grad.float()
            else:
                m.grad.add_(s.grad)
            s.grad = None


def autocast_dtype(precision: Precision) -> torch.dtype | None:
    """The ``torch.autocast`` dtype of a precision (None: fp32, no autocast)."""
    return {Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}.get(precision)


def grad_scaler(precision: Precision, device: str) -> torch.amp.GradScaler:
    """torch's dynamic loss scaler, enabled for fp16 only, started like Pythia's (2^12, window 1000)."""
    return torch.amp.GradScaler(
        device.split(":")[0],
        init_scale=2.0**INITIAL_SCALE_POWER,
        growth_interval=LOSS_SCALE_WINDOW,
        enabled=precision is Precision.fp16,
    )


def scaler_step(scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer) -> bool:
    """``scaler.step(optimizer)`` and ``scaler.update()``; True when the update was applied.

    GradScaler skips the optimizer step when the (unscaled) gradients hold inf/NaN and then
    multiplies the scale by its backoff factor (0.5), and only then: a scale lower than before
    means the step was skipped. A disabled scaler always steps.
    """
    if not scaler.is_enabled():
        optimizer.step()
        return True
    before = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale() >= before


def deepspeed_scaler_state(ds_optimizer: Any) -> dict[str, float | None] | None:
    """The dynamic loss scaler's state of a DeepSpeed fp16 optimizer (None for bf16/fp32)."""
    scaler = getattr(ds_optimizer, "loss_scaler", None)
    if scaler is None or not getattr(scaler, "dynamic", False):
        return None
    return {
        k: (None if getattr(scaler, k) is None else float(getattr(scaler, k)))
        for k in DS_SCALER_FIELDS
    }


def load_deepspeed_scaler_state(ds_optimizer: Any, state: dict[str, float | None] | None) -> None:
    """Restore :func:`deepspeed_scaler_state` into a DeepSpeed fp16 optimizer's loss scaler."""
    scaler = getattr(ds_optimizer, "loss_scaler", None)
    if not state or scaler is None or not getattr(scaler, "dynamic", False):
        return
    for key in DS_SCALER_FIELDS:
        value = state.get(key)
        setattr(scaler, key, value if key == "cur_scale" or value is None else int(value))
