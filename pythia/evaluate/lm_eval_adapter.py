"""lm-eval's ``HFLM`` on an already-loaded model, and lm-eval's per-call costs paid once.

This module imports lm-eval (seconds): :mod:`pythia.evaluate.harness` imports it only when a task
must actually run, after :func:`pythia.evaluate.harness.request_cache` had its chance to point
lm-eval's request cache (read when lm-eval is imported).

- :class:`AdapterHFLM`: ``HFLM`` with tokenizations remembered and only continuations scored
  (the same answers as lm-eval's own ``HFLM``, to float32 rounding).
- :func:`collect_env_info_once`, :func:`compile_templates_once`: lm-eval's environment record
  and Jinja templates made once per process instead of once per call or document.
- :func:`simple_evaluate`: ``lm_eval.simple_evaluate`` through the adapter, with both of the
  above in place.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from typing import Any

import lm_eval
import torch
import torch.nn.functional as F
from lm_eval import evaluator, utils
from lm_eval.models.huggingface import HFLM
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

Batch = list[tuple[list[int], list[tuple[int, list[int]]]]]
"""One forward pass: ``(input tokens, [(request index, continuation tokens), ...])`` per row."""


def request_batches(requests, max_length: int, batch_size: int, group: bool) -> tuple[list, int]:
    """The forward passes lm-eval's ``HFLM`` makes for loglikelihood ``requests``, in its order.

    A request ``(key, context tokens, continuation tokens)`` is scored on the last
    ``max_length + 1`` tokens of context + continuation without the final one (the context is
    cut from the left when too long); the continuation's log-probabilities are the logits at the
    input's last ``len(continuation)`` positions. With ``group`` (``HFLM``'s ``logits_cache``),
    requests with the same context + continuation[:-1] (the choices of a one-token
    multiple-choice question) share the input of the one with the longest continuation.
    Inputs are ordered by descending length (then tokens) of their context + continuation and
    cut into batches of ``batch_size``, as lm-eval does: the same batches give bit-identical
    numbers. Returns the batches (each a :data:`Batch`) and how many requests were cut."""
    groups: dict[tuple, list[int]] = {}
    cut = 0
    for i, (_, ctx, cont) in enumerate(requests):
        if not ctx or not cont or len(cont) > max_length:
            raise ValueError(
                f"lm-eval request with {len(ctx)} context and {len(cont)} continuation tokens: "
                f"both must be non-empty and the continuation at most {max_length} tokens"
            )
        cut += len(ctx) + len(cont) > max_length + 1
        groups.setdefault(tuple(ctx + cont[:-1]) if group else (i,), []).append(i)
    heads = [max(members, key=lambda i: len(requests[i][2])) for members in groups.values()]
    passes = []
    for head, members in zip(heads, groups.values()):
        full = requests[head][1] + requests[head][2]
        passes.append(
            (
                (-len(full), tuple(full)),
                full[-(max_length + 1) :][:-1],
                [(i, requests[i][2]) for i in members],
            )
        )
    passes.sort(key=lambda p: p[0])
    batches = [
        [p[1:] for p in passes[k : k + batch_size]] for k in range(0, len(passes), batch_size)
    ]
    return batches, cut


class AdapterHFLM(HFLM):
    """lm-eval's ``HFLM`` with tokenizations remembered and only continuations scored.

    - ``tok_encode`` is remembered per tokenizer object: lm-eval tokenizes every request again
      for every model it evaluates; evaluating the same tasks on many checkpoints with one
      tokenizer (pass the same ``tokenizer`` object) then tokenizes each string once. The tokens
      are those ``HFLM.tok_encode`` returns.
    - ``_loglikelihood_tokens`` (causal models, a fixed batch size): ``HFLM`` projects every
      input position onto the vocabulary and takes the log-softmax of all of them, then keeps
      the continuation's positions. Here the model computes logits only at those positions
      (transformers' ``logits_to_keep`` with a per-row mask), and requests with the same input
      (the choices of a one-token multiple-choice question) share one forward pass. Inputs,
      truncation and the answers ``(sum of log-probs, continuation is greedy)`` are lm-eval's;
      with a small model (micro: hidden 16-128, vocabulary 4,096) the vocabulary projection
      and its log-softmax are most of lm-eval's time. Otherwise lm-eval's own method runs."""

    def tok_encode(self, string, add_special_tokens=None, left_truncate_len=None, **kwargs):
        if kwargs:
            return super().tok_encode(string, add_special_tokens, left_truncate_len, **kwargs)
        memo = self.tokenizer.__dict__.setdefault("_pythia_tok_encode", {})
        key = (string, add_special_tokens, left_truncate_len, self.add_bos_token)
        if key not in memo:
            memo[key] = super().tok_encode(string, add_special_tokens, left_truncate_len)
        return list(memo[key])

    def _scores_continuations_only(self, override_bs) -> bool:
        forward = getattr(self.model, "forward", None)
        return (
            self.backend == "causal"
            and isinstance(override_bs or self.batch_size, int)
            and forward is not None
            and "logits_to_keep" in inspect.signature(forward).parameters
            and not hasattr(self.model, "peft_config")
        )

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        if not self._scores_continuations_only(override_bs):
            return super()._loglikelihood_tokens(
                requests, disable_tqdm=disable_tqdm, override_bs=override_bs
            )
        bs = max(1, int(override_bs or self.batch_size))
        batches, cut = request_batches(
            requests, self.max_length, bs, group=bool(getattr(self, "logits_cache", True))
        )
        if cut:
            log.warning(
                "%d of %d lm-eval requests are longer than the model's %d tokens: their contexts "
                "are cut from the left",
                cut,
                len(requests),
                self.max_length,
            )
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        bar = tqdm(
            total=len(requests),
            disable=disable_tqdm or self.rank != 0,
            desc="Running loglikelihood requests",
        )
        for batch in batches:
            logp, end = self._kept_logprobs(batch)
            for row, (_inp, reads) in enumerate(batch):
                for r, cont in reads:
                    answers[r] = answer = _answer(logp[end[row] - len(cont) : end[row]], cont)
                    if requests[r][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[r][0], answer)
                    bar.update(1)
        bar.close()
        return answers

    def _kept_logprobs(self, batch: Batch) -> tuple[torch.Tensor, list[int]]:
        """Log-softmax of the logits at each row's continuation positions (the row's longest
        continuation), rows one after the other; and where each row's positions end in it."""
        width = max(len(inp) for inp, _ in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        keep = torch.zeros(len(batch), width, dtype=torch.bool)
        for row, (inp, reads) in enumerate(batch):
            ids[row, : len(inp)] = torch.tensor(inp)
            keep[row, len(inp) - max(len(c) for _, c in reads) : len(inp)] = True
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            logits = self.model(ids.to(self.device), logits_to_keep=keep.to(self.device)).logits
        logp = F.log_softmax(logits.reshape(-1, logits.shape[-1]), dim=-1, dtype=self.softmax_dtype)
        if logp.shape[0] != int(keep.sum()):
            raise RuntimeError(
                f"{type(self.model).__name__} returned {logp.shape[0]} logits for "
                f"{int(keep.sum())} kept positions"
            )
        return logp, keep.sum(1).cumsum(0).tolist()  # a row's kept positions end here in logp


def _answer(logp: torch.Tensor, continuation: list[int]) -> tuple[float, bool]:
    """lm-eval's answer for one continuation from its positions' log-probabilities: (sum of the
    continuation's log-probs, every token of it is the greedy one)."""
    target = torch.tensor(continuation, dtype=torch.long, device=logp.device)
    return (
        float(logp.gather(1, target[:, None]).sum()),
        bool((logp.argmax(-1) == target).all()),
    )


def hflm(model, tokenizer, batch_size: int = 16, max_length: int | None = None) -> AdapterHFLM:
    """An :class:`AdapterHFLM` wrapping a loaded causal LM and its tokenizer (no reload, no copy)."""
    kwargs: dict[str, Any] = {"backend": "causal", "batch_size": batch_size}
    if max_length is not None:
        kwargs["max_length"] = max_length
    return AdapterHFLM(pretrained=model, tokenizer=tokenizer, **kwargs)


def collect_env_info_once() -> None:
    """Make lm-eval collect its environment record once per process.

    ``simple_evaluate`` adds the environment to every result (``add_env_info``: torch's
    ``collect_env``, which runs ``pip list`` and other subprocesses): 2-9 s per call on a busy
    2-core machine, several times the evaluation of a small model, and paid again for every
    checkpoint a section evaluates. It cannot change within a process, so the first call's
    record is kept and copied into later results."""
    if getattr(evaluator.add_env_info, "once", False):
        return
    collect = evaluator.add_env_info
    kept: dict[str, Any] = {}

    def add_env_info(storage: dict) -> None:
        if not kept:
            collect(kept)
        storage.update(json.loads(json.dumps(kept, default=str)))

    _mark(add_env_info, once=True)
    evaluator.add_env_info = add_env_info


def compile_templates_once() -> None:
    """Make lm-eval compile each Jinja template once per process.

    lm-eval renders a task's ``doc_to_text``/``doc_to_target``/``doc_to_choice`` templates with
    ``utils.apply_template``, which compiles the template string again on every call (jinja's
    ``from_string`` keeps no cache): ~19,000 compilations for one model's term-frequency
    evaluation, a third of its time at 138K. The compiled template is kept per template string, in
    lm-eval's own environment (same filters, same undefined handling), and renders the same text."""
    if getattr(utils.apply_template, "once", False):
        return
    compiled = functools.lru_cache(maxsize=4096)(utils.env.from_string)

    def apply_template(template: str, doc: dict) -> str:
        return compiled(template).render(**doc)

    _mark(apply_template, once=True, compiled=compiled, original=utils.apply_template)
    utils.apply_template = apply_template


def _mark(function: Callable, **attributes: Any) -> None:
    """Attributes on a replacement of an lm-eval function (``once``: it is ours, already in place)."""
    for name, value in attributes.items():
        setattr(function, name, value)


def simple_evaluate(
    model, tokenizer, tasks: list[str], *, batch_size: int, max_length: int | None, **kwargs: Any
) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` of ``tasks`` on a loaded ``model`` through :class:`AdapterHFLM`
    (``kwargs``: lm-eval's own, e.g. ``num_fewshot``, ``task_manager``, ``limit``), with the
    environment record and the templates made once per process; lm-eval's warnings only."""
    collect_env_info_once()
    compile_templates_once()
    return lm_eval.simple_evaluate(
        model=hflm(model, tokenizer, batch_size=batch_size, max_length=max_length),
        tasks=tasks,
        verbosity="WARNING",
        **kwargs,
    )
