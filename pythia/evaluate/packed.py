"""Log-likelihood requests scored with shared prefixes, many to a row: lm-eval's answers, less work.

An lm-eval ``loglikelihood`` request is a context and a continuation (token lists). lm-eval's
``HFLM`` scores each on its own row: the input is the last ``max_length + 1`` tokens of
context + continuation without the final one, and the continuation's log-probabilities are read
at the input's last ``len(continuation)`` positions. The answer is ``(sum of those
log-probabilities, every continuation token is the argmax)``.

The choices of a multiple-choice question share their context, and that context is most of
their tokens (section 02 on micro, full size: 421,525 input tokens per checkpoint as lm-eval
feeds them, 178,734 here). So here:

1. **Trees.** A request's input splits into a *prefix* (the context, left-cut like lm-eval's when
   too long, up to the position that predicts the first continuation token) and a *branch* (the
   continuation without its last token). Requests with the same prefix form one tree: the prefix
   once, then each distinct branch.
2. **Rows.** Trees are packed best-fit-decreasing into rows of ``max_length`` tokens (a
   longer tree gets a row of its own), and rows of like widths are batched. Within a row a
   token attends to the earlier tokens of its own tree's prefix and of its own branch, nothing
   else (a 4-D boolean attention mask), and its position id is its position in its own
   request's input, so each request sees exactly the tokens, positions and attention of its
   lm-eval row.
3. **Only the read positions** go through the output layer, log-softmax and argmax
   (:func:`pythia.evaluate.scoring._score_hidden`, in chunks); the full vocabulary is scored, as
   lm-eval does.

The numbers are lm-eval's up to float rounding (the same products summed in another order and
shape: ~1e-6 relative on a summed log-likelihood); ``tests/evaluate/test_packed.py`` compares
them request by request with lm-eval's own ``HFLM`` and the section's metrics with the
``lm_eval`` command line. Models: transformers causal LMs whose base model takes
``position_ids`` and a 4-D attention mask (GPT-NeoX, Llama, ...).

Example::

    from pythia.evaluate.packed import score_requests
    answers = score_requests(model, [(ctx_tokens, cont_tokens), ...], max_length=2048)
    # [(sum of log-probs, is greedy), ...] in request order
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pythia.evaluate.scoring import LOGIT_CHUNK_BYTES, _score_hidden

ROW_TOKENS = 1 << 12
"""Input tokens per forward pass on CPU (rows x width), 8 times as many on a GPU."""


@dataclass
class Tree:
    """One prefix and the distinct branches that follow it; ``reads[r] = (branch, continuation)``
    for each request r of the tree."""

    prefix: tuple[int, ...]
    branches: list[tuple[int, ...]] = field(default_factory=list)
    reads: dict[int, tuple[int, list[int]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prefix) + sum(len(b) for b in self.branches)


def request_trees(requests: Sequence[tuple[list[int], list[int]]], max_length: int) -> list[Tree]:
    """The trees of ``requests`` ``(context tokens, continuation tokens)``, as lm-eval cuts them:
    input = last ``max_length + 1`` tokens of context + continuation, without the final one."""
    trees: dict[tuple[int, ...], Tree] = {}
    branch_index: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    for r, (ctx, cont) in enumerate(requests):
        if not ctx or not cont or len(cont) > max_length:
            raise ValueError(
                f"loglikelihood request with {len(ctx)} context and {len(cont)} continuation "
                f"tokens: both must be non-empty and the continuation at most {max_length} tokens"
            )
        inp = (list(ctx) + list(cont))[-(max_length + 1) :][:-1]
        cut = len(inp) - (len(cont) - 1)
        prefix, branch = tuple(inp[:cut]), tuple(inp[cut:])
        tree = trees.setdefault(prefix, Tree(prefix))
        key = (prefix, branch)
        if key not in branch_index:
            branch_index[key] = len(tree.branches)
            tree.branches.append(branch)
        tree.reads[r] = (branch_index[key], list(cont))
    return list(trees.values())


@dataclass
class Row:
    """Packed trees: token ids, position ids, tree and branch id of each token (branch 0: the
    prefix; -1: padding), and each request's read positions and targets."""

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    tree: list[int] = field(default_factory=list)
    branch: list[int] = field(default_factory=list)
    reads: list[tuple[int, list[int], list[int]]] = field(default_factory=list)
    """(request, positions in the row, continuation tokens)"""

    def add(self, t: Tree, tid: int) -> None:
        start = len(self.tokens)
        p = len(t.prefix)
        self.tokens += t.prefix
        self.positions += range(p)
        self.tree += [tid] * p
        self.branch += [0] * p
        starts = []
        for b, branch in enumerate(t.branches, start=1):
            starts.append(len(self.tokens))
            self.tokens += branch
            self.positions += range(p, p + len(branch))
            self.tree += [tid] * len(branch)
            self.branch += [b] * len(branch)
        last = start + p - 1  # predicts the first continuation token
        for r, (b, cont) in t.reads.items():
            self.reads.append((r, [last, *range(starts[b], starts[b] + len(cont) - 1)], cont))


def pack(trees: list[Tree], capacity: int) -> list[Row]:
    """Best-fit-decreasing packing of ``trees`` into rows of at most ``capacity`` tokens (each
    tree, longest first, into the row with the least room that holds it); a tree longer than
    that (a long context with several branches) gets a row of its own. Attention costs the
    square of a row's width, so rows stay as narrow as the model's window allows."""
    rows: list[Row] = []
    room: list[tuple[int, int]] = []  # (free tokens, row), sorted
    for tid, t in sorted(enumerate(trees), key=lambda it: -len(it[1])):
        n = len(t)
        k = bisect.bisect_left(room, (n, -1))
        if k < len(room):
            free, slot = room.pop(k)
        else:
            free, slot = max(capacity, n), len(rows)
            rows.append(Row())
        rows[slot].add(t, tid)
        if free - n > 0:
            bisect.insort(room, (free - n, slot))
    return rows


def _batches(rows: list[Row], budget: int):
    """Consecutive rows, as many as fit ``budget`` tokens at the batch's width (at least one)."""
    lo = 0
    while lo < len(rows):
        hi, width = lo, 0
        while hi < len(rows):
            w = max(width, len(rows[hi].tokens))
            if hi > lo and w * (hi - lo + 1) > budget:
                break
            width, hi = w, hi + 1
        yield rows[lo:hi]
        lo = hi


def _batch_tensors(rows: list[Row], device: torch.device):
    """input ids, position ids and the 4-D boolean attention mask (True: attend) of ``rows``."""
    width = max(len(r.tokens) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    pos = np.zeros((len(rows), width), dtype=np.int64)
    tree = np.full((len(rows), width), -1, dtype=np.int64)
    branch = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        n = len(r.tokens)
        ids[i, :n], pos[i, :n], tree[i, :n], branch[i, :n] = r.tokens, r.positions, r.tree, r.branch
    t, b = torch.from_numpy(tree), torch.from_numpy(branch)
    idx = torch.arange(width)
    earlier = idx[None, :] <= idx[:, None]  # (q, k): k at or before q
    same_tree = t[:, :, None] == t[:, None, :]  # (B, q, k)
    visible = (b[:, None, :] == 0) | (b[:, :, None] == b[:, None, :])
    mask = earlier[None] & same_tree & visible & (t[:, None, :] >= 0)
    mask |= torch.eye(width, dtype=torch.bool)[None]  # padding attends to itself (no empty row)
    return (
        torch.from_numpy(ids).to(device),
        torch.from_numpy(pos).to(device),
        mask[:, None].to(device),
    )


@torch.inference_mode()
def score_requests(
    model: Any,
    requests: Sequence[tuple[list[int], list[int]]],
    max_length: int,
    row_tokens: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress=None,
) -> list[tuple[float, bool]]:
    """lm-eval's answer ``(sum of log-probs, greedy)`` of every request (see the module docstring).

    ``row_tokens``: tokens per forward pass (default :data:`ROW_TOKENS`, x8 on a GPU);
    ``autocast_dtype``: run the transformer under ``torch.autocast`` (lm-eval's
    ``mixed_precision_dtype``); the output layer and log-softmax stay in float32.
    ``progress``: a tqdm bar updated by requests."""
    if not requests:
        return []
    device = next(model.parameters()).device
    trees = request_trees(requests, max_length)
    rows = pack(trees, max_length)
    budget = (row_tokens or ROW_TOKENS) * (8 if device.type == "cuda" else 1)
    head = model.get_output_embeddings()
    weight, bias = head.weight, getattr(head, "bias", None)
    chunk = max(
        32, (LOGIT_CHUNK_BYTES * (32 if device.type == "cuda" else 1)) // (4 * weight.shape[0])
    )
    sums = np.zeros(len(requests), dtype=np.float64)
    greedy = np.ones(len(requests), dtype=bool)
    was_training = model.training
    model.eval()
    try:
        for batch in _batches(rows, budget):
            ids, pos, mask = _batch_tensors(batch, device)
            with torch.autocast(
                device_type=device.type,
                dtype=autocast_dtype or torch.bfloat16,
                enabled=autocast_dtype is not None,
            ):
                hidden = model.base_model(
                    input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=False
                ).last_hidden_state  # (B, W, d)
            flat, targets, owner = [], [], []
            width = ids.shape[1]
            for i, row in enumerate(batch):
                for r, where, cont in row.reads:
                    flat += [i * width + w for w in where]
                    targets += cont
                    owner += [r] * len(cont)
            h = hidden.reshape(-1, hidden.shape[-1]).index_select(
                0, torch.tensor(flat, device=device)
            )
            tgt = torch.tensor(targets, device=device)
            logprob, arg = _score_hidden(h, weight, bias, tgt, None, chunk)
            own = np.asarray(owner)
            np.add.at(sums, own, logprob.double().cpu().numpy())
            np.logical_and.at(greedy, own, (arg == tgt).cpu().numpy())
            if progress is not None:
                progress.update(sum(len(r.reads) for r in batch))
    finally:
        model.train(was_training)
    return [(float(s), bool(g)) for s, g in zip(sums, greedy)]


__all__ = ["ROW_TOKENS", "Row", "Tree", "pack", "request_trees", "score_requests"]
