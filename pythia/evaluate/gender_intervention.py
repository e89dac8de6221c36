"""Section 03, the gender intervention: every measure of every window checkpoint of a run.

    evaluate_run(suite, catalogue, run, model, tasks_dir, out)   one CSV per (run, model)
        window_steps(...)          the checkpoints: the intervened window (the baseline from the
                                   earliest start of the model's intervened runs)
        run_inputs(suite, pmap)    read once per run: held-out pronoun rows, validation sequences
                                   (the suite's split, or a tokenized file: pythia.data.validation)
        evaluate_checkpoint(...)   the rows of one checkpoint: the bias tasks through lm-eval,
                                   the she/he log-odds, the validation loss

The measures themselves (the offline tasks, lm-eval's records as rows, the log-odds): see
:mod:`pythia.evaluate.bias`. Scores go through :func:`pythia.evaluate.cache.cached_score` and lm-eval
results through :func:`pythia.evaluate.harness.evaluate_tasks`, both cached per checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pythia import paths
from pythia.config import Suite
from pythia.data.pronouns import PronounMap, suite_map
from pythia.data.validation import validation_rows
from pythia.evaluate import bias
from pythia.evaluate.cache import cached_score
from pythia.evaluate.harness import evaluate_tasks, folder_digest, request_cache
from pythia.io import atomic_path
from pythia.runs import Catalogue, Checkpoint
from pythia.train.intervened_runs import window

log = logging.getLogger(__name__)

COLUMNS = ["run", "model", "step", "tokens_seen", "metric", "value", "stderr", "n"]
"""The columns of a run's measures CSV."""
NEEDED_BY = "section 03 (training.val_sequences)"
"""Who asks for the validation sequences, as a too-short validation source's error says."""


# ------------------------------------------------------------------------------ one checkpoint


def run_inputs(
    suite: Suite, pmap: PronounMap, validation: str | Path | None = None
) -> dict[str, Any]:
    """What every checkpoint is scored on, read once per run: the held-out pronoun rows and their
    index (:func:`pythia.evaluate.bias.logodds_rows`), and the validation sequences (the suite's
    split, or the tokenized file ``validation``: :func:`pythia.data.validation.validation_rows`)."""
    iv = suite.intervention
    seqs, index = bias.logodds_rows(
        bias.heldout_tokens(suite), pmap, iv.pronoun_context, iv.pronoun_positions
    )
    return {
        "pronoun_rows": seqs,
        "pronoun_index": index,
        "val": validation_rows(suite, suite.training.val_sequences, validation, NEEDED_BY),
    }


def _mean_row(metric: str, values: np.ndarray, n: int, mean: float | None = None) -> dict:
    """A metric row: the mean of ``values`` (or ``mean``) with its standard error over them."""
    return {
        "metric": metric,
        "value": float(values.mean()) if mean is None else mean,
        "stderr": float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None,
        "n": n,
    }


def evaluate_checkpoint(
    ckpt: Checkpoint,
    suite: Suite,
    pmap: PronounMap,
    tasks_dir: str | Path | None,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    batch_size: int = 16,
    online: bool = False,
    inputs: dict[str, Any] | None = None,
    cache_requests: bool = False,
) -> list[dict[str, Any]]:
    """Every measure of one checkpoint as rows ``{metric, value, stderr, n}`` (cached per checkpoint).
    ``inputs``: :func:`run_inputs` (read here when not given); ``cache_requests``: lm-eval's
    request cache, pointed by the caller (:func:`pythia.evaluate.harness.request_cache`)."""
    inputs = inputs if inputs is not None else run_inputs(suite, pmap)
    model = None

    def loaded() -> Any:
        nonlocal model
        if model is None:
            model = ckpt.load_model(dtype=dtype, device=device)
        return model

    records = evaluate_tasks(
        ckpt,
        list(bias.ONLINE_TASKS if online else bias.LOCAL_TASKS),
        include_path=None if online else tasks_dir,
        limit=suite.intervention.eval_limit,
        batch_size=batch_size,
        bootstrap_iters=1000,
        device=device,
        dtype=dtype,
        cache_requests=cache_requests,
        max_length=max(suite.training.seq_len, bias.MIN_CONTEXT),
    )
    return bias.bias_rows(records) + _scored_rows(ckpt, suite, inputs, loaded)


def _scored_rows(
    ckpt: Checkpoint, suite: Suite, inputs: dict[str, Any], loaded: Callable[[], Any]
) -> list[dict[str, Any]]:
    """The she/he log-odds (where the held-out text has pronouns) and the validation loss."""
    rows = []
    seqs, index = inputs["pronoun_rows"], inputs["pronoun_index"]
    if len(seqs):
        context = suite.intervention.pronoun_context
        s = cached_score(ckpt, seqs, positions=[context], load_model=loaded)
        lo = bias.logodds(s.logprobs[:, 0], index)
        rows.append(_mean_row("pronoun_logodds", lo, len(lo)))
    s = cached_score(ckpt, inputs["val"], load_model=loaded)
    losses = s.losses.mean(axis=1)
    rows.append(_mean_row("val_loss", losses, int(s.losses.size), float(s.losses.mean())))
    return rows


# ------------------------------------------------------------------------------ one run


def window_steps(suite: Suite, run: str, model: str, available: list[int]) -> list[int]:
    """The steps of ``run``/``model`` to evaluate: from the earliest start of the model's intervened
    runs to the end for the baseline, after the start for an intervened run (its start checkpoint
    is the baseline's weights)."""
    _dataset, variant = paths.parse_run(run)
    if variant is not None:
        lo = window(suite, variant)[0] + 1
    else:
        starts = [
            window(suite, v)[0] for v, r in suite.intervention.runs.items() if model in r.models
        ]
        if not starts:
            return []
        lo = min(starts)
    return [s for s in available if s >= lo]


def _cache_requests(suite: Suite, tasks_dir: str | Path | None, online: bool) -> bool:
    """Whether lm-eval's requests are built once per run: where lm-eval is not imported yet (the
    local tasks' files and the limit name them; online tasks are rebuilt: their data is lm-eval's
    to change). The tokenizer is one object for every checkpoint (Checkpoint.load_tokenizer), so
    the adapter's tokenizations carry over too."""
    if online or tasks_dir is None:
        return False
    key = {"tasks": folder_digest(tasks_dir), "limit": suite.intervention.eval_limit}
    return request_cache(suite.name, key) is not None


def evaluate_run(
    suite: Suite,
    catalogue: Catalogue,
    run: str,
    model: str,
    tasks_dir: str | Path | None,
    out: str | Path,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    online: bool = False,
    progress: bool = False,
    validation: str | Path | None = None,
) -> Path:
    """Every measure of every window checkpoint of ``run``/``model``: a CSV of rows ``run, model,
    step, tokens_seen, metric, value, stderr, n`` (written atomically). ``validation``: a
    tokenized file of validation text instead of the suite's split (pythia.data.validation)."""
    pmap = suite_map(suite)
    available = catalogue.steps(model, run) if run in catalogue.datasets() else []
    steps = window_steps(suite, run, model, available)
    inputs = run_inputs(suite, pmap, validation) if steps else None
    cached = bool(steps) and _cache_requests(suite, tasks_dir, online)
    rows: list[dict[str, Any]] = []
    for step in tqdm(steps, desc=f"{run}/{model}", disable=not progress):
        ckpt = catalogue.checkpoint(model, run, step)
        measures = evaluate_checkpoint(
            ckpt,
            suite,
            pmap,
            tasks_dir,
            device=device,
            dtype=dtype,
            online=online,
            inputs=inputs,
            cache_requests=cached,
        )
        base = {
            "run": run,
            "model": model,
            "step": step,
            "tokens_seen": catalogue.tokens_seen(step),
        }
        rows += [{**base, **r} for r in measures]
        summary = ", ".join(f"{r['metric']} {r['value']:.4f}" for r in measures)
        log.info("%s/%s step %d: %s", run, model, step, summary)
    out = Path(out)
    with atomic_path(out) as tmp:
        pd.DataFrame(rows, columns=COLUMNS).to_csv(tmp, index=False)
    return out
