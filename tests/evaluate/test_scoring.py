"""The scoring engine against plain ``model(...)`` forwards and ``generate``, on a trained smoke
checkpoint and real smoke training rows; and its on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pythia.config import load_suite
from pythia.data.batches import get_batch
from pythia.evaluate import cache as score_cache
from pythia.evaluate.cache import cached_score
from pythia.evaluate.scoring import Scores, score
from pythia.runs import open_catalogue


@pytest.fixture
def ckpt(smoke_run, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    return open_catalogue("smoke").checkpoint("s1", "standard", 24)


@pytest.fixture
def rows(ckpt) -> np.ndarray:
    """Real training rows: 12 sequences of 65 tokens (three steps of the smoke suite)."""
    suite = load_suite("smoke")
    return np.concatenate([get_batch(suite, "standard", s) for s in (3, 10, 20)])  # (12, 65)


def plain(model, rows: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.from_numpy(rows)).logits.float()  # (N, L, V)


def test_logprobs_equal_a_plain_forward(ckpt, rows):
    model = ckpt.load_model()
    logits = plain(model, rows)
    ref = -F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        torch.from_numpy(rows[:, 1:]).reshape(-1),
        reduction="none",
    ).view(len(rows), -1)
    s = score(model, rows, batch_size=5)
    assert isinstance(s, Scores) and s.logprobs.shape == (12, 64) and s.logprobs.dtype == np.float32
    np.testing.assert_array_equal(s.positions, np.arange(1, 65))
    np.testing.assert_allclose(s.logprobs, ref.numpy(), atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(s.losses, -ref.numpy(), atol=2e-5, rtol=1e-5)
    np.testing.assert_array_equal(s.greedy, logits[:, :-1].argmax(-1).numpy())
    np.testing.assert_array_equal(s.targets, rows[:, 1:])
    # chosen positions only, and output rows past vocab_size masked (as GPT-NeoX's padded rows are)
    pos = [5, 32, 63, 64]
    small = rows % 300
    logits = plain(model, small)
    sub = score(model, small, positions=pos, vocab_size=300)
    ref_sub = torch.log_softmax(logits[:, :, :300], -1)[:, [p - 1 for p in pos]].gather(
        2, torch.from_numpy(small[:, pos])[..., None]
    )[..., 0]
    np.testing.assert_allclose(sub.logprobs, ref_sub.numpy(), atol=2e-5, rtol=1e-5)
    np.testing.assert_array_equal(
        sub.greedy, logits[:, [p - 1 for p in pos], :300].argmax(-1).numpy()
    )
    assert (logits[:, [p - 1 for p in pos]].argmax(-1) >= 300).any()  # the mask matters here


def test_variable_lengths_are_right_padded(ckpt, rows):
    model = ckpt.load_model()
    seqs = [rows[0, :20], rows[1], rows[2, :2]]
    s = score(model, seqs)
    assert s.logprobs.shape == (3, 64)
    for i, seq in enumerate(seqs):
        alone = score(model, seq[None])
        n = len(seq) - 1
        np.testing.assert_allclose(s.logprobs[i, :n], alone.logprobs[0], atol=2e-5)
        assert (
            np.isnan(s.logprobs[i, n:]).all()
            and (s.greedy[i, n:] == -1).all()
            and not s.correct[i, n:].any()
        )


def test_greedy_tokens_equal_generate(ckpt, rows):
    """Teacher-forced argmax = greedy decoding when the prompt is followed by what generate emits;
    forbid=[EOD] is generate(min_length=...) (end-of-document never emitted)."""
    model = ckpt.load_model()
    k, n = 24, 16
    prompts = torch.from_numpy(rows[:6, :k])
    with torch.no_grad():
        out = model.generate(
            prompts,
            attention_mask=torch.ones_like(prompts),
            do_sample=False,
            max_new_tokens=n,
            min_length=k + n,
            eos_token_id=0,
            pad_token_id=0,
        )
    s = score(model, out.numpy(), positions=range(k, k + n), forbid=[0])
    np.testing.assert_array_equal(s.greedy, out[:, k:].numpy())
    assert s.correct.all() and (s.greedy != 0).all()
    # the memorization flag: greedy continuation == the true tokens
    truth = score(model, rows[:6, : k + n], positions=range(k, k + n), forbid=[0])
    np.testing.assert_array_equal(
        truth.correct.all(1), (out[:, k:].numpy() == rows[:6, k : k + n]).all(1)
    )


def test_forbidden_tokens_leave_the_argmax_only(ckpt, rows):
    model = ckpt.load_model()
    free = score(model, rows)
    top = int(np.bincount(free.greedy.ravel()).argmax())  # the model's favourite prediction
    banned = score(model, rows, forbid=[top])
    np.testing.assert_array_equal(banned.logprobs, free.logprobs)  # the distribution is the model's
    logits = plain(model, rows)[:, :-1]
    logits[..., top] = float("-inf")
    np.testing.assert_array_equal(
        banned.greedy, logits.argmax(-1).numpy()
    )  # the best token that is allowed
    hit = free.greedy == top
    assert (
        hit.any()
        and (banned.greedy[hit] != top).all()
        and (banned.greedy[~hit] == free.greedy[~hit]).all()
    )


def test_bad_requests_fail_clearly(ckpt, rows):
    model = ckpt.load_model()
    with pytest.raises(ValueError, match=r"positions must lie in \[1, 65\)"):
        score(model, rows, positions=[0, 3])
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 100\)"):
        score(model, rows, vocab_size=100)
    with pytest.raises(ValueError, match="forbidden token ids"):
        score(model, rows, forbid=[10_000])


def test_cache_scores_only_what_is_new(ckpt, rows, tmp_path, monkeypatch):
    scored: list[int] = []
    real = score_cache.score

    def counting(model, tokens, *args, **kwargs):
        scored.append(len(tokens))
        return real(model, tokens, *args, **kwargs)

    monkeypatch.setattr(score_cache, "score", counting)
    root = tmp_path / "cache"
    first = cached_score(
        ckpt, rows[:8], positions=range(32, 64), forbid=[0], root=root, block_rows=4
    )
    assert scored == [8]
    np.testing.assert_array_equal(
        first.greedy, score(ckpt.load_model(), rows[:8], range(32, 64), forbid=[0]).greedy
    )

    def no_model():
        raise AssertionError("the model must not be loaded when everything is cached")

    again = cached_score(
        ckpt,
        rows[:8],
        positions=range(32, 64),
        forbid=[0],
        root=root,
        block_rows=4,
        load_model=no_model,
    )
    np.testing.assert_array_equal(again.logprobs, first.logprobs)
    assert scored == [8]
    more = cached_score(ckpt, rows, positions=range(32, 64), forbid=[0], root=root, block_rows=4)
    assert scored == [8, 4]  # only the new block of 4 rows
    np.testing.assert_array_equal(more.logprobs[:8], first.logprobs)
    cached_score(
        ckpt, rows[:8], positions=range(32, 64), root=root, block_rows=4
    )  # other options: new blocks
    assert scored == [8, 4, 8]
    other = open_catalogue("smoke").checkpoint(
        "s1", "standard", 16
    )  # another checkpoint: its own folder
    cached_score(other, rows[:8], positions=range(32, 64), forbid=[0], root=root, block_rows=4)
    assert scored == [8, 4, 8, 8]
    assert len(list(root.iterdir())) == 2 and all(
        (d / "identity.txt").is_file() for d in root.iterdir()
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_scoring_on_a_gpu_in_half_precision(ckpt, rows):
    """On CUDA the model runs in its own dtype and the output layer in float32: bf16 scores stay
    close to the fp32 ones, and fp32 greedy tokens equal generate's."""
    fp32 = ckpt.load_model(device="cuda")
    bf16 = ckpt.load_model(dtype="bf16", device="cuda")
    ref = score(fp32, rows)
    half = score(bf16, rows)
    np.testing.assert_allclose(half.logprobs, ref.logprobs, atol=0.1)
    x = torch.from_numpy(rows[:4, :24]).cuda()
    with torch.no_grad():
        out = fp32.generate(
            x,
            attention_mask=torch.ones_like(x),
            do_sample=False,
            max_new_tokens=16,
            min_length=40,
            eos_token_id=0,
            pad_token_id=0,
        )
    np.testing.assert_array_equal(
        score(fp32, out, positions=range(24, 40), forbid=[0]).greedy, out[:, 24:].cpu().numpy()
    )
