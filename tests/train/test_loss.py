"""The fused output-layer + cross-entropy equals logits + F.cross_entropy."""

import torch
import torch.nn.functional as F

from pythia.config import load_suite
from pythia.model import build_model
from pythia.train.loss import CausalLMLoss, LinearCrossEntropy


def test_linear_cross_entropy_matches_the_plain_loss_and_gradients():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(300, 24, generator=g, dtype=torch.float64, requires_grad=True)
    w = (0.3 * torch.randn(77, 24, generator=g, dtype=torch.float64)).requires_grad_()
    labels = torch.randint(0, 77, (300,), generator=g)
    ref = F.cross_entropy(h @ w.t(), labels)
    gh, gw = torch.autograd.grad(2.5 * ref, (h, w))
    got = LinearCrossEntropy.apply(h, w, labels, 64)  # 300 rows: 4 full chunks and a partial one
    fh, fw = torch.autograd.grad(2.5 * got, (h, w))
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(fh, gh, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(fw, gw, rtol=1e-10, atol=1e-14)
    with torch.no_grad():  # evaluation: loss only
        torch.testing.assert_close(LinearCrossEntropy.apply(h, w, labels, 64), ref)


def test_causal_lm_loss_equals_the_model_logits_loss():
    suite = load_suite("smoke")
    model = build_model(suite, "s2", device="cpu")
    tokens = torch.randint(0, 512, (3, 65), generator=torch.Generator().manual_seed(1))
    fused, plain = CausalLMLoss(model, fused=True, chunk=50), CausalLMLoss(model, fused=False)
    a = fused(tokens)
    ga = torch.autograd.grad(a, list(model.parameters()))
    b = plain(tokens)
    gb = torch.autograd.grad(b, list(model.parameters()))
    logits = model(input_ids=tokens[:, :-1]).logits
    ref = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    torch.testing.assert_close(a, ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(b, ref, rtol=1e-6, atol=0)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-7)
