"""The trainer in-process on a tiny synthetic suite: checkpoints, log, state, resume, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import GPTNeoXForCausalLM

from pythia.data.batches import batch_hash, get_batch
from pythia.train import checkpoint as ckpt
from pythia.train.loop import Trainer, TrainOptions, train
from pythia.train.schedule import suite_lr

from .helpers import assert_same_weights, read_log


def _train(suite, out, **kw):
    kw.setdefault("threads", 1)
    return train(TrainOptions(suite=suite, model=kw.pop("model", "t1"), out=out, **kw))


@pytest.fixture
def full_run(tiny, tmp_path):
    suite, _, _ = tiny
    out = tmp_path / "run"
    summary = _train(suite, out)
    return suite, out, summary


def test_checkpoints_load_with_from_pretrained_and_log_proves_the_data(full_run):
    suite, out, _summary = full_run
    steps = suite.checkpoint_steps()
    assert steps == [0, 1, 2, 4, 8, 12]
    assert ckpt.saved_steps(out) == steps
    assert ckpt.saved_steps(out / "state") == suite.state_steps() == [8, 12]
    for s in steps:
        m = GPTNeoXForCausalLM.from_pretrained(out / f"step{s}")
        assert m.config.vocab_size == 384 and m.config.use_parallel_residual
        info = json.loads((out / f"step{s}" / "pythia_checkpoint.json").read_text())
        assert info["step"] == s and info["tokens_seen"] == s * 8 * 32
    # step0 = the initial weights, untouched by any update
    from pythia.model import build_model

    init = build_model(suite, "t1", device="cpu")
    m0 = GPTNeoXForCausalLM.from_pretrained(out / "step0")
    for (n, a), (_, b) in zip(init.state_dict().items(), m0.state_dict().items()):
        assert torch.equal(a, b), n

    records = read_log(out)
    assert [r["step"] for r in records] == list(range(13))
    for r in records[1:]:
        assert r["batch"] == r["step"] - 1
        assert r["batch_hash"] == batch_hash(get_batch(suite, "standard", r["batch"]))
        assert r["lr"] == suite_lr(suite, suite.model("t1"), r["batch"])
        assert r["tokens_seen"] == r["step"] * 256 and np.isfinite(r["loss"]) and r["grad_norm"] > 0
        assert ("val_loss" in r) == (r["step"] in steps)
    assert "val_loss" in records[0]
    assert records[-1]["val_loss"] < records[0]["val_loss"]  # it learns
    done = json.loads((out / "done.json").read_text())
    assert done["final_loss"] == records[-1]["loss"] and done["checkpoints"] == steps
    assert json.loads((out / "run.json").read_text())["run_digest"] == ckpt.run_digest(
        suite, "t1", "standard"
    )


def test_two_runs_with_the_same_seed_are_identical(full_run, tmp_path):
    suite, out, _ = full_run
    other = tmp_path / "again"
    _train(suite, other)
    for s in suite.checkpoint_steps():
        assert (out / f"step{s}" / "model.safetensors").read_bytes() == (
            other / f"step{s}" / "model.safetensors"
        ).read_bytes()
    strip = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rs]  # noqa: E731
    assert strip(read_log(out)) == strip(read_log(other))


def test_stop_and_resume_is_bit_identical_and_truncates_the_log(full_run, tmp_path):
    suite, out, _ = full_run
    part = tmp_path / "part"
    s = _train(suite, part, max_steps=5)
    assert s == {"step": 5, "finished": False}
    assert ckpt.saved_steps(part / "state") == [5]
    # a stale record past the saved state (as a kill leaves) is dropped on resume
    with open(part / "train_log.jsonl", "a") as f:
        f.write(json.dumps({"step": 6, "loss": 123.0}) + '\n{"step": 7, "lo')
    _train(suite, part, resume=True)
    assert_same_weights(out / "step12", part / "step12")
    recs = read_log(part)
    assert [r["step"] for r in recs] == list(range(13))
    assert [r["loss"] for r in recs[1:]] == [r["loss"] for r in read_log(out)[1:]]


def test_optimizer_state_roundtrip_names_every_parameter(full_run):
    suite, out, _ = full_run
    st = ckpt.load_state(out / "state" / "step12")
    assert st["meta"]["step"] == 12 and st["meta"]["suite_digest"] == suite.digest
    names = [n for n, _ in GPTNeoXForCausalLM.from_pretrained(out / "step12").named_parameters()]
    for n in names:
        assert f"{n}.exp_avg" in st["optimizer"] and f"{n}.exp_avg_sq" in st["optimizer"]
        assert float(st["optimizer"][f"{n}.step"]) == 12
    # also loadable with torch.load(weights_only=True)? no pickles at all: only safetensors + JSON
    assert sorted(p.name for p in (out / "state" / "step12").iterdir()) == [
        "model.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
        "state.json",
    ]


def test_truncated_state_file_gives_a_clear_error(full_run):
    suite, out, _ = full_run
    f = out / "state" / "step12" / "optimizer.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError) as e:
        _train(suite, out, resume=True)
    msg = str(e.value)
    assert str(f) in msg and "truncated" in msg and "delete" in msg and "step8" in msg
    # the advice works: remove the damaged state and resume from the previous one
    shutil.rmtree(out / "state" / "step12")
    before = (out / "step12" / "model.safetensors").read_bytes()
    _train(suite, out, resume=True)
    assert (out / "step12" / "model.safetensors").read_bytes() == before


def test_unparseable_state_file_names_the_file(full_run):
    suite, out, _ = full_run
    f = out / "state" / "step12" / "model.safetensors"
    size = f.stat().st_size
    f.write_bytes(b"\xff" * size)  # same size, garbage header
    with pytest.raises(ckpt.CheckpointError, match=r"model.safetensors"):
        _train(suite, out, resume=True)


def test_failure_during_a_checkpoint_write_leaves_the_previous_one_usable(
    tiny, tmp_path, monkeypatch
):
    suite, _, _ = tiny
    out = tmp_path / "crash"
    real = ckpt.save_file
    calls = {"n": 0}

    def dying_save_file(tensors, filename, metadata=None):
        # the 2nd state save (step 12) dies half-way through writing its first file
        if "step12" in str(filename) or ".step12." in str(filename):
            real(tensors, filename, metadata=metadata)
            with open(filename, "r+b") as fh:
                fh.truncate(10)
            raise OSError("simulated kill while writing a checkpoint")
        calls["n"] += 1
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ckpt, "save_file", dying_save_file)
    with pytest.raises(OSError, match="simulated kill"):
        _train(suite, out)
    monkeypatch.setattr(ckpt, "save_file", real)
    # no partial step12 state; the step-8 state is intact and the run resumes from it
    assert ckpt.saved_steps(out / "state") == [8]
    assert not [p for p in (out / "state").iterdir() if p.name.startswith(".")]
    ckpt.load_state(out / "state" / "step8")
    _train(suite, out, resume=True)
    ref = tmp_path / "ref"
    _train(suite, ref)
    assert_same_weights(out / "step12", ref / "step12")


def test_failure_during_a_model_dir_write_keeps_the_old_dir(full_run, monkeypatch):
    suite, out, _ = full_run
    before = (out / "step12" / "model.safetensors").read_bytes()
    trainer = Trainer(TrainOptions(suite=suite, model="t1", out=out, resume=True, threads=1))

    def boom(*a, **k):
        raise OSError("simulated kill in save_pretrained")

    monkeypatch.setattr(type(trainer.model), "save_pretrained", boom)
    with pytest.raises(OSError):
        trainer.save_checkpoint(12, {})
    assert (out / "step12" / "model.safetensors").read_bytes() == before
    GPTNeoXForCausalLM.from_pretrained(out / "step12")


def test_refuses_a_run_dir_of_another_config(full_run, tiny_root):
    suite, out, _ = full_run
    other = suite.model_copy(
        update={"training": suite.training.model_copy(update={"train_iters": 16})}
    )
    other.__dict__.pop("digest", None)
    assert other.digest != suite.digest
    with pytest.raises(ckpt.CheckpointError, match="different configuration"):
        _train(other, out, resume=True)
    with pytest.raises(ckpt.CheckpointError, match="different configuration"):
        _train(suite, out, model="t2", resume=True)
    # the workflow's rerun after a config edit: the stale run is replaced by a fresh one
    t1 = suite.models["t1"].model_copy(update={"peak_lr": suite.models["t1"].peak_lr / 2})
    edited = suite.model_copy(update={"models": {**suite.models, "t1": t1}})
    edited.__dict__.pop("digest", None)
    before = read_log(out)
    _train(edited, out, resume=True, replace_stale=True)
    after = read_log(out)
    assert [r["step"] for r in after] == list(range(13))  # trained from step 0, not resumed
    assert (
        max(r["lr"] for r in after[1:]) == max(r["lr"] for r in before[1:]) / 2
        and after[1]["batch_hash"] == before[1]["batch_hash"]
    )
    assert json.loads((out / "run.json").read_text())["run_digest"] == ckpt.run_digest(
        edited, "t1", "standard"
    )


def test_run_digest_covers_what_the_run_reads(tiny):
    suite, _, _ = tiny

    def edited(**parts):
        dump = suite.model_dump(mode="json")
        for path, value in parts.items():
            node = dump
            *head, last = path.split("__")
            for key in head:
                node = node[key]
            node[last] = value
        return type(suite).model_validate(dump)

    base = {d: ckpt.run_digest(suite, "t1", d) for d in ("standard", "deduped")}
    assert base["standard"] != base["deduped"]
    # another model's learning rate and the description: not this run's business
    for other in (edited(models__t2__peak_lr=9e-3), edited(description="changed")):
        assert {d: ckpt.run_digest(other, "t1", d) for d in base} == base
    # its own learning rate, the training settings, the tokenizer: both datasets
    for mine in (
        edited(models__t1__peak_lr=9e-3),
        edited(training__train_iters=16),
        edited(tokenizer__vocab_size=400),
    ):
        assert all(ckpt.run_digest(mine, "t1", d) != base[d] for d in base)
    # deduplication settings: only the deduplicated run
    dedup = edited(data__dedup__threshold=0.5)
    assert ckpt.run_digest(dedup, "t1", "standard") == base["standard"]
    assert ckpt.run_digest(dedup, "t1", "deduped") != base["deduped"]


def test_refuses_to_overwrite_without_resume(full_run):
    suite, out, _ = full_run
    with pytest.raises(ckpt.CheckpointError, match="--resume"):
        _train(suite, out)


def test_gradient_accumulation_equals_the_full_batch(tiny, tmp_path):
    suite, _, _ = tiny
    whole = suite.model_copy(
        update={"training": suite.training.model_copy(update={"micro_batch": None})}
    )
    whole.__dict__.pop("digest", None)
    a = Trainer(TrainOptions(suite=suite, model="t1", out=tmp_path / "a", threads=1))
    b = Trainer(TrainOptions(suite=whole, model="t1", out=tmp_path / "b", threads=1))
    assert (a.micro, a.accum) == (4, 2) and (b.micro, b.accum) == (8, 1)
    grads = {}

    def capture(trainer, key):
        step = trainer.engine.optimizer.step

        def wrapped(*args, **kw):
            grads[key] = [p.grad.clone() for p in trainer.model.parameters()]
            return step(*args, **kw)

        trainer.engine.optimizer.step = wrapped

    capture(a, "a")
    capture(b, "b")
    for s in range(3):
        ra, rb = a.train_step(s), b.train_step(s)
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5)
        assert ra["grad_norm"] == pytest.approx(rb["grad_norm"], rel=1e-4)
        for ga, gb in zip(
            grads["a"], grads["b"]
        ):  # accumulated micro-batch gradients = full-batch gradient
            torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-7)


def test_checkpoints_run_the_training_activation(tiny, tmp_path):
    """A trained checkpoint says tanh GELU in its config and, loaded with from_pretrained, gives
    the very logits of the model in training (the erf GELU would not)."""
    from transformers.activations import ACT2FN

    from pythia.model import HIDDEN_ACT

    suite, _, _ = tiny
    trainer = Trainer(
        TrainOptions(suite=suite, model="t2", out=tmp_path / "run", threads=1, max_steps=4)
    )
    trainer.run()
    step = tmp_path / "run" / "step4"
    assert (
        json.loads((step / "config.json").read_text())["hidden_act"]
        == HIDDEN_ACT
        == "gelu_pytorch_tanh"
    )
    loaded = GPTNeoXForCausalLM.from_pretrained(step).eval()
    ids = torch.from_numpy(get_batch(suite, "standard", 5).astype(np.int64))[:, :-1]
    trainer.model.eval()
    with torch.no_grad():
        want = trainer.model(input_ids=ids).logits
        torch.testing.assert_close(loaded(input_ids=ids).logits, want, rtol=0, atol=0)
        for layer in loaded.gpt_neox.layers:
            layer.mlp.act = ACT2FN["gelu"]
        assert not torch.allclose(loaded(input_ids=ids).logits, want, rtol=1e-5, atol=1e-6)
