"""Training data published pre-shuffled: Pythia's own training order of the Pile.

EleutherAI publishes the exact sequences Pythia trained on, tokenized and in training order,
as two Hugging Face dataset repositories (``EleutherAI/pile-standard-pythia-preshuffled`` and
``EleutherAI/pile-deduped-pythia-preshuffled``). Each holds one GPT-NeoX
``MMapIndexedDataset`` (uint16 tokens) whose row j is training sequence j (2049 tokens: 2048
inputs + 1 label), 1024 rows per step, with the ``.bin`` split into 21 files
``document-00000-of-00020.bin`` ... ``document-00020-of-00020.bin`` beside ``document.idx``.
The shards are consecutive byte ranges of the one ``.bin`` (Pythia's
``utils/unshard_memmap.py`` concatenates them), so joining them in order restores it.

A suite lists such datasets under ``data.pretokenized`` (the ``pythia`` suite: both). Then
``get_batch`` reads rows [1024 s, 1024 (s+1)) of the released file for step s, as Pythia's
``utils/batch_viewer.py`` does, for the trainer, the batch viewer and every section; the
data build's ``order`` stage only checks the file and records what it holds in ``order.json``
(:func:`pythia.data.order.verify_released`).

    pythia data unshard DIR --out work/pythia/data/deduped/released/document

joins the downloaded shards of DIR into ``<out>.bin`` (written beside, renamed when complete)
and copies ``document.idx`` to ``<out>.idx``; the pair is then checked against each other.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from pythia import paths
from pythia.config import Suite, available_suites
from pythia.data.indexed import IndexedDataset
from pythia.errors import DataError, MissingInputError, UsageError
from pythia.io import atomic_path

log = logging.getLogger(__name__)

SHARD_RE = re.compile(r"^(?P<base>.+)-(?P<index>\d{5})-of-(?P<last>\d{5})\.bin$")


def is_released(suite: Suite, dataset: str) -> bool:
    """Whether ``dataset`` of ``suite`` is trained on published pre-shuffled files."""
    return dataset in suite.data.pretokenized


def released_prefix(suite: Suite, dataset: str) -> Path:
    """``.bin``/``.idx`` prefix of a released dataset: its ``path`` (``~``/``$VARS`` expanded) or
    ``<PYTHIA_WORK>/<suite>/data/<dataset>/released/document``."""
    spec = suite.data.pretokenized[dataset]
    if spec.path:
        return Path(os.path.expandvars(os.path.expanduser(spec.path)))
    return paths.dataset_dir(suite.name, dataset) / "released" / "document"


def download_hint(suite: Suite, dataset: str) -> str:
    """What to download, how to join it and where to put it (one line, for error messages)."""
    spec = suite.data.pretokenized[dataset]
    last = spec.shards - 1
    prefix = released_prefix(suite, dataset)
    hint = (
        f"download document-00000-of-{last:05d}.bin ... document-{last:05d}-of-{last:05d}.bin and document.idx "
        f"of the Hugging Face dataset {spec.hub_dataset} (e.g. `hf download {spec.hub_dataset} --repo-type dataset "
        f"--local-dir DIR`), join them with `pythia data unshard DIR --out {prefix}`, or point "
        f"data.pretokenized.{dataset}.path of suite {suite.name!r} at an unsharded copy"
    )
    standin = f"{suite.name}_standin"
    if standin in available_suites():
        hint += f"; to train on the offline stand-in corpus instead, ask for it: suite {standin}"
    return hint


def missing_message(suite: Suite, dataset: str, missing: Path) -> str:
    return (
        f"suite {suite.name!r} trains dataset {dataset!r} on the released pre-shuffled data "
        f"{suite.data.pretokenized[dataset].hub_dataset}, but {missing} is missing; {download_hint(suite, dataset)}"
    )


# --------------------------------------------------------------------------- unshard


def find_shards(src_dir: str | Path) -> tuple[str, list[Path]]:
    """(base name, shard paths in order) of ``<base>-NNNNN-of-MMMMM.bin`` files in ``src_dir``;
    a missing or foreign shard is an error naming it."""
    src_dir = Path(src_dir)
    found: dict[str, dict[int, Path]] = {}
    lasts: dict[str, set[int]] = {}
    for p in src_dir.iterdir() if src_dir.is_dir() else []:
        m = SHARD_RE.match(p.name)
        if m and p.is_file():
            found.setdefault(m["base"], {})[int(m["index"])] = p
            lasts.setdefault(m["base"], set()).add(int(m["last"]))
    if not found:
        raise MissingInputError(
            f"no shards <name>-00000-of-000NN.bin in {src_dir}; download them first"
        )
    if len(found) > 1:
        raise UsageError(
            f"{src_dir} holds shards of several files ({', '.join(sorted(found))}); keep one set per folder"
        )
    ((base, shards),) = found.items()
    if len(lasts[base]) != 1:
        raise DataError(
            f"shards of {base} in {src_dir} disagree on their count ({sorted(lasts[base])})"
        )
    last = lasts[base].pop()
    missing = [i for i in range(last + 1) if i not in shards]
    if missing:
        names = ", ".join(f"{base}-{i:05d}-of-{last:05d}.bin" for i in missing[:3])
        raise MissingInputError(
            f"{len(missing)} of the {last + 1} shards are missing in {src_dir} ({names}"
            f"{', ...' if len(missing) > 3 else ''}); download them"
        )
    return base, [shards[i] for i in range(last + 1)]


def unshard(src_dir: str | Path, out_prefix: str | Path, progress: bool = True) -> Path:
    """Join the shards in ``src_dir`` into ``<out_prefix>.bin`` and copy their ``.idx`` to
    ``<out_prefix>.idx``; both written atomically, then checked against each other."""
    src_dir, out_prefix = Path(src_dir), Path(out_prefix)
    base, shards = find_shards(src_dir)
    idx = src_dir / f"{base}.idx"
    if not idx.is_file():
        raise MissingInputError(f"{idx} is missing: download it with the shards")
    total = sum(p.stat().st_size for p in shards)
    out_bin, out_idx = Path(f"{out_prefix}.bin"), Path(f"{out_prefix}.idx")
    with (
        atomic_path(out_bin) as tmp,
        open(tmp, "wb") as out,
        tqdm(
            total=total, unit="B", unit_scale=True, desc=f"unshard {base}", disable=not progress
        ) as bar,
    ):
        for shard in shards:
            with open(shard, "rb") as f:
                while block := f.read(1 << 26):
                    out.write(block)
                    bar.update(len(block))
        out.flush()
    with atomic_path(out_idx) as tmp:
        shutil.copyfile(idx, tmp)
    ds = IndexedDataset(
        out_prefix,
        rebuild_hint=f"the download in {src_dir} is incomplete or damaged; download it again",
    )
    log.info(
        "unsharded %d shards of %s (%s bytes, %d sequences) -> %s",
        len(shards),
        base,
        f"{total:,}",
        len(ds),
        out_bin,
    )
    return out_prefix
