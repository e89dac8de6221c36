"""The loss a training step minimises: mean next-token cross-entropy of a batch of rows.

    lm_loss(model, tokens)      tokens (b, L+1): inputs tokens[:, :-1], labels tokens[:, 1:]

:class:`CausalLMLoss` wraps the GPT-NeoX model so that DDP and DeepSpeed see one module that
returns the loss; on CPU it computes the output layer and the loss together
(:class:`LinearCrossEntropy`; bf16 weights, the CPU mixed-precision path:
:class:`LinearCrossEntropyMixed`), never holding the whole (b L, V) logits at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def lm_loss(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``tokens`` (b, L+1): inputs [:, :-1], labels [:, 1:].

    ``model`` is a :class:`CausalLMLoss` (or a DDP / DeepSpeed wrapper of one), which returns
    the loss itself, or a plain ``GPTNeoXForCausalLM`` (logits, then cross-entropy).
    """
    inner = getattr(model, "module", model)
    if isinstance(inner, CausalLMLoss):
        return model(tokens)
    logits = model(input_ids=tokens[:, :-1], use_cache=False).logits  # (b, L, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1))


class LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``h @ w.T`` against ``labels``, computed in row chunks.

    The output layer and the loss are one step: for each chunk of rows the logits (c, V) are
    formed, their log-sum-exp taken, and -- the loss being the graph's end -- the gradient
    ``(softmax - onehot) / n`` turned at once into the chunk's ``grad_h`` rows and added into
    ``grad_w``. The (n, V) logits never exist at once (64 MB per micro batch of the micro
    suite's 1.8M model), so everything stays in cache: on 2 CPU cores the output layer + loss
    takes ~115 ms instead of ~215 ms (n = 4096, d = 128, V = 4096). Same flops, same math as
    ``F.cross_entropy(h @ w.T, labels)`` (gradients agree to ~1e-9). The model itself is
    transformers' GPTNeoXForCausalLM, untouched; only where its logits meet the loss changes.
    """

    @staticmethod
    def forward(
        ctx, h: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, chunk: int
    ) -> torch.Tensor:
        n = h.shape[0]
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if need_grad else None
        grad_w = torch.zeros_like(w) if need_grad else None
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        inv = 1.0 / n
        for i in range(0, n, chunk):
            hc = h[i : i + chunk]  # (c, d)
            lc = labels[i : i + chunk, None]  # (c, 1)
            logits = hc @ w.t()  # (c, V)
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)  # (c, 1)
            target = logits.gather(1, lc)  # (c, 1)
            total += (lse.sum() - target.sum()).double()
            if grad_h is not None and grad_w is not None:  # need_grad
                probs = logits.sub_(lse).exp_()  # softmax, in place
                probs.scatter_(1, lc, probs.gather(1, lc) - 1.0)
                probs.mul_(inv)
                torch.mm(probs, w, out=grad_h[i : i + chunk])
                grad_w.addmm_(probs.t(), hc)
        if need_grad:
            ctx.save_for_backward(grad_h, grad_w)
        return (total * inv).to(h.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_out, grad_w * grad_out, None, None


class LinearCrossEntropyMixed(torch.autograd.Function):
    """:class:`LinearCrossEntropy` for 16-bit ``h`` and ``w`` (CPU bf16, :mod:`pythia.train.precision`).

    The three GEMMs (logits, ``grad_h``, the chunk's part of ``grad_w``) run in ``w``'s dtype;
    everything else is fp32: each chunk's logits are widened, their log-sum-exp and softmax
    taken in one pass (max, one ``exp``, sum), the loss summed in fp64, and ``grad_w``
    accumulated over the chunks in fp32 (cast to ``w``'s dtype once, at the end). Same
    arithmetic as ``F.cross_entropy((h @ w.T).float(), labels)`` with 16-bit logits, the usual
    mixed-precision output layer.
    """

    @staticmethod
    def forward(
        ctx, h: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, chunk: int
    ) -> torch.Tensor:
        n = h.shape[0]
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if need_grad else None
        grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device) if need_grad else None
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        inv = 1.0 / n
        wt = w.t()
        for i in range(0, n, chunk):
            hc = h[i : i + chunk]  # (c, d)
            lc = labels[i : i + chunk, None]  # (c, 1)
            logits = (hc @ wt).float()  # (c, V): a 16-bit GEMM, widened
            top = logits.amax(dim=-1, keepdim=True)  # (c, 1)
            target = logits.gather(1, lc)  # (c, 1)
            probs = logits.sub_(top).exp_()  # unnormalised softmax, in place
            norm = probs.sum(dim=-1, keepdim=True)  # (c, 1)
            total += (norm.log().add_(top).sum() - target.sum()).double()  # sum of lse - target
            if grad_h is not None and grad_w is not None:  # need_grad
                probs.mul_(norm.reciprocal_().mul_(inv))  # softmax / n
                probs.scatter_add_(1, lc, torch.full_like(target, -inv))  # - onehot / n
                p16 = probs.to(w.dtype)
                torch.mm(p16, w, out=grad_h[i : i + chunk])
                grad_w.add_(p16.t() @ hc)
        if need_grad:
            ctx.save_for_backward(grad_h, grad_w.to(w.dtype))  # type: ignore[union-attr]  # set with grad_h
        return (total * inv).float()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        g = grad_out.to(grad_h.dtype)
        return grad_h * g, grad_w * g, None, None


class CausalLMLoss(torch.nn.Module):
    """A GPTNeoXForCausalLM with its loss: ``forward(tokens (b, L+1)) -> mean loss``.

    ``fused`` (CPU default) computes the output layer and the loss with
    :class:`LinearCrossEntropy`; otherwise logits then ``F.cross_entropy`` (GPU default:
    one big matmul suits a GPU). DDP and DeepSpeed wrap this module, so every parameter,
    the output layer's included, takes part in their gradient synchronisation.
    """

    def __init__(self, model: PreTrainedModel, fused: bool = True, chunk: int | None = None):
        super().__init__()
        self.model = model
        self.fused = fused
        vocab = model.get_output_embeddings().weight.shape[0]
        self.chunk = chunk or int(
            min(1024, max(32, 2**19 // vocab))
        )  # ~2 MB of fp32 logits per chunk

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        inputs, labels = tokens[:, :-1].contiguous(), tokens[:, 1:]
        head = self.model.get_output_embeddings()
        if not self.fused or head.bias is not None:
            logits = self.model(input_ids=inputs, use_cache=False).logits  # (b, L, V)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
        hidden = self.model.base_model(
            input_ids=inputs, use_cache=False
        ).last_hidden_state  # (b, L, d)
        fn = LinearCrossEntropy if head.weight.dtype == torch.float32 else LinearCrossEntropyMixed
        return fn.apply(
            hidden.reshape(-1, hidden.shape[-1]), head.weight, labels.reshape(-1), self.chunk
        )
