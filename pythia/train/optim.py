"""Pythia's optimizer: AdamW, betas (0.9, 0.95), eps 1e-8, decoupled weight decay 0.1.

GPT-NeoX v1.0 (``megatron/model/utils.py``, ``get_params_for_weight_decay_optimization``) puts
every LayerNorm parameter and every bias into a group without weight decay; everything else
(embeddings, qkv, dense, MLP, output layer) decays. The optimizer Pythia's configs name
(``"type": "Adam"``; ``megatron/training.py``, ``get_optimizer``: apex or DeepSpeed FusedAdam,
``adam_w_mode=True`` by default) is AdamW with decoupled decay ``p -= lr * wd * p``, which is
what ``torch.optim.AdamW`` does.
"""

from __future__ import annotations

import torch
from torch import nn

from pythia.config import TrainingSpec

NORM_TYPES: tuple[type[nn.Module], ...] = (nn.LayerNorm,)


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of the parameters without weight decay: all LayerNorm parameters and all biases."""
    names: set[str] = set()
    for mod_name, module in model.named_modules():
        for p_name, _ in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if isinstance(module, NORM_TYPES) or p_name == "bias":
                names.add(full)
    return names


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weights, then LayerNorm parameters and biases (no decay).

    Each group carries ``names`` (parameter names, in order) so optimizer state can be saved
    by name rather than by position.
    """
    skip = no_decay_names(model)
    decay: list[tuple[str, torch.nn.Parameter]] = []
    no_decay: list[tuple[str, torch.nn.Parameter]] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip else decay).append((name, p))
    return [
        {
            "params": [p for _, p in decay],
            "names": [n for n, _ in decay],
            "weight_decay": weight_decay,
        },
        {
            "params": [p for _, p in no_decay],
            "names": [n for n, _ in no_decay],
            "weight_decay": 0.0,
        },
    ]


def build_optimizer(
    model: nn.Module, training: TrainingSpec, lr: float = 0.0, fused: bool | None = None
) -> torch.optim.AdamW:
    """AdamW over Pythia's groups. ``fused`` (default: on) picks torch's fused kernel
    (CPU and CUDA), the fastest and deterministic; the lr is set per step by the trainer."""
    groups = param_groups(model, training.weight_decay)
    if fused is None:
        fused = True
    kwargs = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(
        groups,
        lr=lr,
        betas=(training.adam_beta1, training.adam_beta2),
        eps=training.adam_eps,
        weight_decay=training.weight_decay,
        **kwargs,
    )


def param_names(optimizer: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the optimizer's index order (as ``state_dict()`` numbers them)."""
    out: list[str] = []
    for g in optimizer.param_groups:
        out.extend(g["names"])
    return out
