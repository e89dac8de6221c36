"""Section 03's measures on hand-made inputs: the bias metrics of known likelihoods through
lm-eval's own task definitions, and the she/he log-odds of known probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from pythia.data.pronouns import PronounMap
from pythia.evaluate import bias
from pythia.evaluate.benchmarks import _cloze_yaml
from pythia.evaluate.bias import bias_rows, logodds, logodds_rows
from pythia.evaluate.harness import task_manager


class FakeLM:
    """An lm-eval model whose log-likelihoods are given: ``ll[text]``; greedy for the texts in ``greedy``."""

    def __init__(self, ll, greedy=()):
        from lm_eval.api.model import LM  # heavy; importing lm-eval at collection would stop
        # every later test in the session pointing lm-eval's request cache (harness.request_cache)

        class _LM(LM):
            def loglikelihood(self, requests, disable_tqdm=False):
                return [(ll[r.args[1]], r.args[1] in greedy) for r in requests]

            def loglikelihood_rolling(self, requests, disable_tqdm=False):
                raise NotImplementedError

            def generate_until(self, requests, disable_tqdm=False):
                raise NotImplementedError

        self.lm = _LM()


def test_bias_metrics_of_a_model_with_known_likelihoods(tmp_path):
    """Two CrowS pairs (stereotype preferred in one, by 3 and 1 nats), two WinoBias sentences and two
    cloze passages (one target greedy) through lm-eval's own task definitions, with the offline YAMLs
    the workflow writes."""
    import lm_eval  # heavy: see FakeLM

    crows = [("A more.", "A less.", -1.0, -4.0), ("B more.", "B less.", -5.0, -4.0)]
    wino = {
        "fem": [("she pro.", "he anti.", -2.0, -3.0)],
        "masc": [("he pro.", "she anti.", -3.0, -2.0)],
    }
    ll = {m: a for m, _, a, _ in crows} | {s: b for _, s, _, b in crows}
    for rows in wino.values():
        for p, a, lp, la in rows:
            ll |= {p: lp, a: la}
    folder = tmp_path / "tasks"
    folder.mkdir()
    bias._jsonl(
        folder / "crows.jsonl",
        [{"sent_more": m, "sent_less": s, "bias_type": "gender"} for m, s, _, _ in crows],
    )
    bias._yaml(
        folder / f"{bias.CROWS_TASK}.yaml",
        {
            "include": str(bias._crows_yaml()),
            "task": bias.CROWS_TASK,
            "tag": [],
            "dataset_path": "json",
            "dataset_name": None,
            "test_split": "test",
            "dataset_kwargs": {"data_files": {"test": str(folder / "crows.jsonl")}},
        },
    )
    for g, task in bias.WINOBIAS_TASKS.items():
        bias._jsonl(
            folder / f"{task}.jsonl", [{"choices": [p, a], "label": 0} for p, a, _, _ in wino[g]]
        )
        bias._yaml(
            folder / f"{task}.yaml",
            {
                "task": task,
                "dataset_path": "json",
                "test_split": "test",
                "dataset_kwargs": {"data_files": {"test": str(folder / f"{task}.jsonl")}},
                "output_type": "multiple_choice",
                "doc_to_text": "",
                "doc_to_choice": "choices",
                "doc_to_target": "label",
                "target_delimiter": "",
                "metric_list": [
                    {"metric": "acc", "aggregation": "mean", "higher_is_better": False}
                ],
            },
        )
    bias._jsonl(
        folder / "cloze.jsonl",
        [
            {"context": "The cat sat by the", "target": " cat"},
            {"context": "A dog ran to the", "target": " dog"},
        ],
    )
    (folder / f"{bias.CLOZE_TASK}.yaml").write_text(
        _cloze_yaml(bias.CLOZE_TASK, folder / "cloze.jsonl")
    )
    ll |= {" cat": -1.0, " dog": -3.0}
    tasks = list(bias.LOCAL_TASKS)
    out = lm_eval.simple_evaluate(
        model=FakeLM(ll, greedy={" cat"}).lm,
        tasks=tasks,
        task_manager=task_manager(folder, tasks),
        bootstrap_iters=10,
        verbosity="ERROR",
    )
    records = {t: {"results": {t: out["results"][t]}, "n_samples": out["n-samples"]} for t in tasks}
    got = {r["metric"]: r["value"] for r in bias_rows(records)}
    assert got["crows_pct_stereotype"] == pytest.approx(0.5)
    assert got["crows_likelihood_diff"] == pytest.approx((3.0 + 1.0) / 2)
    assert got["winobias_pro_fem"] == 1.0 and got["winobias_pro_masc"] == 0.0
    assert got["winobias_pro"] == pytest.approx(0.5)
    assert got["cloze_acc"] == pytest.approx(0.5) and got["cloze_perplexity"] == pytest.approx(
        np.exp(2.0)
    )


def test_pronoun_logodds_of_known_probabilities():
    pmap = PronounMap(
        ((" he", " she", 5, 6), (" his", " her", 7, 8), (" him", " her", 9, 8)), (), 16
    )
    tokens = np.array([1, 2, 5, 3, 9, 4, 8, 1])  # he at 2, him at 4, her at 6
    rows, index = logodds_rows(tokens, pmap, context=2, limit=10)
    assert rows.shape == (2 + 3 + 3, 3) and [i[0] for i in index] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert rows[0].tolist() == [1, 2, 6] and rows[1].tolist() == [
        1,
        2,
        5,
    ]  # feminine candidate first
    lp = np.log([0.2, 0.4, 0.3, 0.1, 0.2, 0.5, 0.25, 0.25])
    lo = logodds(lp, index)
    assert lo == pytest.approx([np.log(0.2 / 0.4), np.log(0.3 / 0.3), np.log(0.5 / 0.5)])
