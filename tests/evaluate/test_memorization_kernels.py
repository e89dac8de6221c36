"""One scan's kernels (:mod:`pythia.evaluate.memorization_kernels`) against ``model.generate`` on
a trained smoke checkpoint (training rows, rows the model reproduces, rows crossing a document
boundary, a padded vocabulary); a tiny model trained on a planted sequence flags it; the pruned
prompt forward, the CPU GELU and the in-place KV cache equal what they replace."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from pythia.bench import bench_memorization, generate_reference
from pythia.config import load_suite
from pythia.data.batches import get_batch
from pythia.evaluate import memorization_kernels as K
from pythia.runs import open_catalogue


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small decoding steps run fastest on one thread (and do not slow to a crawl when other
    processes hold the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_and_rows(smoke_run, _one_thread):
    """The trained s1 and 208 rows of 64 tokens: every training sequence, the model's own greedy
    continuations of 56 prompts (memorized by construction) and the same with an
    end-of-document token planted in the continuation (a document boundary: never memorized)."""
    import os

    old = os.environ.get("PYTHIA_WORK")
    os.environ["PYTHIA_WORK"] = str(smoke_run)
    try:
        suite = load_suite("smoke")
        ckpt = open_catalogue("smoke").checkpoint("s1", "standard", 24)
        model = ckpt.load_model()
        train = np.concatenate([get_batch(suite, "standard", s) for s in range(24)])  # (96, 65)
    finally:
        if old is None:
            os.environ.pop("PYTHIA_WORK")
        else:
            os.environ["PYTHIA_WORK"] = old
    x = torch.from_numpy(train[:56, :32])
    with torch.no_grad():
        own = model.generate(
            x,
            attention_mask=torch.ones_like(x),
            do_sample=False,
            max_length=64,
            min_length=64,
            eos_token_id=0,
            pad_token_id=0,
        ).numpy()  # (48, 64)
    boundary = own.copy()
    boundary[:, 40] = 0  # EOD inside the continuation
    rows = np.concatenate([train[:, :64], own, boundary])  # (208, 64)
    return model, rows


def test_scan_equals_generate(model_and_rows):
    model, rows = model_and_rows
    opt = K.ScanOptions(32, 32)
    ref = generate_reference(model, rows, opt, batch_size=64)
    got = K.memorization(model, rows, opt, batch_size=37, decode_batch=50)
    for key in ("memorized", "match_run", "matches"):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    assert (
        got["memorized"][96:152].all() and not got["memorized"][152:].any()
    )  # own continuations; + EOD
    assert (got["match_run"][152:] == 8).all()  # the planted EOD at position 40 is the first miss
    assert 0 < got["matches"][:96].mean() < 32  # training rows: partly right, never whole
    # the training rows that do hold an end-of-document token in their continuation are never memorized
    eod = (rows[:, 32:64] == 0).any(axis=1)
    assert eod[:96].any() and not got["memorized"][eod].any()
    # fractional scores only where asked: the flags and runs are those of every row
    mask = np.arange(len(rows)) % 3 == 0
    part = K.memorization(model, rows, opt, score_mask=mask)
    np.testing.assert_array_equal(part["memorized"], ref["memorized"])
    np.testing.assert_array_equal(part["matches"][mask], ref["matches"][mask])
    assert (part["matches"][~mask] == -1).all()


def test_leading_matches_runs_groups_of_prompt_batches_together(model_and_rows, monkeypatch):
    """The continuations of a group of prompt batches run together, their prompt caches merged:
    the runs are generate's for any grouping, with groups where several batches, one batch or no
    row at all survive the first continuation token."""
    model, rows = model_and_rows
    dead = rows[96:152].copy()
    dead[:, 32] = 0  # an end-of-document token first: no row survives the prompt
    x = np.concatenate([rows, dead])  # (264, 64)
    ref = generate_reference(model, x, K.ScanOptions(32, 32), batch_size=64)["match_run"]
    assert (ref[208:] == 0).all() and (ref[96:152] == 32).all()
    for group, batch in [
        (48, 16),
        (16, 16),
        (1024, 7),
    ]:  # 240:264 all dead; one batch per group; one group
        monkeypatch.setattr(K, "CPU_DECODE_BATCH", group)
        assert K._group_rows(batch, model, 32, torch.device("cpu")) == group // batch * batch
        np.testing.assert_array_equal(
            K.leading_matches(model, x, 32, 32, batch_size=batch), ref, err_msg=str(group)
        )
    monkeypatch.setattr(
        K, "_kv_cache", lambda capacity, device: None
    )  # the model's DynamicCache, as off CPU
    np.testing.assert_array_equal(
        K.leading_matches(model, x, 32, 32, batch_size=16), ref
    )  # merged: group 1024
    monkeypatch.setattr(K, "CPU_DECODE_BATCH", 16)
    np.testing.assert_array_equal(
        K.leading_matches(model, x, 32, 32, batch_size=16), ref
    )  # one batch a group


def test_scan_masks_the_padded_vocabulary(model_and_rows):
    """Output rows past the tokenizer's vocabulary never win (GPT-NeoX pads 50,277 to 50,304)."""
    model, rows = model_and_rows
    small = rows[:32] % 200
    opt = K.ScanOptions(24, 24)
    ref = generate_reference(model, small, opt, vocab_size=200)
    got = K.memorization(model, small, opt, vocab_size=200)
    for key in ("memorized", "match_run", "matches"):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    assert (ref["tokens"] < 200).all()
    free = generate_reference(model, small, opt)
    assert (free["tokens"] >= 200).any()  # the mask changes what generate would do


def test_prompt_batch_keeps_cpu_activations_in_cache():
    """On CPU the prompt batch shrinks with the width so the MLP activation stays ~4 MB (the scan's
    flags do not depend on it: test_scan_equals_generate uses another batch); GPUs take 16k tokens."""
    cpu = torch.device("cpu")
    got = {d: K._prompt_batch(32, d, cpu) for d in (16, 64, 128, 768, 8192)}
    assert (
        got[16] == 512 and got[64] == 128 and got[128] == 64 and got[8192] == 16
    )  # floor: 16 rows
    assert all(b * 32 * 4 * d <= K.CPU_ACTIVATION_FLOATS for d, b in got.items() if b > 16)
    assert K._prompt_batch(32, 768, torch.device("cuda")) == 512


def test_leading_run():
    c = np.array([[1, 1, 0, 1], [1, 1, 1, 1], [0, 1, 1, 1]], bool)
    np.testing.assert_array_equal(K.leading_run(c), [2, 4, 0])


def test_a_tiny_model_memorizes_a_planted_sequence():
    """A one-layer model trained for a few seconds on batches that repeat one random sequence
    (among fresh random ones) flags that sequence and nothing else."""
    from pythia.model import build_model

    suite = load_suite("smoke")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    spec = suite.model("s2")
    model = build_model(suite, spec, seed=0, attn_implementation="sdpa")
    planted = rng.integers(1, 512, 33)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(25):
        batch = rng.integers(1, 512, (8, 33))
        batch[0] = planted
        x = torch.from_numpy(batch)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    probe = np.concatenate([planted[None], rng.integers(1, 512, (15, 33))])
    got = K.memorization(model, probe, K.ScanOptions(16, 16))
    assert got["memorized"][0] and not got["memorized"][1:].any(), got["match_run"]


@pytest.mark.gpu
def test_scan_equals_generate_on_a_gpu(model_and_rows, smoke_run, monkeypatch):
    """On CUDA (the model's own GELU and DynamicCache, one prompt batch per group) the flags, runs
    and scores equal generate's on the same GPU, and ``pythia bench memorization --device cuda``
    finds them identical on the training rows."""
    model, rows = model_and_rows
    gpu = copy.deepcopy(model).cuda()
    opt = K.ScanOptions(32, 32)
    ref = generate_reference(gpu, rows, opt, batch_size=64)
    got = K.memorization(gpu, rows, opt, batch_size=37, decode_batch=50)
    for key in ("memorized", "match_run", "matches"):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    flags = K.memorization(gpu, rows, K.ScanOptions(32, 32, 0), batch_size=37)
    np.testing.assert_array_equal(flags["match_run"], ref["match_run"])
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    bench = bench_memorization("smoke", "s1", rows=96, batch=32, rounds=1, device="cuda")
    assert bench["device"] == "cuda" and bench["flags_identical"] and bench["match_runs_identical"]
    assert bench["scores_identical"]


def test_prompt_forward_prunes_the_last_layer_and_keeps_the_cache(model_and_rows):
    """Inside ``last_position_only`` the last layer's MLP sees one position per row, the last
    hidden state matches a full forward's and the KV cache is the full forward's, bit for bit;
    after the block the model is whole again."""
    model, rows = model_and_rows
    x = torch.from_numpy(rows[:40, :32])
    seen = []
    hook = model.base_model.layers[-1].mlp.register_forward_pre_hook(
        lambda m, a: seen.append(tuple(a[0].shape))
    )
    try:
        with torch.inference_mode():
            full = model.base_model(input_ids=x, use_cache=True)
            with K.last_position_only(model) as pruned:
                cut = model.base_model(input_ids=x, use_cache=True)
            again = model.base_model(input_ids=x, use_cache=True)
    finally:
        hook.remove()
    assert pruned and seen == [
        (40, 32, full.last_hidden_state.shape[-1]),
        (40, 1, full.last_hidden_state.shape[-1]),
        (40, 32, full.last_hidden_state.shape[-1]),
    ]
    torch.testing.assert_close(
        cut.last_hidden_state[:, -1], full.last_hidden_state[:, -1], rtol=1e-5, atol=1e-5
    )
    for a, b in zip(full.past_key_values.layers, cut.past_key_values.layers):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
    assert torch.equal(again.last_hidden_state, full.last_hidden_state)


def test_cpu_kernels_run_the_same_gelu_and_restore_the_model(model_and_rows):
    """Inside ``cpu_kernels`` every tanh-approximated GELU is ``x * sigmoid(2u)``: within 5e-7 of
    ``F.gelu(x, approximate="tanh")`` over [-30, 30], a forward within 1e-5; after the block the
    model holds its own modules again. Other activations are left alone."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    from transformers.activations import GELUTanh

    x = torch.linspace(-30, 30, 200_001)
    with torch.inference_mode():
        fast = K._SigmoidGELU()(x.clone())
    assert (fast - torch.nn.functional.gelu(x, approximate="tanh")).abs().max() <= 5e-7

    model, rows = model_and_rows
    acts = [layer.mlp.act for layer in model.base_model.layers]
    assert all(isinstance(a, GELUTanh) for a in acts)
    ids = torch.from_numpy(rows[:24, :48])
    with torch.inference_mode():
        ref = model(input_ids=ids).logits
        with K.cpu_kernels(model) as swapped:
            assert all(
                isinstance(layer.mlp.act, K._SigmoidGELU) for layer in model.base_model.layers
            )
            got = model(input_ids=ids).logits
    assert swapped
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert [layer.mlp.act for layer in model.base_model.layers] == acts

    erf = GPTNeoXForCausalLM(
        GPTNeoXConfig(
            vocab_size=64,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            hidden_act="gelu",
        )
    )
    with K.cpu_kernels(erf) as swapped:
        assert not swapped and not isinstance(erf.gpt_neox.layers[0].mlp.act, K._SigmoidGELU)


def test_buffer_cache_equals_the_dynamic_cache(model_and_rows):
    """The scan's KV cache (a buffer written in place) gives the same keys, values and hidden states
    as ``DynamicCache`` through a prompt, a row selection and growing chunks, and refuses to grow
    past its capacity."""
    model, rows = model_and_rows
    x = torch.from_numpy(rows[:16, :40])
    keep = torch.tensor([1, 4, 5, 11])
    with torch.inference_mode():
        outs = []
        for cache in (None, K._kv_cache(40, torch.device("cpu"))):
            out = model.base_model(input_ids=x[:, :32], past_key_values=cache, use_cache=True)
            cache, hidden = out.past_key_values, [out.last_hidden_state]
            cache.batch_select_indices(keep)
            for lo, hi in ((32, 33), (33, 35), (35, 40)):
                out = model.base_model(
                    input_ids=x[keep, lo:hi], past_key_values=cache, use_cache=True
                )
                cache = out.past_key_values
                hidden.append(out.last_hidden_state)
            outs.append((cache, hidden))
        (ref, ref_h), (buf, buf_h) = outs
        assert type(buf.layers[0]).__name__ == "BufferLayer" and buf.get_seq_length() == 40
        for a, b in zip(ref_h, buf_h):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
        for a, b in zip(ref.layers, buf.layers):
            assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
        with pytest.raises(ValueError, match="cannot take 41"):
            model.base_model(input_ids=x[keep, :1], past_key_values=buf, use_cache=True)
    assert K._kv_cache(40, torch.device("meta")) is None  # not CPU: the model's DynamicCache
