"""``pythia bench score --requests``: lm-eval's own ``HFLM`` against :mod:`pythia.evaluate.packed`
on the same log-likelihood requests.

The requests are every one the tasks of a task folder make (section 02's, as
``pythia benchmarks evaluate`` sends them: :func:`pythia.evaluate.lm_eval_adapter.collect_requests`),
tokenized once. For each model of the suite (initial weights: the time does not depend on them)
the two score them in alternating rounds on the same thread count; reported: requests/s of each
(best and median round), the ratio of the best rounds, the input tokens each feeds the model,
and how far the answers differ (lm-eval's are the reference).

    pythia bench score --suite micro --model all --requests [work/micro/benchmarks/tasks/tasks.json]
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from pythia.config import Suite, load_suite
from pythia.data.tokenizer import load_tokenizer
from pythia.evaluate import packed
from pythia.evaluate.harness import task_manager
from pythia.model import build_model

log = logging.getLogger(__name__)


def _time_both(model, tok, requests: list, rounds: int, batch_size: int) -> dict[str, Any]:
    """Alternating rounds of lm-eval's ``HFLM`` and the packed engine on ``requests``."""
    from lm_eval.models.huggingface import HFLM  # heavy: imports lm-eval (seconds)

    stock = HFLM(pretrained=model, tokenizer=tok, backend="causal", batch_size=batch_size)
    keyed = [(None, c, x) for c, x in requests]
    times: dict[str, list[float]] = {"lm_eval": [], "packed": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        want = stock._loglikelihood_tokens(keyed, disable_tqdm=True)
        t1 = time.perf_counter()
        got = packed.score_requests(model, requests, stock.max_length)
        t2 = time.perf_counter()
        times["lm_eval"].append(t1 - t0)
        times["packed"].append(t2 - t1)
    res: dict[str, Any] = {
        "requests": len(requests),
        "input_tokens_lm_eval": sum(
            min(len(c) + len(x) - 1, stock.max_length) for c, x in requests
        ),
        "input_tokens_packed": sum(
            len(t) for t in packed.request_trees(requests, stock.max_length)
        ),
        "max_relative_difference": max(
            (abs(a - b) / max(abs(b), 1e-12) for (a, _), (b, _) in zip(got, want, strict=True)),
            default=0.0,
        ),
        "same_greedy": [g for _, g in got] == [g for _, g in want],
    }
    for key, ts in times.items():
        res[key] = {
            "seconds": ts,
            "requests_per_s": len(requests) / min(ts),
            "median_requests_per_s": len(requests) / sorted(ts)[len(ts) // 2],
        }
    res["packed_over_lm_eval"] = min(times["lm_eval"]) / min(times["packed"])
    return res


def bench_requests(
    suite: str | Suite,
    models: list[str],
    manifest: dict,
    *,
    num_fewshot: int = 0,
    rounds: int = 2,
    batch_size: int = 32,
    threads: int | None = None,
) -> dict[str, Any]:
    """Requests/s of lm-eval's ``HFLM`` and of the packed engine on every request of the tasks
    of ``manifest`` (see the module docstring), per model of ``suite``."""
    from pythia.evaluate import lm_eval_adapter  # heavy: imports lm-eval (seconds)

    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if threads:
        torch.set_num_threads(threads)
    tok = load_tokenizer(suite)
    tm = task_manager(manifest["include_path"], manifest["tasks"])
    results = []
    for name in list(suite.models) if models == ["all"] else models:
        model = build_model(suite, name, seed=suite.training.seed).eval()
        requests = lm_eval_adapter.collect_requests(
            model, tok, manifest["tasks"], tm, num_fewshot=num_fewshot
        )
        res = {"model": name, **_time_both(model, tok, requests, rounds, batch_size)}
        log.info(
            "%s: lm-eval HFLM %.0f requests/s, packed %.0f requests/s (%.2fx); answers within %.1e",
            name,
            res["lm_eval"]["requests_per_s"],
            res["packed"]["requests_per_s"],
            res["packed_over_lm_eval"],
            res["max_relative_difference"],
        )
        results.append(res)
    return {
        "suite": suite.name,
        "tasks": manifest["tasks"],
        "num_fewshot": num_fewshot,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "torch": torch.__version__,
        "models": results,
    }


__all__ = ["bench_requests"]
