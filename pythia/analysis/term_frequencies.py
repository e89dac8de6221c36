"""Section 05, term frequencies: how often each operand occurs in the training data seen up to a
checkpoint, and few-shot arithmetic accuracy per operand against it (the Pythia paper's section
4.3, after Razeghi et al. 2022).

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

Evaluation: the registry's ``arithmetic_prompts`` (``Q:What is {x1} plus {x2}? A:`` with the
answer, no leading space; the contamination guard knows every one). A k-shot prompt is k
answered prompts of the same operation with another x1, drawn with ``Random(seed/op/x1/x2/k)``
(so a prompt does not depend on which subset is evaluated), joined with a blank line, then the
question. Each prompt set is one lm-eval ``generate_until`` task (operation, k, x1, x2 in the
documents) run through :mod:`pythia.evaluate.harness` (cached per checkpoint): greedy until a
newline, at most ``max_new_tokens``; lm-eval's regex filter takes the first integer of the
generation and ``exact_match`` compares it with the answer.

Figures: accuracy per x1 against its cumulative count, binned on a log scale over the observed
range, one line per checkpoint, one panel per size; the gap between the 10 most and the 10 least
frequent x1 (accuracy x 100) per k, size and checkpoint.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import string
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pythia import paths
from pythia.config import OperandSet, Suite, TermFrequencySpec, config_digest
from pythia.errors import MissingInputError, UsageError, require_device
from pythia.io import atomic_path, write_json

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
OPERATIONS = {"plus": lambda a, b: a + b, "times": lambda a, b: a * b}
GAP_SHOTS = (0, 4, 16)
"""k of the gap table (the paper's)."""
TOP = 10
"""The gap compares the TOP most and TOP least frequent x1."""


# --------------------------------------------------------------------------------------
# Counting
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
    cuts = sorted(cuts | {0})
    return list(itertools.pairwise(cuts))


_WORKER: dict[str, Any] = {}


def _init_worker(suite_name: str, dataset: str, suite_file: str | None) -> None:
    from pythia.config import register_suite_file
    from pythia.data.tokenizer import load_tokenizer

    if suite_file:
        register_suite_file(suite_file)
    _WORKER.update(suite=suite_name, dataset=dataset, tok=load_tokenizer(suite_name))


def _count_steps(task: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Counts over steps [lo, hi) in a worker: (numbers, pairs, tokens)."""
    from pythia.data.batches import get_batch

    lo, hi = task
    numbers, pairs, tokens = None, None, 0
    for step in range(lo, hi):
        rows = get_batch(_WORKER["suite"], _WORKER["dataset"], step)  # (B, seq_len + 1)
        texts = _WORKER["tok"].batch_decode(rows.tolist())
        numbers, pairs = count_texts(texts, numbers, pairs)
        tokens += rows.size
    if numbers is None:
        numbers, pairs = count_texts([])
    return numbers, pairs, tokens


def counts_key(suite: Suite, dataset: str) -> str:
    """What one range's counts depend on: the counting rule and the file it reads (path, size,
    mtime: hashing 300B tokens would cost more than counting them) and the tokenizer."""
    from pythia.data.batches import sequences_prefix
    from pythia.data.tokenizer import tokenizer_dir
    from pythia.io import sha256_file

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
) -> Path:
    """Count operands over the whole training order of ``dataset``, one file per step range in
    ``<out without .npz>/`` (kept: a rerun counts only the missing ranges), then the array file
    ``out`` (.npz): ``start``, ``end`` [R], ``numbers`` [R, 100], ``pairs`` [R, 100, 100], ``tokens`` [R]."""
    from tqdm.auto import tqdm

    from pythia.data.batches import num_steps, open_sequences

    out = Path(out)
    spec = suite.analysis.term_frequencies
    open_sequences(suite, dataset)  # a missing file fails here with how to build or download it
    total = min(suite.training.train_iters, num_steps(suite, dataset))
    ranges = step_ranges(spec, total, steps)
    key = counts_key(suite, dataset)
    folder = out.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    tokens_per_step = suite.training.global_batch * (suite.training.seq_len + 1)
    chunk = max(1, chunk_tokens // tokens_per_step)

    def range_file(lo: int, hi: int) -> Path:
        return folder / f"steps-{lo:07d}-{hi:07d}.npz"

    def done(lo: int, hi: int) -> bool:
        f = range_file(lo, hi)
        if not f.is_file():
            return False
        with np.load(f) as z:
            return str(z["key"]) == key

    todo = [(lo, hi) for lo, hi in ranges if not done(lo, hi)]
    log.info(
        "counting %d of %d step ranges of %s/%s (%d workers)",
        len(todo),
        len(ranges),
        suite.name,
        dataset,
        workers,
    )
    pool = None
    _init_worker(
        suite.name, dataset, suite_file
    )  # the tokenizer, loaded once (forked workers inherit it)
    if workers > 1 and todo:
        import multiprocessing as mp

        # fork: workers start at once with the tokenizer loaded (spawn re-imports transformers in each)
        if "fork" in mp.get_all_start_methods():
            pool = mp.get_context("fork").Pool(workers)
        else:
            pool = mp.get_context("spawn").Pool(
                workers, _init_worker, (suite.name, dataset, suite_file)
            )
    bar = tqdm(
        total=sum(hi - lo for lo, hi in todo) * tokens_per_step,
        unit="tok",
        unit_scale=True,
        disable=not progress,
        desc=f"count {dataset}",
    )
    # every range cut into pieces of at most `chunk` steps (and at least `workers` pieces), all
    # pieces in one ordered stream over the pool: ranges finish, and are written, in order
    pieces = []
    for r, (lo, hi) in enumerate(todo):
        step = max(1, min(chunk, -(-(hi - lo) // max(workers, 1))))
        pieces += [(r, s, min(s + step, hi)) for s in range(lo, hi, step)]
    left = {r: sum(1 for p in pieces if p[0] == r) for r in range(len(todo))}
    acc = {
        r: [np.zeros(NUMBERS, np.int64), np.zeros((NUMBERS, NUMBERS), np.int64), 0]
        for r in range(len(todo))
    }
    t0, counted = time.perf_counter(), 0
    t_last = t0  # ranges finish in order: each one's wall time is the time since the one before it
    try:
        spans = [(lo, hi) for _, lo, hi in pieces]
        results = pool.imap(_count_steps, spans) if pool else map(_count_steps, spans)
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
                with atomic_path(range_file(lo, hi), ".npz") as tmp:
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
    finally:
        if pool:
            pool.close()
            pool.join()
        bar.close()
    seconds = time.perf_counter() - t0
    arrays = [np.load(range_file(lo, hi)) for lo, hi in ranges]
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
    # the counting speed as measured when each range was counted, now or by an earlier run (a
    # resumed count measures nothing itself); unknown for ranges cached without their time
    range_seconds = [float(a["seconds"]) if "seconds" in a.files else None for a in arrays]
    measured_tokens = sum(int(a["tokens"]) for a in arrays)
    measured_seconds = None if None in range_seconds else sum(range_seconds)
    write_json(
        out.with_suffix(".json"),
        {
            "suite": suite.name,
            "dataset": dataset,
            "ranges": len(ranges),
            "counted_ranges": len(todo),
            "counted_tokens": counted,
            "seconds": round(seconds, 3),
            "workers": workers,
            "tokens_per_s": round(counted / seconds, 1) if counted and seconds > 0 else None,
            "measured_tokens": measured_tokens,
            "measured_seconds": round(measured_seconds, 3)
            if measured_seconds is not None
            else None,
            "measured_workers": max(
                (int(a["workers"]) for a in arrays if "workers" in a.files), default=workers
            ),
            "measured_tokens_per_s": round(measured_tokens / measured_seconds, 1)
            if measured_seconds
            else None,
            "key": key,
        },
    )
    for a in arrays:
        a.close()
    return out


def load_counts(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays :func:`count_dataset` wrote."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"{path} is missing: run `pythia term_frequencies count` (or the workflow's "
            f"term_frequencies_counts rule) first"
        )
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


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


def counts_frame(counts_files: dict[str, str | Path], steps: Sequence[int]) -> pd.DataFrame:
    """Long frame: dataset, step, x1 (the number), count (cumulative up to the step)."""
    rows = []
    for dataset, f in counts_files.items():
        c = load_counts(f)
        for step in steps:
            cum = cumulative(c, step)
            rows += [
                {"dataset": dataset, "step": int(step), "x1": n, "count": int(cum[n])}
                for n in range(NUMBERS)
            ]
    return pd.DataFrame(rows)


PYTHIA_TOKENS = 299_892_736_000
"""Tokens of Pythia's training order (143,000 steps x 1024 x 2048)."""


def timings(
    counts_files: dict[str, str | Path], results_files: dict[str, str | Path], cores: int = 64
) -> pd.DataFrame:
    """What the jobs measured: per counting job the tokens, seconds, tokens/s on its workers and the
    projected hours for Pythia's 300B tokens on ``cores`` cores (tokens/s per worker x cores: the
    count is embarrassingly parallel over step ranges); per evaluation job the prompts and seconds.
    A count resumed from finished ranges reports every range's tokens and the seconds measured when
    it was counted (missing, not zero, for ranges cached before their time was kept)."""
    rows = []
    for dataset, f in counts_files.items():
        info = json.loads(Path(f).with_suffix(".json").read_text())
        if "measured_tokens" in info:
            items, secs, tps, workers = (
                info["measured_tokens"],
                info["measured_seconds"],
                info["measured_tokens_per_s"],
                info["measured_workers"],
            )
        else:
            items, secs, tps, workers = (
                info["counted_tokens"],
                info["seconds"],
                info["tokens_per_s"],
                info["workers"],
            )
        rows.append(
            {
                "job": "count",
                "dataset": dataset,
                "model": "",
                "items": items,
                "seconds": secs,
                "tokens_per_s": tps,
                "workers": workers,
                "projected_hours": round(PYTHIA_TOKENS / (tps / workers * cores) / 3600, 1)
                if tps
                else None,
            }
        )
    for f in results_files.values():
        info = json.loads(Path(f).with_suffix(".json").read_text())
        rows.append(
            {
                "job": "evaluate",
                "dataset": info["dataset"],
                "model": info["model"],
                "items": info["prompts"],
                "seconds": info["seconds"],
                "tokens_per_s": None,
                "workers": 1,
                "projected_hours": None,
            }
        )
    return pd.DataFrame(rows)


def summary(times: pd.DataFrame, gap: pd.DataFrame) -> str:
    """The closing note: counting tokens/s and its 300B projection, the section's job time (sum
    over jobs: the wall time on one core; the workflow runs jobs side by side on more), and the
    top-10 minus bottom-10 gaps at the last evaluated step."""
    count = times[times["job"] == "count"]
    ev = times[times["job"] == "evaluate"]
    lines = []
    for r in count.itertuples():
        lines.append(
            f"counting {r.dataset}: {r.items:,} tokens in {r.seconds:.1f} s = {r.tokens_per_s or 0:,.0f} "
            f"tokens/s on {r.workers} workers; Pythia's 300B tokens on 64 cores: ~{r.projected_hours} h"
        )
    lines.append(
        f"section job time: counting {count['seconds'].sum():.0f} s + evaluation {ev['seconds'].sum():.0f} s "
        f"({ev['items'].sum():,} prompts) = {(count['seconds'].sum() + ev['seconds'].sum()) / 60:.1f} min"
    )
    if len(gap):
        last = gap[gap["step"] == gap["step"].max()]
        for (name, k), g in last.groupby(["set", "k"]):
            lines.append(
                f"top-10 minus bottom-10 ({name}, k={k}, step {g['step'].iloc[0]}): mean {g['gap'].mean():+.1f}, "
                f"range {g['gap'].min():+.1f} .. {g['gap'].max():+.1f} points over {len(g)} model x dataset x op"
            )
    return "\n".join(lines)


def main_dataset(datasets: Sequence[str]) -> str:
    """The dataset the figures show: ``deduped`` (the paper used the deduplicated models) when there."""
    return "deduped" if "deduped" in datasets else next(iter(datasets))


def figure_data(
    bins: pd.DataFrame,
    *,
    dataset: str,
    set_name: str | Sequence[str] = "paper",
    k: int | None = None,
    step: int | None = None,
) -> pd.DataFrame:
    """The rows of :func:`binned` one figure plots: one dataset, the prompt set(s), at ``k``
    (default: the largest) and/or ``step``."""
    names = [set_name] if isinstance(set_name, str) else list(set_name)
    df = bins[(bins["dataset"] == dataset) & (bins["set"].isin(names))]
    if k is None and step is None:
        k = int(df["k"].max())
    if k is not None:
        df = df[df["k"] == k]
    if step is not None:
        df = df[df["step"] == step]
    return df.reset_index(drop=True)


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


HELDOUT_STATEMENTS = [
    (re.compile(r"(?<![\w.])((\d{1,2}) (plus|times) (\d{1,2}) equals) (\d+)\b"), None),
    (
        re.compile(r"\b(The (sum|product) of (\d{1,2}) and (\d{1,2}) is) (\d+)\b"),
        {"sum": "plus", "product": "times"},
    ),
    (re.compile(r"\b(Adding (\d{1,2}) and (\d{1,2}) gives) (\d+)\b"), "plus"),
    (re.compile(r"\b(Multiplying (\d{1,2}) by (\d{1,2}) gives) (\d+)\b"), "times"),
]
"""Arithmetic statements of the micro data's generator (pythia.data.sources), cut before the answer."""


def heldout_statements(suite: Suite) -> list[dict[str, Any]]:
    """True statements ``x1 op x2 = y`` (x1, x2 < 100) in the suite's validation and test
    documents (decoded from their token files: never trained on), as documents of the
    ``heldout`` set: context = the statement up to the answer, k = 0; each distinct context once."""
    from pythia.data.indexed import IndexedDataset
    from pythia.data.layout import Layout
    from pythia.data.tokenizer import load_tokenizer

    tok, layout, seen, out = load_tokenizer(suite), Layout(suite.name), set(), []
    for split in ("validation", "test"):
        prefix = layout.text_prefix(split)
        if not Path(f"{prefix}.bin").is_file():
            raise MissingInputError(
                f"the held-out {split} tokens of suite {suite.name!r} ({prefix}.bin) are "
                f"missing; build the data (`pythia data build --suite {suite.name}`) or set "
                f"analysis.term_frequencies.heldout: false"
            )
        ds = IndexedDataset(str(prefix))
        for text in tok.batch_decode([ds[i].tolist() for i in range(len(ds))]):
            for rx, kind in HELDOUT_STATEMENTS:
                for m in rx.finditer(text):
                    g = m.groups()
                    if kind is None:
                        ctx, x1, op, x2, y = g
                    elif isinstance(kind, dict):
                        ctx, word, x1, x2, y = g
                        op = kind[word]
                    else:
                        ctx, x1, x2, y = g
                        op = kind
                    x1, x2 = int(x1), int(x2)
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
        return heldout_statements(suite)
    operands = prompt_sets(spec)[name]
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


def samples_frame(records: dict[str, dict], checkpoint) -> pd.DataFrame:
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


def evaluate(
    catalogue,
    model: str,
    dataset: str,
    out: str | Path,
    *,
    device: str = "cpu",
    dtype=None,
    batch_size: int = 64,
    progress: bool = True,
) -> Path:
    """Every prompt set, operation and k on every evaluated checkpoint of ``model`` on ``dataset``:
    one row per prompt (:func:`samples_frame`) in ``out`` (.parquet); lm-eval results cached per
    checkpoint (a rerun evaluates only new checkpoints or changed tasks)."""
    from tqdm.auto import tqdm

    from pythia.evaluate.harness import evaluate_tasks, folder_digest, request_cache

    suite = catalogue.suite
    spec = suite.analysis.term_frequencies
    wanted = evaluation_steps(suite, catalogue.selected)
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
    # the tasks after the checks: an unknown model or missing checkpoints fail before any file is read
    folder = paths.suite_dir(suite.name) / STEM / "tasks"
    tasks = write_tasks(spec, folder, suite)
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
    write_json(
        Path(out).with_suffix(".json"),
        {
            "model": model,
            "dataset": dataset,
            "steps": steps,
            "tasks": tasks,
            "prompts": len(df),
            "seconds": round(time.perf_counter() - t0, 2),
        },
    )
    return Path(out)


# --------------------------------------------------------------------------------------
# Digests of the rules' jobs
# --------------------------------------------------------------------------------------


def counts_digest(suite: Suite, dataset: str) -> str:
    """What a counting job reads: the dataset's order (tokenizer, documents, order settings),
    the batch shape and the section's step ranges."""
    from pythia.data.build import stage_digest
    from pythia.data.released import is_released

    spec = suite.analysis.term_frequencies
    data = (
        suite.data.model_dump(mode="json")
        if is_released(suite, dataset)
        else stage_digest(suite, "order", dataset)
    )
    return config_digest(
        {
            "version": COUNT_VERSION,
            "data": data,
            "training": suite.training.model_dump(mode="json"),
            "steps": spec.steps,
            "shard_steps": spec.shard_steps,
        }
    )


def evaluation_digest(suite: Suite, dataset: str, model: str) -> str:
    """What an evaluation job reads: the section's settings and the run's weights."""
    from pythia.train.checkpoint import run_digest

    return config_digest(
        {
            "spec": suite.analysis.term_frequencies.model_dump(mode="json"),
            "run": run_digest(suite, model, dataset),
        }
    )


# --------------------------------------------------------------------------------------
# Summaries (what the notebook shows)
# --------------------------------------------------------------------------------------


def counts_files(suite: Suite, datasets: Sequence[str]) -> dict[str, Path]:
    """``work/<suite>/term_frequencies/counts/<dataset>.npz`` of each dataset."""
    return {d: paths.suite_dir(suite.name) / STEM / "counts" / f"{d}.npz" for d in datasets}


def results_files(suite: Suite, datasets: Sequence[str], models: Sequence[str]) -> dict[str, Path]:
    """``work/<suite>/term_frequencies/eval/<dataset>/<model>.parquet``, keyed ``dataset/model``."""
    return {
        f"{d}/{m}": paths.suite_dir(suite.name) / STEM / "eval" / d / f"{m}.parquet"
        for d in datasets
        for m in models
    }


def load_results(files: dict[str, str | Path]) -> pd.DataFrame:
    """Every evaluation's prompts in one frame."""
    frames = []
    for key, f in files.items():
        if not Path(f).is_file():
            raise MissingInputError(
                f"{f} is missing: run `pythia term_frequencies evaluate` for {key} (or the "
                f"workflow's term_frequencies_evaluate rule) first"
            )
        frames.append(pd.read_parquet(f))
    return pd.concat(frames, ignore_index=True)


def accuracy_per_x1(results: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (model, dataset, step, set, op, k, x1) with x1's cumulative count at the step."""
    keys = ["model", "dataset", "step", "set", "op", "k", "x1"]
    acc = results.groupby(keys, as_index=False).agg(
        accuracy=("correct", "mean"), prompts=("correct", "size")
    )
    return acc.merge(counts, on=["dataset", "step", "x1"], how="left")


def binned(acc: pd.DataFrame, bins: int = 8) -> pd.DataFrame:
    """Accuracy per log-frequency bin: for each (dataset, step, set) the x1 counts (+1) are cut
    into ``bins`` equal bins of log count over their observed range; ``count`` is the bin's
    geometric centre, ``accuracy`` the mean over its x1 (bins without an x1 are left out)."""
    out = []
    for _key, g in acc.groupby(["dataset", "step", "set"]):
        logc = np.log10(g["count"].to_numpy() + 1.0)
        lo, hi = logc.min(), logc.max()
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, bins + 1)
        idx = np.clip(np.searchsorted(edges, logc, side="right") - 1, 0, bins - 1)
        g = g.assign(bin=idx, count_bin=10 ** ((edges[idx] + edges[idx + 1]) / 2) - 1)
        out.append(
            g.groupby(["model", "dataset", "step", "set", "op", "k", "bin"], as_index=False).agg(
                count=("count_bin", "first"), accuracy=("accuracy", "mean"), x1s=("x1", "size")
            )
        )
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def frequency_gap(
    acc: pd.DataFrame, shots: Sequence[int] = GAP_SHOTS, top: int = TOP
) -> pd.DataFrame:
    """Accuracy of the ``top`` most frequent x1 minus the ``top`` least frequent (x 100), per
    model, dataset, set, op, k and step; ties in count broken by x1."""
    rows = []
    for key, g in acc[acc["k"].isin(shots)].groupby(["model", "dataset", "set", "op", "k", "step"]):
        g = g.sort_values(["count", "x1"])
        n = min(top, len(g) // 2)
        rows.append(
            dict(
                zip(["model", "dataset", "set", "op", "k", "step"], key),
                top_accuracy=100 * g["accuracy"].iloc[-n:].mean(),
                bottom_accuracy=100 * g["accuracy"].iloc[:n].mean(),
                gap=100 * (g["accuracy"].iloc[-n:].mean() - g["accuracy"].iloc[:n].mean()),
                top_count=int(g["count"].iloc[-n:].min()),
                bottom_count=int(g["count"].iloc[:n].max()),
            )
        )
    df = pd.DataFrame(rows)
    return df.round({"top_accuracy": 2, "bottom_accuracy": 2, "gap": 2}) if len(df) else df


def count_distribution(counts: pd.DataFrame) -> pd.DataFrame:
    """Rank-frequency of the operands: dataset, step, rank (1 = most frequent), x1, count."""
    df = counts.sort_values(
        ["dataset", "step", "count", "x1"], ascending=[True, True, False, True]
    ).copy()
    df["rank"] = df.groupby(["dataset", "step"]).cumcount() + 1
    return df[["dataset", "step", "rank", "x1", "count"]].reset_index(drop=True)


def skew(counts: pd.DataFrame) -> pd.DataFrame:
    """How skewed the operand counts are at each step: share of the 10 most frequent operands,
    ratio of the most to the least frequent, counts of the extremes."""
    rows = []
    for (dataset, step), g in counts.groupby(["dataset", "step"]):
        c = np.sort(g["count"].to_numpy())[::-1]
        rows.append(
            {
                "dataset": dataset,
                "step": step,
                "total": int(c.sum()),
                "max": int(c[0]),
                "min": int(c[-1]),
                "top10_share": round(float(c[:TOP].sum() / max(c.sum(), 1)), 4),
                "max_over_min": round(float(c[0] / max(c[-1], 1)), 2),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def plot_count_distribution(dist: pd.DataFrame) -> plt.Figure:
    """Operand counts by rank (log scale), one line per checkpoint, one panel per dataset."""
    g = sns.relplot(
        dist,
        x="rank",
        y="count",
        hue="step",
        col="dataset",
        kind="line",
        palette="viridis",
        height=3.2,
        aspect=1.2,
        facet_kws={"sharey": False},
    )
    g.set(
        yscale="symlog",
        ylim=(0, None),
        xlabel="operand rank (1 = most frequent)",
        ylabel="cumulative count",
    )
    g.figure.suptitle(
        "How often each number 0-99 occurs in the numeric windows of the training data", y=1.03
    )
    return g.figure


def _by_size(models) -> list[str]:
    """Model names ("138K", "1.8M", "70M", "1.4B") smallest first (panels in size order, not alphabetical)."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}

    def size(name: str) -> float:
        try:
            return float(name[:-1]) * scale[name[-1].upper()]
        except (KeyError, ValueError, IndexError):
            return float("inf")

    return sorted(models, key=lambda m: (size(str(m)), str(m)))


def plot_accuracy_vs_frequency(
    data: pd.DataFrame,
    hue: str = "step",
    row: str = "op",
    style: str | None = None,
    title: str = "",
) -> plt.Figure:
    """Accuracy against binned operand frequency: one line per ``hue`` (and ``style``), one panel
    per model (columns) and ``row``."""
    g = sns.relplot(
        data,
        x="count",
        y="accuracy",
        hue=hue,
        style=style,
        col="model",
        row=row,
        kind="line",
        col_order=_by_size(data["model"].unique()),
        marker="o",
        palette="viridis",
        height=2.6,
        aspect=1.1,
        errorbar=None,
    )
    g.set(
        xscale="symlog",
        xlim=(0, None),
        ylim=(-0.02, 1.02),
        xlabel="count of x1 (log bins)",
        ylabel="accuracy",
    )
    if title:
        g.figure.suptitle(title, y=1.02)
    return g.figure


# --------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------


def _cmd_count(args) -> int:
    from pythia.config import load_suite

    suite = load_suite(args.suite)
    paths.check_dataset(args.dataset)
    spec = suite.analysis.term_frequencies
    split = list(args.steps or []) + list(
        spec.steps if spec.steps is not None else suite.analysis_steps()
    )
    out = count_dataset(
        suite,
        args.dataset,
        args.out,
        steps=split,
        workers=args.workers,
        progress=not args.no_progress,
        suite_file=args.suite if args.suite.endswith((".yaml", ".yml")) else None,
    )
    info = json.loads(out.with_suffix(".json").read_text())
    print(
        f"{out}: {info['ranges']} step ranges ({info['counted_ranges']} counted now, "
        f"{info['counted_tokens']:,} tokens, {info['tokens_per_s'] or 0:,.0f} tokens/s on {args.workers} workers)"
    )
    return 0


def _cmd_evaluate(args) -> int:
    from pythia import runs

    cat = runs.from_arguments(args.suite, args)
    dtype = {"fp32": None, "bf16": "bf16", "fp16": "fp16"}[args.dtype]
    require_device(args.device)
    if args.device == "cpu" and dtype is not None:
        raise UsageError(f"--dtype {args.dtype} needs --device cuda (CPU evaluation is fp32)")
    out = evaluate(
        cat,
        args.model,
        args.dataset,
        args.out,
        device=args.device,
        dtype=dtype,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    info = json.loads(out.with_suffix(".json").read_text())
    print(f"{out}: {info['prompts']:,} prompts on steps {info['steps']} in {info['seconds']:.1f} s")
    return 0


def register(sub) -> None:
    from pythia import runs

    p = sub.add_parser(
        "term_frequencies",
        help="section 05: operand counts in the training data, few-shot arithmetic",
    )
    s = p.add_subparsers(dest="tf_command", required=True, metavar="COMMAND")
    c = s.add_parser(
        "count", help="count numbers in the numeric windows of the training order, per step range"
    )
    c.add_argument("--suite", required=True, help="suite name or YAML path")
    c.add_argument("--dataset", required=True, help="standard or deduped")
    c.add_argument(
        "--out", required=True, help="the .npz array file (its ranges go to the folder beside it)"
    )
    c.add_argument(
        "--workers", type=int, default=1, help="processes decoding and counting (default 1)"
    )
    c.add_argument(
        "--steps", type=int, nargs="*", default=None, help="also end step ranges at these steps"
    )
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=_cmd_count)
    e = s.add_parser(
        "evaluate",
        help="few-shot arithmetic through lm-eval on every evaluated checkpoint of a model",
    )
    e.add_argument("--suite", required=True, help="suite name or YAML path")
    e.add_argument("--dataset", required=True, help="standard or deduped")
    e.add_argument("--model", required=True, help="a model of the suite")
    e.add_argument("--out", required=True, help="the .parquet file of per-prompt results")
    e.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    e.add_argument(
        "--dtype",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="weights on CUDA (default fp32)",
    )
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--no-progress", action="store_true")
    runs.add_arguments(e)
    e.set_defaults(func=_cmd_evaluate)
