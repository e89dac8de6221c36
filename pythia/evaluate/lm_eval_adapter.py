"""lm-eval's ``HFLM`` on an already-loaded model, and lm-eval's per-call costs paid once.

This module imports lm-eval (seconds): :mod:`pythia.evaluate.harness` imports it only when a task
must actually run, after :func:`pythia.evaluate.harness.request_cache` had its chance to point
lm-eval's request cache (read when lm-eval is imported).

- :class:`AdapterHFLM`: ``HFLM`` with tokenizations remembered and log-likelihood requests
  scored by :mod:`pythia.evaluate.packed` (shared prefixes, many requests to a row, only the
  continuations through the output layer: the same answers as lm-eval's own ``HFLM``, to
  float32 rounding).
- :func:`collect_env_info_once`, :func:`compile_templates_once`: lm-eval's environment record
  and Jinja templates made once per process instead of once per call or document.
- :func:`simple_evaluate`: ``lm_eval.simple_evaluate`` through the adapter, with both of the
  above in place.
- :class:`Sweep`: the same tasks on many checkpoints in one process: lm-eval's task objects
  (datasets loaded, few-shot samplers seeded) and the ``HFLM`` wrapper built once, then
  ``lm_eval.evaluator.evaluate`` per checkpoint, which is what ``simple_evaluate`` runs after
  building them.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import random
from collections.abc import Callable
from typing import Any

import lm_eval
import numpy as np
import torch
from lm_eval import evaluator, utils
from lm_eval.defaults import DEFAULT_OTHER_SEED, DEFAULT_RANDOM_SEED
from lm_eval.models.huggingface import HFLM
from tqdm.auto import tqdm

from pythia.evaluate import packed

log = logging.getLogger(__name__)


class AdapterHFLM(HFLM):
    """lm-eval's ``HFLM`` with tokenizations remembered and requests scored with shared prefixes.

    - ``tok_encode`` is remembered per tokenizer object: lm-eval tokenizes every request again
      for every model it evaluates; evaluating the same tasks on many checkpoints with one
      tokenizer (pass the same ``tokenizer`` object) then tokenizes each string once. The tokens
      are those ``HFLM.tok_encode`` returns.
    - ``_loglikelihood_tokens`` (causal models whose base model takes ``position_ids``, a
      fixed batch size): ``HFLM`` runs every request on its own padded row, projects every
      input position onto the vocabulary and takes the log-softmax of all of them, then keeps
      the continuation's positions. Here :func:`pythia.evaluate.packed.score_requests` runs
      each shared context once with its continuations as branches, packs many such trees into
      a row (about 4,096 tokens a forward pass; the batch size is not used), and projects only
      the continuation positions. Inputs, truncation and the answers ``(sum of log-probs,
      continuation is greedy)`` are lm-eval's. Otherwise lm-eval's own method runs."""

    def tok_encode(self, string, add_special_tokens=None, left_truncate_len=None, **kwargs):
        if kwargs:
            return super().tok_encode(string, add_special_tokens, left_truncate_len, **kwargs)
        memo = self.tokenizer.__dict__.setdefault("_pythia_tok_encode", {})
        key = (string, add_special_tokens, left_truncate_len, self.add_bos_token)
        if key not in memo:
            memo[key] = super().tok_encode(string, add_special_tokens, left_truncate_len)
        return list(memo[key])

    def _scores_packed(self, override_bs) -> bool:
        base = getattr(self.model, "base_model", None)
        return (
            self.backend == "causal"
            and isinstance(override_bs or self.batch_size, int)
            and base is not None
            and "position_ids" in inspect.signature(base.forward).parameters
            and self.model.get_output_embeddings() is not None
            and not hasattr(self.model, "peft_config")
        )

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        if not self._scores_packed(override_bs):
            return super()._loglikelihood_tokens(
                requests, disable_tqdm=disable_tqdm, override_bs=override_bs
            )
        cut = sum(len(ctx) + len(cont) > self.max_length + 1 for _, ctx, cont in requests)
        if cut:
            log.warning(
                "%d of %d lm-eval requests are longer than the model's %d tokens: their contexts "
                "are cut from the left",
                cut,
                len(requests),
                self.max_length,
            )
        with tqdm(
            total=len(requests),
            disable=disable_tqdm or self.rank != 0,
            desc="Running loglikelihood requests",
        ) as bar:
            answers = packed.score_requests(
                self.model,
                [(ctx, cont) for _, ctx, cont in requests],
                self.max_length,
                autocast_dtype=self.mixed_precision_dtype,
                progress=bar,
            )
        for (key, _, _), answer in zip(requests, answers):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, answer)
        return answers


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


def bootstrap_in_process() -> None:
    """Make lm-eval's bootstrap standard errors (perplexity's) run in this process.

    ``lm_eval.api.metrics.bootstrap_stderr`` starts a ``multiprocessing.Pool`` of one process per
    CPU for every bootstrapped metric of every call (forking the evaluating process, model and
    all) unless ``DISABLE_MULTIPROC`` is set; both ways draw chunk i of the resamples from
    ``random.Random(i)``, so the standard error is the same number. Set here, for this process."""
    os.environ.setdefault("DISABLE_MULTIPROC", "1")


def _mark(function: Callable, **attributes: Any) -> None:
    """Attributes on a replacement of an lm-eval function (``once``: it is ours, already in place)."""
    for name, value in attributes.items():
        setattr(function, name, value)


class Sweep:
    """lm-eval tasks on one checkpoint after another, in one process.

    ``lm_eval.simple_evaluate`` builds the task objects on every call (each task's dataset
    loaded through ``datasets``, its few-shot sampler seeded) and a new ``HFLM`` around the model
    (~0.5 s on 2 cores, more than a small model's evaluation). A sweep builds the task objects
    once per (tasks, shots) exactly as ``simple_evaluate`` does (its ``num_fewshot`` override
    and few-shot seed), keeps one ``HFLM`` per model architecture and tokenizer (each
    checkpoint's model is put in it; what ``HFLM`` derives from a model, its config, length and
    device, is the same for every checkpoint of a run), and calls
    ``lm_eval.evaluator.evaluate`` on them: the rest of ``simple_evaluate``. The results are
    ``simple_evaluate``'s, to the environment record (``tests/evaluate/test_harness.py``)."""

    def __init__(self) -> None:
        self._tasks: dict[tuple, dict] = {}
        self._lm: AdapterHFLM | None = None
        self._lm_key: tuple | None = None

    def _task_dict(self, tasks: list[str], task_manager, num_fewshot: int | None) -> dict:
        key = (tuple(tasks), id(task_manager), num_fewshot)
        if key not in self._tasks:
            loaded = task_manager.load(tasks)
            for task in loaded["tasks"].values():
                if num_fewshot is not None:
                    if task.get_config("num_fewshot") != 0:
                        task.set_config(key="num_fewshot", value=num_fewshot)
                elif task.get_config("num_fewshot") is None:
                    task.set_config(key="num_fewshot", value=0)
            self._tasks[key] = loaded
        return self._tasks[key]

    def _lm_for(self, model, tokenizer, batch_size: int, max_length: int | None) -> AdapterHFLM:
        key = (
            id(tokenizer),
            type(model),
            model.config.to_json_string(),
            str(model.device),
            model.dtype,
            batch_size,
            max_length,
        )
        if self._lm is None or key != self._lm_key:
            self._lm = hflm(model, tokenizer, batch_size=batch_size, max_length=max_length)
            self._lm_key = key
        else:
            self._lm._model = model
        return self._lm

    def evaluate(
        self,
        model,
        tokenizer,
        tasks: list[str],
        *,
        batch_size: int,
        max_length: int | None,
        task_manager,
        num_fewshot: int | None = None,
        limit: int | None = None,
        log_samples: bool = False,
        bootstrap_iters: int = 100000,
        cache_requests: bool = False,
    ) -> dict[str, Any]:
        """``simple_evaluate(model=..., tasks=tasks, ...)``'s results for this ``model``."""
        collect_env_info_once()
        compile_templates_once()
        bootstrap_in_process()
        loaded = self._task_dict(tasks, task_manager, num_fewshot)
        # simple_evaluate's seeds, set on every call: the few-shot samplers start again as on a
        # fresh task object (they draw as they build each checkpoint's requests)
        random.seed(DEFAULT_RANDOM_SEED)
        np.random.seed(DEFAULT_OTHER_SEED)
        torch.manual_seed(DEFAULT_OTHER_SEED)
        for task in loaded["tasks"].values():
            task.set_fewshot_seed(seed=DEFAULT_OTHER_SEED)
        out = evaluator.evaluate(
            lm=self._lm_for(model, tokenizer, batch_size, max_length),
            task_dict=loaded,
            limit=limit,
            cache_requests=cache_requests,
            bootstrap_iters=bootstrap_iters,
            log_samples=log_samples,
            verbosity="WARNING",
        )
        evaluator.add_env_info(out)
        return out


class _RequestRecorder(AdapterHFLM):
    """An ``HFLM`` that keeps the tokenized log-likelihood requests it is given and answers none
    (every answer ``(0.0, False)``): the requests a task set makes, for timing their scoring."""

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        self.recorded = [*getattr(self, "recorded", []), *((c, x) for _, c, x in requests)]
        return [(0.0, False)] * len(requests)


def collect_requests(
    model, tokenizer, tasks: list[str], task_manager, num_fewshot: int | None = None
) -> list[tuple[list[int], list[int]]]:
    """The ``(context tokens, continuation tokens)`` of every log-likelihood request ``tasks`` make,
    tokenized as lm-eval's ``HFLM`` tokenizes them for ``model``'s ``tokenizer``, in lm-eval's order."""
    collect_env_info_once()
    compile_templates_once()
    lm = _RequestRecorder(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=1)
    lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=task_manager,
        num_fewshot=num_fewshot,
        bootstrap_iters=0,
        verbosity="WARNING",
    )
    return list(getattr(lm, "recorded", []))


def simple_evaluate(
    model, tokenizer, tasks: list[str], *, batch_size: int, max_length: int | None, **kwargs: Any
) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` of ``tasks`` on a loaded ``model`` through :class:`AdapterHFLM`
    (``kwargs``: lm-eval's own, e.g. ``num_fewshot``, ``task_manager``, ``limit``), with the
    environment record and the templates made once per process; lm-eval's warnings only."""
    collect_env_info_once()
    compile_templates_once()
    bootstrap_in_process()
    return lm_eval.simple_evaluate(
        model=hflm(model, tokenizer, batch_size=batch_size, max_length=max_length),
        tasks=tasks,
        verbosity="WARNING",
        **kwargs,
    )
