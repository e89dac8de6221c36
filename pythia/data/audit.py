"""``pythia data audit``: checks of a pre-shuffled training file, released or built here.

A pre-shuffled file is a GPT-NeoX ``MMapIndexedDataset`` (:mod:`pythia.data.indexed`) whose
row j is training sequence j: seq_len + 1 tokens (2,049 for Pythia), global_batch rows (1,024)
per step, uint16 tokens; the released ones come split into consecutive byte ranges
``<base>-000NN-of-000MM.bin`` beside ``<base>.idx`` (Pythia's ``utils/shard_memmap.py`` cuts
them, ``utils/unshard_memmap.py`` joins them; ``utils/batch_viewer.py`` reads step s as rows
[1024 s, 1024 (s+1))). The audit reads the shards in place (no join) and checks:

1. **Rows.** Every index item holds exactly ``row_tokens`` tokens, the token stream is a whole
   number of rows, and the index and the stream agree on the row count (a failure otherwise);
   rows // step_rows whole steps, a partial last step is reported.
2. **EOD.** How many end-of-document tokens (id 0 for GPT-NeoX-20B and for this project's
   tokenizers) the rows hold and where: rows with any, the first and last position in a row,
   and a histogram of positions in eight equal bins. Pythia's released rows hold none
   (pythia#175, #123); the rows built here hold one wherever a document ends.
3. **Hashes.** The sha256 of every file (shards and index) against a list: Pythia's published
   one (``utils/shard_hashes.txt`` of EleutherAI/pythia, converted into
   ``pythia/published/tables/shard_hashes.csv``; it covers the tokenized deduplicated Pile
   ``pythia_deduped_pile_idxmaps``, not the pre-shuffled files) or one given as ``--hashes``
   (``<file name> <sha256>`` per line, the same format). A mismatch fails; a file the list
   does not name is reported as not checked.
4. **Repeats.** The first step holding a row equal to an earlier row (exact: an 8-byte
   blake2b of each row's bytes, found by a stable sort of all digests, then the pair compared
   byte for byte), and how many rows repeat an earlier one.

On a suite's own data (``--suite``) the audit also sets the first repeat beside the data
card's epoch boundary: the step in which the training tokens first exceed the tokens of one
epoch (``tokens_per_epoch // (global_batch * seq_len)``, from ``card.json`` or ``order.json``).
The two agree only for an order that repeats its first epoch row for row. GPT-NeoX v1.0
(:mod:`pythia.data.order`, step 3) tiles the documents E times and shuffles all epochs
together, then shuffles the samples: a document's second copy lands anywhere in the run and
is cut at another offset, so an exact row repeat needs the two copies' cuts to line up
(chance 1 / seq_len per document). For such a built dataset the audit therefore also reads
the order indices (``doc_idx``, ``sample_idx``, ``shuffle_idx``) and gives the first step
whose rows hold corpus tokens an earlier row already held, and the share of training tokens
that are repeats.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pythia import paths
from pythia.config import Suite
from pythia.data.batches import sequences_prefix
from pythia.data.indexed import DTYPE_CODES, HEADER_SIZE, IndexedDataset, read_index_header
from pythia.data.released import SHARD_RE, is_released
from pythia.data.tokenizer import EOD_ID
from pythia.errors import DataError, MissingInputError, UsageError

ROW_TOKENS = 2049
"""Tokens per row of Pythia's pre-shuffled files (2,048 inputs + 1 label)."""
STEP_ROWS = 1024
"""Rows per training step (Pythia's global batch)."""
PUBLISHED_HASHES = (
    Path(__file__).resolve().parent.parent / "published" / "tables" / "shard_hashes.csv"
)
EOD_BINS = 8
DIGEST_BYTES = 8
SHOWN_REPEATS = 10


# --------------------------------------------------------------------------- the files


@dataclass
class Target:
    """What one audit reads: token files in order (one ``.bin`` or its shards) and the index."""

    name: str
    bins: list[Path]
    idx: Path | None

    @property
    def files(self) -> list[Path]:
        """The files whose hashes are checked."""
        return self.bins + ([self.idx] if self.idx else [])


def find_target(path: str | Path) -> Target:
    """A folder of shards ``<base>-NNNNN-of-MMMMM.bin`` (+ ``<base>.idx``), a ``.bin`` file, or
    a ``.bin``/``.idx`` prefix."""
    p = Path(path)
    if p.is_dir():
        shards: dict[str, list[tuple[int, Path]]] = {}
        for f in p.iterdir():
            if m := SHARD_RE.match(f.name):
                shards.setdefault(m["base"], []).append((int(m["index"]), f))
        if len(shards) != 1:
            found = ", ".join(sorted(shards)) or "none"
            raise UsageError(
                f"{p} must hold the shards <name>-00000-of-000NN.bin of one file (found: {found}); "
                "give a folder with one set, a .bin file or a .bin/.idx prefix"
            )
        ((base, items),) = shards.items()
        idx = p / f"{base}.idx"
        return Target(base, [f for _, f in sorted(items)], idx if idx.is_file() else None)
    prefix = p.with_suffix("") if p.suffix in (".bin", ".idx") else p
    bin_path, idx = Path(f"{prefix}.bin"), Path(f"{prefix}.idx")
    if not bin_path.is_file():
        raise MissingInputError(
            f"{bin_path} does not exist; give a folder of shards, a .bin file or a .bin/.idx prefix"
        )
    return Target(prefix.name, [bin_path], idx if idx.is_file() else None)


def index_sizes(idx: Path) -> tuple[np.dtype, np.ndarray]:
    """(token dtype, item sizes) of a GPT-NeoX ``.idx`` read alone (its ``.bin`` may be sharded)."""
    code, n, _ = read_index_header(idx, "download it again")
    sizes = np.fromfile(idx, dtype="<i4", count=n, offset=HEADER_SIZE)
    return DTYPE_CODES[code], sizes


# --------------------------------------------------------------------------- hashes


def read_hash_list(path: str | Path) -> dict[str, str]:
    """``<file name> <sha256>`` per line (Pythia's ``utils/shard_hashes.txt`` format)."""
    out: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or len(parts[1]) != 64:
            raise UsageError(
                f"{path}:{n}: expected '<file name> <sha256>', got {line.strip()!r}; fix the line"
            )
        out[Path(parts[0]).name] = parts[1].lower()
    return out


def published_hashes() -> dict[str, str]:
    """Pythia's published sha256 per file name (``pythia/published/tables/shard_hashes.csv``)."""
    with open(PUBLISHED_HASHES, newline="") as f:
        return {r["file"]: r["sha256"] for r in csv.DictReader(f)}


def check_hashes(files: list[Path], hashes: dict[str, str], progress: bool) -> list[dict]:
    """Per file: its sha256, the listed one, and ``match``, ``mismatch`` or ``unlisted``."""
    out = []
    total = sum(f.stat().st_size for f in files)
    with tqdm(total=total, unit="B", unit_scale=True, desc="sha256", disable=not progress) as bar:
        for f in files:
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                while block := fh.read(1 << 24):
                    h.update(block)
                    bar.update(len(block))
            expected = hashes.get(f.name)
            status = (
                "unlisted"
                if expected is None
                else ("match" if h.hexdigest() == expected else "mismatch")
            )
            out.append(
                {"file": f.name, "sha256": h.hexdigest(), "expected": expected, "status": status}
            )
    return out


# --------------------------------------------------------------------------- the rows


def iter_blocks(
    bins: list[Path], dtype: np.dtype, row_tokens: int, block_rows: int = 4096
) -> Iterator[np.ndarray]:
    """Blocks (k, row_tokens) of whole rows of the files read one after the other (a row may
    straddle two shards); a ragged tail is left out (see :func:`stream_tokens`)."""
    row_bytes = row_tokens * dtype.itemsize
    carry = b""
    for path in bins:
        with open(path, "rb") as f:
            while chunk := f.read(block_rows * row_bytes):
                data = carry + chunk
                whole = len(data) // row_bytes * row_bytes
                carry = data[whole:]
                if whole:
                    yield np.frombuffer(data[:whole], dtype=dtype).reshape(-1, row_tokens)


def stream_tokens(bins: list[Path], dtype: np.dtype) -> int:
    """Tokens in the files together; a byte count not a multiple of the token size is an error."""
    total = sum(p.stat().st_size for p in bins)
    if total % dtype.itemsize:
        raise DataError(
            f"{bins[0].parent}: {total} bytes is not a whole number of {dtype} tokens; download the files again"
        )
    return total // dtype.itemsize


def read_row(bins: list[Path], dtype: np.dtype, row_tokens: int, i: int) -> bytes:
    """The bytes of row ``i`` of the files read one after the other."""
    row_bytes = row_tokens * dtype.itemsize
    start, out = i * row_bytes, b""
    for path in bins:
        size = path.stat().st_size
        if start < size and len(out) < row_bytes:
            with open(path, "rb") as f:
                f.seek(max(start, 0))
                out += f.read(row_bytes - len(out))
        start -= size
    return out


@dataclass
class _Scan:
    """Running counts over the rows: EOD positions and row digests."""

    row_tokens: int
    eod: int
    positions: np.ndarray = field(init=False)
    rows_with_eod: int = 0
    first_row_with_eod: int | None = None
    rows: int = 0
    digests: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.positions = np.zeros(self.row_tokens, dtype=np.int64)

    def add(self, block: np.ndarray, repeats: bool) -> None:
        hit = block == self.eod
        self.positions += np.bincount(np.nonzero(hit)[1], minlength=self.row_tokens)
        any_row = hit.any(axis=1)
        if self.first_row_with_eod is None and any_row.any():
            self.first_row_with_eod = self.rows + int(np.argmax(any_row))
        self.rows_with_eod += int(any_row.sum())
        if repeats:
            joined = b"".join(
                hashlib.blake2b(r.tobytes(), digest_size=DIGEST_BYTES).digest() for r in block
            )
            self.digests.append(np.frombuffer(joined, dtype="<u8"))
        self.rows += len(block)

    def eod_record(self) -> dict[str, Any]:
        where = np.nonzero(self.positions)[0]
        edges = np.linspace(0, self.row_tokens, EOD_BINS + 1).astype(int)
        return {
            "id": self.eod,
            "count": int(self.positions.sum()),
            "rows_with_eod": self.rows_with_eod,
            "rows": self.rows,
            "first_row_with_eod": self.first_row_with_eod,
            "first_position": int(where[0]) if len(where) else None,
            "last_position": int(where[-1]) if len(where) else None,
            "histogram": {
                f"{a}-{b - 1}": int(self.positions[a:b].sum()) for a, b in pairwise(edges)
            },
        }


def first_repeats(digests: np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    """(rows equal to an earlier row, the first such (row, earlier row) pairs in row order),
    from one digest per row."""
    if len(digests) < 2:
        return 0, []
    order = np.argsort(digests, kind="stable")
    d = digests[order]
    dup = d[1:] == d[:-1]
    starts = np.concatenate([[True], ~dup])
    group_first = order[np.maximum.accumulate(np.where(starts, np.arange(len(d)), 0))]
    rows, earlier = order[1:][dup], group_first[1:][dup]
    keep = np.argsort(rows)[: SHOWN_REPEATS * 2]
    return int(dup.sum()), [(int(rows[k]), int(earlier[k])) for k in keep]


# --------------------------------------------------------------------------- the audit


def audit(
    target: Target,
    *,
    row_tokens: int = ROW_TOKENS,
    step_rows: int = STEP_ROWS,
    eod: int = EOD_ID,
    hashes: dict[str, str] | None = None,
    hash_source: str = "",
    repeats: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """The audit record of ``target`` (module docstring): ``rows``, ``eod``, ``repeats``,
    ``hashes``, and the ``failures`` and ``not_checked`` lines."""
    rec: dict[str, Any] = {
        "target": target.name,
        "files": [str(f) for f in target.files],
        "row_tokens": row_tokens,
        "step_rows": step_rows,
        "failures": [],
        "notes": [],
        "not_checked": [],
    }
    dtype, sizes = index_sizes(target.idx) if target.idx else (np.dtype(np.uint16), None)
    rec["dtype"] = str(dtype)
    rec["rows"] = _rows_record(rec, target, dtype, sizes)
    scan = _Scan(row_tokens, eod)
    with tqdm(
        total=rec["rows"]["rows"], unit="row", desc=f"audit {target.name}", disable=not progress
    ) as bar:
        for block in iter_blocks(target.bins, dtype, row_tokens):
            scan.add(block, repeats)
            bar.update(len(block))
    rec["eod"] = scan.eod_record()
    if repeats:
        rec["repeats"] = _repeats_record(target, dtype, row_tokens, step_rows, scan)
    else:
        rec["not_checked"].append("repeats: not asked for (--no-repeats)")
    if hashes:
        rec["hashes"] = {
            "source": hash_source,
            "files": check_hashes(target.files, hashes, progress),
        }
        for h in rec["hashes"]["files"]:
            if h["status"] == "mismatch":
                rec["failures"].append(
                    f"{h['file']}: sha256 {h['sha256']} but {hash_source} lists {h['expected']}; download it again"
                )
            elif h["status"] == "unlisted":
                rec["not_checked"].append(f"{h['file']}: not in {hash_source}, hash not checked")
    else:
        rec["not_checked"].append(f"hashes: {hash_source or 'no hash list'}")
    return rec


def _rows_record(rec: dict, target: Target, dtype: np.dtype, sizes: np.ndarray | None) -> dict:
    """Row and step counts; ragged rows and an index that disagrees go to ``failures``."""
    row_tokens, step_rows = rec["row_tokens"], rec["step_rows"]
    tokens = stream_tokens(target.bins, dtype)
    rows, tail_tokens = divmod(tokens, row_tokens)
    steps, tail_rows = divmod(rows, step_rows)
    out: dict[str, Any] = {
        "tokens": tokens,
        "rows": rows,
        "ragged_tail_tokens": tail_tokens,
        "steps": steps,
        "partial_step_rows": tail_rows,
    }
    if tail_tokens:
        rec["failures"].append(
            f"the files end with a ragged row of {tail_tokens} tokens (rows are {row_tokens})"
        )
    if tail_rows:
        rec["notes"].append(f"partial last step {steps}: {tail_rows} of {step_rows} rows")
    if sizes is None:
        rec["not_checked"].append("index: no .idx beside the files, item sizes not checked")
        return out
    bad = np.nonzero(sizes != row_tokens)[0]
    out.update(
        index_items=len(sizes), ragged_items=len(bad), index_tokens=int(sizes.sum(dtype=np.int64))
    )
    if len(bad):
        i = int(bad[0])
        rec["failures"].append(
            f"{len(bad):,} of {len(sizes):,} index items are not {row_tokens} tokens (first: item {i}, {int(sizes[i])} tokens)"
        )
    if out["index_tokens"] != tokens:
        rec["failures"].append(
            f"the index describes {out['index_tokens']:,} tokens, the files hold {tokens:,}"
        )
    return out


def _repeats_record(
    target: Target, dtype: np.dtype, row_tokens: int, step_rows: int, scan: _Scan
) -> dict:
    """The first rows equal to an earlier row (checked byte for byte), with their steps."""
    digests = np.concatenate(scan.digests) if scan.digests else np.zeros(0, dtype="<u8")
    count, pairs = first_repeats(digests)
    shown = []
    for row, earlier in pairs:
        if read_row(target.bins, dtype, row_tokens, row) == read_row(
            target.bins, dtype, row_tokens, earlier
        ):
            shown.append(
                {
                    "row": row,
                    "step": row // step_rows,
                    "repeats_row": earlier,
                    "repeats_step": earlier // step_rows,
                }
            )
        if len(shown) == SHOWN_REPEATS:
            break
    first = shown[0] if shown else None
    return {
        "method": f"blake2b-{DIGEST_BYTES * 8} of each row's bytes, then byte comparison",
        "repeated_rows": count,
        "first": first,
        "first_step": first and first["step"],
        "shown": shown,
    }


# --------------------------------------------------------------------------- a suite's own data


def epoch_boundary(suite: Suite, dataset: str) -> dict[str, Any] | None:
    """The step in which the training tokens first exceed one epoch of ``dataset``
    (``tokens_per_epoch // tokens_per_step``; from the data card, else ``order.json``);
    None for a released dataset or one trained for less than an epoch."""
    card_path = paths.data_dir(suite.name) / "card.json"
    order_path = paths.dataset_dir(suite.name, dataset) / "order.json"
    if card_path.is_file():
        source, per_epoch = (
            card_path,
            json.loads(card_path.read_text())["datasets"][dataset]["tokens_per_epoch"],
        )
    elif order_path.is_file():
        source, per_epoch = order_path, json.loads(order_path.read_text()).get("tokens_per_epoch")
    else:
        return None
    t = suite.training
    if not per_epoch or per_epoch >= t.train_iters * t.tokens_per_step:
        return None
    return {
        "step": per_epoch // t.tokens_per_step,
        "tokens_per_epoch": per_epoch,
        "tokens_per_step": t.tokens_per_step,
        "source": str(source),
    }


def corpus_repeats(
    suite: Suite, dataset: str, rows: int, chunk: int = 1 << 12
) -> dict[str, Any] | None:
    """From a built dataset's order indices: the first step whose rows hold corpus tokens an
    earlier row held (inputs only: the label token a row shares with the next sample is left
    out), and how many training tokens are such repeats. None when the indices are not there."""
    d = paths.dataset_dir(suite.name, dataset)
    order_path = d / "order.json"
    if (
        not all((d / f).is_file() for f in ("doc_idx.npy", "sample_idx.npy", "shuffle_idx.npy"))
        or not order_path.is_file()
    ):
        return None
    order = json.loads(order_path.read_text())
    corpus = IndexedDataset(d / order["text_document"]["path"])
    doc_idx = np.load(d / "doc_idx.npy")
    shuffle_idx = np.load(d / "shuffle_idx.npy")[:rows].astype(np.int64)
    seq_len = int(order["seq_len"])
    lengths = corpus.sizes[doc_idx].astype(np.int64)  # (E * D,)
    cum_end = np.cumsum(lengths)
    shift = corpus.token_offsets[doc_idx] - (cum_end - lengths)  # stream position -> corpus address

    def addresses(lo: int) -> np.ndarray:  # (r, seq_len) corpus addresses of rows lo..lo+r
        pos = shuffle_idx[lo : lo + chunk, None] * seq_len + np.arange(seq_len)[None, :]
        return pos + shift[np.searchsorted(cum_end, pos, side="right")]

    row_dtype = np.dtype(np.int32) if rows < 2**31 else np.dtype(np.int64)
    first: np.ndarray = np.full(
        corpus.total_tokens, rows, dtype=row_dtype
    )  # first row holding each address
    for lo in range(0, rows, chunk):
        a = addresses(lo)
        np.minimum.at(first, a.ravel(), np.repeat(np.arange(lo, lo + len(a)), seq_len))
    per_row = np.zeros(rows, dtype=np.int64)  # repeated input tokens of each row
    for lo in range(0, rows, chunk):
        a = addresses(lo)
        per_row[lo : lo + len(a)] = (first[a] < np.arange(lo, lo + len(a))[:, None]).sum(axis=1)
    hit = np.nonzero(per_row)[0]
    first_row = int(hit[0]) if len(hit) else None
    step_rows = suite.training.global_batch
    return {
        "first_row": first_row,
        "first_step": None if first_row is None else first_row // step_rows,
        "repeated_tokens": int(per_row.sum()),
        "repeated_share_by_tenth": _share_by_tenth(per_row, seq_len),
        "training_tokens": rows * seq_len,
        "distinct_tokens": int((first < rows).sum()),
        "corpus_tokens": corpus.total_tokens,
    }


def _share_by_tenth(per_row: np.ndarray, seq_len: int) -> list[float]:
    """The share of input tokens that repeat earlier ones in each tenth of the rows."""
    parts = np.array_split(per_row, 10)
    return [round(float(p.sum()) / (len(p) * seq_len), 4) if len(p) else 0.0 for p in parts]


def audit_suite(
    suite: Suite,
    dataset: str,
    *,
    hashes: dict[str, str] | None = None,
    hash_source: str = "",
    repeats: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`audit` of a suite's training rows for ``dataset`` (built here or released), with
    the suite's row width, batch and EOD id; for built data the epoch boundary and corpus repeats."""
    paths.check_dataset(dataset)
    prefix = sequences_prefix(suite, dataset)
    released = is_released(suite, dataset)
    if not released and not Path(f"{prefix}.bin").is_file():
        raise MissingInputError(
            f"{prefix}.bin is missing: build the data first (`pythia data build --suite {suite.name}`)"
        )
    if released and hashes is None:
        hash_source = (
            "Pythia publishes no hash list for the pre-shuffled files; give one with --hashes FILE"
        )
    elif not released and hashes is None:
        hash_source = "no published hash list for data built here (order.json records its sha256)"
    t = suite.training
    rec = audit(
        find_target(prefix),
        row_tokens=t.seq_len + 1,
        step_rows=t.global_batch,
        eod=EOD_ID,
        hashes=hashes,
        hash_source=hash_source,
        repeats=repeats,
        progress=progress,
    )
    rec.update(suite=suite.name, dataset=dataset, released=released)
    if released:
        rec["not_checked"].append(
            "epoch boundary and corpus repeats: released files carry no order indices; "
            "the first exact repeat is the step at which the rows start repeating"
        )
        return rec
    rec["epoch_boundary"] = epoch_boundary(suite, dataset)
    rec["corpus_repeats"] = corpus_repeats(suite, dataset, rec["rows"]["rows"]) if repeats else None
    if rec["epoch_boundary"] and repeats:
        first = rec["repeats"]["first_step"]
        rec["repeat_at_epoch_boundary"] = first == rec["epoch_boundary"]["step"]
    return rec


# --------------------------------------------------------------------------- the report


def render(rec: dict[str, Any]) -> str:
    """The human-readable report of one audit record."""
    r, e = rec["rows"], rec["eod"]
    head = f"{rec['suite']} {rec['dataset']}: " if "suite" in rec else ""
    lines = [
        f"== {head}{rec['target']} ({len(rec['files'])} files, {rec['dtype']})",
        f"rows: {r['rows']:,} of {rec['row_tokens']} tokens = {r['steps']:,} steps of {rec['step_rows']} rows"
        + (f" + {r['partial_step_rows']} rows" if r["partial_step_rows"] else "")
        + (
            f"; index items {r['index_items']:,}, {r['ragged_items']:,} of another length"
            if "index_items" in r
            else ""
        ),
        f"EOD (id {e['id']}): {e['count']:,} tokens in {e['rows_with_eod']:,} of {e['rows']:,} rows"
        + (
            f"; positions {e['first_position']}..{e['last_position']}, first in row {e['first_row_with_eod']}"
            if e["count"]
            else ""
        ),
    ]
    if e["count"]:
        lines.append("  positions: " + ", ".join(f"{k}: {v:,}" for k, v in e["histogram"].items()))
    lines += _repeat_lines(rec)
    for h in rec.get("hashes", {}).get("files", []):
        lines.append(f"sha256 {h['status']:<8} {h['file']} {h['sha256'][:16]}…")
    lines += [f"FAIL: {x}" for x in rec["failures"]] + [f"note: {x}" for x in rec["notes"]]
    lines += [f"not checked: {x}" for x in rec["not_checked"]]
    lines.append("result: " + ("FAILED" if rec["failures"] else "ok"))
    return "\n".join(lines)


def _repeat_lines(rec: dict[str, Any]) -> list[str]:
    rep = rec.get("repeats")
    if rep is None:
        return []
    f = rep["first"]
    lines = [
        f"exact row repeats: {rep['repeated_rows']:,} rows; "
        + (
            f"first at step {f['step']} (row {f['row']} = row {f['repeats_row']}, step {f['repeats_step']})"
            if f
            else "none"
        )
    ]
    b = rec.get("epoch_boundary")
    if b:
        lines.append(
            f"epoch boundary (data card): step {b['step']} ({b['tokens_per_epoch']:,} tokens per epoch / "
            f"{b['tokens_per_step']:,} per step); first exact repeat {'at' if rec.get('repeat_at_epoch_boundary') else 'not at'} it"
        )
    c = rec.get("corpus_repeats")
    if c:
        where = (
            "none"
            if c["first_row"] is None
            else f"first at step {c['first_step']} (row {c['first_row']})"
        )
        lines.append(
            f"corpus repeats (order indices): {where}; "
            f"{c['repeated_tokens']:,} of {c['training_tokens']:,} training tokens repeat earlier ones, "
            f"{c['distinct_tokens']:,} of {c['corpus_tokens']:,} corpus tokens seen"
        )
        shares = ", ".join(f"{x:.0%}" for x in c["repeated_share_by_tenth"])
        lines.append(f"  repeated share of the input tokens, by tenth of the run: {shares}")
    return lines
