"""Teacher-forced scoring: per-token log-probabilities and greedy tokens of many sequences.

For each sequence x (length L) and each target position t (1 <= t < L) the model reads
x[:t] and we keep

    logprob[t] = log p(x[t] | x[:t])        (log-softmax of the logits at position t - 1)
    greedy[t]  = argmax_v logits[t - 1, v]  (what greedy decoding would emit there)

in one batched, no-grad forward pass (``torch.inference_mode``), optionally only at chosen
``positions``. Only the transformer runs on every position; the output layer, the
log-softmax and the argmax run on the kept positions only, in row chunks, so the
(positions x vocabulary) logits never exist at once (the same reason the trainer fuses its
output layer and loss).

Options that make the argmax match what a generator would do:

* ``vocab_size``: only the first ``vocab_size`` rows of the output layer are scored (the
  tokenizer's size; GPT-NeoX pads the embedding to a multiple of 128, and those rows are
  not tokens). Without it every row counts, as ``model(...)`` and lm-eval see them.
* ``forbid``: token ids that can never be the argmax (their logit is -inf for ``greedy``
  only; ``logprob`` stays the model's). ``forbid=[EOD]`` is ``generate(min_length=...)``:
  Pythia's memorization scan could never emit end-of-document.

Greedy decoding reproduces x[k:k+l] exactly iff ``greedy[t] == x[t]`` for every t in
[k, k+l) (by induction over t: each step then reads the same prefix as teacher forcing),
so ``score(model, rows[:, :64], positions=range(32, 64), forbid=[0]).correct.all(1)`` is
the (32, 32)-memorization flag of each row.

Example::

    from pythia.evaluate.scoring import score
    s = score(model, tokens, vocab_size=len(tok))         # tokens: (N, L) ints or a list of 1-D arrays
    s.logprobs   # (N, L-1) float32, column j = log p(tokens[:, j+1] | tokens[:, :j+1])
    s.losses     # -logprobs (per-token cross-entropy)
    s.greedy     # (N, L-1) int64 argmax predictions
    s.correct    # greedy == targets

Sequences of different lengths are right-padded; positions past a sequence's end get
logprob NaN and greedy -1 (causal attention: padding after a sequence cannot change it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

DEFAULT_BATCH_TOKENS = 1 << 13
"""Input tokens per forward pass when ``batch_size`` is not given (CPU: cache-friendly)."""
LOGIT_CHUNK_BYTES = 1 << 24
"""Output-layer rows per chunk are chosen so one chunk of fp32 logits takes about this many bytes
on CPU, 32 times as many on a GPU. (On 2 CPU cores, 2-16 MB chunks run at about the same speed
on an idle machine; with other processes competing for the cores, fewer and larger operations
lose much less time waiting for a descheduled thread.)"""


@dataclass
class Scores:
    """Per-token scores of N sequences at P target positions."""

    positions: np.ndarray
    """(P,) target positions t: column j scores token ``positions[j]`` given the tokens before it."""
    targets: np.ndarray
    """(N, P) int64 the true tokens x[t] (-1 past a sequence's end)."""
    logprobs: np.ndarray
    """(N, P) float32 log p(x[t] | x[:t]) (NaN past a sequence's end)."""
    greedy: np.ndarray
    """(N, P) int64 argmax of the logits predicting x[t] (-1 past a sequence's end)."""

    @property
    def losses(self) -> np.ndarray:
        """(N, P) per-token cross-entropy, -logprobs."""
        return -self.logprobs

    @property
    def correct(self) -> np.ndarray:
        """(N, P) bool: the greedy token is the true one."""
        return (self.greedy == self.targets) & (self.targets >= 0)

    def __len__(self) -> int:
        return len(self.targets)

    def rows(self, index) -> Scores:
        """The scores of some rows (a slice, mask or index array)."""
        return Scores(self.positions, self.targets[index], self.logprobs[index], self.greedy[index])

    @staticmethod
    def concat(parts: Sequence[Scores]) -> Scores:
        """Rows of several Scores with the same positions, in order."""
        if not parts:
            raise ValueError("nothing to concatenate")
        for p in parts[1:]:
            if not np.array_equal(p.positions, parts[0].positions):
                raise ValueError("cannot concatenate scores of different positions")
        return Scores(
            parts[0].positions,
            np.concatenate([p.targets for p in parts]),
            np.concatenate([p.logprobs for p in parts]),
            np.concatenate([p.greedy for p in parts]),
        )


def as_rows(tokens) -> tuple[np.ndarray, np.ndarray]:
    """(rows (N, L) int64 right-padded with 0, lengths (N,)) from a 2-D array or a list of 1-D arrays."""
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.cpu().numpy()
    if isinstance(tokens, np.ndarray) and tokens.ndim == 2:
        rows = np.ascontiguousarray(tokens, dtype=np.int64)
        return rows, np.full(len(rows), rows.shape[1], dtype=np.int64)
    seqs = [np.asarray(t, dtype=np.int64).reshape(-1) for t in tokens]
    if not seqs:
        raise ValueError("no sequences to score")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    rows = np.zeros((len(seqs), int(lengths.max())), dtype=np.int64)
    for i, s in enumerate(seqs):
        rows[i, : len(s)] = s
    return rows, lengths


def target_positions(length: int, positions: Iterable[int] | None) -> np.ndarray:
    """Sorted unique target positions in [1, length), all of them when ``positions`` is None."""
    if positions is None:
        return np.arange(1, length, dtype=np.int64)
    pos = np.unique(np.asarray(list(positions), dtype=np.int64))
    if pos.size == 0:
        raise ValueError("positions is empty")
    if pos[0] < 1 or pos[-1] >= length:
        raise ValueError(
            f"positions must lie in [1, {length}) (a position t is predicted from tokens[:t]); "
            f"got {pos[0]}..{pos[-1]}"
        )
    return pos


def _output_layer(model: Any, vocab_size: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The output layer's weight and bias (their first ``vocab_size`` rows) of a transformers
    causal LM (``model``: its ``get_output_embeddings`` is transformers', not torch's)."""
    head = model.get_output_embeddings()
    weight, bias = head.weight, getattr(head, "bias", None)  # (V_padded, d)
    if vocab_size is not None:
        if not 0 < vocab_size <= weight.shape[0]:
            raise ValueError(
                f"vocab_size {vocab_size} outside the model's {weight.shape[0]} output rows"
            )
        weight = weight[:vocab_size]
        bias = bias[:vocab_size] if bias is not None else None
    return weight, bias


def _score_hidden(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    forbid: torch.Tensor | None,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logprob, argmax) of ``targets`` (n,) under ``hidden`` (n, d) @ weight.T, in row chunks.

    Per chunk: one ``max`` gives both the argmax and the shift of the log-sum-exp, which then
    reuses the chunk's memory (``exp_`` in place), instead of separate ``logsumexp`` and
    ``argmax`` passes (~1.4x slower on CPU). Rows whose argmax is a forbidden token get it again with
    those tokens at -inf (greedy only; the log-probabilities keep the model's distribution).
    """
    n = hidden.shape[0]
    logprob = torch.empty(n, dtype=torch.float32, device=hidden.device)
    greedy = torch.empty(n, dtype=torch.int64, device=hidden.device)
    w = weight if weight.dtype == torch.float32 else weight.float()
    b = None if bias is None else bias.float()
    for i in range(0, n, chunk):
        h = hidden[i : i + chunk].float()
        logits = h @ w.t() if b is None else torch.addmm(b, h, w.t())  # (c, V)
        target = logits.gather(1, targets[i : i + chunk, None])[:, 0]  # (c,)
        top, arg = logits.max(dim=-1)  # (c,), (c,)
        if forbid is not None:
            bad = torch.isin(arg, forbid)
            if bool(bad.any()):
                again = logits[bad].index_fill_(1, forbid, float("-inf"))  # (k, V), a copy
                arg[bad] = again.argmax(dim=-1)
        lse = top + logits.sub_(top[:, None]).exp_().sum(dim=-1).log_()  # (c,)
        logprob[i : i + chunk] = target - lse
        greedy[i : i + chunk] = arg
    return logprob, greedy


@dataclass(frozen=True)
class _Head:
    """The scored output layer: its (first ``vocab_size``) rows, the forbidden token ids and the
    rows of logits computed at once (see :func:`_score_hidden`)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    forbid: torch.Tensor | None
    chunk: int

    @classmethod
    def of(cls, model: torch.nn.Module, vocab_size: int | None, forbid: Iterable[int]) -> _Head:
        weight, bias = _output_layer(model, vocab_size)
        vocab, device = weight.shape[0], next(model.parameters()).device
        forbid_ids = sorted({int(f) for f in forbid})
        if any(not 0 <= f < vocab for f in forbid_ids):
            raise ValueError(f"forbidden token ids must lie in [0, {vocab}), got {forbid_ids}")
        forbid_t = (
            torch.tensor(forbid_ids, dtype=torch.int64, device=device) if forbid_ids else None
        )
        per_chunk = LOGIT_CHUNK_BYTES if device.type == "cpu" else 32 * LOGIT_CHUNK_BYTES
        return cls(weight, bias, forbid_t, max(32, per_chunk // (4 * vocab)))

    def __call__(self, hidden: torch.Tensor, targets: torch.Tensor):
        return _score_hidden(hidden, self.weight, self.bias, targets, self.forbid, self.chunk)


def _checked_lengths(rows: np.ndarray, full: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """``lengths`` (default ``full``, every row's own), checked against the (N, L) ``rows``."""
    if lengths is None:
        return full
    if len(lengths) != len(rows) or (np.asarray(lengths) > rows.shape[1]).any():
        raise ValueError(
            f"lengths must give one length <= {rows.shape[1]} per row ({len(rows)} rows)"
        )
    return lengths


def _check_targets(targets: np.ndarray, vocab: int) -> None:
    """Every scored token id (``targets``: those inside their sequence) lies in the vocabulary."""
    if targets.size and (targets.max() >= vocab or targets.min() < 0):
        raise ValueError(
            f"token ids must lie in [0, {vocab}) (the scored vocabulary); got "
            f"{targets.min()}..{targets.max()}"
        )


@torch.inference_mode()
def score(
    model: torch.nn.Module,
    tokens,
    positions: Iterable[int] | None = None,
    *,
    vocab_size: int | None = None,
    forbid: Iterable[int] = (),
    batch_size: int | None = None,
    lengths: np.ndarray | None = None,
    progress: bool = False,
    desc: str = "score",
) -> Scores:
    """Teacher-forced log-probabilities and greedy tokens of ``tokens`` (see the module docstring).

    ``tokens``: (N, L) integers or a list of 1-D arrays. ``positions``: the target positions
    t to keep (default: all, 1 .. L-1). ``batch_size``: sequences per forward pass (default:
    about 8k input tokens). ``lengths``: the true length of each row of a right-padded (N, L)
    array. The model runs in its own dtype on its own device; the output layer and softmax in
    float32.
    """
    rows, full = as_rows(tokens)
    lengths = _checked_lengths(rows, full, lengths)
    pos = target_positions(rows.shape[1], positions)
    head = _Head.of(model, vocab_size, forbid)
    targets = rows[:, pos]  # (N, P)
    valid = pos[None, :] < lengths[:, None]  # (N, P)
    _check_targets(targets[valid], head.weight.shape[0])
    batch = batch_size or max(1, DEFAULT_BATCH_TOKENS // int(pos[-1]))
    was_training = model.training
    model.eval()
    try:
        with tqdm(
            total=len(rows), unit="seq", desc=desc, disable=not progress, dynamic_ncols=True
        ) as bar:
            logprobs, greedy = _score_rows(
                model, head, rows, pos, np.where(valid, targets, 0), batch, bar
            )
    finally:
        model.train(was_training)
    logprobs[~valid] = np.nan
    greedy[~valid] = -1
    return Scores(pos, np.where(valid, targets, -1), logprobs, greedy)


def _score_rows(
    model: Any,
    head: _Head,
    rows: np.ndarray,
    pos: np.ndarray,
    targets: np.ndarray,
    batch: int,
    bar,
) -> tuple[np.ndarray, np.ndarray]:
    """(logprobs, greedy), each (N, P), of ``targets`` (N, P) at positions ``pos`` of ``rows``,
    ``batch`` rows per forward pass of the transformer (inputs ``rows[:, :pos[-1]]``, which
    reach every kept position). ``model``: a transformers causal LM (its ``base_model``)."""
    n, context = len(rows), int(pos[-1])
    device = next(model.parameters()).device
    pos_in = torch.from_numpy(pos - 1).to(device)  # hidden state t-1 predicts token t
    contiguous = int(pos[-1] - pos[0]) + 1 == len(pos)
    logprobs = np.empty((n, len(pos)), dtype=np.float32)
    greedy = np.empty((n, len(pos)), dtype=np.int64)
    base = model.base_model
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        x = torch.from_numpy(rows[lo:hi, :context]).to(device)  # (b, context)
        hidden = base(input_ids=x, use_cache=False).last_hidden_state  # (b, context, d)
        if contiguous:  # a view (all positions: no copy at all)
            hidden = hidden[:, pos[0] - 1 : pos[-1]]
        else:
            hidden = hidden.index_select(1, pos_in)
        hidden = hidden.reshape(-1, hidden.shape[-1])  # (b * P, d)
        lp, gr = head(hidden, torch.from_numpy(targets[lo:hi].reshape(-1)).to(device))
        logprobs[lo:hi] = lp.view(hi - lo, -1).cpu().numpy()
        greedy[lo:hi] = gr.view(hi - lo, -1).cpu().numpy()
        bar.update(hi - lo)
    return logprobs, greedy
