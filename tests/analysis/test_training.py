"""The training section's analysis on synthetic logs in the trainer's format."""

import json

import numpy as np
import pytest

from pythia.analysis import training as tr
from pythia.config import load_suite
from pythia.train.schedule import suite_lr


@pytest.fixture
def fake_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    suite = load_suite("smoke")
    tokens = suite.training.tokens_per_step
    ckpts = set(suite.checkpoint_steps())
    for d_i, dataset in enumerate(("standard", "deduped")):
        for m_i, model in enumerate(suite.models):
            run = tmp_path / "smoke" / "models" / dataset / model
            run.mkdir(parents=True)
            lines = []
            for step in range(suite.training.train_iters + 1):
                rec = {
                    "step": step,
                    "tokens_seen": step * tokens,
                    "loss": 6.0 - 0.1 * step - m_i - 0.01 * d_i,
                    "lr": suite_lr(suite, suite.model(model), max(step - 1, 0)),
                    "grad_norm": 1.0,
                    "tokens_per_s": 1000.0 * (m_i + 1),
                    "batch_hash": f"{step:016x}",
                }
                if step in ckpts:
                    rec["val_loss"] = 6.5 - 0.1 * step - m_i
                lines.append(json.dumps(rec))
            (run / "train_log.jsonl").write_text("\n".join(lines) + "\n")
    return suite


def test_load_logs_and_summaries(fake_runs):
    suite = fake_runs
    logs = tr.load_logs(suite, ["standard", "deduped"])
    assert len(logs) == 2 * 2 * (suite.training.train_iters + 1)
    assert list(logs["model"].cat.categories) == ["s1", "s2"]
    final = tr.final_losses(logs)
    assert len(final) == 4
    s2 = final[(final.model == "s2") & (final.dataset == "standard")].iloc[0]
    assert s2.final_val_loss == pytest.approx(6.5 - 0.1 * 24 - 1)
    assert s2.non_embedding_params == suite.model("s2").non_embedding_params()
    tp = tr.throughput(logs)
    assert set(tp.median_tokens_per_s) == {1000.0, 2000.0}
    expected_seconds = suite.training.train_iters * suite.training.tokens_per_step / 1000.0
    assert tp[tp.model == "s1"].train_seconds.iloc[0] == pytest.approx(expected_seconds)


def test_lr_schedule_matches_trainer_formula(fake_runs):
    sched = tr.lr_schedule(fake_runs, points=25)
    row = sched[(sched.model == "s1") & (sched.step == 10)].iloc[0]
    assert row.lr == pytest.approx(suite_lr(fake_runs, fake_runs.model("s1"), 10))
    assert sched.lr.max() <= max(m.peak_lr for m in fake_runs.models.values())


def test_figure_data_is_what_is_plotted(fake_runs):
    logs = tr.load_logs(fake_runs, ["standard", "deduped"])
    curves = tr.loss_curves(logs, window=3)
    assert list(curves.columns) == ["model", "dataset", "step", "tokens_seen", "train_loss"]
    assert len(curves) == 4 * fake_runs.training.train_iters and curves.step.min() == 1
    s1 = (
        curves[(curves.model == "s1") & (curves.dataset == "standard")].set_index("step").train_loss
    )
    assert s1.loc[10] == pytest.approx(6.0 - 0.1 * 10)  # a centred mean of a straight line
    val = tr.val_losses(logs)
    assert set(val.step) == set(fake_runs.checkpoint_steps()) - {0}
    lr = tr.lr_data(tr.lr_schedule(fake_runs, points=25), logs)
    assert set(lr.source) == {"configured", "logged"}
    logged = lr[lr.source == "logged"].iloc[-1]
    assert logged.lr == pytest.approx(
        suite_lr(fake_runs, fake_runs.model(logged.model), int(logged.step) - 1)
    )


def test_order_table_holds_the_order_hashes(fake_runs, tmp_path):
    for i, d in enumerate(("standard", "deduped")):
        (tmp_path / "smoke" / "data" / d).mkdir(parents=True)
        (tmp_path / "smoke" / "data" / d / "order.json").write_text(
            json.dumps(
                {
                    "num_documents": 10 + i,
                    "tokens_per_epoch": 1000,
                    "num_epochs": 2,
                    "sequences_rows": 96,
                    "seed": 1234,
                    "sha256": {
                        "doc_idx.npy": f"d{i}",
                        "sample_idx.npy": "s",
                        "shuffle_idx.npy": "h",
                        "sequences.bin": "b",
                        "sequences.idx": "i",
                    },
                }
            )
        )
    order = tr.order_table(fake_runs, ["standard", "deduped"])
    assert order.dataset.tolist() == ["standard", "deduped"] and order.documents.tolist() == [
        10,
        11,
    ]
    assert order.sha256_doc_idx_npy.tolist() == ["d0", "d1"] and "sha256_sequences_bin" in order
    with pytest.raises(FileNotFoundError, match="build the data first"):
        tr.order_table(load_suite("micro"), ["standard"])


def test_figures_render(fake_runs):
    logs = tr.load_logs(fake_runs, ["standard", "deduped"])
    for fig in (
        tr.plot_loss_curves(tr.loss_curves(logs)),
        tr.plot_val_loss(tr.val_losses(logs)),
        tr.plot_scaling(tr.final_losses(logs)),
        tr.plot_lr_schedule(tr.lr_data(tr.lr_schedule(fake_runs), logs)),
        tr.plot_throughput(tr.throughput(logs)),
    ):
        assert fig.axes and any(ax.lines or ax.patches or ax.collections for ax in fig.axes)


def test_missing_log_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train the model first"):
        tr.load_logs(load_suite("smoke"), ["standard"])


def test_smooth_is_centred():
    s = tr.smooth(__import__("pandas").Series(np.arange(10.0)), 3)
    assert s.iloc[5] == 5.0


@pytest.fixture
def fake_seed_runs(tmp_path, monkeypatch):
    """Micro's seed runs of 138K (baselines + seeds 1 and 2, both datasets), in the trainer's log
    format: 641 steps, validation loss at the checkpoints; final validation loss
    standard 5.00 + 0.1 seed, deduped 5.02 + 0.05 seed; training loss = validation loss + 0.5."""
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    suite = load_suite("micro")
    ckpts = set(suite.checkpoint_steps())
    end = suite.training.train_iters
    for dataset, base, per_seed in (("standard", 5.0, 0.1), ("deduped", 5.02, 0.05)):
        for seed in (0, 1, 2):
            run = dataset if seed == 0 else f"{dataset}-seed{seed}"
            final = base + per_seed * seed
            lines = []
            for step in range(end + 1):
                val = final + (end - step) / end  # falls linearly to `final`
                rec = {"step": step, "tokens_seen": step * 4096, "loss": val + 0.5}
                if step in ckpts:
                    rec["val_loss"] = val
                lines.append(json.dumps(rec))
            d = tmp_path / "micro" / "models" / run / "138K"
            d.mkdir(parents=True)
            (d / "train_log.jsonl").write_text("\n".join(lines) + "\n")
    return suite


def test_seed_bands_and_spread_of_the_seed_runs(fake_seed_runs):
    suite = fake_seed_runs
    assert tr.seed_run_list(suite, ["standard"], ["138K", "624K"]) == [
        ("standard", "138K"),
        ("standard-seed1", "138K"),
        ("standard-seed2", "138K"),
    ]
    logs = tr.load_seed_logs(suite, ["standard", "deduped"], ["138K"])
    assert sorted(set(zip(logs["dataset"], logs["seed"]))) == [
        (d, s) for d in ("deduped", "standard") for s in (0, 1, 2)
    ]
    bands = tr.loss_seed_bands(logs).set_index(["metric", "dataset", "step"])
    # validation loss at step 320: final + 0.5 per seed -> standard 5.5, 5.6, 5.7
    v = bands.loc[("val_loss", "standard", 320)]
    assert (v.n_seeds, v["min"], v["max"], v.tokens_seen) == (
        3,
        5.5,
        pytest.approx(5.7),
        320 * 4096,
    )
    assert v["mean"] == pytest.approx(5.6) and v.sd == pytest.approx(0.1)
    # smoothed training loss at the last step: the mean of the last 5 steps (centred window of 9)
    t = bands.loc[("train_loss", "deduped", 640)]
    assert t["min"] == pytest.approx(5.02 + 0.5 + 2 / 640)  # (4 + 3 + 2 + 1 + 0) / 5 / 640
    spread = tr.seed_spread_table(logs).set_index(["model", "quantity"])
    std, gap = spread.loc[("138K", "standard")], spread.loc[("138K", "standard - deduped")]
    assert std["mean"] == pytest.approx(5.1) and std.sd == pytest.approx(0.1)
    # gaps by seed: -0.02, 0.03, 0.08 -> mean 0.03, sd 0.05; noise sqrt((0.01 + 0.0025) / 2)
    assert gap["mean"] == pytest.approx(0.03) and gap.sd == pytest.approx(0.05)
    assert gap.noise_sd == pytest.approx(np.sqrt(0.00625))
    assert gap.gap_exceeds_2sd_noise == "no" and gap.vary == "both"
    line = tr.gap_summary(spread.reset_index())
    assert line.startswith("138K: standard - deduplicated final validation loss +0.0300 +/- 0.0500")
    assert "does not exceed 2 sd" in line
    # the paired gap over training: standard minus deduped of the same seed, banded over seeds
    g = bands.loc[("val_loss_gap", "standard - deduped", 640)]
    assert (g.n_seeds, g["min"], g["max"]) == (3, pytest.approx(-0.02), pytest.approx(0.08))
    assert g["mean"] == pytest.approx(0.03) and g.sd == pytest.approx(0.05)
    fig = tr.plot_loss_seed_bands(tr.loss_seed_bands(logs))
    assert len(fig.axes) == 3  # training loss, validation loss, the gap; one model


def test_no_seed_runs_no_seed_frames(fake_runs):
    suite = fake_runs  # smoke: no seeds key
    assert tr.seed_run_list(suite, ["standard", "deduped"], ["s1", "s2"]) == []
    logs = tr.load_seed_logs(suite, ["standard", "deduped"], ["s1", "s2"])
    assert logs.empty and tr.seed_spread_table(logs).empty
