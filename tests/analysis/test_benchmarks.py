"""The benchmarks section's analysis on a synthetic results table in the evaluation CSV's format,
and the published panels from the committed table: every frame and figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from pythia.analysis import benchmarks as bm
from pythia.config import load_suite
from pythia.evaluate.benchmarks import COLUMNS


@pytest.fixture
def evals(tmp_path, monkeypatch):
    """Evaluation CSVs of smoke's two models on both datasets, as `pythia benchmarks evaluate` writes them."""
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    suite = load_suite("smoke")
    for d in ("standard", "deduped"):
        for i, model in enumerate(suite.models):
            rows = []
            for step in suite.checkpoint_steps():
                for task, metrics in (
                    ("lambada_incorpus", ("acc", "perplexity")),
                    ("piqa_offline", ("acc", "acc_norm")),
                ):
                    for metric in metrics:
                        value = (
                            500.0 / (1 + step) / (i + 1)
                            if metric == "perplexity"
                            else 0.5 + 0.001 * step * (i + 1)
                        )
                        rows.append(
                            {
                                "suite": "smoke",
                                "model": model,
                                "params": suite.total_params(suite.model(model)),
                                "dataset": d,
                                "step": step,
                                "tokens": step * suite.training.tokens_per_step,
                                "task": task,
                                "num_fewshot": 0,
                                "metric": metric,
                                "value": value,
                                "stderr": 0.01,
                                "source": "ours",
                            }
                        )
            f = tmp_path / "smoke" / "benchmarks" / "evals" / d / f"{model}.csv"
            f.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows, columns=COLUMNS).to_csv(f, index=False)
    return suite


def test_frames_and_figures(evals):
    suite = evals
    ours = bm.load_evals(suite, ["standard", "deduped"], list(suite.models))
    assert set(ours["paper_task"]) == {"lambada_openai", "piqa"}
    pub = bm.published_rows(list(ours["task"].unique()), [0])
    assert set(pub["task"]) == {"lambada_openai", "piqa"} and set(pub["source"]) == {"published"}
    table = bm.evals_table(ours, pub)
    assert len(table) == len(ours) + len(pub) and table["source"].iloc[0] == "ours"

    curves = bm.accuracy_curves(ours)
    assert (
        set(curves["task"]) == {"lambada_incorpus", "piqa_offline"}
        and curves["tokens_axis"].min() == 1
    )
    assert set(curves.loc[curves.task == "piqa_offline", "chance"]) == {0.5}
    cq = bm.cloze_quality(ours)
    assert list(cq.columns[:5]) == ["model", "params", "dataset", "step", "tokens"] and {
        "acc",
        "perplexity",
    } <= set(cq)
    final = bm.final_results(ours)
    assert set(final["step"]) == {suite.training.train_iters}
    wide = bm.final_table(final)
    assert len(wide) == 4 and "lambada_incorpus perplexity" in wide
    pc = bm.published_curves(pub)
    assert pc["model"].nunique() == 8
    for fig in (
        bm.plot_accuracy_curves(curves),
        bm.plot_cloze_quality(cq),
        bm.plot_final_vs_params(final),
        bm.plot_published_curves(pc),
    ):
        assert fig.axes
        matplotlib.pyplot.close(fig)


def test_micro_reach_places_our_tokens_on_pythias_axis():
    suite = load_suite("micro")
    reach = bm.micro_reach(suite, bm.published_rows(list(bm.OFFLINE_TASKS), [0]))
    assert set(reach["paper_task"]) == {"lambada_openai", "piqa", "wsc", "arc_easy", "logiqa"}
    assert (reach["pythia_70m_step"] <= 2).all()  # 2.6M tokens: about Pythia's step 1
    piqa = reach.set_index("paper_task").loc["piqa"]
    assert (
        piqa.pythia_70m_acc_there == pytest.approx(0.5, abs=0.05)
        and piqa.pythia_70m_acc_final > 0.55
    )


def test_missing_results_say_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="run the section's rules"):
        bm.load_evals(load_suite("smoke"), ["standard"], ["s1"])
    assert np.isfinite(list(bm.CHANCE.values())).all()
