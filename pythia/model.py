"""Pythia's GPT-NeoX model, built with ``transformers.GPTNeoXForCausalLM``.

No model code is written here: transformers already has GPT-NeoX. This module maps a suite
entry to a ``GPTNeoXConfig`` with Pythia's architecture and applies Pythia's initialisation:

    for each layer:  x = x + attn(ln1(x)) + mlp(ln2(x))     # parallel residual
    rotary position embedding on 25% of each head's dims, base 10000
    untied input / output embeddings, LayerNorm eps 1e-5, tanh GELU, MLP width 4 d, no dropout

Activation: every Pythia config sets ``bias-gelu-fusion: true``, and GPT-NeoX v1.0 (the version
Pythia's README names; ``megatron/model/activations.py``, ``bias_gelu``) then runs the *tanh
approximation* of GELU, fused with the bias add:

    y = x * 0.5 * (1 + tanh(0.79788456 * x * (1 + 0.044715 * x * x)))       x = h + bias

The checkpoints here say so in their ``config.json`` (``hidden_act = HIDDEN_ACT``), so
``from_pretrained`` runs the function training ran. ``gelu_pytorch_tanh`` is torch's
``F.gelu(x, approximate="tanh")``, the same function: sqrt(2/pi) = 0.7978845608... against
GPT-NeoX's 0.79788456 is a 1e-10 relative difference, and in fp32 both agree with the formula
above (evaluated in fp64) to 1 ulp. It is one kernel that evaluates in fp32 and rounds once, as
GPT-NeoX's TorchScript-fused kernel does; ``gelu_new`` writes the same formula as separate ops,
each rounded to bf16/fp16 under autocast (up to 1.6e-2 off in bf16, against 1.5e-5). ``gelu``
would be the exact erf form. (GPT-NeoX adds the bias inside the fused kernel; transformers' Linear
adds it first, one more rounding to 16 bits under autocast, nothing in fp32.)

The released Hugging Face Pythia checkpoints say ``"hidden_act": "gelu"`` (erf) although
training ran the tanh form: GPT-NeoX's converter (``tools/convert_v1.0_to_hf.py``) writes
``hidden_act = config["activation"]`` (default ``"gelu"``) and ignores ``bias-gelu-fusion``, and
loaded Pythia models print ``(act): GELUActivation()``. Those checkpoints keep loading with their
own config; nothing here changes how they are read.

Initialisation (GPT-NeoX v1.0 ``megatron/model/init_functions.py``: ``small_init`` /
``wang_init``), d = hidden size, L = layers:
    embeddings, qkv, mlp up-projection, output layer: normal(0, sqrt(2 / (5 d)))
    attention output and mlp down-projection:         normal(0, 2 / (L sqrt(d)))
The 6.9B and 12B runs used the GPT-NeoX defaults instead: normal(0, 0.02) and
normal(0, 0.02 / sqrt(2 L)). Biases are zero, LayerNorms are (1, 0).

Attention: Pythia trained with Flash Attention. Here ``flash_attention_2`` is used where the
flash-attn package imports on a CUDA machine and training runs in fp16/bf16; otherwise ``sdpa``.
PyTorch's SDPA carries its own FlashAttention-2 kernel, usable for fp16/bf16 causal attention
without a mask (what transformers passes for unpadded batches), but on Hopper torch may take
cuDNN's attention instead (seen for Pythia 160M and 14M on an H100 with torch 2.11, for the first
SDPA call of a process even when asked to put flash first): the trainer runs its GPU steps inside
:func:`sdpa_flash_first`, which leaves cuDNN's kernel out, so flash is first.
"""

from __future__ import annotations

import importlib
import math

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedModel
from transformers.utils import is_flash_attn_2_available

from pythia.config import InitScheme, ModelSpec, Suite

ROTARY_PCT = 0.25
ROTARY_BASE = 10000.0
LAYER_NORM_EPS = 1e-5
HIDDEN_ACT = "gelu_pytorch_tanh"
"""GPT-NeoX v1.0's fused bias-gelu (tanh approximation), as transformers names it (see above)."""

# Names of the two output projections of each layer, which get the scaled ("wang") init.
OUTPUT_PROJECTIONS = ("attention.dense.weight", "mlp.dense_4h_to_h.weight")


def flash_attn_usable() -> bool:
    """True where CUDA is present and the flash-attn package (v2) imports cleanly: a missing or
    broken install (e.g. built against another torch) means ``sdpa``, not a crash at model build."""
    if not torch.cuda.is_available():
        return False
    if not is_flash_attn_2_available():
        return False
    try:
        importlib.import_module("flash_attn")
    except Exception:
        return False
    return True


def attention_backend(dtype: torch.dtype | None = None) -> str:
    """``flash_attention_2`` where it is usable (CUDA, flash-attn imports) and training runs in
    fp16/bf16 (``dtype``; flash-attn has no fp32 kernels), else ``sdpa``."""
    if dtype is not None and dtype not in (torch.float16, torch.bfloat16):
        return "sdpa"
    return "flash_attention_2" if flash_attn_usable() else "sdpa"


def sdpa_flash_first():
    """A context in which SDPA chooses among PyTorch's flash, memory-efficient and math kernels,
    in that order (torch's own order once cuDNN's attention is left out): flash wherever it
    applies, and shapes or dtypes it cannot take (fp32) still run."""
    return sdpa_kernel(
        [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    )


def build_config(suite: Suite, spec: ModelSpec, max_positions: int | None = None) -> GPTNeoXConfig:
    """The ``GPTNeoXConfig`` of one suite size (Pythia's architecture)."""
    return GPTNeoXConfig(
        vocab_size=suite.vocab_rows(spec),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        intermediate_size=4 * spec.hidden_size,
        hidden_act=HIDDEN_ACT,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": ROTARY_BASE,
            "partial_rotary_factor": ROTARY_PCT,
        },
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
def init_weights(
    model: GPTNeoXForCausalLM, spec: ModelSpec, generator: torch.Generator | None = None
) -> None:
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
        generator = torch.Generator(device=device).manual_seed(
            suite.training.seed if seed is None else seed
        )
    init_weights(model, spec, generator)
    return model


def count_params(model: PreTrainedModel) -> tuple[int, int]:
    """(total, non-embedding) parameters; embeddings are the input and output matrices."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(
        p.numel()
        for m in (model.get_input_embeddings(), model.get_output_embeddings())
        for p in m.parameters(recurse=False)
    )
    return total, total - embedding
