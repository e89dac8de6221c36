"""Exact, fast (k, l)-memorization scans of training sequences (Pythia, section 4.2).

A training sequence is (k, l)-memorized by a checkpoint when greedy decoding from its first
k tokens reproduces its next l tokens exactly (k = l = 32 in the paper); its memorization
score is the fraction of those l tokens the greedy continuation gets right. Pythia computed
both with ``model.generate(context, min_length=64, max_length=64)`` on every sequence.

The scan gets the same answers from teacher forcing:

* greedy decoding reproduces x[k:k+l] iff the argmax of the teacher-forced logits equals
  x[t] at every t in [k, k+l) (by induction over t: while every earlier token matched,
  decoding reads exactly the teacher-forced prefix). So the scoring engine's argmax at
  positions k..k+l-1 (:func:`pythia.evaluate.score`) gives the memorized flag of every row,
  and the leading run of matches (how many tokens greedy decoding reproduces before its first
  miss) is exact too. :func:`leading_matches` computes the same argmaxes but stops feeding a
  row at its first miss (the prompt in one batched pass with a KV cache, then the true
  continuation in growing chunks for the rows still matching): most training sequences miss
  early, so most of the continuation and most of the output layer are never computed.
* the fractional score needs the free-running continuation: the rows that get one (every
  ``score_stride``-th) decode greedily from their prompt with a KV cache
  (:func:`greedy_continue`), batched, which gives their run and flag as well; the other rows
  go through teacher forcing only.

On CPU (float32) both run two cheaper equivalents of what the model does: GELU's tanh form as
``x * sigmoid(2u)`` (:func:`cpu_kernels`; the same function, rounded differently: this torch's
``tanh`` is slow), and a KV cache written in place instead of re-concatenated at every step
(:func:`_kv_cache`). Like a change of batch size, they move activations by ~1e-7; the flags,
runs and scores stay those of ``generate`` (the tests and ``pythia bench memorization`` check).

Parity with ``generate(min_length=k+l)``: the end-of-document token (id 0) can never be
generated (its logit is -inf, as ``MinLengthLogitsProcessor`` sets it), so a row whose
continuation holds a document boundary is never memorized; the padded vocabulary rows of the
output layer (GPT-NeoX pads 50,277 tokens to 50,304) are masked (``vocab_size``), as
``generate(suppress_tokens=...)`` would.

Scans: :func:`scan_checkpoint` scores every training sequence a checkpoint has seen (steps
[0, step) of the data order, read through :func:`pythia.data.batches.get_batch`, so Pythia's
released pre-shuffled files work unchanged), or a configured range and stride of steps, in
blocks of whole steps; each block's result is cached on disk per checkpoint identity
(``work/<suite>/cache/memorization/``), so a rerun or a crash resumes where it stopped, and
results stream into one Parquet file per checkpoint (bounded memory whatever the data size).

Duplicates (:func:`duplicates_model`, ``pythia memorization duplicates``): at the final scanned
checkpoint, each scanned sequence's memorization window (its first k + l tokens) gets its
duplicate count, the occurrences of those k + l tokens as a window anywhere in the dataset's
training rows (:mod:`pythia.data.duplication`, exact), and, for a sample stratified by
:data:`DUPLICATE_BINS` (every row of a bin up to ``per_bin``, a seeded sample beyond), the
teacher-forced accuracy: how many of the l continuation tokens are the argmax given the true
prefix (:func:`teacher_forced_correct`: one forward pass per row, the scan's conventions: real
vocabulary, end-of-document never predicted). The leading run of those matches is the scan's
match run (the same argmaxes); the job checks that.

Columns of a scan (one row per training sequence)::

    seq          int64   index of the sequence in the training order (step = seq // global_batch)
    memorized    bool    greedy decoding reproduces all l tokens
    match_run    int16   tokens greedy decoding reproduces before its first miss (l if memorized)
    matches      int16   tokens of the l-token greedy continuation equal to the true ones
                         (-1 where the fractional score was not computed)
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pythia import paths
from pythia.config import Suite, config_digest, load_suite
from pythia.errors import UsageError, require_device

log = logging.getLogger("pythia.memorization")

EOD = 0
"""The end-of-document token of Pythia's tokenizers (and the suites' BPE)."""
COLUMNS = ("seq", "memorized", "match_run", "matches")
BLOCK_ROWS = 16384
"""Sequences per cached block (rounded to whole steps): with a score every 16th sequence, a block
decodes 1024 rows at once (:data:`CPU_DECODE_BATCH`)."""
ROWS_MEMO_BYTES = 256 << 20
"""Training rows a scan keeps in memory for its later checkpoints (the first steps of the order:
all of a micro run's 5 MB; Pythia's first ~500 steps)."""
CPU_DECODE_BATCH = 1024
"""CPU: rows decoded together for their scores (micro: 138K decodes ~1.6x faster per row at 1024
than at 256, 1.8M ~1.03x), and at most the rows whose teacher-forced continuations run together
(:func:`_group_rows`); 256 elsewhere (a GPU holds the KV cache of 256 rows of Pythia-12B in ~12 GB)."""
CPU_ACTIVATION_FLOATS = 1 << 20
"""CPU: floats (4 MB) of the widest activation of one prompt forward (see :func:`_prompt_batch`)."""
CPU_GROUP_CACHE_BYTES = 256 << 20
"""CPU: bytes of prompt KV cache that a group of prompt batches may hold for its continuations
(see :func:`_group_rows`; micro: 1024 rows take at most 134 MB)."""


@dataclass(frozen=True)
class ScanOptions:
    """What one scan computes; its digest names the cache entries and the scan files."""

    prompt: int = 32
    """k: tokens of the prompt (the sequence's first k tokens)."""
    continuation: int = 32
    """l: tokens greedy decoding must reproduce."""
    score_stride: int = 1
    """The fractional score of every n-th sequence (seq % n == 0); 0: none (flags and match runs only)."""
    forbid_eod: bool = True
    """The end-of-document token cannot be generated (``generate(min_length=k+l)``)."""

    def __post_init__(self) -> None:
        if self.prompt < 1 or self.continuation < 1:
            raise UsageError(
                f"prompt and continuation lengths must be >= 1, got {self.prompt} and {self.continuation}"
            )
        if self.score_stride < 0:
            raise UsageError(
                f"score stride must be >= 0 (0: no fractional scores), got {self.score_stride}"
            )

    @property
    def width(self) -> int:
        return self.prompt + self.continuation

    @property
    def digest(self) -> str:
        return config_digest(asdict(self))


# ------------------------------------------------------------------------------ the kernels


def leading_run(correct: np.ndarray) -> np.ndarray:
    """(N,) length of the leading run of True in each row of ``correct`` (N, l)."""
    miss = ~correct
    first = miss.argmax(axis=1)  # (N,) first miss, 0 when there is none
    return np.where(miss.any(axis=1), first, correct.shape[1]).astype(np.int16)


def _pick(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    forbid: torch.Tensor | None,
) -> torch.Tensor:
    """Greedy tokens (b,) of ``hidden`` (b, d) under the output layer cut to the real vocabulary
    (``weight`` (V, d): padded rows never win), forbidden tokens at -inf. The logits are one
    contiguous (b, V) block, filled in place: ``argmax`` over a column slice of the padded
    logits, after a masking copy, is ~3x slower on CPU."""
    logits = torch.nn.functional.linear(hidden, weight, bias).float()  # (b, V), a fresh tensor
    if forbid is not None:
        logits.index_fill_(1, forbid, float("-inf"))
    return logits.argmax(dim=-1)


@contextmanager
def last_position_only(model: torch.nn.Module) -> Iterator[bool]:
    """Within this block a forward of ``model`` (GPT-NeoX) computes the last layer's attention
    output projection and MLP for the last position only: enough for the last position's hidden
    state and for the KV cache of every position (keys and values come before both), which is
    all a prompt forward here needs. It saves ~3/4 of the last layer (a third of a 2-layer
    model's prompt forward). Forward pre-hooks cut the inputs of the last layer's
    ``attention.dense`` and ``post_attention_layernorm`` to the last position; the residual sums
    broadcast, so only ``last_hidden_state[:, -1]`` is meaningful inside the block. The pruned
    products are summed in another order than a full forward's (differences ~1e-6, like another
    batch size's). Yields whether the model had that shape (otherwise nothing changes)."""
    layers = getattr(model.base_model, "layers", None)
    last = layers[-1] if layers is not None and len(layers) else None
    targets = [
        getattr(getattr(last, "attention", None), "dense", None),
        getattr(last, "post_attention_layernorm", None),
    ]
    if any(not isinstance(t, torch.nn.Module) for t in targets):
        yield False
        return

    def cut(module: torch.nn.Module, args: tuple) -> tuple:
        return (args[0][:, -1:], *args[1:])

    handles = [t.register_forward_pre_hook(cut) for t in targets]
    try:
        yield True
    finally:
        for h in handles:
            h.remove()


class _SigmoidGELU(torch.nn.Module):
    """GELU's tanh approximation written as ``x * sigmoid(2u)``, u = sqrt(2/pi) (x + 0.044715 x^3):
    0.5 (1 + tanh u) = sigmoid(2u), the same function, rounded differently (at most 5e-7 apart on
    [-30, 30]). In place, for inference only: this torch build's CPU ``tanh`` takes ~3.2 ns per float
    against ``sigmoid``'s ~0.9, which makes ``F.gelu(x, approximate="tanh")`` ~1.8x slower than this."""

    C = math.sqrt(2.0 / math.pi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.addcmul(x.new_tensor(2 * self.C), x, x, value=2 * self.C * 0.044715)  # 2u / x
        return u.mul_(x).sigmoid_().mul_(x)


@contextmanager
def cpu_kernels(model: torch.nn.Module) -> Iterator[bool]:
    """Within this block a float32 CPU forward of ``model`` (GPT-NeoX) runs its tanh-approximated GELU
    as :class:`_SigmoidGELU` (the same function; ~10% of a micro scan). Yields whether it did
    (other devices, dtypes and activations run unchanged)."""
    from transformers.activations import GELUTanh

    p = next(model.parameters())
    mlps = [m for m in model.modules() if isinstance(getattr(m, "act", None), GELUTanh)]
    if p.device.type != "cpu" or p.dtype != torch.float32 or not mlps:
        yield False
        return
    acts = [m.act for m in mlps]
    for m in mlps:
        m.act = _SigmoidGELU()
    try:
        yield True
    finally:
        for m, a in zip(mlps, acts):
            m.act = a


def _kv_cache(capacity: int, device: torch.device):
    """An empty KV cache for a forward whose rows grow to at most ``capacity`` positions. On CPU a
    ``transformers`` ``Cache`` of :func:`_buffer_layer` layers: ``DynamicCache``'s layers copy the
    whole cache at every step (~20% of a micro decode step). Elsewhere None: the model's own
    ``DynamicCache``."""
    if device.type != "cpu":
        return None
    from transformers.cache_utils import Cache

    return Cache(layer_class_to_replicate=functools.partial(_buffer_layer(), capacity))


@functools.cache
def _buffer_layer() -> type:
    """The class of a KV cache layer that writes new keys and values into a buffer of ``capacity``
    positions and returns views of its filled part: no copy of the cache per step. Its first update
    keeps the prompt's tensors as they are (most rows of a scan never come back); the second
    allocates the buffer. (A function, so that importing this module does not import ``transformers``.)"""
    from transformers.cache_utils import DynamicLayer

    class _BufferLayer(DynamicLayer):
        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity = capacity
            self.length = 0
            self._k = self._v = None

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            n = key_states.shape[-2]
            if not self.is_initialized:
                self.dtype, self.device, self.is_initialized = (
                    key_states.dtype,
                    key_states.device,
                    True,
                )
                self.keys, self.values, self.length = key_states, value_states, n
                return self.keys, self.values
            end = self.length + n
            if end > self.capacity:
                raise ValueError(f"KV cache of {self.capacity} positions cannot take {end}")
            if self._k is None:  # second update: the buffer, holding the first update's tensors
                b, h, _, d = self.keys.shape
                self._k = self.keys.new_empty(b, h, self.capacity, d)
                self._v = self.values.new_empty(b, h, self.capacity, self.values.shape[-1])
                self._k[:, :, : self.length] = self.keys
                self._v[:, :, : self.length] = self.values
            self._k[:, :, self.length : end] = key_states
            self._v[:, :, self.length : end] = value_states
            self.length = end
            self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length if self.is_initialized else 0

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if not self.is_initialized:
                return
            if self._k is None:
                self.keys, self.values = self.keys[indices], self.values[indices]
            else:
                self._k, self._v = self._k[indices], self._v[indices]
                self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

    return _BufferLayer


@torch.inference_mode()
def greedy_continue(
    model: torch.nn.Module,
    prefix: np.ndarray,
    steps: int,
    *,
    vocab_size: int | None = None,
    forbid: Sequence[int] = (EOD,),
) -> np.ndarray:
    """(b, steps) tokens greedy decoding appends to ``prefix`` (b, p) (equal lengths, no padding),
    with a KV cache: one forward over the prefix, then one token per step. The output layer runs
    on the last position only."""
    from pythia.evaluate.scoring import _output_layer

    device = next(model.parameters()).device
    weight, bias = _output_layer(model, vocab_size)
    forbid_t = (
        torch.tensor(sorted(set(forbid)), dtype=torch.int64, device=device) if forbid else None
    )
    x = torch.from_numpy(np.ascontiguousarray(prefix, dtype=np.int64)).to(device)  # (b, p)
    with last_position_only(model):
        out = model.base_model(
            input_ids=x, past_key_values=_kv_cache(x.shape[1] + steps, device), use_cache=True
        )
    cache = out.past_key_values
    tokens = torch.empty(x.shape[0], steps, dtype=torch.int64, device=device)  # (b, steps)
    hidden = out.last_hidden_state[:, -1]  # (b, d)
    for i in range(steps):
        tokens[:, i] = _pick(hidden, weight, bias, forbid_t)
        if i + 1 < steps:
            out = model.base_model(
                input_ids=tokens[:, i : i + 1], past_key_values=cache, use_cache=True
            )
            cache, hidden = out.past_key_values, out.last_hidden_state[:, -1]
    return tokens.cpu().numpy()


def _prompt_batch(prompt: int, hidden: int, device: torch.device) -> int:
    """Rows per prompt forward: on CPU as many as keep the widest activation (the MLP's, rows x k
    x 4 d floats) near :data:`CPU_ACTIVATION_FLOATS`, so it stays in cache (micro, one core: 1.8M
    ~1.2x faster at 64-128 rows than at 512, 624K fastest at 128, 138K at 512); 16k tokens elsewhere."""
    from pythia.evaluate.scoring import DEFAULT_BATCH_TOKENS

    if device.type != "cpu":
        return max(1, 2 * DEFAULT_BATCH_TOKENS // prompt)
    return max(16, min(1024, CPU_ACTIVATION_FLOATS // (prompt * 4 * hidden)))


def _group_rows(batch: int, model: torch.nn.Module, prompt: int, device: torch.device) -> int:
    """Rows whose continuations run together (a multiple of the prompt batch ``batch``): on CPU up
    to :data:`CPU_DECODE_BATCH`, as many as keep the prompt's KV cache within
    :data:`CPU_GROUP_CACHE_BYTES`; elsewhere one prompt batch (already thousands of tokens)."""
    if device.type != "cpu":
        return batch
    cfg = model.config
    per_row = (
        2
        * cfg.num_hidden_layers
        * prompt
        * cfg.hidden_size
        * next(model.parameters()).element_size()
    )
    rows = min(CPU_DECODE_BATCH, CPU_GROUP_CACHE_BYTES // per_row)
    return max(1, rows // batch) * batch


def _merge_caches(parts: list[tuple[Any, torch.Tensor]], capacity: int, device: torch.device):
    """One KV cache holding the rows ``keep`` of each prompt cache of ``parts`` [(cache, keep)], in
    order: each layer's keys and values concatenated along the batch (the new cache's first update)."""
    from transformers.cache_utils import DynamicCache

    merged = _kv_cache(capacity, device)
    merged = DynamicCache() if merged is None else merged
    for i in range(len(parts[0][0].layers)):
        keys = torch.cat([c.layers[i].keys[keep] for c, keep in parts])
        values = torch.cat([c.layers[i].values[keep] for c, keep in parts])
        merged.update(keys, values, i)
    return merged


@torch.inference_mode()
def leading_matches(
    model: torch.nn.Module,
    rows: np.ndarray,
    prompt: int,
    continuation: int,
    *,
    vocab_size: int | None = None,
    forbid: Sequence[int] = (EOD,),
    batch_size: int | None = None,
) -> np.ndarray:
    """Leading match runs (N,) int16 of ``rows`` (N, >= k + l): teacher forcing, cut at each row's
    first miss.

    The prompt runs once for every row (batched forwards with a KV cache, their last layer on the
    last position only: :func:`last_position_only`), and its last position's argmax is checked;
    then the true continuation is fed in chunks of 2, 4, 8, ... tokens to the rows that have
    matched so far only: those of a whole group of prompt batches at once (:func:`_group_rows`),
    their prompt caches merged (:func:`_merge_caches`) and cut down to them at each chunk (the
    cache's ``batch_select_indices``). A row's argmax at continuation position t reads exactly
    x[:t] as in one full teacher-forced pass, so runs and flags are those of the single pass (and
    of greedy decoding), for a fraction of its cost when most rows miss early. Grouping spares the
    few surviving rows of each prompt batch their own tiny forwards (on CPU, run per 64-row batch,
    those took a sixth of micro 1.8M's teacher forcing). The greedy picks are
    :func:`greedy_continue`'s (:func:`_pick`: the output layer cut to the real vocabulary,
    ``forbid`` at -inf, ``argmax`` as ``generate`` takes it; no log-probabilities), in chunks of
    about ``LOGIT_CHUNK_BYTES`` of logits."""
    from pythia.evaluate.scoring import LOGIT_CHUNK_BYTES, _output_layer

    k, l = prompt, continuation
    device = next(model.parameters()).device
    weight, bias = _output_layer(model, vocab_size)
    forbid_t = (
        torch.tensor(sorted(set(forbid)), dtype=torch.int64, device=device) if forbid else None
    )
    chunk = max(
        32,
        (LOGIT_CHUNK_BYTES if device.type == "cpu" else 32 * LOGIT_CHUNK_BYTES)
        // (4 * weight.shape[0]),
    )

    def pick(hidden: torch.Tensor) -> torch.Tensor:  # (a, w, d) -> greedy tokens (a, w)
        flat = hidden.reshape(-1, hidden.shape[-1])
        return torch.cat(
            [_pick(flat[i : i + chunk], weight, bias, forbid_t) for i in range(0, len(flat), chunk)]
        ).view(hidden.shape[:2])

    batch = batch_size or _prompt_batch(k, weight.shape[1], device)
    group = _group_rows(batch, model, k, device)
    runs = np.zeros(len(rows), dtype=np.int16)
    for g in range(0, len(rows), group):
        x = torch.from_numpy(np.ascontiguousarray(rows[g : g + group, : k + l], dtype=np.int64)).to(
            device
        )  # (n, k+l)
        parts = []  # (prompt cache, rows of its batch whose first pick matched)
        for lo in range(0, len(x), batch):
            with last_position_only(model):
                out = model.base_model(
                    input_ids=x[lo : lo + batch, :k],
                    past_key_values=_kv_cache(k + l, device),
                    use_cache=True,
                )
            hit = (pick(out.last_hidden_state[:, -1:])[:, 0] == x[lo : lo + batch, k]).nonzero()[
                :, 0
            ]
            if len(hit):
                parts.append((out.past_key_values, hit, lo))
        if not parts:
            continue
        alive = torch.cat(
            [hit + lo for _, hit, lo in parts]
        )  # rows of x that matched every target so far
        run = torch.zeros(len(x), dtype=torch.int64, device=device)
        run[alive] = 1
        if len(parts) == 1:  # one prompt batch (off CPU, or a short group): cut its cache down
            cache, hit, lo = parts[0]
            if len(hit) < min(batch, len(x) - lo):
                cache.batch_select_indices(hit)
        else:
            cache = _merge_caches([(c, hit) for c, hit, _ in parts], k + l, device)
        del parts
        pos, width = k + 1, min(2, l - 1)  # the next chunk predicts x[alive, pos:pos + width]
        while width > 0:
            out = model.base_model(
                input_ids=x[alive, pos - 1 : pos - 1 + width], past_key_values=cache, use_cache=True
            )
            cache = out.past_key_values
            wrong = pick(out.last_hidden_state) != x[alive, pos : pos + width]  # (a, w)
            missed = wrong.any(dim=1)  # (a,)
            run[alive] += torch.where(missed, wrong.int().argmax(dim=1), width)
            pos += width
            if pos >= k + l or bool(missed.all()):
                break
            keep = (~missed).nonzero()[:, 0]
            alive = alive[keep]
            if len(keep) < len(missed):
                cache.batch_select_indices(keep)
            width = min(2 * width, k + l - pos)
        runs[g : g + len(x)] = run.cpu().numpy()
    return runs


def memorization(
    model: torch.nn.Module,
    rows: np.ndarray,
    options: ScanOptions = ScanOptions(),
    *,
    vocab_size: int | None = None,
    score_mask: np.ndarray | None = None,
    batch_size: int | None = None,
    decode_batch: int | None = None,
) -> dict[str, np.ndarray]:
    """Memorized flags, leading match runs and (where ``score_mask``; by default every
    ``options.score_stride``-th row) fractional matches of ``rows`` (N, >= k + l), see the module
    docstring; ``decode_batch``: rows decoded together for their scores (default
    :data:`CPU_DECODE_BATCH` on CPU, 256 elsewhere). Returns arrays ``memorized`` (N,) bool,
    ``match_run`` (N,) int16, ``matches`` (N,) int16 (-1 where not computed)."""
    k, l = options.prompt, options.continuation
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] < k + l:
        raise UsageError(
            f"memorization needs rows of at least k + l = {k + l} tokens, got shape {rows.shape}"
        )
    rows = rows[:, : k + l].astype(np.int64)
    forbid = [EOD] if options.forbid_eod else []
    was_training = model.training
    model.eval()
    try:
        with cpu_kernels(model):
            if score_mask is None:  # every score_stride-th row (none for 0)
                stride = options.score_stride
                want = (np.arange(len(rows)) % stride == 0) if stride else np.zeros(len(rows), bool)
            else:
                want = np.asarray(score_mask, bool)
            run = np.zeros(len(rows), dtype=np.int16)
            matches = np.full(len(rows), -1, dtype=np.int16)
            rest, scored = np.flatnonzero(~want), np.flatnonzero(want)
            if len(rest):
                run[rest] = leading_matches(
                    model,
                    rows[rest],
                    k,
                    l,
                    vocab_size=vocab_size,
                    forbid=forbid,
                    batch_size=batch_size,
                )
            # rows with a score decode greedily from their prompt: the l tokens give the run too, so
            # their prompt runs once (a teacher-forced pass first would run it twice)
            if decode_batch is None:
                decode_batch = (
                    CPU_DECODE_BATCH if next(model.parameters()).device.type == "cpu" else 256
                )
            for lo in range(0, len(scored), decode_batch):
                idx = scored[lo : lo + decode_batch]
                generated = greedy_continue(
                    model, rows[idx, :k], l, vocab_size=vocab_size, forbid=forbid
                )  # (b, l)
                correct = generated == rows[idx, k : k + l]
                run[idx] = leading_run(correct)
                matches[idx] = correct.sum(axis=1)
            memorized = run == l
    finally:
        model.train(was_training)
    return {"memorized": memorized, "match_run": run, "matches": matches}


# ------------------------------------------------------------------------------ scans over training data


def seen_steps(checkpoint_step: int) -> range:
    """Data steps a checkpoint has trained on: step s's batch is consumed by update s + 1, so the
    checkpoint at step N has seen steps [0, N)."""
    return range(checkpoint_step)


def step_range(
    suite: Suite,
    dataset: str,
    checkpoint_step: int,
    start: int | None = None,
    stop: int | None = None,
    stride: int = 1,
) -> range:
    """The data steps to scan: ``[start, stop)`` every ``stride`` (default: all seen by the checkpoint);
    a range past the training data fails with the steps there are."""
    from pythia.data.batches import num_steps

    have = num_steps(suite, dataset)
    seen = seen_steps(checkpoint_step)
    start = seen.start if start is None else start
    stop = min(seen.stop, have) if stop is None else stop
    if stride < 1:
        raise UsageError(f"step stride must be >= 1, got {stride}")
    if start < 0 or stop < start:
        raise UsageError(f"bad data step range [{start}, {stop}); give 0 <= start <= stop")
    if stop > have:
        raise UsageError(
            f"data steps [{start}, {stop}) run past the training data of suite {suite.name!r} "
            f"dataset {dataset!r}, which has steps 0..{have - 1}; ask for a stop of at most {have}"
        )
    return range(start, stop, stride)


def _blocks(steps: range, per_block: int) -> Iterator[range]:
    for i in range(0, len(steps), per_block):
        yield steps[i : i + per_block]


def _block_rows(
    suite: Suite, dataset: str, steps: range, width: int, memo: dict[int, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(seq (n,), rows (n, width)) of the training sequences of ``steps`` via get_batch; ``memo``
    keeps each step's rows for the next checkpoint (every checkpoint re-reads the steps before it)."""
    from pythia.data.batches import get_batch

    def batch(s: int) -> np.ndarray:
        if memo is not None and s in memo:
            return memo[s]
        rows = np.ascontiguousarray(get_batch(suite, dataset, s)[:, :width])
        if (
            memo is not None and (len(memo) + 1) * rows.nbytes <= ROWS_MEMO_BYTES
        ):  # every step's rows: one shape
            memo[s] = rows  # the earliest steps, which every later checkpoint reads again
        return rows

    b = suite.training.global_batch
    rows = np.concatenate([batch(s) for s in steps])  # (n, width)
    seq = np.concatenate([np.arange(s * b, (s + 1) * b, dtype=np.int64) for s in steps])  # (n,)
    return seq, rows


def _cache_file(folder: Path, steps: range, rows: np.ndarray, options: ScanOptions) -> Path:
    h = hashlib.sha256(options.digest.encode())
    h.update(np.ascontiguousarray(rows, dtype="<i8").tobytes())
    return folder / f"steps{steps.start}-{steps.stop}-{steps.step}-{h.hexdigest()[:20]}.npz"


def scan_file(suite: str, dataset: str, model: str, step: int) -> Path:
    """``work/<suite>/memorization/<dataset>/<model>/step<N>.parquet``: one checkpoint's scan."""
    return paths.suite_dir(suite) / "memorization" / dataset / model / f"step{step}.parquet"


def scan_checkpoint(
    checkpoint,
    suite: Suite,
    steps: range,
    options: ScanOptions = ScanOptions(),
    *,
    out: Path | None = None,
    device: str = "cpu",
    dtype: Any = None,
    batch_size: int | None = None,
    progress: bool = True,
    cache_root: Path | None = None,
    rows_memo: dict[int, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Scan the training sequences of data ``steps`` with ``checkpoint`` (a :class:`pythia.runs.Checkpoint`)
    into ``out`` (Parquet, :data:`COLUMNS`); blocks already in the cache are not scored again.
    ``rows_memo``: the training rows read so far, step by step (one dict shared by the checkpoints of
    one model and dataset). Returns a summary (sequences, memorized, seconds, sequences/s)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from pythia.evaluate.cache import cache_root as default_cache_root
    from pythia.evaluate.cache import checkpoint_dir
    from pythia.io import atomic_path

    if suite.training.seq_len + 1 < options.width:
        raise UsageError(
            f"suite {suite.name!r} has sequences of {suite.training.seq_len + 1} tokens, fewer than "
            f"k + l = {options.width}; use shorter prompt/continuation lengths"
        )
    out = out or scan_file(suite.name, checkpoint.dataset, checkpoint.model, checkpoint.step)
    folder = checkpoint_dir(
        (cache_root or default_cache_root(suite.name)) / "memorization", checkpoint
    )
    per_block = max(1, BLOCK_ROWS // suite.training.global_batch)
    model = None
    vocab = suite.tokenizer.vocab_size
    schema = pa.schema(
        [
            ("seq", pa.int64()),
            ("memorized", pa.bool_()),
            ("match_run", pa.int16()),
            ("matches", pa.int16()),
        ],
        metadata={
            "checkpoint": checkpoint.identity,
            "options": json.dumps(asdict(options)),
            "steps": json.dumps([steps.start, steps.stop, steps.step]),
        },
    )
    n_rows = memorized = scored = 0
    t0 = time.perf_counter()
    with (
        atomic_path(out, suffix=".parquet") as tmp,
        pq.ParquetWriter(tmp, schema) as writer,
        tqdm(
            total=len(steps) * suite.training.global_batch,
            unit="seq",
            desc=checkpoint.name,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar,
    ):
        for block in _blocks(steps, per_block):
            seq, rows = _block_rows(suite, checkpoint.dataset, block, options.width, rows_memo)
            cached = _cache_file(folder, block, rows, options)
            res = None
            if cached.is_file():
                try:
                    with np.load(cached) as f:
                        res = {k: f[k] for k in ("memorized", "match_run", "matches")}
                except (OSError, ValueError, KeyError):
                    res = None  # damaged: score again
            if res is None:
                if model is None:
                    model = checkpoint.load_model(dtype=dtype, device=device)
                mask = (
                    (seq % options.score_stride == 0)
                    if options.score_stride
                    else np.zeros(len(seq), bool)
                )
                t1 = time.perf_counter()
                res = memorization(
                    model, rows, options, vocab_size=vocab, score_mask=mask, batch_size=batch_size
                )
                scored += len(seq)
                log.debug(
                    "%s steps %s: %.0f seq/s",
                    checkpoint.name,
                    block,
                    len(seq) / (time.perf_counter() - t1),
                )
                with atomic_path(cached, suffix=".npz") as ctmp, open(ctmp, "wb") as f:
                    np.savez(f, **res)
            writer.write_table(pa.table({"seq": seq, **res}, schema=schema))
            n_rows += len(seq)
            memorized += int(res["memorized"].sum())
            bar.update(len(seq))
            bar.set_postfix(memorized=memorized)
    seconds = time.perf_counter() - t0
    return {
        "checkpoint": checkpoint.name,
        "identity": checkpoint.identity,
        "file": str(out),
        "sequences": n_rows,
        "memorized": memorized,
        "scored_now": scored,
        "seconds": seconds,
        "sequences_per_s": scored / seconds if scored and seconds > 0 else None,
    }


def read_scan(path: str | Path):
    """One checkpoint's scan as a frame (:data:`COLUMNS`)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run `pythia memorization scan` (or the workflow's memorization rules)"
        )
    return pd.read_parquet(path)


# ------------------------------------------------------------------------------ duplicates


DUPLICATE_BINS: tuple[tuple[int, int | None], ...] = ((1, 1), (2, 9), (10, 99), (100, None))
"""Duplicate-count bins [lo, hi] (hi None: no upper end): seen once, 2-9, 10-99, >= 100 times."""
TF_PER_BIN = 1000
"""Rows per duplicate-count bin whose teacher-forced accuracy is computed (all rows of a smaller bin):
micro's bins 1 and 2-9 hold ~5,000 rows each; 1,000 keep the 1.8M model's forwards to a few seconds of one core."""
DUPLICATE_COLUMNS = ("seq", "duplicates", "bin", "match_run", "tf_matches", "tf_run")


def duplicate_bin_labels() -> list[str]:
    """The bins' labels, in order: ``1``, ``2-9``, ``10-99``, ``>=100``."""
    return [
        f"{lo}" if hi == lo else f"{lo}-{hi}" if hi is not None else f">={lo}"
        for lo, hi in DUPLICATE_BINS
    ]


def duplicate_bins(counts: np.ndarray) -> np.ndarray:
    """(N,) int8: the :data:`DUPLICATE_BINS` index of each duplicate count (counts are >= 1)."""
    counts = np.asarray(counts)
    if counts.size and counts.min() < 1:
        raise ValueError(
            f"duplicate counts are >= 1 (a window occurs at least where it is), got {counts.min()}"
        )
    edges = np.array([lo for lo, _ in DUPLICATE_BINS[1:]])
    return np.searchsorted(edges, counts, side="right").astype(np.int8)


def stratified_sample(bins: np.ndarray, per_bin: int, seed: int = 0) -> np.ndarray:
    """(N,) bool: every row of a bin holding at most ``per_bin`` rows, else ``per_bin`` rows of it drawn
    without replacement by ``numpy.random.default_rng(seed)`` (one draw per bin, in bin order)."""
    bins = np.asarray(bins)
    take = np.zeros(len(bins), dtype=bool)
    rng = np.random.default_rng(seed)
    for b in range(len(DUPLICATE_BINS)):
        idx = np.flatnonzero(bins == b)
        take[idx if len(idx) <= per_bin else rng.choice(idx, per_bin, replace=False)] = True
    return take


@torch.inference_mode()
def teacher_forced_correct(
    model: torch.nn.Module,
    rows: np.ndarray,
    options: ScanOptions = ScanOptions(),
    *,
    vocab_size: int | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """(N, l) bool: whether each continuation token x[t], t in [k, k + l), is the argmax of the logits
    given the true prefix x[:t], with the scan's conventions (output layer cut to ``vocab_size``,
    end-of-document never the argmax when ``options.forbid_eod``). One forward pass over
    ``rows[:, :k + l - 1]`` per batch; the output layer runs on the l predicting positions only,
    in chunks of about ``LOGIT_CHUNK_BYTES`` of logits (argmax only: no softmax)."""
    from pythia.evaluate.scoring import DEFAULT_BATCH_TOKENS, LOGIT_CHUNK_BYTES, _output_layer

    k, l = options.prompt, options.continuation
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] < k + l:
        raise UsageError(
            f"teacher forcing needs rows of at least k + l = {k + l} tokens, got shape {rows.shape}"
        )
    device = next(model.parameters()).device
    weight, bias = _output_layer(model, vocab_size)
    forbid_t = torch.tensor([EOD], dtype=torch.int64, device=device) if options.forbid_eod else None
    chunk = max(
        32,
        (LOGIT_CHUNK_BYTES if device.type == "cpu" else 32 * LOGIT_CHUNK_BYTES)
        // (4 * weight.shape[0]),
    )
    batch = batch_size or max(1, DEFAULT_BATCH_TOKENS // (k + l))
    out = np.zeros((len(rows), l), dtype=bool)
    was_training = model.training
    model.eval()
    try:
        with cpu_kernels(model):
            for lo in range(0, len(rows), batch):
                x = torch.from_numpy(
                    np.ascontiguousarray(rows[lo : lo + batch, : k + l], dtype=np.int64)
                ).to(device)
                hidden = model.base_model(
                    input_ids=x[:, :-1], use_cache=False
                ).last_hidden_state  # (b, k+l-1, d)
                flat = hidden[:, k - 1 :].reshape(
                    -1, hidden.shape[-1]
                )  # (b * l, d): position t-1 predicts x[t]
                picks = torch.cat(
                    [
                        _pick(flat[i : i + chunk], weight, bias, forbid_t)
                        for i in range(0, len(flat), chunk)
                    ]
                )
                out[lo : lo + len(x)] = (picks.view(len(x), l) == x[:, k:]).cpu().numpy()
    finally:
        model.train(was_training)
    return out


def duplicates_file(suite: str, dataset: str, model: str) -> Path:
    """``work/<suite>/memorization/<dataset>/<model>/duplicates.parquet`` (:data:`DUPLICATE_COLUMNS`)."""
    return paths.suite_dir(suite) / "memorization" / dataset / model / "duplicates.parquet"


def _write_duplicates(out: Path, columns: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pythia.io import atomic_path

    types = {
        "seq": pa.int64(),
        "duplicates": pa.int64(),
        "bin": pa.int8(),
        "match_run": pa.int16(),
        "tf_matches": pa.int16(),
        "tf_run": pa.int16(),
    }
    schema = pa.schema(
        [(c, types[c]) for c in DUPLICATE_COLUMNS],
        metadata={k: json.dumps(v) for k, v in metadata.items()},
    )
    table = pa.table(
        {
            c: pa.array(
                np.asarray(columns.get(c, []), dtype=types[c].to_pandas_dtype()), type=types[c]
            )
            for c in DUPLICATE_COLUMNS
        },
        schema=schema,
    )
    with atomic_path(out, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def duplicates_model(
    suite: str | Suite,
    dataset: str,
    model: str,
    catalogue,
    options: ScanOptions = ScanOptions(),
    *,
    per_bin: int = TF_PER_BIN,
    seed: int = 0,
    device: str = "cpu",
    dtype: Any = None,
    batch_size: int | None = None,
    scan: Path | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Duplicate counts, the scan's leading runs and (for a :func:`stratified_sample` of ``per_bin``
    rows per bin) teacher-forced matches of every sequence the last checkpoint of ``scan`` (default
    :func:`summary_file`; scanned with ``options``' k and l) scanned; writes ``out`` (default
    :func:`duplicates_file`; ``tf_matches``/``tf_run`` -1 where not computed). A dataset too large
    for an exact in-memory count (:data:`pythia.data.duplication.MAX_WINDOWS`: the released Pile)
    gets an empty file whose metadata says why. Returns a summary (rows, bins, agreement of the
    teacher-forced runs with the scan's, seconds)."""
    import pyarrow.parquet as pq

    from pythia.data.duplication import MAX_WINDOWS, count_windows, training_rows

    t0 = time.perf_counter()
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    paths.check_dataset(dataset)
    scan = scan or summary_file(suite.name, dataset, model)
    out = out or duplicates_file(suite.name, dataset, model)
    if not scan.is_file():
        raise UsageError(
            f"{scan} is missing: run `pythia memorization scan` for {dataset}/{model} first"
        )
    record = json.loads(scan.read_text())
    want = {
        k: v for k, v in asdict(options).items() if k != "score_stride"
    }  # the stride changes no run
    if {k: record["options"].get(k) for k in want} != want:
        raise UsageError(
            f"{scan} was scanned with {record['options']}, not {want}; rescan or pass its options"
        )
    last = record["checkpoints"][-1]
    step = int(last["step"])
    parquet = scan.parent / f"step{step}.parquet"
    ckpt = catalogue.checkpoint(model, dataset, step)
    identity = pq.read_schema(parquet).metadata[b"checkpoint"].decode()
    if identity != ckpt.identity:
        raise UsageError(
            f"{parquet} scanned {identity}, not the checkpoint there now ({ckpt.identity}); rescan"
        )
    meta: dict[str, Any] = {
        "suite": suite.name,
        "dataset": dataset,
        "model": model,
        "step": step,
        "checkpoint": ckpt.identity,
        "options": asdict(options),
        "window": options.width,
        "bins": duplicate_bin_labels(),
        "per_bin": per_bin,
        "seed": seed,
    }
    rows = training_rows(suite, dataset)
    windows = rows.shape[0] * (rows.shape[1] - options.width + 1)
    if windows > MAX_WINDOWS:
        meta["skipped"] = (
            f"{windows:,} windows of {options.width} tokens in the training rows: more than an exact "
            f"in-memory count takes ({MAX_WINDOWS:,})"
        )
        _write_duplicates(out, {}, meta)
        log.info("%s/%s: duplicates skipped: %s", dataset, model, meta["skipped"])
        return {**meta, "rows": 0, "seconds": time.perf_counter() - t0}
    counts = count_windows(
        np.asarray(rows), options.width
    ).first()  # (R,) every training row's first window
    scanned = read_scan(parquet)
    seq = scanned["seq"].to_numpy()
    dups = counts[seq]
    bins = duplicate_bins(dups)
    take = stratified_sample(bins, per_bin, seed)
    tf_matches = np.full(len(seq), -1, dtype=np.int16)
    tf_run = np.full(len(seq), -1, dtype=np.int16)
    if take.any():
        net = ckpt.load_model(dtype=dtype, device=device)
        correct = teacher_forced_correct(
            net,
            np.asarray(rows[seq[take], : options.width]),
            options,
            vocab_size=suite.tokenizer.vocab_size,
            batch_size=batch_size,
        )
        tf_matches[take] = correct.sum(axis=1)
        tf_run[take] = leading_run(correct)
    match_run = scanned["match_run"].to_numpy()
    differ = int((tf_run[take] != match_run[take]).sum())
    _write_duplicates(
        out,
        {
            "seq": seq,
            "duplicates": dups,
            "bin": bins,
            "match_run": match_run,
            "tf_matches": tf_matches,
            "tf_run": tf_run,
        },
        {**meta, "runs_differing": differ},
    )
    seconds = time.perf_counter() - t0
    per = {lab: int((bins == i).sum()) for i, lab in enumerate(duplicate_bin_labels())}
    log.info(
        "%s: %d sequences by duplicate count %s, %d teacher-forced; %d teacher-forced runs differ from the "
        "scan's (%.1f s)",
        ckpt.name,
        len(seq),
        per,
        int(take.sum()),
        differ,
        seconds,
    )
    if differ:  # a near-tie argmax, rounded differently by the scan's cached and this full forward
        log.warning(
            "%s: %d of %d teacher-forced leading runs differ from the scan's",
            ckpt.name,
            differ,
            int(take.sum()),
        )
    return {
        **meta,
        "rows": len(seq),
        "per_bin_rows": per,
        "teacher_forced": int(take.sum()),
        "runs_differing": differ,
        "seconds": seconds,
    }


def read_duplicates(path: str | Path):
    """One model's duplicates as a frame (:data:`DUPLICATE_COLUMNS`) with its metadata in ``.attrs``."""
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run `pythia memorization duplicates` (or the workflow's "
            f"memorization_scan rule)"
        )
    table = pq.read_table(path)
    df: pd.DataFrame = table.to_pandas()
    df.attrs = {
        k.decode(): json.loads(v)
        for k, v in (table.schema.metadata or {}).items()
        if not k.startswith(b"pandas")
    }
    return df


# ------------------------------------------------------------------------------ the command


def summary_file(suite: str, dataset: str, model: str) -> Path:
    """``work/<suite>/memorization/<dataset>/<model>/scan.json``: what a model's scans wrote (the rule's output)."""
    return paths.suite_dir(suite) / "memorization" / dataset / model / "scan.json"


def bench_file(suite: str) -> Path:
    """``work/<suite>/memorization/bench.json``: the workflow's scan-vs-generate measurement."""
    return paths.suite_dir(suite) / "memorization" / "bench.json"


def scan_model(
    suite: str | Suite,
    dataset: str,
    model: str,
    catalogue,
    options: ScanOptions = ScanOptions(),
    *,
    data_start: int | None = None,
    data_stop: int | None = None,
    data_stride: int = 1,
    device: str = "cpu",
    dtype: Any = None,
    batch_size: int | None = None,
    out: Path | None = None,
    progress: bool = True,
    cache_root: Path | None = None,
) -> dict[str, Any]:
    """Scan every selected checkpoint of ``model`` on ``dataset`` (the catalogue's steps), each over
    the sequences it has seen (or the given data step range); writes ``step<N>.parquet`` per
    checkpoint and the summary ``scan.json`` (last, so its presence means the set is complete)."""
    from pythia.io import write_json

    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    paths.check_dataset(dataset)
    steps = catalogue.steps(model, dataset)
    if not steps:
        have = catalogue.available_steps(model, dataset)
        if not have:  # the catalogue says what to do (train, download)
            catalogue.checkpoint(
                model, dataset, catalogue.selected[-1] if catalogue.selected else 0
            )
        raise UsageError(
            f"no checkpoint of {model}/{dataset} to scan among the selected steps "
            f"{catalogue.selected[:8]}{'...' if len(catalogue.selected) > 8 else ''} "
            f"(steps there: {have[:8]}{'...' if len(have) > 8 else ''}); pick existing steps with --steps"
        )
    out = out or summary_file(suite.name, dataset, model)
    checkpoints = []
    rows_memo: dict[
        int, np.ndarray
    ] = {}  # each checkpoint reads every step before it: read each once
    for step in steps:
        ckpt = catalogue.checkpoint(
            model, dataset, step
        )  # a missing step fails here with the steps there are
        rng = step_range(suite, dataset, step, data_start, data_stop, data_stride)
        res = scan_checkpoint(
            ckpt,
            suite,
            rng,
            options,
            out=out.parent / f"step{step}.parquet",
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            progress=progress,
            cache_root=cache_root,
            rows_memo=rows_memo,
        )
        res.update(step=step, data_steps=[rng.start, rng.stop, rng.step])
        log.info(
            "%s: %d sequences, %d memorized (%.1f s)",
            ckpt.name,
            res["sequences"],
            res["memorized"],
            res["seconds"],
        )
        checkpoints.append(res)
    record = {
        "suite": suite.name,
        "dataset": dataset,
        "model": model,
        "options": asdict(options),
        "device": device,
        "dtype": str(dtype),
        "checkpoints": checkpoints,
        "seconds": sum(c["seconds"] for c in checkpoints),
    }
    write_json(out, record)
    return record


def _cmd_scan(args: argparse.Namespace) -> int:
    from pythia import runs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = ScanOptions(args.prompt, args.continuation, args.score_stride)
    require_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    suite = load_suite(args.suite)
    cat = runs.from_arguments(suite, args)
    rec = scan_model(
        suite,
        args.dataset,
        args.model,
        cat,
        options,
        data_start=args.data_start,
        data_stop=args.data_stop,
        data_stride=args.data_stride,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        out=args.out,
        progress=not args.no_progress,
    )
    for c in rec["checkpoints"]:
        print(f"{c['checkpoint']}: {c['sequences']} sequences, {c['memorized']} memorized")
    print(f"wrote {args.out or summary_file(suite.name, args.dataset, args.model)}")
    if args.duplicates:  # in this process: the model classes are imported already (seconds per job)
        dup = duplicates_model(
            suite,
            args.dataset,
            args.model,
            cat,
            options,
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            scan=args.out,
            out=args.duplicates,
        )
        print(
            f"wrote {args.duplicates} ({dup.get('skipped') or str(dup['teacher_forced']) + ' teacher-forced'})"
        )
    return 0


def _cmd_duplicates(args: argparse.Namespace) -> int:
    from pythia import runs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = ScanOptions(args.prompt, args.continuation)
    require_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    suite = load_suite(args.suite)
    cat = runs.from_arguments(suite, args)
    rec = duplicates_model(
        suite,
        args.dataset,
        args.model,
        cat,
        options,
        per_bin=args.per_bin,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        scan=args.scan,
        out=args.out,
    )
    if rec.get("skipped"):
        print(f"{args.dataset}/{args.model}: skipped ({rec['skipped']})")
    else:
        print(
            f"{args.dataset}/{args.model} step {rec['step']}: {rec['rows']} sequences by duplicate count "
            f"{rec['per_bin_rows']}, {rec['teacher_forced']} teacher-forced, {rec['runs_differing']} runs differing "
            f"from the scan's"
        )
    print(f"wrote {args.out or duplicates_file(suite.name, args.dataset, args.model)}")
    return 0


def _add_scan_target(p: argparse.ArgumentParser) -> None:
    """The options ``scan`` and ``duplicates`` share: which run, which checkpoints, k and l."""
    from pythia import runs

    p.add_argument("--suite", required=True, help="suite name or YAML path")
    p.add_argument("--dataset", required=True, choices=paths.DATASETS)
    p.add_argument("--model", required=True, help="a model of the suite")
    runs.add_arguments(p)
    p.add_argument("--prompt", type=int, default=32, help="k: prompt tokens (default 32)")
    p.add_argument(
        "--continuation", type=int, default=32, help="l: tokens to reproduce (default 32)"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "memorization", help="(k, l)-memorization scans of the training sequences (section 04)"
    )
    msub = p.add_subparsers(dest="memorization_command", required=True, metavar="SUBCOMMAND")
    s = msub.add_parser(
        "scan",
        help="memorized flags, match runs and scores of every sequence each checkpoint has seen",
    )
    _add_scan_target(s)
    s.add_argument(
        "--score-stride",
        type=int,
        default=1,
        help="fractional score of every n-th sequence (default 1: all; 0: flags and match runs only)",
    )
    s.add_argument(
        "--data-start", type=int, default=None, help="first data step to scan (default 0)"
    )
    s.add_argument(
        "--data-stop",
        type=int,
        default=None,
        help="data step to stop before (default: the checkpoint's step, i.e. every sequence it has seen)",
    )
    s.add_argument(
        "--data-stride", type=int, default=1, help="scan every n-th data step (default 1)"
    )
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    s.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="model weights' dtype (default float32; bf16/fp16 on CUDA, as Pythia's fp16 scan)",
    )
    s.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="sequences per forward pass (default: the engine's)",
    )
    s.add_argument("--threads", type=int, default=None, help="torch threads on CPU")
    s.add_argument(
        "--out",
        type=Path,
        default=None,
        help="summary JSON (default work/<suite>/memorization/<dataset>/<model>/scan.json; "
        "step<N>.parquet files go beside it)",
    )
    s.add_argument(
        "--duplicates",
        type=Path,
        default=None,
        help="then also write the final checkpoint's duplicate counts and teacher-forced accuracies "
        "here (what `pythia memorization duplicates` writes, with its defaults)",
    )
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_scan)

    d = msub.add_parser(
        "duplicates",
        help="duplicate count, leading run and teacher-forced accuracy of each "
        "scanned sequence's memorization window at the final checkpoint",
    )
    _add_scan_target(d)
    d.add_argument(
        "--per-bin",
        type=int,
        default=TF_PER_BIN,
        help=f"teacher-forced rows per duplicate-count bin, a seeded sample beyond (default {TF_PER_BIN})",
    )
    d.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    d.add_argument(
        "--scan",
        type=Path,
        default=None,
        help="the scan's summary JSON (default work/<suite>/memorization/<dataset>/<model>/scan.json)",
    )
    d.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    d.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    d.add_argument("--batch-size", type=int, default=None, help="sequences per forward pass")
    d.add_argument("--threads", type=int, default=None, help="torch threads on CPU")
    d.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Parquet file (default work/<suite>/memorization/<dataset>/<model>/duplicates.parquet)",
    )
    d.set_defaults(func=_cmd_duplicates)


# ------------------------------------------------------------------------------ the reference and the benchmark


@torch.inference_mode()
def generate_reference(
    model: torch.nn.Module,
    rows: np.ndarray,
    options: ScanOptions = ScanOptions(),
    *,
    vocab_size: int | None = None,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """What Pythia's scan computes, with ``transformers``' ``model.generate``: greedy, ``min_length =
    max_length = k + l`` (end-of-document never generated), padded vocabulary suppressed. Returns
    ``memorized``, ``match_run``, ``matches`` like :func:`memorization` (matches for every row)."""
    k, l = options.prompt, options.continuation
    device = next(model.parameters()).device
    rows = np.asarray(rows, dtype=np.int64)[:, : k + l]
    padded = model.get_output_embeddings().weight.shape[0]
    suppress = (
        list(range(vocab_size, padded)) if vocab_size is not None and vocab_size < padded else None
    )
    out = np.empty((len(rows), l), dtype=np.int64)
    for lo in range(0, len(rows), batch_size):
        x = torch.from_numpy(rows[lo : lo + batch_size, :k]).to(device)  # (b, k)
        kwargs: dict[str, Any] = {
            "max_length": k + l,
            "do_sample": False,
            "num_beams": 1,
            "pad_token_id": EOD,
            "eos_token_id": EOD,
            "attention_mask": torch.ones_like(x),
        }
        if options.forbid_eod:
            kwargs["min_length"] = k + l
        if suppress:
            kwargs["suppress_tokens"] = suppress
        gen = model.generate(x, **kwargs)  # (b, k + l)
        out[lo : lo + len(x)] = gen[:, k:].cpu().numpy()
    correct = out == rows[:, k:]  # (N, l)
    run = leading_run(correct)
    return {
        "memorized": run == l,
        "match_run": run,
        "matches": correct.sum(axis=1).astype(np.int16),
        "tokens": out,
    }


def bench_memorization(
    suite: str | Suite,
    model: str,
    dataset: str = "standard",
    step: int | None = None,
    rows: int = 1024,
    batch: int = 256,
    rounds: int = 2,
    threads: int | None = None,
    device: str = "cpu",
    catalogue=None,
    options: ScanOptions = ScanOptions(),
) -> dict[str, Any]:
    """Tokens/s of the scan (flags and match runs; and with every fractional score) against
    ``model.generate`` on the same ``rows`` first training sequences (all of them if there are fewer) of checkpoint ``step`` (default: the
    last), batch by batch interleaved (so load from other processes falls on all alike), in
    ``rounds`` rounds; checks that the flags, match runs and scores are identical. The headline
    ratio is the median over batches of generate seconds / scan seconds."""
    from pythia.runs import open_catalogue

    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if threads:
        torch.set_num_threads(threads)
    cat = catalogue or open_catalogue(suite)
    have = cat.available_steps(model, dataset)
    step = have[-1] if step is None and have else step
    ckpt = cat.checkpoint(model, dataset, step if step is not None else 0)
    net = ckpt.load_model(device=device)
    vocab = suite.tokenizer.vocab_size
    b = suite.training.global_batch
    from pythia.data.batches import num_steps

    need_steps = min(
        -(-rows // b), num_steps(suite, dataset)
    )  # the first rows of the order (all, if fewer)
    _seq, tokens = _block_rows(suite, dataset, range(need_steps), options.width)
    tokens = tokens[:rows]
    flags_only = ScanOptions(options.prompt, options.continuation, 0, options.forbid_eod)
    times: dict[str, list[float]] = {"scan": [], "scan_scores": [], "generate": []}
    results: dict[str, list] = {k: [] for k in times}
    for rnd in range(rounds):
        for lo in range(0, len(tokens), batch):
            x = tokens[lo : lo + batch]
            for name, fn in (
                ("scan", lambda x=x: memorization(net, x, flags_only, vocab_size=vocab)),
                (
                    "scan_scores",
                    lambda x=x: memorization(net, x, options, vocab_size=vocab, decode_batch=batch),
                ),
                (
                    "generate",
                    lambda x=x: generate_reference(
                        net, x, options, vocab_size=vocab, batch_size=batch
                    ),
                ),
            ):
                t0 = time.perf_counter()
                r = fn()
                times[name].append(time.perf_counter() - t0)
                if rnd == 0:
                    results[name].append(r)
    got = {
        name: {k: np.concatenate([r[k] for r in rs]) for k in ("memorized", "match_run", "matches")}
        for name, rs in results.items()
    }
    ref = got["generate"]
    parity = {
        "flags_identical": bool(
            np.array_equal(got["scan"]["memorized"], ref["memorized"])
            and np.array_equal(got["scan_scores"]["memorized"], ref["memorized"])
        ),
        "match_runs_identical": bool(np.array_equal(got["scan"]["match_run"], ref["match_run"])),
        "scores_identical": bool(np.array_equal(got["scan_scores"]["matches"], ref["matches"])),
        "rows_differing_scores": int((got["scan_scores"]["matches"] != ref["matches"]).sum()),
    }
    tok_per_row = options.width
    per_batch = {k: np.array(v) for k, v in times.items()}
    summary = {
        k: {
            "seconds": float(v.sum() / rounds),
            "tokens_per_s": rounds * len(tokens) * tok_per_row / float(v.sum()),
            "sequences_per_s": rounds * len(tokens) / float(v.sum()),
        }
        for k, v in per_batch.items()
    }
    return {
        "suite": suite.name,
        "model": model,
        "dataset": dataset,
        "checkpoint": ckpt.name,
        "identity": ckpt.identity,
        "rows": len(tokens),
        "batch": batch,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "device": device,
        "options": asdict(options),
        "memorized": int(ref["memorized"].sum()),
        "mean_match_run": float(ref["match_run"].mean()),
        "mean_score": float(ref["matches"].mean() / options.continuation),
        "timings": summary,
        **parity,
        "scan_over_generate": float(np.median(per_batch["generate"] / per_batch["scan"])),
        "scan_scores_over_generate": float(
            np.median(per_batch["generate"] / per_batch["scan_scores"])
        ),
        "torch": torch.__version__,
    }
