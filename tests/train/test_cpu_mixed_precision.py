"""CPU bf16 (``training.cpu_precision: bf16``): gradients, a training run against fp32, resume,
the suite key's digests and the bench's keys. No timings: on a CPU without native bf16 GEMMs
(AVX2 only) this path is slower than fp32, and these tests only check its arithmetic."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from pythia.bench import LOSS_TOLERANCE, bench_train, loss_agreement
from pythia.config import Precision, load_suite
from pythia.errors import UsageError
from pythia.model import build_model
from pythia.train import checkpoint as ckpt
from pythia.train.distributed import DistContext
from pythia.train.engine import build_engine
from pythia.train.loop import TrainOptions, train
from pythia.train.loss import CausalLMLoss, LinearCrossEntropyMixed
from pythia.train.precision import Bf16Shadow, with_cpu_precision

from .helpers import assert_same_weights, read_log


def test_mixed_linear_cross_entropy_is_the_loss_of_its_bf16_inputs():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(300, 24, generator=g).bfloat16().requires_grad_()
    w = (0.3 * torch.randn(77, 24, generator=g)).bfloat16().requires_grad_()
    labels = torch.randint(0, 77, (300,), generator=g)
    rh, rw = h.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    ref = F.cross_entropy(rh @ rw.t(), labels)  # exact arithmetic on the same bf16 values
    ref.backward()
    got = LinearCrossEntropyMixed.apply(h, w, labels, 64)  # 4 full chunks and a partial one
    (2.0 * got).backward()
    assert got.dtype == torch.float32 and h.grad.dtype == w.grad.dtype == torch.bfloat16
    # 16-bit logits: ~2^-9 relative each; the loss (a mean of 300) is far closer
    assert abs(float(got.detach()) - float(ref)) / float(ref) < 2e-3
    for grad, want in ((h.grad, rh.grad), (w.grad, rw.grad)):
        err = (grad.double() / 2.0 - want).abs().max() / want.abs().max()
        assert err < 2e-2


def test_bf16_shadow_gradients_track_fp32_and_land_in_the_master_weights():
    suite = load_suite("smoke")
    model = build_model(suite, "s2", device="cpu")
    shadow = Bf16Shadow(model)
    assert all(p.dtype == torch.bfloat16 for p in shadow.model.parameters())
    assert all(b.dtype == torch.float32 for b in shadow.model.buffers() if b.is_floating_point())
    tokens = torch.randint(0, 512, (4, 65), generator=torch.Generator().manual_seed(1))
    ref_loss = CausalLMLoss(model)(tokens)
    ref = torch.autograd.grad(ref_loss, list(model.parameters()))
    loss = CausalLMLoss(shadow.model)(tokens)
    assert abs(float(loss) - float(ref_loss)) / float(ref_loss) < 1e-3
    # two micro batches of half the loss each: accumulated in fp32 in the master .grad
    (0.5 * loss).backward(retain_graph=True)
    shadow.grads_to_master()
    (0.5 * loss).backward()
    shadow.grads_to_master()
    for (name, p), want in zip(model.named_parameters(), ref):
        assert p.grad is not None and p.grad.dtype == torch.float32, name
        rel = float((p.grad - want).norm() / want.norm())
        cos = float(F.cosine_similarity(p.grad.flatten(), want.flatten(), dim=0))
        assert rel < 0.05 and cos > 0.999, (name, rel, cos)  # measured: rel <= 0.023
    assert all(s.grad is None for s in shadow.model.parameters())
    # one cast per step: the copy follows the master weights
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    shadow.sync()
    for p, s in zip(model.parameters(), shadow.model.parameters()):
        assert torch.equal(s, p.to(torch.bfloat16))


def _run(suite, out, precision: str, **kw):
    kw.setdefault("threads", 1)
    suite = with_cpu_precision(suite, Precision(precision))
    return train(TrainOptions(suite=suite, model="t2", out=out, **kw))


def test_bf16_run_tracks_fp32_saves_fp32_weights_and_resumes_exactly(tiny, tmp_path):
    suite, _, _ = tiny
    _run(suite, tmp_path / "fp32", "fp32")
    _run(suite, tmp_path / "bf16", "bf16")
    fp32, bf16 = read_log(tmp_path / "fp32")[1:], read_log(tmp_path / "bf16")[1:]
    assert all("precision" not in r for r in fp32)  # fp32 logs as before
    assert all(r["precision"] == "bf16" for r in bf16)
    agree = loss_agreement([r["loss"] for r in fp32], [r["loss"] for r in bf16])
    assert agree["within_tolerance"], agree
    assert agree["max_abs_diff"] > 0  # it did train in another precision
    final = ckpt.model_dir(tmp_path / "bf16", 12)
    assert all(
        t.dtype == torch.float32 for t in load_file(str(final / "model.safetensors")).values()
    )
    state = json.loads((tmp_path / "bf16" / "state" / "step8" / "state.json").read_text())
    assert state["precision"] == "bf16"
    # a bf16 run is another run: the fp32 run's directory refuses it
    with pytest.raises(ckpt.CheckpointError):
        _run(suite, tmp_path / "fp32", "bf16")
    # killed after 5 steps and resumed: bit-identical to the uninterrupted bf16 run
    _run(suite, tmp_path / "resumed", "bf16", max_steps=5)
    _run(suite, tmp_path / "resumed", "bf16", resume=True)
    assert_same_weights(final, ckpt.model_dir(tmp_path / "resumed", 12))
    assert [r["loss"] for r in read_log(tmp_path / "resumed")[1:]] == [r["loss"] for r in bf16]


def test_cpu_precision_key_keeps_default_digests_and_makes_bf16_another_run():
    base = load_suite("micro")
    bf16 = load_suite("micro", {"training": {"cpu_precision": "bf16"}})
    assert base.training.cpu_precision is Precision.fp32
    assert "cpu_precision" not in base.training.model_dump()  # other digests unchanged
    assert bf16.digest != base.digest
    assert ckpt.run_digest(bf16, "1.8M", "standard") != ckpt.run_digest(base, "1.8M", "standard")
    assert with_cpu_precision(base, Precision.bf16).digest == bf16.digest
    with pytest.raises(ValueError, match="fp16 is not supported on CPU"):
        load_suite("micro", {"training": {"cpu_precision": "fp16"}})


def test_cpu_bf16_refuses_deepspeed_and_several_ranks():
    suite = load_suite("smoke", {"training": {"cpu_precision": "bf16"}})
    spec = suite.model("s1")
    one = DistContext()
    with pytest.raises(UsageError, match="one process"):
        build_engine(suite, spec, "standard", "cpu", one, use_deepspeed=True)
    engine = build_engine(suite, spec, "standard", "cpu", one, use_deepspeed=False)
    assert engine.precision is Precision.bf16 and engine.amp_dtype is None
    assert engine.shadow is not None and engine.loss_model.model is engine.shadow.model
    assert all(p.dtype == torch.float32 for p in engine.model.parameters())


def test_bench_reports_the_bf16_sides_their_ratios_and_the_loss_agreement(tiny):
    suite, _, _ = tiny
    res = bench_train(
        suite,
        ["t1"],
        steps=1,
        warmup=1,
        threads=1,
        matmul_n=128,
        rounds=1,
        bf16="on",
        agreement_steps=6,
    )
    assert res["bf16"]["mode"] == "on" and res["bf16"]["timed"]
    m = res["models"][0]
    for key in ("ours", "ours_bf16", "hf_trainer", "hf_trainer_bf16"):
        assert m[key]["tokens_per_s"] > 0 and m[key]["timed_steps"] == 1, key
    assert m["ours_bf16"]["precision"] == "bf16" and m["hf_trainer_bf16"]["bf16"]
    for key in ("ours", "ours_bf16", "hf_trainer_bf16"):
        assert m[f"{key}_over_trainer"] == pytest.approx(
            m[key]["tokens_per_s"] / m["hf_trainer"]["tokens_per_s"]
        )
    assert m["bf16_gemm"]["bf16_flops_per_s"] > 0 and m["bf16_gemm"]["fp32_flops_per_s"] > 0
    a = m["loss_agreement"]
    assert a["steps"] == 6 and len(a["losses_fp32"]) == len(a["losses_bf16"]) == 6
    assert a["tolerance"] == LOSS_TOLERANCE and a["within_tolerance"]
