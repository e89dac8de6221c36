"""The benchmarks section's analysis on a synthetic results table in the evaluation CSV's format,
and the published panels from the committed table: every frame and figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from pythia.analysis import benchmarks as bm
from pythia.config import config_digest, load_suite
from pythia.evaluate.benchmarks import COLUMNS
from pythia.train.checkpoint import run_digest


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


def test_accuracy_curves_draw_one_stderr_band_per_line(evals):
    """Each (size, dataset) line of a task's panel has a band from value - stderr to value +
    stderr at every checkpoint."""
    ours = bm.load_evals(evals, ["standard", "deduped"], list(evals.models))
    curves = bm.accuracy_curves(ours)
    assert curves["stderr"].notna().all() and (curves["stderr"] > 0).any()
    fig = bm.plot_accuracy_curves(curves)
    try:
        for ax in fig.axes:
            task = ax.get_title().split(" = ")[-1]
            sub = curves[curves["task"] == task]
            bands = [c for c in ax.collections if c.get_paths()]
            assert len(bands) == sub.groupby(["model", "dataset"]).ngroups
            vertices = np.concatenate([b.get_paths()[0].vertices for b in bands])
            assert vertices[:, 1].min() == pytest.approx((sub.value - sub.stderr).min())
            assert vertices[:, 1].max() == pytest.approx((sub.value + sub.stderr).max())
    finally:
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


@pytest.fixture
def seed_evals(tmp_path, monkeypatch):
    """Micro's 138K baselines and seed runs 1, 2 (suite key seeds), two checkpoints, one task:
    accuracy at step 640 = 0.30 + 0.02 seed (standard), 0.26 + 0.04 seed (deduped); 0.25 at step 0."""
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    suite = load_suite("micro")
    for d, base, per_seed in (("standard", 0.30, 0.02), ("deduped", 0.26, 0.04)):
        for seed in (0, 1, 2):
            run = d if seed == 0 else f"{d}-seed{seed}"
            rows = [
                {
                    "suite": "micro",
                    "model": "138K",
                    "params": 138000,
                    "dataset": run,
                    "step": step,
                    "tokens": step * 4096,
                    "task": "piqa_offline",
                    "num_fewshot": 0,
                    "metric": metric,
                    "value": (0.25 if step == 0 else base + per_seed * seed)
                    + (metric == "acc_norm"),
                    "stderr": 0.05,
                    "source": "ours",
                }
                for step in (0, 640)
                for metric in ("acc", "acc_norm")
            ]
            f = tmp_path / "micro" / "benchmarks" / "evals" / run / "138K.csv"
            f.parent.mkdir(parents=True)
            pd.DataFrame(rows, columns=COLUMNS).to_csv(f, index=False)
    return suite


def test_accuracy_seed_bands(seed_evals):
    suite = seed_evals
    files = bm.seed_eval_files(suite, ["standard", "deduped"], ["138K", "288K"])
    assert (
        "standard-seed2/138K" in files and "deduped/288K" in files
    )  # 288K: listed, not written here
    # what the workflow evaluated narrows the seed runs (the hub: only PolyPythias' released runs)
    narrow = bm.seed_eval_files(suite, ["standard", "deduped"], ["138K"], ["standard-seed1/138K"])
    assert list(narrow) == ["standard/138K", "deduped/138K", "standard-seed1/138K"]
    with pytest.raises(FileNotFoundError, match="benchmarks_notebook"):
        bm.load_seed_evals(suite, ["standard"], ["288K"])
    df = bm.load_seed_evals(suite, ["standard", "deduped"], ["138K"])
    assert set(df["run"]) == {
        "standard",
        "standard-seed1",
        "standard-seed2",
        "deduped",
        "deduped-seed1",
        "deduped-seed2",
    }
    bands = bm.accuracy_seed_bands(df).set_index(["dataset", "step"])
    std, ded = bands.loc[("standard", 640)], bands.loc[("deduped", 640)]
    # standard: 0.30, 0.32, 0.34; deduped: 0.26, 0.30, 0.34 (acc only, acc_norm left out)
    assert (std.n_seeds, std["min"], std["max"]) == (3, 0.30, pytest.approx(0.34))
    assert std["mean"] == pytest.approx(0.32) and std.sd == pytest.approx(0.02)
    assert ded["mean"] == pytest.approx(0.30) and ded.sd == pytest.approx(0.04)
    start = bands.loc[("standard", 0)]
    assert (start["min"], start["max"], start.tokens_axis, start.chance) == (0.25, 0.25, 1, 0.5)
    fig = bm.plot_accuracy_seed_bands(bands.reset_index())
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()][:2] == ["standard (n=3)", "deduped (n=3)"]
    assert ax.get_lines()[-1].get_ydata()[0] == 0.5  # chance
    assert bm.load_seed_evals(load_suite("smoke"), ["standard"], ["s1"]).empty  # no seeds key


def test_evaluate_digest_of_seed_runs(seed_evals):
    suite = seed_evals
    base = bm.evaluate_digest(suite, "standard", "138K")
    seeded = {
        bm.seed_evaluate_digest(suite, r, "138K") for r in ("standard-seed1", "standard-seed2")
    }
    assert base not in seeded and len(seeded) == 2
    # the baseline's job digest is what it was
    assert base == config_digest(
        {"run": run_digest(suite, "138K", "standard"), "steps": suite.analysis_steps()}
    )
