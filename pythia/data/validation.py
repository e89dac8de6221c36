"""The validation text of sections 03 and 06: the suite's own split, or a tokenized file.

Section 03 (the gender intervention's validation loss, ``training.val_sequences``) and section 06
(per-token losses, ``analysis.training_trajectories.val_sequences``) score the first n held-out
sequences of seq_len + 1 tokens. By default they are the suite's validation split
(:func:`pythia.data.batches.validation_sequences`, unchanged). On ``suite=pythia`` that split,
cut from the offline stand-in corpus, holds 54 sequences of 2049 tokens where the sections ask
for 1024 and 256; a user of the released checkpoints gives them as a tokenized file instead
(the workflow key ``validation``, the evaluate commands' ``--validation FILE``), tokenized with
the suite's tokenizer:

* ``PREFIX.bin`` + ``PREFIX.idx`` (either name): a GPT-NeoX indexed dataset
  (:mod:`pythia.data.indexed`), e.g. the Pile's validation split as GPT-NeoX's
  ``tools/preprocess_data.py`` writes it, or held-out rows of the released pre-shuffled data;
* ``FILE.npy``: an integer array, token rows (2-D) or one token stream (1-D);
* ``FILE.jsonl``: one JSON list of token ids per line (or an object with a ``tokens`` list).

The file's records (documents, rows, lines), in order, are concatenated and cut into
consecutive, non-overlapping rows of seq_len + 1 tokens, exactly as the suite's split is: a file
of rows of seq_len + 1 tokens (Pythia's 2049) gives back its first n rows unchanged, longer rows
are cut at the suite's sequence length. Only the tokens the rows need are read. Too few tokens,
or a token outside the suite's vocabulary, stops with one line naming the file and the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pythia.config import Suite
from pythia.data.batches import split_tokens
from pythia.data.indexed import IndexedDataset, data_path, index_path
from pythia.errors import DataError, MissingInputError, UsageError

FORMATS = "a .bin/.idx pair, a .npy of token rows or a .jsonl of token lists"
"""The file formats a validation source may have, as the error messages name them."""
HOW = "give more with --config validation=PATH or --validation PATH"
"""Where a validation source is set: the workflow key and the evaluate commands' option."""


def source_files(path: str | Path) -> list[Path]:
    """The files a validation source is read from (both halves of a .bin/.idx pair), so that a
    workflow rule can wait for them; an unknown format fails naming the ones read."""
    p = Path(path)
    if p.suffix in (".bin", ".idx"):
        prefix = p.with_suffix("")
        return [data_path(prefix), index_path(prefix)]
    if p.suffix in (".npy", ".jsonl"):
        return [p]
    raise UsageError(
        f"validation file {p}: unknown format {p.suffix or '(none)'!r}; give {FORMATS}"
    )


def _indexed_tokens(prefix: Path, need: int) -> np.ndarray:
    """The first ``need`` tokens of an indexed dataset's items, back to back."""
    ds = IndexedDataset(prefix, rebuild_hint=f"give {FORMATS}")
    offsets = np.concatenate([[0], np.cumsum(ds.sizes[:-1], dtype=np.int64)])
    if len(ds) and np.array_equal(ds.token_offsets, offsets):
        return np.asarray(ds.tokens[:need])  # items stored back to back: the .bin is the stream
    parts, got = [], 0
    for i in range(len(ds)):
        if got >= need:
            break
        parts.append(np.asarray(ds[i]))
        got += len(parts[-1])
    return np.concatenate(parts)[:need] if parts else np.zeros(0, dtype=np.int64)


def _npy_tokens(path: Path, need: int) -> np.ndarray:
    """The first ``need`` tokens of a .npy of token rows (2-D) or of one stream (1-D)."""
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.ndim not in (1, 2) or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(
            f"validation file {path}: a {arr.ndim}-D {arr.dtype} array; give integer token rows (2-D) "
            "or one token stream (1-D)"
        )
    if arr.ndim == 2:
        arr = arr[: -(-need // max(arr.shape[1], 1))].reshape(-1)
    return np.asarray(arr[:need])


def _jsonl_tokens(path: Path, need: int) -> np.ndarray:
    """The first ``need`` tokens of a .jsonl of token lists (or of objects with ``tokens``)."""
    parts, got = [], 0
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if got >= need:
                break
            if not line.strip():
                continue
            record = json.loads(line)
            tokens = record.get("tokens") if isinstance(record, dict) else record
            if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
                raise DataError(
                    f"validation file {path}, line {number}: not a list of token ids; give one JSON "
                    'list of ints per line (or {"tokens": [...]})'
                )
            parts.append(np.asarray(tokens, dtype=np.int64))
            got += len(tokens)
    return np.concatenate(parts)[:need] if parts else np.zeros(0, dtype=np.int64)


def file_tokens(path: str | Path, need: int) -> np.ndarray:
    """The first ``need`` tokens of a validation file (fewer if it holds fewer), int64."""
    files = source_files(path)
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise MissingInputError(f"validation file {missing[0]} does not exist; give {FORMATS}")
    p = files[0]
    if p.suffix == ".bin":
        flat = _indexed_tokens(p.with_suffix(""), need)
    elif p.suffix == ".npy":
        flat = _npy_tokens(p, need)
    else:
        flat = _jsonl_tokens(p, need)
    return np.array(flat, dtype=np.int64)


def validation_rows(
    suite: Suite, n: int, source: str | Path | None = None, needed_by: str = "the evaluation"
) -> np.ndarray:
    """(n, seq_len + 1) int64 validation sequences: the suite's split when ``source`` is empty,
    else the tokenized file ``source`` (see the module docstring). ``needed_by`` names who asks
    (``"section 06"``) in the error that says there are too few."""
    width = suite.training.seq_len + 1
    if n <= 0:
        raise UsageError(f"n must be positive, got {n}")
    if not source:
        flat = split_tokens(suite, "validation", limit=n * width)
        what = f"the validation split of suite {suite.name!r}"
    else:
        flat = file_tokens(source, n * width)
        what = f"validation file {source}"
    if len(flat) < n * width:  # both readers stop at the end: flat is all there is
        raise UsageError(
            f"{what} holds {len(flat) // width} sequences of {width} tokens, {needed_by} needs {n}: "
            f"{HOW} ({FORMATS}, tokenized with the suite's tokenizer, e.g. the Pile's validation split)"
        )
    vocab = suite.tokenizer.vocab_size
    if source and (flat.min() < 0 or flat.max() >= vocab):
        bad = int(flat.min()) if flat.min() < 0 else int(flat.max())
        raise DataError(
            f"{what} holds token {bad}, outside the vocabulary of suite {suite.name!r} ({vocab} tokens); "
            "tokenize it with the suite's tokenizer"
        )
    return flat.reshape(n, width)
