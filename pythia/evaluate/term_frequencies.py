"""Section 05, term frequencies, the heavy work: count how often each operand occurs in the
training data seen up to a checkpoint, and evaluate few-shot arithmetic per operand on the
checkpoints (the Pythia paper's section 4.3, after Razeghi et al. 2022). The tables and figures
built from both are :mod:`pythia.analysis.term_frequencies`; the command line is
``pythia term-frequencies count|evaluate`` (:mod:`pythia.cli.term_frequencies`).

Counting (Pythia's term-frequency code, as the issue states it): decode each training sequence
(the whole pre-shuffled row of seq_len + 1 tokens, as Pythia's batch viewer shows it), prepend
a space, and find every overlapping window of the form *number, one to three words, number* with
the regex ``(?=( (\\d){1,5} ((\\w|[P])+\\s+){1,3}(\\d){1,5}))`` (P: the escaped ASCII
punctuation). In each window every number (a whitespace-separated token that is digits once
its punctuation is stripped) gets +1, and so does every ordered pair of them (earlier, later).
Only the operands 0..99 are kept. Counts are taken per *step range* (the paper: 13,000-step
shards; here also split at every evaluated checkpoint), saved as an array [range x number], so
the cumulative count at a checkpoint is a sum over the ranges that end at or before it. One
pass over the data through :func:`pythia.data.batches.get_batch` (our order or Pythia's released
pre-shuffled files): each range is written to its own file as it finishes, so a killed count
resumes at the first missing range, and memory stays bounded by one chunk of steps per worker.

The n-gram index (:mod:`pythia.evaluate.ngram_index`, ``count_dataset(..., index=...)``) gives
the same counts where it is used, and is used only where it must: a window needs a decimal digit
(``\\d``) at both ends, and decoded text holds one only where a token decodes to text with a
``\\d`` or to an incomplete UTF-8 character (U+FFFD: a byte piece of a character that the next
token completes, possibly a non-ASCII digit); decoding joins the tokens' bytes and its clean-up
only removes spaces, so it creates no digit. :func:`digit_tokens` lists those tokens, the index
finds the rows holding any of them, and only those rows are decoded and searched with the regex:
every other row has no window, so every count (numbers and pairs, per range) is identical to the
regex pass over all rows (``tests/evaluate/test_ngram_index.py`` compares both on the smoke data;
on micro, 2 datasets x 25 ranges x 10,100 counts, all equal). What the index does not give: the
window counts themselves. An operand's count is the number of windows it sits in, which depends
on the one to three words around it (a number with no other number within three words counts
0; one inside three overlapping windows counts 3; "42," counts as 42 inside the words but starts
no window), none of which an n-gram count expresses; and the index's count of the tokens of
``" 42"`` is not even the occurrences of 42 as a number (it counts the prefix of ``" 425"``
where the BPE splits it ``" 42" "5"``, and misses ``"42"`` after a bracket or at a row's start;
on micro it equals the window count for none of the 100 operands, standard or deduplicated).
So the windows stay the regex's.

Evaluation: the registry's ``arithmetic_prompts`` (``Q:What is {x1} plus {x2}? A:`` with the
answer, no leading space; the contamination guard knows every one). A k-shot prompt is k
answered prompts of the same operation with another x1, drawn with ``Random(seed/op/x1/x2/k)``
(so a prompt does not depend on which subset is evaluated), joined with a blank line, then the
question. Each prompt set is one lm-eval ``generate_until`` task (operation, k, x1, x2 in the
documents) run through :mod:`pythia.evaluate.harness` (cached per checkpoint): greedy until a
newline, at most ``max_new_tokens``; lm-eval's regex filter takes the first integer of the
generation and ``exact_match`` compares it with the answer.

Digests: :func:`counts_digest` and :func:`evaluation_digest`, what the workflow's counting and
evaluation jobs read (``rules/term_frequencies.smk``).
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing as mp
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pythia import paths
from pythia.config import (
    OperandSet,
    Suite,
    TermFrequencySpec,
    config_digest,
    register_suite_file,
)
from pythia.data.batches import get_batch, num_steps, open_sequences, sequences_prefix
from pythia.data.indexed import IndexedDataset
from pythia.data.layout import Layout
from pythia.data.tokenizer import load_tokenizer, tokenizer_dir
from pythia.errors import MissingInputError, UsageError
from pythia.evaluate.harness import evaluate_tasks, folder_digest, request_cache
from pythia.evaluate.ngram_index import TrainingIndex, order_identity
from pythia.io import atomic_path, sha256_file, write_json
from pythia.runs import Catalogue, Checkpoint
from pythia.train.checkpoint import run_digest

log = logging.getLogger(__name__)

STEM = "term_frequencies"
NUMBERS = 100
"""Counts are kept for the numbers 0..99 (every operand x1 and x2)."""
COUNT_VERSION = 1
"""Bumped when the counting rule changes (range files of another version are recounted)."""
PUNCTUATION = re.escape(string.punctuation)
WINDOW = re.compile(rf"(?=( (\d){{1,5}} ((\w|[{PUNCTUATION}])+\s+){{1,3}}(\d){{1,5}}))")
"""Pythia's number window: a number, one to three words, a number (overlapping: a lookahead)."""
_STRIP = string.punctuation
OPERATIONS: dict[str, Callable[[int, int], int]] = {
    "plus": lambda a, b: a + b,
    "times": lambda a, b: a * b,
}


# --------------------------------------------------------------------------------------
# Counting: the rule
# --------------------------------------------------------------------------------------


def window_numbers(text: str) -> list[list[int]]:
    """The numbers of every window of ``" " + text``, in order (one list per window)."""
    out = []
    for m in WINDOW.finditer(" " + text):
        nums = []
        for tok in m.group(1).split():
            t = tok.strip(_STRIP)
            if t.isdigit():
                nums.append(int(t))
        out.append(nums)
    return out


def count_texts(
    texts: Iterable[str], numbers: np.ndarray | None = None, pairs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Add the window counts of ``texts`` to ``numbers`` [100] and ``pairs`` [100, 100] (new when None)."""
    numbers = np.zeros(NUMBERS, np.int64) if numbers is None else numbers
    pairs = np.zeros((NUMBERS, NUMBERS), np.int64) if pairs is None else pairs
    for text in texts:
        for nums in window_numbers(text):
            kept = [n for n in nums if n < NUMBERS]
            for n in kept:
                numbers[n] += 1
            for i, a in enumerate(kept):
                for b in kept[i + 1 :]:
                    pairs[a, b] += 1
    return numbers, pairs


DIGIT_TEXT = re.compile(r"\d|\ufffd")
"""A token that can put a decimal digit into decoded text: one, or an incomplete character."""


def digit_tokens(tok: Any) -> np.ndarray:
    """The ids of the tokens that decode (alone) to text with a ``\\d`` or an incomplete UTF-8
    character (U+FFFD): a decoded row without any of them holds no digit, hence no window."""
    texts = tok.batch_decode([[i] for i in range(len(tok))])
    return np.array([i for i, t in enumerate(texts) if DIGIT_TEXT.search(t)], dtype=np.int64)


def step_ranges(
    spec: TermFrequencySpec, train_iters: int, steps: Sequence[int] = ()
) -> list[tuple[int, int]]:
    """Ranges [start, end) of training steps: every ``shard_steps`` and at each step of ``steps``,
    covering 0..train_iters (the whole training order)."""
    cuts = (
        set(range(0, train_iters, spec.shard_steps))
        | {s for s in steps if 0 < s < train_iters}
        | {train_iters}
    )
    return list(itertools.pairwise(sorted(cuts | {0})))


def counts_key(suite: Suite, dataset: str) -> str:
    """What one range's counts depend on: the counting rule and the file it reads (path, size,
    mtime: hashing 300B tokens would cost more than counting them) and the tokenizer."""
    prefix = sequences_prefix(suite, dataset)
    files = {}
    for ext in (".bin", ".idx"):
        p = Path(f"{prefix}{ext}")
        st = p.stat() if p.exists() else None
        files[ext] = [st.st_size, st.st_mtime_ns] if st else None
    tok = tokenizer_dir(suite.name) / "tokenizer.json"
    return config_digest(
        {
            "version": COUNT_VERSION,
            "files": files,
            "window": WINDOW.pattern,
            "tokenizer": sha256_file(tok) if tok.is_file() else None,
            "batch": suite.training.global_batch,
            "seq_len": suite.training.seq_len,
        }
    )


# --------------------------------------------------------------------------------------
# Counting: the workers (module-level: a pool runs them in other processes)
# --------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}
"""What a counting process reads with: the suite's name, the dataset, the tokenizer and, when
the n-gram index is used, ``keep`` [rows]: the rows holding a digit token (None: every row)."""


def _init_worker(
    suite_name: str, dataset: str, suite_file: str | None, keep: np.ndarray | None = None
) -> None:
    """Load the tokenizer into :data:`_WORKER` (in the parent, which forked workers inherit, or
    in each spawned worker)."""
    if suite_file:
        register_suite_file(suite_file)
    _WORKER.update(suite=suite_name, dataset=dataset, tok=load_tokenizer(suite_name), keep=keep)


def _count_steps(task: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Counts over steps [lo, hi) in a worker: (numbers, pairs, tokens); only the rows of
    ``keep`` are decoded when it is set (the others hold no digit)."""
    lo, hi = task
    numbers, pairs = count_texts([])
    tokens = 0
    keep = _WORKER.get("keep")
    for step in range(lo, hi):
        rows = get_batch(_WORKER["suite"], _WORKER["dataset"], step)  # (B, seq_len + 1)
        tokens += rows.size
        if keep is not None:
            rows = rows[keep[step * len(rows) : (step + 1) * len(rows)]]
        texts = _WORKER["tok"].batch_decode(rows.tolist())
        numbers, pairs = count_texts(texts, numbers, pairs)
    return numbers, pairs, tokens


def _open_pool(
    workers: int, suite_name: str, dataset: str, suite_file: str | None, keep: np.ndarray | None
) -> Pool:
    """``workers`` counting processes. fork where the platform has it: workers start at once with
    the tokenizer the parent loaded (spawn re-imports transformers in each)."""
    if "fork" in mp.get_all_start_methods():
        return mp.get_context("fork").Pool(workers)
    return mp.get_context("spawn").Pool(
        workers, _init_worker, (suite_name, dataset, suite_file, keep)
    )


# --------------------------------------------------------------------------------------
# Counting: a dataset's training order, one file per step range
# --------------------------------------------------------------------------------------


def range_file(folder: Path, lo: int, hi: int) -> Path:
    """The counts of steps [lo, hi) in the folder beside the array file."""
    return folder / f"steps-{lo:07d}-{hi:07d}.npz"


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _range_done(path: Path, key: str) -> bool:
    """Whether ``path`` holds counts made with ``key`` (:func:`counts_key`)."""
    if not path.is_file():
        return False
    with np.load(path) as z:
        return str(z["key"]) == key


def count_dataset(
    suite: Suite,
    dataset: str,
    out: str | Path,
    *,
    steps: Sequence[int] = (),
    workers: int = 1,
    chunk_tokens: int = 1 << 20,
    progress: bool = True,
    suite_file: str | None = None,
    index: TrainingIndex | None = None,
) -> Path:
    """Count operands over the whole training order of ``dataset``, one file per step range in
    ``<out without .npz>/`` (kept: a rerun counts only the missing ranges), then the array file
    ``out`` (.npz): ``start``, ``end`` [R], ``numbers`` [R, 100], ``pairs`` [R, 100, 100], ``tokens`` [R].
    ``index``: the dataset's n-gram index; only the rows it finds holding a :func:`digit_tokens`
    token are decoded (the same counts: the module's docstring says why)."""
    out = Path(out)
    open_sequences(suite, dataset)  # a missing file fails here with how to build or download it
    total = min(suite.training.train_iters, num_steps(suite, dataset))
    if index is not None and index.steps != total:
        raise UsageError(
            f"the n-gram index {index.folder} covers {index.steps} steps, the training order of "
            f"{suite.name}/{dataset} {total}; build the index of this suite and dataset"
        )
    ranges = step_ranges(suite.analysis.term_frequencies, total, steps)
    key = counts_key(suite, dataset)
    folder = out.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(lo, hi) for lo, hi in ranges if not _range_done(range_file(folder, lo, hi), key)]
    log.info(
        "counting %d of %d step ranges of %s/%s (%d workers)",
        len(todo),
        len(ranges),
        suite.name,
        dataset,
        workers,
    )
    counted, seconds = _count_ranges(
        suite,
        dataset,
        folder,
        todo,
        key,
        workers=workers,
        chunk_tokens=chunk_tokens,
        progress=progress,
        suite_file=suite_file,
        index=index,
    )
    arrays = _write_counts(out, folder, ranges, key)
    info = {"suite": suite.name, "dataset": dataset, "ranges": len(ranges)}
    info |= {"index": str(index.folder) if index is not None else None}
    info |= _speed(len(todo), counted, seconds, workers, arrays) | {"key": key}
    write_json(out.with_suffix(".json"), info)
    return out


def _write_counts(
    out: Path, folder: Path, ranges: Sequence[tuple[int, int]], key: str
) -> list[dict[str, np.ndarray]]:
    """Stack the range files of ``ranges`` into the array file ``out``; returns their contents."""
    arrays = [_read_npz(range_file(folder, lo, hi)) for lo, hi in ranges]
    with atomic_path(out, ".npz") as tmp:
        np.savez(
            tmp,
            start=np.array([lo for lo, _ in ranges]),
            end=np.array([hi for _, hi in ranges]),
            numbers=np.stack([a["numbers"] for a in arrays]),
            pairs=np.stack([a["pairs"] for a in arrays]),
            tokens=np.array([int(a["tokens"]) for a in arrays]),
            key=key,
        )
    return arrays


def _pieces(
    todo: Sequence[tuple[int, int]], chunk: int, workers: int
) -> list[tuple[int, int, int]]:
    """Every range of ``todo`` cut into pieces (range index, lo, hi) of at most ``chunk`` steps
    (and at least ``workers`` pieces), in order."""
    pieces = []
    for r, (lo, hi) in enumerate(todo):
        step = max(1, min(chunk, -(-(hi - lo) // max(workers, 1))))
        pieces += [(r, s, min(s + step, hi)) for s in range(lo, hi, step)]
    return pieces


def _count_ranges(
    suite: Suite,
    dataset: str,
    folder: Path,
    todo: Sequence[tuple[int, int]],
    key: str,
    *,
    workers: int,
    chunk_tokens: int,
    progress: bool,
    suite_file: str | None,
    index: TrainingIndex | None,
) -> tuple[int, float]:
    """Count the ranges ``todo`` on ``workers`` processes, writing each range's file as it
    finishes; returns the tokens counted and the seconds it took. All pieces go in one ordered
    stream over the pool: ranges finish, and are written, in order."""
    tokens_per_step = suite.training.global_batch * (suite.training.seq_len + 1)
    chunk = max(1, chunk_tokens // tokens_per_step)
    _init_worker(suite.name, dataset, suite_file)  # the tokenizer, loaded once
    keep = index.rows_holding(digit_tokens(_WORKER["tok"])) if index is not None and todo else None
    _WORKER["keep"] = keep
    pool = (
        _open_pool(workers, suite.name, dataset, suite_file, keep) if workers > 1 and todo else None
    )
    bar = tqdm(
        total=sum(hi - lo for lo, hi in todo) * tokens_per_step,
        unit="tok",
        unit_scale=True,
        disable=not progress,
        desc=f"count {dataset}",
    )
    pieces = _pieces(todo, chunk, workers)
    t0 = time.perf_counter()
    try:
        spans = [(lo, hi) for _, lo, hi in pieces]
        results = pool.imap(_count_steps, spans) if pool else map(_count_steps, spans)
        counted = _write_ranges(pieces, results, todo, folder, key, workers, bar, t0)
    finally:
        if pool:
            pool.close()
            pool.join()
        bar.close()
    return counted, time.perf_counter() - t0


def _write_ranges(
    pieces: Sequence[tuple[int, int, int]],
    results: Iterable[tuple[np.ndarray, np.ndarray, int]],
    todo: Sequence[tuple[int, int]],
    folder: Path,
    key: str,
    workers: int,
    bar: Any,
    t0: float,
) -> int:
    """Sum the pieces' counts per range and write each range's file when its last piece is in
    (with its wall time: ranges finish in order, so the time since the range before it);
    returns the tokens counted."""
    left = Counter(r for r, _, _ in pieces)
    acc: dict[int, list[Any]] = {
        r: [np.zeros(NUMBERS, np.int64), np.zeros((NUMBERS, NUMBERS), np.int64), 0]
        for r in range(len(todo))
    }
    counted, t_last = 0, t0
    for (r, _, _), (n, p, t) in zip(pieces, results):
        a = acc[r]
        a[0] += n
        a[1] += p
        a[2] += t
        bar.update(t)
        left[r] -= 1
        if left[r] == 0:
            lo, hi = todo[r]
            numbers, pairs, tokens = acc.pop(r)
            counted += tokens
            now = time.perf_counter()
            with atomic_path(range_file(folder, lo, hi), ".npz") as tmp:
                np.savez(
                    tmp,
                    numbers=numbers,
                    pairs=pairs,
                    tokens=tokens,
                    start=lo,
                    end=hi,
                    key=key,
                    seconds=now - t_last,
                    workers=workers,
                )
            t_last = now
    return counted


def _speed(
    counted_ranges: int,
    counted: int,
    seconds: float,
    workers: int,
    arrays: Sequence[dict[str, np.ndarray]],
) -> dict[str, Any]:
    """The counting speed of this run and as measured when each range was counted, now or by an
    earlier run (a resumed count measures nothing itself); the measured time is unknown when a
    range was cached without its time."""
    range_seconds = [float(a["seconds"]) if "seconds" in a else None for a in arrays]
    measured_tokens = sum(int(a["tokens"]) for a in arrays)
    measured_seconds = None if None in range_seconds else sum(s or 0.0 for s in range_seconds)
    return {
        "counted_ranges": counted_ranges,
        "counted_tokens": counted,
        "seconds": round(seconds, 3),
        "workers": workers,
        "tokens_per_s": round(counted / seconds, 1) if counted and seconds > 0 else None,
        "measured_tokens": measured_tokens,
        "measured_seconds": round(measured_seconds, 3) if measured_seconds is not None else None,
        "measured_workers": max(
            (int(a["workers"]) for a in arrays if "workers" in a), default=workers
        ),
        "measured_tokens_per_s": round(measured_tokens / measured_seconds, 1)
        if measured_seconds
        else None,
    }


def load_counts(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays :func:`count_dataset` wrote."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"{path} is missing: run `pythia term-frequencies count` (or the workflow's "
            f"term_frequencies_counts rule) first"
        )
    return _read_npz(path)


def cumulative(counts: dict[str, np.ndarray], step: int, what: str = "numbers") -> np.ndarray:
    """Counts over the training data seen by the checkpoint at ``step`` (steps [0, step)): the sum
    of the ranges ending at or before it; ``step`` must be a range boundary."""
    ends = counts["end"]
    if step != 0 and step not in set(ends.tolist()):
        raise UsageError(
            f"step {step} is not the end of a counted step range (ends: {', '.join(map(str, ends[:8]))}"
            f"{', ...' if len(ends) > 8 else ''}); count with --steps including it"
        )
    arr = counts[what]
    return arr[ends <= step].sum(axis=0)


# --------------------------------------------------------------------------------------
# Prompts and lm-eval tasks
# --------------------------------------------------------------------------------------


def answer(op: str, x1: int, x2: int) -> str:
    return str(OPERATIONS[op](x1, x2))


def question(op: str, x1: int, x2: int) -> str:
    """The registry's prompt (``pythia.data.evalsets`` arithmetic_prompts)."""
    return f"Q:What is {x1} {op} {x2}? A:"


def _pairs(operands: OperandSet) -> list[tuple[int, int]]:
    return [
        (a, b)
        for a in range(operands.x1[0], operands.x1[1] + 1)
        for b in range(operands.x2[0], operands.x2[1] + 1)
    ]


def prompt(op: str, x1: int, x2: int, k: int, operands: OperandSet, seed: int = 42) -> str:
    """The k-shot prompt: k answered prompts with another x1 (drawn from ``operands``' pairs with
    ``Random(f"{seed}/{op}/{x1}/{x2}/{k}")``), each joined by a blank line, then the question."""
    pool = [(a, b) for a, b in _pairs(operands) if a != x1]
    if k > len(pool):
        raise UsageError(
            f"{k} shots need {k} operand pairs with another x1; the set {operands.x1} x {operands.x2} "
            f"has {len(pool)}"
        )
    shots = random.Random(f"{seed}/{op}/{x1}/{x2}/{k}").sample(pool, k)
    parts = [question(op, a, b) + answer(op, a, b) for a, b in shots]
    return "\n\n".join([*parts, question(op, x1, x2)])


def prompt_sets(spec: TermFrequencySpec) -> dict[str, OperandSet | None]:
    """The prompt sets to evaluate: ``paper`` and, when configured, ``simple`` and ``heldout``."""
    return {
        "paper": spec.operands,
        **({"simple": spec.simple} if spec.simple is not None else {}),
        **({"heldout": None} if spec.heldout else {}),
    }


HELDOUT_STATEMENTS: list[tuple[re.Pattern[str], str | dict[str, str] | None]] = [
    (re.compile(r"(?<![\w.])((\d{1,2}) (plus|times) (\d{1,2}) equals) (\d+)\b"), None),
    (
        re.compile(r"\b(The (sum|product) of (\d{1,2}) and (\d{1,2}) is) (\d+)\b"),
        {"sum": "plus", "product": "times"},
    ),
    (re.compile(r"\b(Adding (\d{1,2}) and (\d{1,2}) gives) (\d+)\b"), "plus"),
    (re.compile(r"\b(Multiplying (\d{1,2}) by (\d{1,2}) gives) (\d+)\b"), "times"),
]
"""Arithmetic statements of the micro data's generator (pythia.data.sources), cut before the
answer. The kind says where the operation is: None, the statement's own word (``plus`` or
``times``); a dict, the operation of the statement's word; a string, the operation itself."""


def _statement(
    groups: Sequence[str], kind: str | dict[str, str] | None
) -> tuple[str, str, int, int, str]:
    """(context, operation, x1, x2, answer as written) of one match of :data:`HELDOUT_STATEMENTS`."""
    if kind is None:
        ctx, x1, op, x2, y = groups
    elif isinstance(kind, dict):
        ctx, word, x1, x2, y = groups
        op = kind[word]
    else:
        ctx, x1, x2, y = groups
        op = kind
    return ctx, op, int(x1), int(x2), y


def _heldout_texts(suite: Suite) -> Iterator[str]:
    """The decoded documents of the suite's validation and test token files (never trained on)."""
    tok, layout = load_tokenizer(suite), Layout(suite.name)
    for split in ("validation", "test"):
        prefix = layout.text_prefix(split)
        if not Path(f"{prefix}.bin").is_file():
            raise MissingInputError(
                f"the held-out {split} tokens of suite {suite.name!r} ({prefix}.bin) are "
                f"missing; build the data (`pythia data build --suite {suite.name}`) or set "
                f"analysis.term_frequencies.heldout: false"
            )
        ds = IndexedDataset(str(prefix))
        yield from tok.batch_decode([ds[i].tolist() for i in range(len(ds))])


def heldout_statements(suite: Suite) -> list[dict[str, Any]]:
    """True statements ``x1 op x2 = y`` (x1, x2 < 100) in the suite's validation and test
    documents (decoded from their token files: never trained on), as documents of the
    ``heldout`` set: context = the statement up to the answer, k = 0; each distinct context once."""
    seen: set[str] = set()
    out = []
    for text in _heldout_texts(suite):
        for rx, kind in HELDOUT_STATEMENTS:
            for m in rx.finditer(text):
                ctx, op, x1, x2, y = _statement(m.groups(), kind)
                if ctx in seen or answer(op, x1, x2) != y:
                    continue
                seen.add(ctx)
                out.append(
                    {
                        "context": ctx,
                        "target": y,
                        "x1": x1,
                        "x2": x2,
                        "op": op,
                        "k": 0,
                        "set": "heldout",
                    }
                )
    return out


def documents(
    spec: TermFrequencySpec, name: str, suite: Suite | None = None
) -> list[dict[str, Any]]:
    """The lm-eval documents of one prompt set, every operation and k: context (the prompt),
    target, x1, x2, op, k, set (``heldout``: read from ``suite``'s held-out documents)."""
    if name == "heldout":
        if suite is None:
            raise UsageError("the heldout prompt set is read from a suite's held-out documents")
        return heldout_statements(suite)
    operands = prompt_sets(spec)[name]
    assert operands is not None  # only heldout has no operand set
    x2s = operands.x2_values or list(range(operands.x2[0], operands.x2[1] + 1))
    return [
        {
            "context": prompt(op, x1, x2, k, operands, spec.seed),
            "target": answer(op, x1, x2),
            "x1": x1,
            "x2": x2,
            "op": op,
            "k": k,
            "set": name,
        }
        for op in spec.operations
        for k in spec.shots
        for x1 in range(operands.x1[0], operands.x1[1] + 1)
        for x2 in x2s
    ]


def task_name(name: str) -> str:
    """One lm-eval task per prompt set (operation, k, x1 and x2 are in each document): lm-eval
    builds each task once per call, so few tasks cost less than one per (op, k)."""
    return f"tf_{name}"


def _task_yaml(task: str, data: Path, max_new_tokens: int) -> str:
    return json.dumps(
        {
            "task": task,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
            "test_split": "test",
            "output_type": "generate_until",
            "doc_to_text": "{{context}}",
            "doc_to_target": "{{target}}",
            "target_delimiter": "",
            "generation_kwargs": {
                "until": ["\n"],
                "max_gen_toks": max_new_tokens,
                "do_sample": False,
            },
            "filter_list": [
                {
                    "name": "first_integer",
                    "filter": [
                        {
                            "function": "regex",
                            "regex_pattern": r"(-?\d+)",
                            "fallback": "[no integer]",
                        },
                        {"function": "take_first"},
                    ],
                }
            ],
            "metric_list": [
                {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}
            ],
            "metadata": {"version": 1},
        },
        indent=1,
    )


def write_tasks(
    spec: TermFrequencySpec, folder: str | Path, suite: Suite | None = None
) -> list[str]:
    """Write every task's documents (jsonl) and YAML into ``folder`` (unchanged files are left
    alone, so lm-eval's cache digests stay); returns the task names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name in prompt_sets(spec):
        task = task_name(name)
        data = folder / f"{task}.jsonl"
        text = "".join(json.dumps(d) + "\n" for d in documents(spec, name, suite))
        for path, content in (
            (data, text),
            (folder / f"{task}.yaml", _task_yaml(task, data, spec.max_new_tokens)),
        ):
            if not path.is_file() or path.read_text() != content:
                with atomic_path(path) as tmp:
                    tmp.write_text(content)
        names.append(task)
    return names


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


def evaluation_steps(suite: Suite, selected: Sequence[int]) -> list[int]:
    """The checkpoints this section evaluates: its ``steps`` among the catalogue's selection
    (all of the selection when the section names none)."""
    spec = suite.analysis.term_frequencies
    if spec.steps is not None:
        suite.check_steps(spec.steps, "analysis.term_frequencies.steps")
    steps = [s for s in (spec.steps if spec.steps is not None else selected) if s in set(selected)]
    if not steps:
        raise UsageError(
            f"none of the term-frequency steps {spec.steps} is among the selected checkpoint steps "
            f"{list(selected)[:10]}; set analysis.term_frequencies.steps or checkpoints.steps"
        )
    return sorted(steps)


def samples_frame(records: dict[str, dict], checkpoint: Checkpoint) -> pd.DataFrame:
    """One row per prompt: model, dataset, step, set, op, k, x1, x2, target, generation, correct."""
    rows = []
    for rec in records.values():
        for samples in rec.get("samples", {}).values():
            for s in samples:
                d = s["doc"]
                gen = s["resps"][0][0] if s.get("resps") else ""
                rows.append(
                    {
                        "model": checkpoint.model,
                        "dataset": checkpoint.dataset,
                        "step": checkpoint.step,
                        "set": d["set"],
                        "op": d["op"],
                        "k": d["k"],
                        "x1": d["x1"],
                        "x2": d["x2"],
                        "target": d["target"],
                        "generation": gen,
                        "answer": str(s["filtered_resps"][0]),
                        "correct": float(s["exact_match"]),
                    }
                )
    return pd.DataFrame(rows)


def _checkpoint_steps(catalogue: Catalogue, model: str, dataset: str) -> list[int]:
    """The evaluated steps (:func:`evaluation_steps`) that ``model`` on ``dataset`` has a
    checkpoint at; fails when it has none of them, warns when some are missing."""
    wanted = evaluation_steps(catalogue.suite, catalogue.selected)
    have = set(catalogue.steps(model, dataset))
    steps = [s for s in wanted if s in have]
    if not steps:
        catalogue.checkpoint(
            model, dataset, wanted[-1]
        )  # fails naming what is missing and what to do
    if len(steps) < len(wanted):
        log.warning(
            "%s/%s: no checkpoints at steps %s; evaluating %s",
            model,
            dataset,
            sorted(set(wanted) - have),
            steps,
        )
    return steps


def evaluate(
    catalogue: Catalogue,
    model: str,
    dataset: str,
    out: str | Path,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> Path:
    """Every prompt set, operation and k on every evaluated checkpoint of ``model`` on ``dataset``:
    one row per prompt (:func:`samples_frame`) in ``out`` (.parquet); lm-eval results cached per
    checkpoint (a rerun evaluates only new checkpoints or changed tasks). ``dtype``: the weights'
    (None = float32; ``bfloat16``, ``float16`` on CUDA)."""
    suite = catalogue.suite
    steps = _checkpoint_steps(catalogue, model, dataset)
    # the tasks after the checks: an unknown model or missing checkpoints fail before any file is read
    folder = paths.suite_dir(suite.name) / STEM / "tasks"
    tasks = write_tasks(suite.analysis.term_frequencies, folder, suite)
    # prompts built once (lm-eval's request cache, keyed by the written tasks) and tokenized once
    # (the adapter remembers tokenizations on the tokenizer object: one per run)
    cached = request_cache(suite.name, {"tasks": folder_digest(folder)}) is not None
    tokenizer = catalogue.checkpoint(model, dataset, steps[0]).load_tokenizer()
    frames, t0 = [], time.perf_counter()
    for step in tqdm(steps, desc=f"{model}/{dataset}", disable=not progress):
        ckpt = catalogue.checkpoint(model, dataset, step)
        records = evaluate_tasks(
            ckpt,
            tasks,
            include_path=folder,
            log_samples=True,
            batch_size=batch_size,
            bootstrap_iters=0,
            dtype=dtype,
            device=device,
            tokenizer=tokenizer,
            cache_requests=cached,
        )
        frames.append(samples_frame(records, ckpt))
    df = pd.concat(frames, ignore_index=True)
    with atomic_path(Path(out), ".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    info = {"model": model, "dataset": dataset, "steps": steps, "tasks": tasks, "prompts": len(df)}
    write_json(
        Path(out).with_suffix(".json"), info | {"seconds": round(time.perf_counter() - t0, 2)}
    )
    return Path(out)


# --------------------------------------------------------------------------------------
# Digests of the rules' jobs
# --------------------------------------------------------------------------------------


def counts_digest(suite: Suite, dataset: str) -> str:
    """What a counting job reads: the dataset's order (tokenizer, documents, order settings),
    the batch shape and the section's step ranges."""
    spec = suite.analysis.term_frequencies
    return config_digest(
        {
            "version": COUNT_VERSION,
            "data": order_identity(suite, dataset),
            "training": suite.training.model_dump(mode="json"),
            "steps": spec.steps,
            "shard_steps": spec.shard_steps,
        }
    )


def evaluation_digest(suite: Suite, dataset: str, model: str) -> str:
    """What an evaluation job reads: the section's settings and the run's weights."""
    return config_digest(
        {
            "spec": suite.analysis.term_frequencies.model_dump(mode="json"),
            "run": run_digest(suite, model, dataset),
        }
    )
