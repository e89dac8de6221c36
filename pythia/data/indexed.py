"""GPT-NeoX ``MMapIndexedDataset``: a token file (``.bin``) and its index (``.idx``).

The format, exactly as GPT-NeoX v1.0 (``megatron/data/indexed_dataset.py``, the version
Pythia's README names) and Pythia's ``utils/mmap_dataset.py`` read it:

``<prefix>.idx`` (all integers little-endian)::

    offset  size        field
    0       9           magic b"MMIDIDX\\x00\\x00"
    9       8  uint64   version (always 1)
    17      1  uint8    dtype code of the tokens (see DTYPE_CODES)
    18      8  uint64   number of items (sequences) N
    26      8  uint64   number of doc_idx entries M
    34      4*N int32   sizes: tokens in each item
    ..      8*N int64   pointers: byte offset of each item in the .bin
    ..      8*M int64   doc_idx: index of the first item of each document, then N
                        (GPT-NeoX starts it at [0] and appends len(sizes) at every
                        end_document, so M = documents + 1)

``<prefix>.bin``: the token arrays of the items concatenated, no header.

In a tokenized corpus GPT-NeoX's ``tools/preprocess_data.py`` writes one item per document
(ending with the EOD token) followed by ``end_document()``; in Pythia's pre-shuffled
files every item is one training sequence of seq_len + 1 tokens.

Dtype codes (GPT-NeoX v1.0 ``dtypes``, and Pythia's reader): 1 uint8, 2 int8, 3 int16,
4 int32, 5 int64, 6 float32, 7 float64, 8 uint16; the writer writes the code ``code(dtype)``
gives (6 for float32, 7 for float64). Some GPT-NeoX versions wrote ``6: np.float,
7: np.double`` (from fairseq, whose builder sized ``np.float`` as 4 bytes: float32 was meant,
though numpy reads ``np.float`` as float64); Megatron-core later swapped the two (6 float64,
7 float32). Pythia's token files are uint16 either way.

Unlike GPT-NeoX, the reader checks the files against each other and says what is wrong
and how to fix it; the writer writes both files under temporary names and renames them
only when complete.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from pythia.errors import PythiaError

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER_SIZE = len(MAGIC) + 8 + 1 + 8 + 8  # 34 bytes

DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.int8),
    3: np.dtype(np.int16),
    4: np.dtype(np.int32),
    5: np.dtype(np.int64),
    6: np.dtype(np.float32),
    7: np.dtype(np.float64),
    8: np.dtype(np.uint16),
}
# The code GPT-NeoX's ``code(dtype)`` returns for each dtype: the inverse of DTYPE_CODES.
CODE_OF_DTYPE: dict[np.dtype, int] = {dtype: code for code, dtype in DTYPE_CODES.items()}

DEFAULT_REBUILD_HINT = "rebuild it with `pythia data build --suite <suite>`"


class IndexedDatasetError(PythiaError, ValueError):
    """A .bin/.idx pair is malformed or inconsistent; the message names the file and the fix."""


def index_path(path_prefix: str | Path) -> Path:
    """``<prefix>.idx``."""
    return Path(f"{path_prefix}.idx")


def data_path(path_prefix: str | Path) -> Path:
    """``<prefix>.bin``."""
    return Path(f"{path_prefix}.bin")


def best_dtype(vocab_size: int) -> np.dtype:
    """Token dtype GPT-NeoX picks for a vocabulary: uint16 below 65,500 tokens, else int32."""
    return (
        np.dtype(np.uint16) if vocab_size is not None and vocab_size < 65500 else np.dtype(np.int32)
    )


def _dtype_code(dtype: DTypeLike) -> int:
    dt = np.dtype(dtype)
    if dt.byteorder == ">":
        raise ValueError(f"big-endian dtype {dt} is not supported; the format is little-endian")
    dt = dt.newbyteorder("=")
    try:
        return CODE_OF_DTYPE[dt]
    except KeyError:
        allowed = ", ".join(sorted(str(d) for d in CODE_OF_DTYPE))
        raise ValueError(f"unsupported token dtype {dt}; choose one of: {allowed}") from None


def read_index_header(p: Path, hint: str) -> tuple[int, int, int]:
    """(dtype code, items N, doc_idx entries M) of the ``.idx`` file ``p``, its header checked and
    its size equal to what the header claims; a malformed one raises :class:`IndexedDatasetError`
    naming the problem, then ``hint``. Reads the header alone (the ``.bin`` may be elsewhere)."""

    def _fail(path: Path, what: str) -> IndexedDatasetError:
        return IndexedDatasetError(f"{path}: {what}; {hint}")

    file_size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(HEADER_SIZE)
    if len(head) < len(MAGIC) or head[: len(MAGIC)] != MAGIC:
        raise _fail(
            p,
            f"not a GPT-NeoX MMapIndexedDataset index (magic {head[: len(MAGIC)]!r}, expected {MAGIC!r})",
        )
    if len(head) < HEADER_SIZE:
        raise _fail(p, f"truncated index: {file_size} bytes, the header alone needs {HEADER_SIZE}")
    (version,) = struct.unpack_from("<Q", head, 9)
    if version != VERSION:
        raise _fail(p, f"unsupported index version {version} (this reader supports {VERSION})")
    (code,) = struct.unpack_from("<B", head, 17)
    if code not in DTYPE_CODES:
        raise _fail(p, f"unknown dtype code {code} (known: {sorted(DTYPE_CODES)})")
    n, m = struct.unpack_from("<QQ", head, 18)
    expected = HEADER_SIZE + 4 * n + 8 * n + 8 * m
    if file_size < expected:
        raise _fail(
            p,
            f"truncated index: header claims {n} items and {m} doc_idx entries "
            f"({expected} bytes) but the file has {file_size} bytes",
        )
    if file_size > expected:
        raise _fail(
            p,
            f"index has {file_size - expected} unexpected trailing bytes (expected {expected})",
        )
    return int(code), int(n), int(m)


class IndexedDatasetWriter:
    """Write a ``.bin``/``.idx`` pair item by item, atomically.

    Tokens go to a temporary file beside the target; :meth:`finalize` writes the index
    to another temporary file, fsyncs both and renames them over ``<prefix>.bin`` and
    ``<prefix>.idx`` (the .bin first). Until then, and if anything fails (use the writer
    as a context manager, or call :meth:`abort`), earlier files at the prefix are left
    untouched. A crash between the two renames leaves a new .bin beside an old .idx,
    which :class:`IndexedDataset` detects as inconsistent.

    Example::

        with IndexedDatasetWriter("work/micro/data/standard/train_text_document", np.uint16) as w:
            for doc in docs:
                w.add_item(doc)
                w.end_document()
        # finalized on leaving the block without an exception
    """

    def __init__(self, path_prefix: str | Path, dtype: DTypeLike = np.int32) -> None:
        self.path_prefix = Path(path_prefix)
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self._code = _dtype_code(self.dtype)
        self.path_prefix.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path_prefix.name}.", suffix=".bin.tmp", dir=self.path_prefix.parent
        )
        self._bin_tmp = Path(tmp)
        self._bin = os.fdopen(fd, "wb")
        self._sizes: list[np.ndarray] = []  # chunks of int32 sizes
        self._n_items = 0
        self._doc_idx: list[int] = [0]
        self._bytes = 0
        self._closed = False
        if np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            self._range: tuple[int, int] | None = (int(info.min), int(info.max))
        else:
            self._range = None

    # -- writing -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"writer for {self.path_prefix} is already finalized or aborted")

    def _cast(self, tokens: ArrayLike) -> np.ndarray:
        arr = np.asarray(tokens)
        if self._range is not None and arr.size and arr.dtype != self.dtype:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < self._range[0] or hi > self._range[1]:
                raise ValueError(
                    f"token values [{lo}, {hi}] do not fit {self.dtype} (range {self._range}) "
                    f"while writing {self.path_prefix}; use a wider dtype (best_dtype(vocab_size))"
                )
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def add_item(self, tokens: ArrayLike) -> None:
        """Append one item (a 1-D token array: a document, or a training sequence)."""
        self._check_open()
        arr = self._cast(tokens).reshape(-1)  # (n,)
        if arr.size > np.iinfo(np.int32).max:
            raise ValueError(f"item of {arr.size} tokens exceeds the int32 sizes field")
        self._bin.write(arr.tobytes())
        self._sizes.append(np.array([arr.size], dtype=np.int32))
        self._n_items += 1
        self._bytes += arr.nbytes

    def add_rows(self, rows: ArrayLike, *, as_documents: bool = True) -> None:
        """Append every row of a 2-D array (R, L) as one item (vectorised ``add_item``).

        With ``as_documents`` each row also ends a document (Pythia's pre-shuffled files).
        """
        self._check_open()
        arr = self._cast(rows)
        if arr.ndim != 2:
            raise ValueError(f"add_rows needs a 2-D array (rows, tokens), got shape {arr.shape}")
        r, length = arr.shape
        self._bin.write(arr.tobytes())
        self._sizes.append(np.full(r, length, dtype=np.int32))
        if as_documents:
            self._doc_idx.extend(range(self._n_items + 1, self._n_items + r + 1))
        self._n_items += r
        self._bytes += arr.nbytes

    def end_document(self) -> None:
        """Mark the end of a document: doc_idx gains the current number of items."""
        self._check_open()
        self._doc_idx.append(self._n_items)

    # -- finishing -----------------------------------------------------------------------
    def _index_bytes(self) -> bytes:
        sizes = np.concatenate(self._sizes) if self._sizes else np.zeros(0, dtype=np.int32)  # (N,)
        # byte offset of each item: exclusive cumulative sum of sizes * itemsize  (N,)
        pointers = np.zeros(len(sizes), dtype=np.int64)
        if len(sizes) > 1:
            np.cumsum(sizes[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        doc_idx = np.asarray(self._doc_idx, dtype=np.int64)  # (M,)
        header = MAGIC + struct.pack("<Q", VERSION) + struct.pack("<B", self._code)
        header += struct.pack("<Q", len(sizes)) + struct.pack("<Q", len(doc_idx))
        return b"".join(
            [
                header,
                sizes.astype("<i4").tobytes(),
                pointers.astype("<i8").tobytes(),
                doc_idx.astype("<i8").tobytes(),
            ]
        )

    def finalize(self) -> Path:
        """Write the index and move both files into place; returns the path prefix."""
        self._check_open()
        idx_tmp: Path | None = None
        try:
            self._bin.flush()
            os.fsync(self._bin.fileno())
            self._bin.close()
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path_prefix.name}.", suffix=".idx.tmp", dir=self.path_prefix.parent
            )
            idx_tmp = Path(tmp)
            with os.fdopen(fd, "wb") as f:
                f.write(self._index_bytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(self._bin_tmp, data_path(self.path_prefix))
            os.replace(idx_tmp, index_path(self.path_prefix))
        except BaseException:
            self.abort()
            if idx_tmp is not None and idx_tmp.exists():
                idx_tmp.unlink()
            raise
        self._closed = True
        return self.path_prefix

    def abort(self) -> None:
        """Discard everything written so far; files already at the prefix stay as they were."""
        if not self._bin.closed:
            self._bin.close()
        if self._bin_tmp.exists():
            self._bin_tmp.unlink()
        self._closed = True

    def __enter__(self) -> IndexedDatasetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            if not self._closed:
                self.finalize()
        else:
            self.abort()

    def __del__(self) -> None:  # an abandoned writer must not leave temporary files behind
        try:
            if not self._closed:
                self.abort()
        except Exception:
            pass


def write_indexed(
    path_prefix: str | Path, documents: Iterable[ArrayLike], dtype: DTypeLike = np.int32
) -> Path:
    """Write ``documents`` (1-D token arrays) as one item and one document each; atomic."""
    with IndexedDatasetWriter(path_prefix, dtype) as w:
        for doc in documents:
            w.add_item(doc)
            w.end_document()
    return Path(path_prefix)


class IndexedDataset:
    """Memory-mapped reader of a GPT-NeoX ``.bin``/``.idx`` pair.

    ``ds[i]`` and ``ds.get(i, offset, length)`` return read-only views into the ``.bin``
    (no copy). ``ds.tokens`` is the whole ``.bin`` as one flat array. Both files are
    validated when opened: magic, version, dtype code, the index length against its
    header, and the ``.bin`` size against the index.
    """

    def __init__(self, path_prefix: str | Path, rebuild_hint: str = DEFAULT_REBUILD_HINT) -> None:
        self.path_prefix = Path(path_prefix)
        self.idx_path = index_path(path_prefix)
        self.bin_path = data_path(path_prefix)
        self._hint = rebuild_hint
        for p in (self.idx_path, self.bin_path):
            if not p.is_file():
                raise FileNotFoundError(f"indexed dataset file {p} does not exist; {rebuild_hint}")
        self._read_index()
        self._open_data()

    def _fail(self, path: Path, what: str) -> IndexedDatasetError:
        return IndexedDatasetError(f"{path}: {what}; {self._hint}")

    def _read_index(self) -> None:
        p = self.idx_path
        code, n, m = read_index_header(p, self._hint)
        self.dtype: np.dtype = DTYPE_CODES[code]
        self.dtype_code = code
        self._len = int(n)
        buf = np.memmap(p, mode="r", dtype=np.uint8)
        self._idx_mmap = buf
        self.sizes: np.ndarray = np.frombuffer(
            buf, dtype="<i4", count=n, offset=HEADER_SIZE
        )  # (N,)
        self.pointers: np.ndarray = np.frombuffer(
            buf, dtype="<i8", count=n, offset=HEADER_SIZE + 4 * n
        )  # (N,)
        self.doc_idx: np.ndarray = np.frombuffer(
            buf, dtype="<i8", count=m, offset=HEADER_SIZE + 12 * n
        )  # (M,)

    def _open_data(self) -> None:
        p = self.bin_path
        size = p.stat().st_size
        item = self.dtype.itemsize
        if self._len:
            if int(self.sizes.min()) < 0:
                raise self._fail(self.idx_path, "negative item size in the index")
            end = int(self.pointers[-1]) + int(self.sizes[-1]) * item
        else:
            end = 0
        if size != end:
            raise self._fail(
                p,
                f"size {size} bytes is inconsistent with its index {self.idx_path.name} "
                f"(which describes {end} bytes of {self.dtype}); the pair is from different builds or was cut short",
            )
        if size % item:
            raise self._fail(p, f"size {size} is not a multiple of the token size {item}")
        if size:
            self.tokens: np.ndarray = np.memmap(p, mode="r", dtype=self.dtype)  # (total_tokens,)
        else:
            self.tokens = np.zeros(0, dtype=self.dtype)

    # -- access --------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    def _check(self, i: int) -> int:
        i = int(i)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"item {i} out of range [0, {self._len}) in {self.path_prefix}")
        return i

    def __getitem__(self, i: int) -> np.ndarray:
        """Tokens of item ``i`` (a read-only view, shape (sizes[i],))."""
        return self.get(i)

    def get(self, i: int, offset: int = 0, length: int | None = None) -> np.ndarray:
        """Tokens ``[offset, offset + length)`` of item ``i`` (to its end when length is None)."""
        i = self._check(i)
        size = int(self.sizes[i])
        if length is None:
            length = size - offset
        if offset < 0 or length < 0 or offset + length > size:
            raise IndexError(
                f"span [{offset}, {offset + length}) outside item {i} of {size} tokens"
            )
        start = int(self.pointers[i]) // self.dtype.itemsize + offset
        return self.tokens[start : start + length]

    @property
    def total_tokens(self) -> int:
        """Tokens over all items."""
        return int(self.sizes.sum(dtype=np.int64)) if self._len else 0

    @property
    def token_offsets(self) -> np.ndarray:
        """Start of each item in :attr:`tokens` (pointers / itemsize), int64, shape (N,)."""
        return self.pointers // self.dtype.itemsize if self._len else np.zeros(0, dtype=np.int64)

    def __repr__(self) -> str:
        return f"IndexedDataset({str(self.path_prefix)!r}, items={self._len}, dtype={self.dtype})"

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers: reopen by path
        return {"path_prefix": self.path_prefix, "hint": self._hint}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path_prefix"], state["hint"])  # type: ignore[misc]
