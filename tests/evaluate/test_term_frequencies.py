"""Section 05, term frequencies, counting and prompts (pythia/evaluate/term_frequencies.py): the
window regex against hand counts, counts per step range against a direct count, resuming, the
prompts, and the section's checkpoint steps. The lm-eval evaluation on trained checkpoints is
tests/evaluate/test_term_frequencies_evaluate.py."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest

from pythia.analysis import term_frequencies as tables
from pythia.config import ConfigError, OperandSet, load_suite
from pythia.data.batches import get_batch
from pythia.data.evalsets import arithmetic_prompts
from pythia.data.tokenizer import load_tokenizer
from pythia.evaluate import term_frequencies as tf


def counted(*texts: str) -> tuple[dict[int, int], dict[tuple[int, int], int]]:
    numbers, pairs = tf.count_texts(texts)
    return (
        {int(n): int(c) for n, c in enumerate(numbers) if c},
        {(int(a), int(b)): int(pairs[a, b]) for a, b in zip(*np.nonzero(pairs))},
    )


@pytest.mark.parametrize(
    "text, numbers, pairs",
    [
        # three words between the first and last number; then the window from 34: overlapping
        ("12 plus 34 equals 46.", {12: 1, 34: 2, 46: 2}, {(12, 34): 1, (12, 46): 1, (34, 46): 2}),
        # a number at the start of a sequence (the prepended space) and one word between
        ("7 apples 8", {7: 1, 8: 1}, {(7, 8): 1}),
        # punctuation inside a word is a word; a number followed by punctuation starts no window
        ("9 x-ray's 10", {9: 1, 10: 1}, {(9, 10): 1}),
        ("Page 3, line 4: 5 items", {}, {}),
        # four words between two numbers: no window; a number inside the words counts (stripped of
        # its comma) but starts no window of its own ("4," is not followed by a space)
        ("1 a b c d 2", {}, {}),
        ("3 is 4, or 5", {3: 1, 4: 1, 5: 1}, {(3, 4): 1, (3, 5): 1, (4, 5): 1}),
        ("3 is 4 or 5", {3: 1, 4: 2, 5: 2}, {(3, 4): 1, (3, 5): 1, (4, 5): 2}),
        # 1-5 digit numbers: a 6-digit number starts no window; numbers >= 100 are not kept
        ("123456 is 7", {}, {}),
        ("12345 and 6", {6: 1}, {}),
        ("0 and 99", {0: 1, 99: 1}, {(0, 99): 1}),
    ],
)
def test_window_counts_equal_hand_counts(text, numbers, pairs):
    assert counted(text) == (numbers, pairs)


def test_window_regex_is_pythias():
    assert tf.WINDOW.pattern.startswith(r"(?=( (\d){1,5} ((\w|[")
    assert tf.WINDOW.pattern.endswith(r"])+\s+){1,3}(\d){1,5}))")
    assert tf.window_numbers("5 plus 6 equals 11") == [[5, 6, 11], [6, 11]]


def test_step_ranges_cover_the_order_and_end_at_evaluated_steps():
    spec = load_suite("micro").analysis.term_frequencies
    ranges = tf.step_ranges(spec, 640, [64, 288, 640])
    assert ranges[0][0] == 0 and ranges[-1][1] == 640
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert {64, 288} <= {hi for _, hi in ranges} and all(hi - lo <= 32 for lo, hi in ranges)


@pytest.fixture
def smoke(smoke_data, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    return load_suite("smoke")


def test_cumulative_counts_equal_a_direct_count_and_resume(smoke, tmp_path):
    out = tmp_path / "counts" / "standard.npz"
    tf.count_dataset(smoke, "standard", out, steps=[8, 12], progress=False)
    counts = tf.load_counts(out)
    tok = load_tokenizer(smoke)
    assert counts["numbers"].shape == (len(counts["end"]), tf.NUMBERS)
    assert counts["end"][-1] == smoke.training.train_iters and 12 in counts["end"]
    for step in (8, 12, 24):
        texts = [
            t
            for s in range(step)
            for t in tok.batch_decode(get_batch(smoke, "standard", s).tolist())
        ]
        numbers, pairs = tf.count_texts(texts)
        assert (tf.cumulative(counts, step) == numbers).all()
        assert (tf.cumulative(counts, step, "pairs") == pairs).all()
    assert tf.cumulative(counts, 24).sum() > 0  # the generated arithmetic text has numbers
    with pytest.raises(Exception, match="not the end of a counted step range"):
        tf.cumulative(counts, 5)

    # a killed count resumes: only the missing range is counted, the array is the same
    ranges = sorted((out.with_suffix("")).glob("steps-*.npz"))
    ranges[1].unlink()
    out.unlink()
    tf.count_dataset(smoke, "standard", out, steps=[8, 12], workers=2, progress=False)
    again = tf.load_counts(out)
    assert all(
        (again[k] == counts[k]).all() for k in ("start", "end", "numbers", "pairs", "tokens")
    )
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["counted_ranges"] == 1 and info["counted_tokens"] == int(counts["tokens"][1])
    # a rerun with every range cached counts nothing, yet its timings keep what was measured
    out.unlink()
    tf.count_dataset(smoke, "standard", out, steps=[8, 12], progress=False)
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["counted_ranges"] == 0 and info["counted_tokens"] == 0
    assert info["measured_tokens"] == int(counts["tokens"].sum()) and info["measured_seconds"] > 0
    row = tables.timings({"standard": out}, {}).iloc[0]
    assert (
        row["items"] == int(counts["tokens"].sum())
        and row["seconds"] > 0
        and row["tokens_per_s"] > 0
    )
    assert f"counting standard: {int(counts['tokens'].sum()):,} tokens in" in tables.summary(
        tables.timings({"standard": out}, {}), pd.DataFrame()
    )


def test_prompts_follow_the_template_and_never_share_x1():
    operands = OperandSet()
    assert tf.prompt("plus", 12, 3, 0, operands) == "Q:What is 12 plus 3? A:"
    known = set(arithmetic_prompts())  # the contamination guard's items
    for op, x1, x2, k in [("plus", 12, 3, 16), ("times", 0, 50, 4), ("plus", 99, 1, 2)]:
        p = tf.prompt(op, x1, x2, k, operands)
        parts = p.split("\n\n")
        assert len(parts) == k + 1 and parts[-1] == f"Q:What is {x1} {op} {x2}? A:"
        for shot in parts[:-1]:
            a, b, y = map(
                int, re.fullmatch(rf"Q:What is (\d+) {op} (\d+)\? A:(\d+)", shot).groups()
            )
            assert a != x1 and y == (a + b if op == "plus" else a * b) and shot in known
        assert p == tf.prompt(op, x1, x2, k, operands)  # a fixed seed
    assert tf.prompt("plus", 12, 3, 4, operands) != tf.prompt("plus", 12, 3, 4, operands, seed=7)
    simple = OperandSet(x1=[0, 9], x2=[1, 9])
    assert all(
        int(a) < 10 for a in re.findall(r"is (\d+) plus", tf.prompt("plus", 5, 5, 16, simple))
    )


def test_a_step_that_is_no_checkpoint_fails_when_the_section_runs(tmp_path):
    (tmp_path / "tfbad.yaml").write_text(
        "extends: smoke\nname: tfbad\nanalysis:\n  term_frequencies:\n    steps: [5]\n"
    )
    suite = load_suite(tmp_path / "tfbad.yaml")  # loads: a suite may extend one that trains longer
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "analysis.term_frequencies.steps: 5 is not a checkpoint step of suite 'tfbad'"
        ),
    ):
        tf.evaluation_steps(suite, suite.analysis_steps())
