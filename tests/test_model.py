"""The model builder: exact Pythia parameter counts, architecture, initialisation, save/load."""

import math

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from pythia.config import load_suite
from pythia.model import (
    HIDDEN_ACT,
    attention_backend,
    build_config,
    build_model,
    count_params,
    flash_attn_usable,
    init_stds,
    sdpa_flash_first,
)

# shared/BRIEF.md section 1: (total, non-embedding)
PYTHIA_PARAMS = {
    "70M": (70_426_624, 18_915_328),
    "160M": (162_322_944, 85_056_000),
    "410M": (405_334_016, 302_311_424),
    "1B": (1_011_781_632, 805_736_448),
    "1.4B": (1_414_647_808, 1_208_602_624),
    "2.8B": (2_775_208_960, 2_517_652_480),
    "6.9B": (6_857_302_016, 6_444_163_072),
    "12B": (11_846_072_320, 11_327_027_200),
}


@pytest.mark.parametrize("name", list(PYTHIA_PARAMS))
def test_pythia_parameter_counts_exact(name):
    suite = load_suite("pythia")
    model = build_model(suite, name, device="meta")  # no memory, even for 12B
    assert count_params(model) == PYTHIA_PARAMS[name]
    assert suite.total_params(suite.model(name)) == PYTHIA_PARAMS[name][0]
    assert suite.model(name).non_embedding_params() == PYTHIA_PARAMS[name][1]


def test_architecture_is_pythias():
    suite = load_suite("pythia")
    cfg = build_config(suite, suite.model("410M"))
    assert cfg.use_parallel_residual and not cfg.tie_word_embeddings
    assert cfg.rope_parameters["partial_rotary_factor"] == 0.25
    assert cfg.rope_parameters["rope_theta"] == 10000.0
    assert cfg.layer_norm_eps == 1e-5 and cfg.hidden_act == HIDDEN_ACT == "gelu_pytorch_tanh"
    assert cfg.intermediate_size == 4 * cfg.hidden_size
    assert cfg.attention_dropout == 0.0 and cfg.hidden_dropout == 0.0
    assert cfg.vocab_size == 50304
    assert build_config(suite, suite.model("12B")).vocab_size == 50688
    model = build_model(suite, "70M", device="meta")
    assert model.gpt_neox.layers[0].attention.rotary_ndims == 16  # 25% of d_head 64


def test_attention_backend_falls_back_to_sdpa():
    flash = "flash_attention_2" if flash_attn_usable() else "sdpa"
    assert (
        attention_backend()
        == attention_backend(torch.bfloat16)
        == attention_backend(torch.float16)
        == flash
    )
    assert attention_backend(torch.float32) == "sdpa"  # flash-attn has no fp32 kernels
    if not torch.cuda.is_available():
        assert not flash_attn_usable() and attention_backend(torch.bfloat16) == "sdpa"


def test_sdpa_flash_first_computes_the_same_attention():
    """The trainer's GPU attention context (flash, memory-efficient, math; no cuDNN) takes any input:
    on CPU its result equals torch's default choice."""
    model = build_model(load_suite("smoke"), "s2", seed=0, attn_implementation="sdpa").eval()
    ids = torch.randint(0, 512, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(input_ids=ids).logits
        with sdpa_flash_first():
            got = model(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_broken_flash_attn_install_means_sdpa(monkeypatch):
    import importlib

    import transformers.utils

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: True)
    real = importlib.import_module

    def broken(name, *a, **k):
        if name == "flash_attn":
            raise ImportError(
                "flash_attn_2_cuda.so: undefined symbol (built against another torch)"
            )
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", broken)
    assert not flash_attn_usable() and attention_backend(torch.bfloat16) == "sdpa"


def _neox_bias_gelu(x: torch.Tensor) -> torch.Tensor:
    """GPT-NeoX v1.0's fused bias-gelu (megatron/model/activations.py), bias already added."""
    return x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))


def test_activation_is_gpt_neox_fused_bias_gelu():
    from transformers.activations import ACT2FN

    x = torch.linspace(-10, 10, 100_001, dtype=torch.float64)
    ref = _neox_bias_gelu(x)  # fp64
    act = ACT2FN[HIDDEN_ACT]
    # fp32: equal to the formula to within fp32 rounding (1 ulp of |y| <= 10 is 9.5e-7)
    torch.testing.assert_close(act(x.float()).double(), ref, rtol=0, atol=1e-6)
    # ... and not the exact erf GELU, which differs by up to ~5e-4
    assert (ACT2FN["gelu"](x.float()).double() - ref).abs().max() > 1e-4
    # 16 bits: like the fused kernel (16-bit in, formula in fp32, one rounding): within one ulp
    for dtype in (torch.bfloat16, torch.float16):
        xs = x.to(dtype)
        want = _neox_bias_gelu(xs.float()).to(dtype).double()
        got = act(xs).double()
        # one 16-bit ulp, plus fp32 rounding of 1 + tanh(.) in the far negative tail (|y| < 1e-6)
        tol = (
            torch.finfo(dtype).eps * want.abs()
            + xs.double().abs() * torch.finfo(torch.float32).eps * 4
        )
        assert ((got - want).abs() <= tol).all(), dtype


@pytest.mark.parametrize("suite_name,model_name", [("micro", "1.8M"), ("pythia", "14M")])
def test_small_init_and_wang_init_stds(suite_name, model_name):
    suite = load_suite(suite_name)
    spec = suite.model(model_name)
    model = build_model(suite, spec, seed=0)
    std, out_std = init_stds(spec)
    assert std == pytest.approx(math.sqrt(2 / (5 * spec.hidden_size)))
    assert out_std == pytest.approx(2 / (spec.num_layers * math.sqrt(spec.hidden_size)))
    seen = set()
    for name, p in model.named_parameters():
        n = p.numel()
        if name.endswith(".bias"):
            assert torch.all(p == 0), name
            continue
        if "layernorm" in name or "layer_norm" in name:
            assert torch.all(p == 1), name
            continue
        expected = (
            out_std
            if name.endswith(("attention.dense.weight", "mlp.dense_4h_to_h.weight"))
            else std
        )
        # the sample std of n normal draws has relative standard error ~ 1/sqrt(2n)
        tol = 5 / math.sqrt(2 * n)
        assert p.float().std().item() == pytest.approx(expected, rel=tol), name
        assert abs(p.float().mean().item()) < 5 * expected / math.sqrt(n), name
        seen.add(
            name.split(".")[-2]
        )  # the output layer is `lm_head` in transformers 5 (`embed_out` in Pythia files)
    assert {
        "embed_in",
        "lm_head",
        "query_key_value",
        "dense",
        "dense_h_to_4h",
        "dense_4h_to_h",
    } <= seen


def test_neox_default_init_for_large_models():
    spec = load_suite("pythia").model("12B")
    std, out_std = init_stds(spec)
    assert std == 0.02 and out_std == pytest.approx(0.02 / math.sqrt(2 * 36))


def test_same_seed_same_weights_different_seed_different():
    suite = load_suite("smoke")
    a, b, c = (build_model(suite, "s2", seed=s) for s in (1, 1, 2))
    for (_n, pa), pb, _pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert not torch.equal(a.gpt_neox.embed_in.weight, c.gpt_neox.embed_in.weight)


def test_save_load_identical_logits_and_sdpa_matches_eager(tmp_path):
    suite = load_suite("micro")
    model = build_model(suite, "624K", seed=3, attn_implementation="sdpa").eval()
    ids = torch.randint(0, 4096, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    model.save_pretrained(tmp_path)
    loaded = GPTNeoXForCausalLM.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, logits, rtol=0, atol=0)
    eager = GPTNeoXForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    with torch.no_grad():
        torch.testing.assert_close(eager(input_ids=ids).logits, logits, rtol=1e-4, atol=1e-5)


def test_kv_cache_matches_full_forward():
    suite = load_suite("smoke")
    model = build_model(suite, "s2", seed=0).eval()
    ids = torch.randint(0, 512, (1, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(input_ids=ids).logits[:, -1]
        out = model(input_ids=ids[:, :-1], use_cache=True)
        step = model(input_ids=ids[:, -1:], past_key_values=out.past_key_values).logits[:, -1]
    torch.testing.assert_close(step, full, rtol=1e-4, atol=1e-5)


def test_loads_checkpoints_with_pythias_key_names(tmp_path):
    """Released Pythia files name the output layer `embed_out`; they load into our model class."""
    from safetensors.torch import load_file, save_file

    suite = load_suite("smoke")
    model = build_model(suite, "s1", seed=5).eval()
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state = {("embed_out.weight" if k == "lm_head.weight" else k): v for k, v in state.items()}
    assert "embed_out.weight" in state
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = GPTNeoXForCausalLM.from_pretrained(tmp_path)
    torch.testing.assert_close(
        loaded.get_output_embeddings().weight, model.get_output_embeddings().weight, rtol=0, atol=0
    )
