"""One scan's model work: the exact (k, l)-memorization of a batch of rows (Pythia, section 4.2).

A training sequence is (k, l)-memorized by a checkpoint when greedy decoding from its first
k tokens reproduces its next l tokens exactly (k = l = 32 in the paper); its memorization
score is the fraction of those l tokens the greedy continuation gets right. Pythia computed
both with ``model.generate(context, min_length=64, max_length=64)`` on every sequence
(:func:`pythia.bench.generate_reference` does that here, as the reference).

:func:`memorization` gets the same answers from teacher forcing:

* greedy decoding reproduces x[k:k+l] iff the argmax of the teacher-forced logits equals
  x[t] at every t in [k, k+l) (by induction over t: while every earlier token matched,
  decoding reads exactly the teacher-forced prefix). So the scoring engine's argmax at
  positions k..k+l-1 (:func:`pythia.evaluate.scoring.score`) gives the memorized flag of every row,
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
(:func:`_kv_cache`, :class:`BufferLayer`). Like a change of batch size, they move activations by
~1e-7; the flags, runs and scores stay those of ``generate`` (the tests and ``pythia bench
memorization`` check).

Parity with ``generate(min_length=k+l)``: the end-of-document token (id 0) can never be
generated (its logit is -inf, as ``MinLengthLogitsProcessor`` sets it), so a row whose
continuation holds a document boundary is never memorized; the padded vocabulary rows of the
output layer (GPT-NeoX pads 50,277 tokens to 50,304) are masked (``vocab_size``), as
``generate(suppress_tokens=...)`` would.

:func:`teacher_forced_correct` is the plain teacher-forced pass (every continuation position, one
forward per row) that the duplicates table reads (:func:`pythia.evaluate.memorization.duplicates_model`).
The scan over checkpoints and training data is :mod:`pythia.evaluate.memorization`.

This module imports ``transformers`` (it subclasses its cache layer): the section's analysis and
the workflow's Snakefile read the scans through :mod:`pythia.evaluate.memorization_files`, which
does not import it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import torch
from transformers.activations import GELUTanh
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from pythia.config import config_digest
from pythia.errors import UsageError
from pythia.evaluate.scoring import DEFAULT_BATCH_TOKENS, LOGIT_CHUNK_BYTES, _output_layer

EOD = 0
"""The end-of-document token of Pythia's tokenizers (and the suites' BPE)."""
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


DEFAULT_OPTIONS = ScanOptions()
"""k = l = 32, every sequence's fractional score: the paper's scan."""


def leading_run(correct: np.ndarray) -> np.ndarray:
    """(N,) length of the leading run of True in each row of ``correct`` (N, l)."""
    miss = ~correct
    first = miss.argmax(axis=1)  # (N,) first miss, 0 when there is none
    return np.where(miss.any(axis=1), first, correct.shape[1]).astype(np.int16)


def _body(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer under ``model``'s output layer (``base_model``: GPT-NeoX's ``gpt_neox``)."""
    return cast(torch.nn.Module, model.base_model)


def _checked_rows(rows: np.ndarray, width: int, what: str) -> np.ndarray:
    """``rows`` as an array, which must be (N, >= ``width``) (``what`` needs them)."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] < width:
        raise UsageError(
            f"{what} needs rows of at least k + l = {width} tokens, got shape {rows.shape}"
        )
    return rows


# ------------------------------------------------------------------------------ greedy picks


class _GreedyHead:
    """Greedy tokens of hidden states under ``model``'s output layer cut to the real vocabulary
    (``vocab_size``: padded rows never win), the ``forbid`` tokens at -inf, ``argmax`` as
    ``generate`` takes it (no log-probabilities)."""

    def __init__(
        self, model: torch.nn.Module, vocab_size: int | None, forbid: Sequence[int]
    ) -> None:
        device = next(model.parameters()).device
        self.weight, self.bias = _output_layer(model, vocab_size)  # (V, d), (V,) | None
        self.forbid = (
            torch.tensor(sorted(set(forbid)), dtype=torch.int64, device=device) if forbid else None
        )
        # rows per output-layer product in chunked(): about LOGIT_CHUNK_BYTES of logits
        self.chunk = max(
            32,
            (LOGIT_CHUNK_BYTES if device.type == "cpu" else 32 * LOGIT_CHUNK_BYTES)
            // (4 * self.weight.shape[0]),
        )

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """Greedy tokens (b,) of ``hidden`` (b, d). The logits are one contiguous (b, V) block,
        filled in place: ``argmax`` over a column slice of the padded logits, after a masking
        copy, is ~3x slower on CPU."""
        logits = torch.nn.functional.linear(hidden, self.weight, self.bias).float()  # (b, V), fresh
        if self.forbid is not None:
            logits.index_fill_(1, self.forbid, float("-inf"))
        return logits.argmax(dim=-1)

    def chunked(self, hidden: torch.Tensor) -> torch.Tensor:
        """Greedy tokens (a, w) of ``hidden`` (a, w, d), :attr:`chunk` rows per product."""
        flat = hidden.reshape(-1, hidden.shape[-1])
        picks = [self(flat[i : i + self.chunk]) for i in range(0, len(flat), self.chunk)]
        return torch.cat(picks).view(hidden.shape[:2])


# ------------------------------------------------------------------------------ cheaper CPU forwards


def _last_position(module: torch.nn.Module, args: tuple) -> tuple:
    """A forward pre-hook cutting a module's input to the last position."""
    return (args[0][:, -1:], *args[1:])


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
    modules = [t for t in targets if isinstance(t, torch.nn.Module)]
    if len(modules) < len(targets):
        yield False
        return
    handles = [t.register_forward_pre_hook(_last_position) for t in modules]
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


class BufferLayer(DynamicLayer):
    """A KV cache layer that writes new keys and values into a buffer of ``capacity`` positions and
    returns views of its filled part: no copy of the cache per step. Its first update keeps the
    prompt's tensors as they are (most rows of a scan never come back); the second allocates the
    buffer."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = key_states.shape[-2]
        if not self.is_initialized:
            self.dtype, self.device, self.is_initialized = (
                key_states.dtype,
                key_states.device,
                True,
            )
            self.keys, self.values, self.length = key_states, value_states, n
            return key_states, value_states
        end = self.length + n
        if end > self.capacity:
            raise ValueError(f"KV cache of {self.capacity} positions cannot take {end}")
        k, v = self._buffers()
        k[:, :, self.length : end] = key_states
        v[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = k[:, :, :end], v[:, :, :end]
        return self.keys, self.values

    def _buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The buffers; at the second update, allocated holding the first update's tensors."""
        if self._k is None or self._v is None:
            keys, values = self.keys, self.values
            assert keys is not None and values is not None  # the first update set them
            b, h, _, d = keys.shape
            self._k = keys.new_empty(b, h, self.capacity, d)
            self._v = values.new_empty(b, h, self.capacity, values.shape[-1])
            self._k[:, :, : self.length] = keys
            self._v[:, :, : self.length] = values
        return self._k, self._v

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if not self.is_initialized:
            return
        if self._k is None or self._v is None:
            assert self.keys is not None and self.values is not None  # initialized
            self.keys, self.values = self.keys[indices], self.values[indices]
        else:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]


def _kv_cache(capacity: int, device: torch.device) -> Cache | None:
    """An empty KV cache for a forward whose rows grow to at most ``capacity`` positions. On CPU a
    ``Cache`` of :class:`BufferLayer` layers: ``DynamicCache``'s layers copy the whole cache at
    every step (~20% of a micro decode step). Elsewhere None: the model's own ``DynamicCache``."""
    if device.type != "cpu":
        return None
    layer = functools.partial(BufferLayer, capacity)
    # transformers types the argument as a layer class; it only calls it, so a partial works
    return Cache(layer_class_to_replicate=layer)  # type: ignore[arg-type]


def _merge_caches(parts: list[tuple[Any, torch.Tensor]], capacity: int, device: torch.device):
    """One KV cache holding the rows ``keep`` of each prompt cache of ``parts`` [(cache, keep)], in
    order: each layer's keys and values concatenated along the batch (the new cache's first update)."""
    merged = _kv_cache(capacity, device)
    merged = DynamicCache() if merged is None else merged
    for i in range(len(parts[0][0].layers)):
        keys = torch.cat([c.layers[i].keys[keep] for c, keep in parts])
        values = torch.cat([c.layers[i].values[keep] for c, keep in parts])
        merged.update(keys, values, i)
    return merged


# ------------------------------------------------------------------------------ greedy decoding


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
    device = next(model.parameters()).device
    head = _GreedyHead(model, vocab_size, forbid)
    body = _body(model)
    x = torch.from_numpy(np.ascontiguousarray(prefix, dtype=np.int64)).to(device)  # (b, p)
    with last_position_only(model):
        out = body(
            input_ids=x, past_key_values=_kv_cache(x.shape[1] + steps, device), use_cache=True
        )
    cache = out.past_key_values
    tokens = torch.empty(x.shape[0], steps, dtype=torch.int64, device=device)  # (b, steps)
    hidden = out.last_hidden_state[:, -1]  # (b, d)
    for i in range(steps):
        tokens[:, i] = head(hidden)
        if i + 1 < steps:
            out = body(input_ids=tokens[:, i : i + 1], past_key_values=cache, use_cache=True)
            cache, hidden = out.past_key_values, out.last_hidden_state[:, -1]
    return tokens.cpu().numpy()


# ------------------------------------------------------------------------------ teacher forcing, cut at the first miss


def _prompt_batch(prompt: int, hidden: int, device: torch.device) -> int:
    """Rows per prompt forward: on CPU as many as keep the widest activation (the MLP's, rows x k
    x 4 d floats) near :data:`CPU_ACTIVATION_FLOATS`, so it stays in cache (micro, one core: 1.8M
    ~1.2x faster at 64-128 rows than at 512, 624K fastest at 128, 138K at 512); 16k tokens elsewhere."""
    if device.type != "cpu":
        return max(1, 2 * DEFAULT_BATCH_TOKENS // prompt)
    return max(16, min(1024, CPU_ACTIVATION_FLOATS // (prompt * 4 * hidden)))


def _group_rows(batch: int, model: torch.nn.Module, prompt: int, device: torch.device) -> int:
    """Rows whose continuations run together (a multiple of the prompt batch ``batch``): on CPU up
    to :data:`CPU_DECODE_BATCH`, as many as keep the prompt's KV cache within
    :data:`CPU_GROUP_CACHE_BYTES`; elsewhere one prompt batch (already thousands of tokens)."""
    if device.type != "cpu":
        return batch
    cfg: Any = model.config
    per_row = (
        2
        * cfg.num_hidden_layers
        * prompt
        * cfg.hidden_size
        * next(model.parameters()).element_size()
    )
    rows = min(CPU_DECODE_BATCH, CPU_GROUP_CACHE_BYTES // per_row)
    return max(1, rows // batch) * batch


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
    last position only: :func:`last_position_only`), and its last position's argmax is checked
    (:func:`_prompt_hits`); then the true continuation is fed in chunks of 2, 4, 8, ... tokens to
    the rows that have matched so far only (:func:`_feed_continuation`): those of a whole group of
    prompt batches at once (:func:`_group_rows`), their prompt caches merged (:func:`_merge_caches`)
    and cut down to them at each chunk (the cache's ``batch_select_indices``). A row's argmax at
    continuation position t reads exactly x[:t] as in one full teacher-forced pass, so runs and
    flags are those of the single pass (and of greedy decoding), for a fraction of its cost when
    most rows miss early. Grouping spares the few surviving rows of each prompt batch their own
    tiny forwards (on CPU, run per 64-row batch, those took a sixth of micro 1.8M's teacher
    forcing). The greedy picks are :func:`greedy_continue`'s (:class:`_GreedyHead`), in chunks of
    about ``LOGIT_CHUNK_BYTES`` of logits."""
    k, l = prompt, continuation
    rows = _checked_rows(rows, k + l, "teacher forcing")
    device = next(model.parameters()).device
    head = _GreedyHead(model, vocab_size, forbid)
    batch = batch_size or _prompt_batch(k, head.weight.shape[1], device)
    group = _group_rows(batch, model, k, device)
    runs = np.zeros(len(rows), dtype=np.int16)
    for g in range(0, len(rows), group):
        x = torch.from_numpy(np.ascontiguousarray(rows[g : g + group, : k + l], dtype=np.int64))
        runs[g : g + len(x)] = _group_runs(model, head, x.to(device), k, batch).cpu().numpy()
    return runs


def _group_runs(
    model: torch.nn.Module, head: _GreedyHead, x: torch.Tensor, prompt: int, batch: int
) -> torch.Tensor:
    """Leading match runs (n,) of one group of rows ``x`` (n, k + l), prompt batches of ``batch``."""
    width = x.shape[1]
    run = torch.zeros(len(x), dtype=torch.int64, device=x.device)
    parts = _prompt_hits(model, head, x, prompt, batch)
    if not parts:
        return run
    alive = torch.cat([hit + lo for _, hit, lo in parts])  # rows of x matching every target so far
    run[alive] = 1
    if len(parts) == 1:  # one prompt batch (off CPU, or a short group): cut its cache down
        cache, hit, lo = parts[0]
        if len(hit) < min(batch, len(x) - lo):
            cache.batch_select_indices(hit)
    else:
        cache = _merge_caches([(c, hit) for c, hit, _ in parts], width, x.device)
    del parts
    _feed_continuation(model, head, x, prompt, alive, run, cache)
    return run


def _prompt_hits(
    model: torch.nn.Module, head: _GreedyHead, x: torch.Tensor, prompt: int, batch: int
) -> list[tuple[Any, torch.Tensor, int]]:
    """[(prompt cache, rows of its batch whose first pick matched, the batch's first row)] of the
    prompt batches of ``x`` (n, k + l) that have a row matching its first continuation token."""
    k = prompt
    parts = []
    for lo in range(0, len(x), batch):
        with last_position_only(model):
            out = _body(model)(
                input_ids=x[lo : lo + batch, :k],
                past_key_values=_kv_cache(x.shape[1], x.device),
                use_cache=True,
            )
        first = head.chunked(out.last_hidden_state[:, -1:])[:, 0]
        hit = (first == x[lo : lo + batch, k]).nonzero()[:, 0]
        if len(hit):
            parts.append((out.past_key_values, hit, lo))
    return parts


def _feed_continuation(
    model: torch.nn.Module,
    head: _GreedyHead,
    x: torch.Tensor,
    prompt: int,
    alive: torch.Tensor,
    run: torch.Tensor,
    cache: Any,
) -> None:
    """Add to ``run`` (n,) the matches after the first of the rows ``alive`` of ``x`` (n, k + l),
    whose prompts and first continuation token ``cache`` holds: the true continuation fed in chunks
    of 2, 4, 8, ... tokens to the rows still matching, the cache cut down to them at each chunk."""
    end = x.shape[1]
    # the next chunk predicts x[alive, pos:pos + width]
    pos, width = prompt + 1, min(2, end - prompt - 1)
    while width > 0:
        out = _body(model)(
            input_ids=x[alive, pos - 1 : pos - 1 + width], past_key_values=cache, use_cache=True
        )
        cache = out.past_key_values
        wrong = head.chunked(out.last_hidden_state) != x[alive, pos : pos + width]  # (a, w)
        missed = wrong.any(dim=1)  # (a,)
        run[alive] += torch.where(missed, wrong.int().argmax(dim=1), width)
        pos += width
        if pos >= end or bool(missed.all()):
            break
        keep = (~missed).nonzero()[:, 0]
        alive = alive[keep]
        if len(keep) < len(missed):
            cache.batch_select_indices(keep)
        width = min(2 * width, end - pos)


# ------------------------------------------------------------------------------ the scan of a batch of rows


def memorization(
    model: torch.nn.Module,
    rows: np.ndarray,
    options: ScanOptions = DEFAULT_OPTIONS,
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
    rows = _checked_rows(rows, k + l, "memorization")[:, : k + l].astype(np.int64)
    forbid = [EOD] if options.forbid_eod else []
    if score_mask is None:  # every score_stride-th row (none for 0)
        stride = options.score_stride
        want = (np.arange(len(rows)) % stride == 0) if stride else np.zeros(len(rows), bool)
    else:
        want = np.asarray(score_mask, bool)
    run = np.zeros(len(rows), dtype=np.int16)
    matches = np.full(len(rows), -1, dtype=np.int16)
    rest, scored = np.flatnonzero(~want), np.flatnonzero(want)
    was_training = model.training
    model.eval()
    try:
        with cpu_kernels(model):
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
            for idx, correct in _decoded(model, rows, scored, k, vocab_size, forbid, decode_batch):
                run[idx] = leading_run(correct)
                matches[idx] = correct.sum(axis=1)
    finally:
        model.train(was_training)
    return {"memorized": run == l, "match_run": run, "matches": matches}


def _decoded(
    model: torch.nn.Module,
    rows: np.ndarray,
    scored: np.ndarray,
    prompt: int,
    vocab_size: int | None,
    forbid: Sequence[int],
    decode_batch: int | None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(indices, correct (b, l)) of the rows ``scored`` of ``rows`` (N, k + l), ``decode_batch`` at
    a time: whether each token greedy decoding appends to the row's prompt is the row's own."""
    k, l = prompt, rows.shape[1] - prompt
    if decode_batch is None:
        decode_batch = CPU_DECODE_BATCH if next(model.parameters()).device.type == "cpu" else 256
    for lo in range(0, len(scored), decode_batch):
        idx = scored[lo : lo + decode_batch]
        generated = greedy_continue(model, rows[idx, :k], l, vocab_size=vocab_size, forbid=forbid)
        yield idx, generated == rows[idx, k : k + l]  # (b, l)


# ------------------------------------------------------------------------------ plain teacher forcing


@torch.inference_mode()
def teacher_forced_correct(
    model: torch.nn.Module,
    rows: np.ndarray,
    options: ScanOptions = DEFAULT_OPTIONS,
    *,
    vocab_size: int | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """(N, l) bool: whether each continuation token x[t], t in [k, k + l), is the argmax of the logits
    given the true prefix x[:t], with the scan's conventions (output layer cut to ``vocab_size``,
    end-of-document never the argmax when ``options.forbid_eod``). One forward pass over
    ``rows[:, :k + l - 1]`` per batch; the output layer runs on the l predicting positions only,
    in chunks of about ``LOGIT_CHUNK_BYTES`` of logits (argmax only: no softmax)."""
    k, l = options.prompt, options.continuation
    rows = _checked_rows(rows, k + l, "teacher forcing")
    device = next(model.parameters()).device
    head = _GreedyHead(model, vocab_size, [EOD] if options.forbid_eod else [])
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
                hidden = _body(model)(input_ids=x[:, :-1], use_cache=False).last_hidden_state
                picks = head.chunked(hidden[:, k - 1 :])  # (b, l): position t-1 predicts x[t]
                out[lo : lo + len(x)] = (picks == x[:, k:]).cpu().numpy()
    finally:
        model.train(was_training)
    return out
