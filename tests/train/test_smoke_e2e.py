"""End to end on the real smoke suite: its data built by the data package (``smoke_data``),
``pythia train`` through the CLI, every checkpoint loadable with its tokenizer and running the
training activation (it reproduces the logged validation loss)."""

from __future__ import annotations

import json
import os

from transformers import AutoTokenizer, GPTNeoXForCausalLM

from pythia.config import load_suite
from pythia.data.batches import batch_hash, get_batch

from .helpers import read_log, run_cli


def _validation_loss(suite, step_dir) -> float:
    """The trainer's ``validate()`` on a checkpoint loaded with from_pretrained (one thread, as the
    run trained): equal to the logged value only if the checkpoint runs the training activation."""
    import numpy as np
    import torch

    from pythia.data.batches import validation_sequences
    from pythia.train.deepspeed_config import micro_and_accum
    from pythia.train.loss import CausalLMLoss, lm_loss

    model = GPTNeoXForCausalLM.from_pretrained(step_dir).eval()
    assert model.config.hidden_act == "gelu_pytorch_tanh"
    seqs = validation_sequences(suite, suite.training.val_sequences)
    micro = micro_and_accum(suite, 1)[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for i in range(0, len(seqs), micro):
                chunk = torch.from_numpy(np.ascontiguousarray(seqs[i : i + micro], dtype=np.int64))
                n = chunk.shape[0] * (chunk.shape[1] - 1)
                total += float(lm_loss(CausalLMLoss(model), chunk)) * n
                count += n
    finally:
        torch.set_num_threads(threads)
    return total / count


def test_pythia_train_on_the_smoke_suite(smoke_data, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    env = {**os.environ, "PYTHIA_WORK": str(smoke_data), "PYTHIA_OFFLINE": "1"}
    suite = load_suite("smoke")
    train = ["train", "--suite", "smoke", "--model", "s1", "--dataset", "deduped", "--no-progress"]
    run_cli([*train, "--threads", "1"], env)
    run_dir = smoke_data / "smoke" / "models" / "deduped" / "s1"
    done = json.loads((run_dir / "done.json").read_text())
    assert done["steps"] == 24
    assert done["checkpoints"] == suite.checkpoint_steps() == [0, 1, 2, 4, 8, 16, 24]
    tok = None
    for s in done["checkpoints"]:
        GPTNeoXForCausalLM.from_pretrained(run_dir / f"step{s}")
        tok = AutoTokenizer.from_pretrained(run_dir / f"step{s}")
    ids = tok("def main():")["input_ids"]
    assert ids and max(ids) < 512
    records = read_log(run_dir)
    assert [r["step"] for r in records] == list(range(25))
    for r in records[1:]:
        assert r["batch_hash"] == batch_hash(get_batch(suite, "deduped", r["batch"]))
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    assert _validation_loss(suite, run_dir / "step24") == records[-1]["val_loss"]
    # a rerun with --resume (what the Snakemake rule does) finds the run finished
    run_cli([*train, "--resume"], env)
    final = json.loads((run_dir / "done.json").read_text())["final_weights_sha256"]
    assert final == done["final_weights_sha256"]
