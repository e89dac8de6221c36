"""Pythia's GPT-NeoX model, built with ``transformers.GPTNeoXForCausalLM``.

No model code is written here: transformers already has GPT-NeoX. This module maps a suite
entry to a ``GPTNeoXConfig`` with Pythia's architecture and applies Pythia's initialisation:

    for each layer:  x = x + attn(ln1(x)) + mlp(ln2(x))     # parallel residual
    rotary position embedding on 25% of each head's dims, base 10000
    untied input / output embeddings, LayerNorm eps 1e-5, GELU, MLP width 4 d, no dropout

Initialisation (GPT-NeoX ``small_init`` / ``wang_init``), d = hidden size, L = layers:
    embeddings, qkv, mlp up-projection, output layer: normal(0, sqrt(2 / (5 d)))
    attention output and mlp down-projection:         normal(0, 2 / (L sqrt(d)))
The 6.9B and 12B runs used the GPT-NeoX defaults instead: normal(0, 0.02) and
normal(0, 0.02 / sqrt(2 L)). Biases are zero, LayerNorms are (1, 0).
"""

from __future__ import annotations

import importlib.util
import math

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from pythia.config import InitScheme, ModelSpec, Suite

ROTARY_PCT = 0.25
ROTARY_BASE = 10000.0
LAYER_NORM_EPS = 1e-5

# Names of the two output projections of each layer, which get the scaled ("wang") init.
OUTPUT_PROJECTIONS = ("attention.dense.weight", "mlp.dense_4h_to_h.weight")


def attention_backend() -> str:
    """``flash_attention_2`` where CUDA and flash-attn are present, else ``sdpa``."""
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def build_config(suite: Suite, spec: ModelSpec, max_positions: int | None = None) -> GPTNeoXConfig:
    """The ``GPTNeoXConfig`` of one suite size (Pythia's architecture)."""
    return GPTNeoXConfig(
        vocab_size=suite.vocab_rows(spec),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        intermediate_size=4 * spec.hidden_size,
        hidden_act="gelu",
        rope_parameters={"rope_type": "default", "rope_theta": ROTARY_BASE, "partial_rotary_factor": ROTARY_PCT},
        max_position_embeddings=max_positions or suite.training.seq_len,
        layer_norm_eps=LAYER_NORM_EPS,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        attention_bias=True,
        initializer_range=0.02,
        bos_token_id=0,
        eos_token_id=0,
    )


def init_stds(spec: ModelSpec) -> tuple[float, float]:
    """(std of ordinary weights, std of the two output projections) for ``spec.init``."""
    d, n_layers = spec.hidden_size, spec.num_layers
    if spec.init is InitScheme.small_init:
        return math.sqrt(2.0 / (5.0 * d)), 2.0 / (n_layers * math.sqrt(d))
    return 0.02, 0.02 / math.sqrt(2.0 * n_layers)


@torch.no_grad()
def init_weights(model: GPTNeoXForCausalLM, spec: ModelSpec, generator: torch.Generator | None = None) -> None:
    """Initialise every parameter of ``model`` in place with Pythia's scheme."""
    std, out_std = init_stds(spec)
    for name, param in model.named_parameters():
        if param.device.type == "meta":
            continue
        if name.endswith(".bias"):
            param.zero_()
        elif "layernorm" in name or "layer_norm" in name:
            param.fill_(1.0)
        elif name.endswith(OUTPUT_PROJECTIONS):
            param.normal_(0.0, out_std, generator=generator)
        else:  # embeddings, qkv, mlp up-projection, output layer
            param.normal_(0.0, std, generator=generator)


def build_model(
    suite: Suite,
    spec: ModelSpec | str,
    *,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    attn_implementation: str | None = None,
) -> GPTNeoXForCausalLM:
    """A freshly initialised Pythia model for ``spec`` (a ModelSpec or a model name).

    ``device="meta"`` builds the structure without memory (parameter counting for 12B).
    """
    if isinstance(spec, str):
        spec = suite.model(spec)
    config = build_config(suite, spec)
    config._attn_implementation = attn_implementation or attention_backend()
    with torch.device(device):
        model = GPTNeoXForCausalLM(config)
    generator = None
    if torch.device(device).type != "meta":
        generator = torch.Generator(device=device).manual_seed(suite.training.seed if seed is None else seed)
    init_weights(model, spec, generator)
    return model


def count_params(model: torch.nn.Module) -> tuple[int, int]:
    """(total, non-embedding) parameters; embeddings are the input and output matrices."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    return total, total - embedding
