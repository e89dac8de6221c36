"""Pythia's released memorization results (``EleutherAI/pythia-memorized-evals``) beside our scan
(section 04).

What was released (from the dataset card, ``README.md`` of the hub dataset
``EleutherAI/pythia-memorized-evals`` at its commit d97edd1, the repository's file listing, and
``predictable-memorization/eval_memorization.py`` of github.com/EleutherAI/pythia at a19eecb;
users asked how to use it in EleutherAI/pythia#164):

* **Splits**: one per released model, ``<duped|deduped>.<size>`` with the size in lower case:
  ``duped.70m``, ``duped.160m``, ``duped.410m``, ``duped.1b``, ``duped.1.4b``, ``duped.2.8b``,
  ``duped.6.9b``, ``duped.12b`` and the same eight ``deduped.*`` (16; the card counts 463,953
  memorized sequences for ``duped.70m``). ``duped`` is the standard Pile (our dataset
  ``standard``), ``deduped`` the deduplicated one. There is no split for 14M and 31M. A later
  upload added ``deduped.1b.new`` beside ``deduped.1b`` (a separate split; not read here).
* **Files**: Parquet, one or more shards per split on ``main``:
  ``data/<split>-NNNNN-of-NNNNN-<hash>.parquet`` (e.g. ``data/deduped.1b-00000-of-00002-547b2b00c0f47827.parquet``);
  the hub's parquet converter also wrote ``default/<split>/NNNN.parquet`` on ``refs/convert/parquet``.
  Both layouts are read (:data:`HUB_PATTERNS`).
* **Columns**: ``index`` (int64), ``tokens`` (list of int64: the first 64 tokens of the sequence,
  the 32-token prompt and the 32-token continuation), ``__index_level_0__`` (int64, equal to
  ``index``: a pandas export's leftover).
* **What a row means**: the sequence ``index`` was memorized by the fully trained model (step
  143000): greedy decoding from its first 32 tokens reproduces the next 32 exactly (``generate``
  in fp16 with ``min_length=64``; accuracy 1 over the 32 tokens). Every one of the 146,432,000
  (143000 * 1024) training sequences was scored (eval_memorization.py scores ``[0, CHECKPOINT * 1024)``); only the
  memorized ones are listed, so an index of the scored range that is absent is not memorized.
* **The index**: the position of the sequence in the pre-shuffled training data, i.e. document
  ``index`` of the pre-shuffled ``MMapIndexedDataset`` in which every document is one 2049-token
  training sequence (eval_memorization.py reads ``mmap_ds[i:i + batch]`` and keeps ``[:, :32]``,
  ``[:, 32:64]``). Step s trains on rows ``[1024 s, 1024 (s + 1))``, so ``index = step * 1024 +
  row``: our scan's ``seq`` (:mod:`pythia.evaluate.memorization_files`), the row of
  ``sequences.bin`` (:func:`pythia.data.batches.open_sequences`).

Sources (the ``memorization.released`` key of config/config.yaml, ``--source`` of ``pythia
memorization released``): a hub dataset id ``owner/name[@revision]`` read through
``huggingface_hub`` (``repo_type="dataset"``; only the split's files are downloaded, into the hub
cache; ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` apply), or a local path in the same shape: a folder
laid out like the hub repository (``data/<split>-*.parquet``), a folder holding ``<split>.parquet``
or ``<split>.csv``, or one Parquet/CSV file (then it is the asked model's set). A CSV has the same
columns; its ``tokens`` are a JSON list (``"[3, 17, ...]"``) or space-separated ids; ``tokens`` may
be left out (then only indices are compared).

:func:`load_released` returns a :class:`ReleasedSet` (sorted unique indices, their tokens, where
they came from); :func:`write_released` writes it with two checks against our training rows:
``in_data`` (the index is a row of our data) and ``tokens_match`` (the released tokens equal that
row's first tokens: the index means what we think). :func:`agreement` counts one model's flags
against ours on the rows our scan covered; the table is
:func:`pythia.analysis.memorization.released_agreement`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pythia import paths
from pythia.errors import DataError, MissingInputError, UsageError, one_line
from pythia.io import atomic_path

HUB_DATASET = "EleutherAI/pythia-memorized-evals"
"""The released results on the Hugging Face hub (a dataset repository)."""
DATASET_PREFIX = {"standard": "duped", "deduped": "deduped"}
"""Our dataset name -> the released split's prefix."""
INDEX, TOKENS, PANDAS_INDEX = "index", "tokens", "__index_level_0__"
"""The released columns: the sequence index, its first k + l tokens, pandas' copy of the index."""
HUB_PATTERNS = ("data/{split}-*.parquet", "*/{split}/*.parquet")
"""The split's files in the hub repository: ``main``'s shards and the parquet converter's layout."""
TOKEN_CHECK_ROWS = 1 << 16
"""Released rows whose tokens are checked against our data at once (bounded memory)."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclass(frozen=True)
class ReleasedSet:
    """One model's released memorized sequences: ``indices`` (sorted, unique, int64) and their
    ``tokens`` ((n, w) int64, None where the source has none); ``origin`` says where they came from
    (the hub's commit or the local files' sha256); ``absent`` why there is no set (the source has
    no split for the model), empty otherwise."""

    model: str
    dataset: str
    split: str
    source: str
    indices: np.ndarray
    tokens: np.ndarray | None
    origin: dict[str, Any] = field(default_factory=dict)
    absent: str = ""


def split_name(model: str, dataset: str) -> str:
    """The released split of a model: ``70M`` + ``standard`` -> ``duped.70m``."""
    paths.check_dataset(dataset)
    return f"{DATASET_PREFIX[dataset]}.{model.lower()}"


def is_hub_id(source: str) -> bool:
    """Whether ``source`` names a hub dataset (``owner/name[@revision]``) rather than a local path:
    an existing path is local, whatever its name."""
    return bool(_HUB_ID.match(source)) and not Path(source).exists()


class SplitMissing(MissingInputError):
    """The source has no files of the asked split (a model the release does not cover)."""


# ------------------------------------------------------------------------------ finding the files


def _hub_error(source: str, err: Exception) -> MissingInputError:
    """One line for a failed hub fetch: the hub's reason, and what to do."""
    # every line: the hub's reason ("Revision Not Found ...") is not the first
    reason = one_line(str(err)) or type(err).__name__
    kind = type(err).__name__
    advice = (
        "check the dataset id and revision (a local source must be an existing path)"
        if kind in ("RepositoryNotFoundError", "RevisionNotFoundError")
        else "with network access run this again (it fills the hub cache), or download the split "
        f"(`hf download {source.split('@')[0]} --repo-type dataset --include 'data/<split>-*' "
        "--local-dir DIR`) and give DIR as the source"
    )
    return MissingInputError(
        f"cannot fetch the released memorization results {source} from the Hugging Face hub "
        f"({kind}: {reason}); {advice}"
    )


def _hub_splits(repo: str, revision: str) -> list[str]:
    """The splits of the hub dataset (for an error message); empty when it cannot be listed."""
    from huggingface_hub import HfApi  # heavy: only the hub source needs it

    try:
        files = HfApi().list_repo_files(repo, repo_type="dataset", revision=revision)
    except Exception:  # only for a hint: the listing may fail offline
        return []
    names = {
        re.sub(r"-\d{5}-of-\d{5}.*$", "", Path(f).name) for f in files if f.startswith("data/")
    }
    return sorted(names)


def hub_files(
    source: str, split: str, cache_dir: str | Path | None = None
) -> tuple[list[Path], str]:
    """(the split's Parquet files, the commit they are at), fetched from the hub dataset ``source``
    (``owner/name[@revision]``) into the hub cache: only the split's files."""
    from huggingface_hub import snapshot_download  # heavy: only the hub source needs it
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError  # heavy: as above

    repo, _, revision = source.partition("@")
    revision = revision or "main"
    try:
        folder = Path(
            snapshot_download(
                repo,
                repo_type="dataset",
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=[p.format(split=split) for p in HUB_PATTERNS],
            )
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as e:
        raise _hub_error(source, e) from None
    files = sorted(f for p in HUB_PATTERNS for f in folder.glob(p.format(split=split)))
    if not files:
        have = _hub_splits(repo, folder.name)
        raise SplitMissing(
            f"the hub dataset {repo} at {revision} has no split {split!r} "
            f"(splits there: {', '.join(have) or 'not listed'}); the release covers 70M-12B only"
        )
    return files, folder.name


def local_files(source: str | Path, split: str) -> list[Path]:
    """The split's files under a local ``source``: the file itself, or in a folder
    ``data/<split>-*.parquet``, ``<split>.parquet``, ``<split>.csv`` or ``<split>/*.parquet``."""
    root = Path(source)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise MissingInputError(
            f"released memorization source {root} does not exist; give a folder laid out like "
            f"{HUB_DATASET} (data/<split>-*.parquet), a Parquet/CSV file, or a hub dataset id"
        )
    for pattern in (
        "data/{split}-*.parquet",
        "{split}.parquet",
        "{split}.csv",
        "{split}/*.parquet",
    ):
        files = sorted(root.glob(pattern.format(split=split)))
        if files:
            return files
    raise SplitMissing(
        f"{root} holds no released split {split!r} (looked for data/{split}-*.parquet, "
        f"{split}.parquet, {split}.csv, {split}/*.parquet)"
    )


# ------------------------------------------------------------------------------ reading and checking


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _csv_tokens(cell: Any) -> list[int]:
    text = str(cell).strip()
    if text.startswith("["):
        return [int(t) for t in json.loads(text)]
    return [int(t) for t in text.split()]


def _read_frame(path: Path):
    """One released file as a frame (``index``, and ``tokens`` as lists where present)."""
    import pandas as pd  # heavy: only reading released files needs it

    try:
        if path.suffix == ".csv":
            df = pd.read_csv(path)
            if TOKENS in df.columns:
                df[TOKENS] = [_csv_tokens(c) for c in df[TOKENS]]
            return df
        return pd.read_parquet(path)
    except (ValueError, OSError) as e:  # not Parquet/CSV, or a token cell that is no list of ints
        raise DataError(
            f"{path} is not a readable Parquet/CSV file of released results ({e})"
        ) from None


def _check_columns(df, path: Path) -> None:
    """``index`` integers >= 0, ``__index_level_0__`` (if there) equal to it."""
    if INDEX not in df.columns:
        raise DataError(
            f"{path} has no column {INDEX!r} (columns: {', '.join(map(str, df.columns))}); "
            f"released results have index (int) and tokens (list of int)"
        )
    if not np.issubdtype(df[INDEX].dtype, np.integer):
        raise DataError(f"{path}: column {INDEX!r} holds {df[INDEX].dtype}, not integers")
    if len(df) and int(df[INDEX].min()) < 0:
        raise DataError(f"{path}: column {INDEX!r} has a negative index {int(df[INDEX].min())}")
    if PANDAS_INDEX in df.columns and not (df[PANDAS_INDEX] == df[INDEX]).all():
        raise DataError(f"{path}: {PANDAS_INDEX} differs from {INDEX}; the file is mixed up")


def _token_array(cells, path: Path) -> np.ndarray:
    """(n, w) int64 of the ``tokens`` cells, which must all hold w >= 1 integers."""
    lengths = {len(c) for c in cells}
    if len(lengths) > 1:
        raise DataError(
            f"{path}: rows of column {TOKENS!r} hold different numbers of tokens "
            f"({sorted(lengths)[:5]}); each holds the sequence's first k + l tokens"
        )
    width = lengths.pop() if lengths else 0
    if len(cells) and width == 0:
        raise DataError(f"{path}: column {TOKENS!r} holds empty lists")
    if not len(cells):
        return np.zeros((0, width), np.int64)
    return np.stack([np.asarray(c, dtype=np.int64) for c in cells])  # (n, w)


def read_released_files(files: list[Path]) -> tuple[np.ndarray, np.ndarray | None]:
    """(sorted unique indices, their tokens or None) of released files, validated: one line naming
    the file and what is wrong (a missing or non-integer index, tokens of unequal length, the same
    index with different tokens)."""
    idx_parts, tok_parts, has_tokens = [], [], None
    for path in files:
        df = _read_frame(path)
        _check_columns(df, path)
        here = TOKENS in df.columns
        if has_tokens is not None and here != has_tokens:
            raise DataError(f"{path}: column {TOKENS!r} is in some files of the split, not in all")
        has_tokens = here
        idx_parts.append(df[INDEX].to_numpy(np.int64))
        if here:
            tok_parts.append(_token_array(df[TOKENS].tolist(), path))
    index = np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int64)
    order = np.argsort(index, kind="stable")
    index = index[order]
    keep = np.ones(len(index), bool)
    keep[1:] = index[1:] != index[:-1]
    tokens = None
    if has_tokens:
        widths = {t.shape[1] for t in tok_parts if len(t)}
        if len(widths) > 1:
            raise DataError(
                f"{', '.join(map(str, files))}: the files hold tokens of different lengths "
                f"{sorted(widths)}; each row holds the sequence's first k + l tokens"
            )
        tokens = np.concatenate(tok_parts)[order]
        first = np.maximum.accumulate(np.where(keep, np.arange(len(index)), 0))
        if len(index) and not (tokens == tokens[first]).all():
            raise DataError(f"{', '.join(map(str, files))}: an index repeats with different tokens")
        tokens = tokens[keep]
    return index[keep], tokens


def load_released(
    source: str, model: str, dataset: str, *, cache_dir: str | Path | None = None
) -> ReleasedSet:
    """The released memorized sequences of ``model`` on ``dataset`` from ``source`` (a hub dataset
    id or a local path, see the module docstring); a source without the model's split raises
    :class:`SplitMissing`."""
    if not source:
        raise UsageError(
            "no released memorization source given: name a hub dataset "
            f"({HUB_DATASET}) or a local folder/file in its shape"
        )
    split = split_name(model, dataset)
    origin: dict[str, Any]
    if is_hub_id(source):
        files, commit = hub_files(source, split, cache_dir)
        where = f"{source.split('@')[0]}@{commit}"
        origin = {"kind": "hub", "repo": source.split("@")[0], "commit": commit}
    else:
        files = local_files(source, split)
        where = str(Path(source).resolve())
        origin = {"kind": "local", "path": where}
    origin["files"] = {f.name: _sha256(f) for f in files}
    origin["where"] = where
    index, tokens = read_released_files(files)
    return ReleasedSet(model, dataset, split, source, index, tokens, origin)


def absent_set(source: str, model: str, dataset: str, reason: str) -> ReleasedSet:
    """The empty set of a model the source has no split for, saying why."""
    return ReleasedSet(
        model,
        dataset,
        split_name(model, dataset),
        source,
        np.zeros(0, np.int64),
        None,
        absent=reason,
    )


# ------------------------------------------------------------------------------ against our data


def check_tokens(released: ReleasedSet, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(in_data, tokens_match) per released index: whether it is a row of our training ``rows``
    ((N, seq_len + 1), row j = sequence j), and whether its released tokens equal that row's first
    tokens (False where it is not a row or has no tokens)."""
    index = released.indices
    in_data = index < len(rows)
    match = np.zeros(len(index), bool)
    if released.tokens is None or not len(index):
        return in_data, match
    width = released.tokens.shape[1]
    if width > rows.shape[1]:
        raise DataError(
            f"released tokens of {released.split} hold {width} tokens, more than our training "
            f"sequences ({rows.shape[1]}): the source does not fit this suite"
        )
    for start in range(0, len(index), TOKEN_CHECK_ROWS):
        part = slice(start, start + TOKEN_CHECK_ROWS)
        ok = np.flatnonzero(in_data[part]) + start
        if len(ok):
            mine = np.asarray(rows[index[ok], :width])
            match[ok] = (mine == released.tokens[ok]).all(axis=1)
    return in_data, match


def released_file(suite: str, dataset: str, model: str) -> Path:
    """``work/<suite>/memorization/<dataset>/<model>/released.parquet``: the released set, checked."""
    return paths.suite_dir(suite) / "memorization" / dataset / model / "released.parquet"


def write_released(
    out: Path, released: ReleasedSet, rows: np.ndarray | None, step: int
) -> dict[str, Any]:
    """Write ``released`` to ``out`` (Parquet: index, tokens, in_data, tokens_match; where it came
    from, the split, the checkpoint ``step`` it is of, and ``absent`` as metadata), checked against
    our training ``rows`` (None: not checked, the checks False). Returns the metadata with counts."""
    import pyarrow as pa  # heavy: only writing the set needs it
    import pyarrow.parquet as pq  # heavy: as above

    if rows is not None:
        in_data, match = check_tokens(released, rows)
    else:
        in_data = match = np.zeros(len(released.indices), bool)
    meta: dict[str, Any] = {
        "model": released.model,
        "dataset": released.dataset,
        "split": released.split,
        "source": released.source,
        "origin": released.origin,
        "step": step,
        "absent": released.absent,
        "rows": len(released.indices),
        "in_data": int(in_data.sum()),
        "tokens_checked": int(in_data.sum()) if released.tokens is not None else 0,
        "tokens_differ": int((in_data & ~match).sum()) if released.tokens is not None else 0,
    }
    cols: dict[str, Any] = {INDEX: pa.array(released.indices, pa.int64())}
    if released.tokens is not None:
        n, width = released.tokens.shape
        offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
        cols[TOKENS] = pa.ListArray.from_arrays(offsets, pa.array(released.tokens.ravel()))
    cols.update(in_data=pa.array(in_data), tokens_match=pa.array(match))
    table = pa.table(cols).replace_schema_metadata({k: json.dumps(v) for k, v in meta.items()})
    with atomic_path(out, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return meta


def read_released(path: str | Path):
    """A :func:`write_released` file as a frame, its metadata in ``.attrs``."""
    import pyarrow.parquet as pq  # heavy: only reading the set needs it

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"{path} is missing: run `pythia memorization released` (or the workflow with "
            f"memorization.released set)"
        )
    table = pq.read_table(path)
    df = table.to_pandas()
    df.attrs = {k.decode(): json.loads(v) for k, v in (table.schema.metadata or {}).items()}
    return df


def agreement(scanned: np.ndarray, flagged: np.ndarray, released: np.ndarray) -> dict[str, int]:
    """Counts of our scan against a released set on the rows our scan covered: ``scanned`` (our
    scanned sequence indices), ``flagged`` (those our scan marks memorized), ``released`` (the
    released memorized indices). ``released_outside``: released indices our scan did not cover."""
    scanned = np.unique(np.asarray(scanned, np.int64))
    ours = np.unique(np.asarray(flagged, np.int64))
    rel = np.unique(np.asarray(released, np.int64))
    if not np.isin(ours, scanned).all():
        raise ValueError("flagged sequences must be among the scanned ones")
    theirs = rel[np.isin(rel, scanned)]
    both = int(np.isin(ours, theirs).sum())
    n = len(scanned)
    only_ours, only_released = len(ours) - both, len(theirs) - both
    return {
        "rows_compared": n,
        "flagged_ours": len(ours),
        "flagged_released": len(theirs),
        "both": both,
        "only_ours": only_ours,
        "only_released": only_released,
        "released_outside": len(rel) - len(theirs),
        "agreeing_rows": n - only_ours - only_released,
    }
