"""Shared-prefix packed scoring (:mod:`pythia.evaluate.packed`): each request sees exactly the
tokens, positions and attention of its own lm-eval row, so the answers are lm-eval's ``HFLM``'s
to float32 rounding, with each shared context run once."""

from __future__ import annotations

import pytest
import torch

from pythia.evaluate import packed
from pythia.runs import open_catalogue


@pytest.fixture
def model_and_ids(smoke_run, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    ckpt = open_catalogue("smoke").checkpoint("s1", "standard", 24)
    model, tok = ckpt.load_model(), ckpt.load_tokenizer()
    ids = [int(x) for x in tok("def main():\n    return 0\n" * 80)["input_ids"]]
    return model, tok, ids


def test_trees_share_contexts_and_cut_like_lm_eval():
    reqs = [([1, 2, 3], [4]), ([1, 2, 3], [5, 6]), ([1, 2, 3], [4]), ([9], [8, 7, 6])]
    trees = packed.request_trees(reqs, max_length=8)
    assert [t.prefix for t in trees] == [(1, 2, 3), (9,)]
    assert trees[0].branches == [(), (5,)]  # one-token continuations need no branch
    assert trees[0].reads == {0: (0, [4]), 1: (1, [5, 6]), 2: (0, [4])}
    assert len(trees[0]) == 4 and len(trees[1]) == 3
    # too long: the last max_length + 1 tokens of context + continuation, without the final one
    (t,) = packed.request_trees([(list(range(10, 20)), [1, 2])], max_length=4)
    assert t.prefix == (17, 18, 19) and t.branches == [(1,)]
    with pytest.raises(ValueError, match="both must be non-empty"):
        packed.request_trees([([], [1])], max_length=4)


def test_rows_hold_trees_within_capacity_and_read_their_own_positions():
    reqs = [([i, i + 1, i + 2][: 1 + i % 3], [7, 8][: 1 + i % 2]) for i in range(1, 40)]
    trees = packed.request_trees(reqs, max_length=16)
    rows = packed.pack(trees, capacity=3)
    # a tree longer than a row gets one of its own; no other row is wider than the capacity
    assert all(len(r.tokens) <= 3 or len({*r.tree}) == 1 for r in rows)
    assert any(len(r.tokens) > 3 for r in rows)
    assert sorted(r for row in rows for r, _, _ in row.reads) == list(range(len(reqs)))
    for row in rows:
        for r, where, cont in row.reads:
            ctx = reqs[r][0]
            # the first read predicts cont[0] from the context's last token, at its position
            assert row.tokens[where[0]] == ctx[-1] and row.positions[where[0]] == len(ctx) - 1
            assert [row.tokens[w] for w in where[1:]] == cont[:-1]
            assert [row.positions[w] for w in where] == list(
                range(len(ctx) - 1, len(ctx) + len(cont) - 1)
            )


def test_packed_answers_equal_lm_evals_hflm(model_and_ids):
    from lm_eval.models.huggingface import HFLM

    model, tok, ids = model_and_ids
    stock = HFLM(pretrained=model, tokenizer=tok, backend="causal", batch_size=3)
    window = stock.max_length
    assert len(ids) > window + 10
    requests = [
        (ids[:-2], ids[-2:]),  # cut from the left
        (ids[: window + 1], ids[window + 1 : window + 4]),
        (ids[:5], [ids[5]]),
        (ids[:5], [ids[7]]),  # one input, two choices
        (ids[:5], ids[5:9]),  # the same context, longer choices
        (ids[:5], ids[9:12]),
        (ids[:3], ids[3:10]),
        (ids[:1], ids[1:3]),
        (ids[30:80], ids[80:83]),
    ]
    fed = []
    hook = model.base_model.register_forward_pre_hook(
        lambda m, args, kwargs: fed.append(kwargs["attention_mask"].shape), with_kwargs=True
    )
    try:
        got = packed.score_requests(model, requests, window, row_tokens=2 * window)
    finally:
        hook.remove()
    want = stock._loglikelihood_tokens([(None, c, x) for c, x in requests], disable_tqdm=True)
    assert [g for _, g in got] == [g for _, g in want]
    assert [x for x, _ in got] == pytest.approx([x for x, _ in want], rel=1e-5, abs=1e-5)
    # the five-token context runs once for its four choices; rows are packed two to a pass
    trees = packed.request_trees(requests, window)
    assert len(trees) == 6
    assert sum(s[0] for s in fed) < len(requests)


def test_padding_and_other_trees_change_nothing(model_and_ids):
    """A request scores the same alone, packed with others, or in a padded batch."""
    model, _, ids = model_and_ids
    one = [(ids[10:40], ids[40:44])]
    alone = packed.score_requests(model, one, 64)
    crowd = packed.score_requests(
        model,
        [*one, *[(ids[i : i + 7], ids[i + 7 : i + 9]) for i in range(50, 90, 3)]],
        64,
        row_tokens=64,
    )
    assert crowd[0][0] == pytest.approx(alone[0][0], rel=1e-6)
    assert crowd[0][1] == alone[0][1]
    with torch.no_grad():
        x = torch.tensor([ids[10:43]])
        logp = torch.log_softmax(model(x).logits[0, -4:], -1)
    manual = float(logp.gather(1, torch.tensor(ids[40:44])[:, None]).sum())
    assert alone[0][0] == pytest.approx(manual, rel=1e-5)
