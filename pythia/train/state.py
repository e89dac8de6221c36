"""A run's training state: what exact resume needs, written at the state steps and read back.

A state directory (``<run>/state/step<K>/``, :mod:`pythia.train.checkpoint`'s format) holds the
weights (fp32: under DeepSpeed bf16/fp16, ZeRO's master copy, not the module's 16-bit cast),
the AdamW moments and step counts, the RNG states, and ``state.json``: the run's own fields
(step, LR schedule, skipped steps, identity: :meth:`pythia.train.loop.Trainer.save_state`) plus
what this module adds from the engine (precision, parameter groups, both loss scalers, RNG).

Under DeepSpeed ZeRO the moments and master weights are partitioned across ranks: gathering
them is collective, so every rank calls :func:`save_training_state`; the main rank writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pythia.config import Precision
from pythia.train import checkpoint as ckpt
from pythia.train.engine import Engine
from pythia.train.precision import deepspeed_scaler_state, load_deepspeed_scaler_state

ADAM_MOMENTS = ("exp_avg", "exp_avg_sq")


def save_training_state(path: Path, engine: Engine, meta: dict[str, Any], is_main: bool) -> None:
    """Write the state directory ``path``: the engine's weights, optimizer and RNG, and ``meta``
    (the run's fields) with the engine's own. Every rank calls it; the main rank writes."""
    optim_tensors, groups = optimizer_tensors(engine)
    weights = model_tensors(engine)
    if not is_main:
        return
    rng_tensors, rng_meta = ckpt.rng_state((engine.device.split(":")[0],))
    meta = {
        **meta,
        "precision": engine.precision.value,
        "deepspeed": engine.deepspeed is not None,
        "optimizer_param_groups": groups,
        "scaler": engine.scaler.state_dict() if engine.scaler.is_enabled() else None,
        "deepspeed_loss_scaler": deepspeed_scaler_state(engine.ds_optimizer)
        if engine.deepspeed is not None
        else None,
        "rng": rng_meta,
    }
    ckpt.save_state(
        path,
        model_tensors=weights,
        optim_tensors=optim_tensors,
        rng_tensors=rng_tensors,
        meta=meta,
    )


def load_training_state(
    path: Path, previous: Path | None, engine: Engine, run_digest: str
) -> dict[str, Any]:
    """Restore the state directory ``path`` into ``engine`` and this process's RNGs; returns its
    ``state.json``. A state of another run (``run_digest``) or one that does not fit the model is
    a :class:`~pythia.train.checkpoint.CheckpointError`; ``previous`` is named in the advice."""
    st = ckpt.load_state(path, previous)
    meta = st["meta"]
    if meta.get("run_digest") != run_digest:
        raise ckpt.CheckpointError(
            f"{path} was saved by a run with another configuration "
            f"(run digest {meta.get('run_digest')}, now {run_digest})"
        )
    try:
        engine.model.load_state_dict(st["model"], strict=True)
    except RuntimeError as e:
        raise ckpt.CheckpointError(
            f"{path / 'model.safetensors'} does not fit this model: {e}"
        ) from None
    if engine.deepspeed is None:
        ckpt.load_optimizer_tensors(
            engine.optimizer, engine.names, st["optimizer"], meta["optimizer_param_groups"]
        )
    else:
        _load_deepspeed_optimizer(engine, st["optimizer"], st["model"])
        load_deepspeed_scaler_state(engine.ds_optimizer, meta.get("deepspeed_loss_scaler"))
    if meta.get("scaler") and engine.scaler.is_enabled():
        engine.scaler.load_state_dict(meta["scaler"])
    ckpt.set_rng_state(st["rng"], meta["rng"])
    return meta


# ---------------------------------------------------------------------- the engine's tensors


def model_tensors(engine: Engine) -> dict[str, torch.Tensor]:
    """The weights a resumed run continues from: the model's, except under DeepSpeed bf16/fp16,
    where the module holds 16-bit copies and ZeRO the fp32 master weights the update uses."""
    tensors = dict(engine.model.state_dict())
    if engine.deepspeed is None or engine.precision is Precision.fp32:
        return tensors
    from deepspeed.utils import safe_get_full_fp32_param  # optional: only --deepspeed runs

    for name, param in engine.model.named_parameters():
        master = safe_get_full_fp32_param(param)
        if master is not None:
            tensors[name] = master.detach()
    return tensors


def optimizer_tensors(engine: Engine) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """AdamW's moments and step count keyed ``<parameter>.<key>``, and the parameter groups'
    hyper-parameters (DeepSpeed: gathered from ZeRO's partitions)."""
    if engine.deepspeed is None:
        return ckpt.optimizer_tensors(engine.optimizer, engine.names)
    from deepspeed.utils import safe_get_full_optimizer_state  # optional: only --deepspeed runs

    tensors: dict[str, torch.Tensor] = {}
    named = dict(engine.model.named_parameters())
    base = engine.ds_optimizer.optimizer
    _relink_deepspeed_state(engine.ds_optimizer)
    steps = [s["step"] for s in base.state.values() if "step" in s]
    for name in engine.names:
        for key in ADAM_MOMENTS:
            val = safe_get_full_optimizer_state(named[name], key)
            if val is not None:
                tensors[f"{name}.{key}"] = val.detach().float().cpu().contiguous()
        if steps:
            tensors[f"{name}.step"] = torch.as_tensor(steps[0]).detach().cpu().reshape(()).clone()
    groups = [
        {k: v for k, v in g.items() if k != "params"}
        for g in engine.optimizer.state_dict()["param_groups"]
    ]
    return tensors, groups


def _relink_deepspeed_state(ds_optimizer: Any) -> None:
    """Point every parameter's ZeRO fragment at the optimizer moments.

    DeepSpeed links them once, right after stepping the first parameter group, when the
    moments of the other groups (here: the no-decay group) do not exist yet; linking
    again once all exist makes ``safe_get/set_full_optimizer_state`` see every parameter.
    """
    if (
        hasattr(ds_optimizer, "_lazy_init_hp_params_optimizer_state")
        and ds_optimizer.optimizer.state
    ):
        ds_optimizer._hp_optimizer_states_linked = False
        ds_optimizer._lazy_init_hp_params_optimizer_state()


def _load_deepspeed_optimizer(
    engine: Engine, tensors: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]
) -> None:
    """Scatter the saved master weights, moments and step count into ZeRO's partitions."""
    from deepspeed.utils import (  # optional: only --deepspeed runs
        safe_set_full_fp32_param,
        safe_set_full_optimizer_state,
    )

    base = engine.ds_optimizer.optimizer
    named = dict(engine.model.named_parameters())
    for (
        name
    ) in engine.names:  # the fp32 master copy is the saved fp32 weights (not their 16-bit cast)
        safe_set_full_fp32_param(named[name], weights[name].to(engine.device, torch.float32))
    if not base.state:  # moments are created lazily: a no-op update (lr 0, zero grads) makes them
        _create_moments(base)
    _relink_deepspeed_state(engine.ds_optimizer)
    for name in engine.names:
        for key in ADAM_MOMENTS:
            if f"{name}.{key}" in tensors:
                safe_set_full_optimizer_state(
                    named[name], tensors[f"{name}.{key}"].to(engine.device), key
                )
    step = next((v for k, v in tensors.items() if k.endswith(".step")), None)
    if step is not None:
        for s in base.state.values():
            if "step" in s:
                if torch.is_tensor(s["step"]):
                    s["step"].copy_(step)
                else:
                    s["step"] = float(step)


def _create_moments(optimizer: torch.optim.Optimizer) -> None:
    """Make ``optimizer``'s (lazily created) moments by an update that changes nothing: lr 0,
    no weight decay, zero gradients; the hyper-parameters and gradients are restored after."""
    saved = [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g["lr"], g["weight_decay"] = 0.0, 0.0
        for p in g["params"]:
            p.grad = torch.zeros_like(p)
    optimizer.step()
    for g, (lr, wd) in zip(optimizer.param_groups, saved):
        g["lr"], g["weight_decay"] = lr, wd
        for p in g["params"]:
            p.grad = None
