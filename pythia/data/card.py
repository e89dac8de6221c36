"""The data card: what a suite was trained on, machine-readable and as a table.

``work/<suite>/data/card.json`` holds, per source and dataset (standard / deduped):
documents, bytes, tokens, documents removed as near-duplicates and by the contamination
guard, and the epochs the suite will see (from ``order.json``); plus the tokenizer, the
held-out splits, what the contamination guard checked and removed per evaluation set (and
why: the rule and the matching words of every removed document), and sha256 of every output.
``card.md`` renders it as Markdown tables and ``card.csv`` as one row per (source, dataset).
A dataset trained on released pre-shuffled files (``data.pretokenized``) has no per-source
rows (the released file does not say where its sequences came from): the card gives its
repository, sequences and training tokens. The card is deterministic: no timestamps or timings (those are in ``card.json.provenance.json``
and ``.stamps/``), and ``order.json`` (which records an absolute path) is represented by the
hashes of the files it describes.

The duplication profile (``duplication``; :mod:`pythia.data.duplication`): every 64-token window
of the rows each dataset's model trains on (``sequences.bin``, windows inside rows), counted
exactly: windows, distinct windows, and per threshold k = 2, 10, 100 the distinct windows
occurring at least k times, their occurrences and the tokens they cover, also counted by places
in the corpus (occurrences of one window at one corpus address are one document seen in two
epochs, not duplicated text); per source the tokens in repeated windows; the ten most repeated
windows (one per passage) decoded with the suite's tokenizer, with the sources of their
occurrences; and the tokens deduplication removed beside the Pile's published reduction (300B
to 207B tokens, -31%). Datasets trained on released files, or of more than
:data:`pythia.data.duplication.MAX_WINDOWS` windows, are not profiled (the card stays cheap:
micro's two datasets take a few seconds).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from pythia import paths
from pythia.config import Suite
from pythia.data.batches import open_sequences
from pythia.data.duplication import MAX_WINDOWS, THRESHOLDS, WINDOW, dataset_profile
from pythia.data.indexed import IndexedDataset
from pythia.data.layout import Layout, read_jsonl
from pythia.errors import DataError
from pythia.io import atomic_path, sha256_file, write_json, write_provenance, write_text

CSV_FIELDS = (
    "source",
    "domain",
    "dataset",
    "documents",
    "bytes",
    "tokens",
    "removed_duplicates",
    "removed_contamination",
    "epochs",
    "pinned",
    "row_tokens",
    "repeated_tokens",
    "copied_tokens",
)
PILE_DEDUPLICATION: dict[str, Any] = {
    "standard_tokens": 300_000_000_000,
    "deduped_tokens": 207_000_000_000,
    "reference": "Biderman et al. 2023 (Pythia): the Pile, 300B tokens; deduplicated, about 207B",
}
"""The Pile's published reduction by deduplication, which the card sets beside the suite's."""


def _tokens_per_source(prefix: Path, sources: list[str]) -> Counter:
    ds = IndexedDataset(prefix)
    if len(ds) != len(sources):
        raise DataError(
            f"{ds.idx_path} has {len(ds)} documents, the document list {len(sources)}; rebuild the data (pythia data build --force)"
        )
    c: Counter = Counter()
    sizes = np.asarray(ds.sizes, dtype=np.int64)
    for s, n in zip(sources, sizes.tolist()):
        c[s] += n
    return c


def duplication_record(
    suite: Suite, sources: dict[str, list[str]], totals: dict[str, dict]
) -> dict:
    """The card's duplication profile (module docstring): per built dataset
    :func:`pythia.data.duplication.dataset_profile` of its training rows (``sources``: the source of
    each document of the dataset's corpus), and deduplication's token reduction (``totals``: the
    card's per-dataset totals) beside the Pile's."""
    L = Layout(suite.name)
    window = min(WINDOW, suite.training.seq_len + 1)
    tok = Tokenizer.from_file(str(L.tokenizer / "tokenizer.json"))

    def decode(ids: list[int]) -> str:
        return tok.decode(ids, skip_special_tokens=False)

    datasets: dict[str, dict] = {}
    for dataset in paths.DATASETS:
        if dataset not in sources:
            datasets[dataset] = {"skipped": "trained on a released pre-shuffled file: not profiled"}
            continue
        rows = open_sequences(suite, dataset)
        n = rows.shape[0] * (rows.shape[1] - window + 1)
        if n > MAX_WINDOWS:
            datasets[dataset] = {
                "skipped": f"{n:,} windows, more than the card counts ({MAX_WINDOWS:,})"
            }
            continue
        sizes = IndexedDataset(L.text_prefix("train", dataset)).sizes
        datasets[dataset] = dataset_profile(
            L.dataset(dataset), np.asarray(rows), sizes, sources[dataset], decode, window=window
        )
    pile = PILE_DEDUPLICATION
    reduction = {
        "pile": {**pile, "change": round(pile["deduped_tokens"] / pile["standard_tokens"] - 1, 4)}
    }
    std, ded = totals.get(paths.STANDARD, {}), totals.get(paths.DEDUPED, {})
    if std.get("tokens_per_epoch") and ded.get("tokens_per_epoch"):
        reduction[suite.name] = {
            "standard_tokens": std["tokens_per_epoch"],
            "deduped_tokens": ded["tokens_per_epoch"],
            "change": round(ded["tokens_per_epoch"] / std["tokens_per_epoch"] - 1, 4),
        }
    return {
        "window": window,
        "thresholds": list(THRESHOLDS),
        "scope": f"every {window}-token window inside the training rows (sequences.bin: train_iters x "
        f"global_batch rows of seq_len + 1 tokens), counted exactly",
        "datasets": datasets,
        "deduplication": reduction,
    }


def card_record(suite: Suite) -> dict:
    """The data card of a built suite (module docstring): ``card.json``'s content."""
    L = Layout(suite.name)
    manifest = json.loads((L.documents / "manifest.json").read_text())
    dedup = json.loads((L.dataset("deduped") / "dedup.json").read_text())
    orders = {d: json.loads((L.dataset(d) / "order.json").read_text()) for d in paths.DATASETS}
    built = [d for d in paths.DATASETS if d not in suite.data.pretokenized]
    training = _Training.read(L, dedup)
    rows = _source_rows(suite, manifest, dedup, orders, training, built)
    totals = {d: _dataset_totals(suite, orders[d], d in built) for d in paths.DATASETS}
    duplication = duplication_record(suite, {d: training.sources[d] for d in built}, totals)
    for r in rows:
        per = duplication["datasets"][r["dataset"]].get("per_source", {}).get(r["source"], {})
        r.update(
            row_tokens=per.get("row_tokens"),
            repeated_tokens=per.get("repeated_tokens"),
            copied_tokens=per.get("copied_tokens"),
        )
    return {
        "suite": suite.name,
        "config_digest": suite.digest,
        "rows": rows,
        "datasets": totals,
        "held_out": {split: _held_out(L, manifest, split) for split in ("validation", "test")},
        "tokenizer": _tokenizer_record(suite, L),
        "dedup": {k: v for k, v in dedup.items() if k != "removed"},
        "contamination": contamination_summary(manifest["contamination"]),
        "duplication": duplication,
        "max_bytes_per_source": manifest["max_bytes_per_source"],
        "max_doc_bytes": manifest["max_doc_bytes"],
        "python": manifest["python"],
        "sha256": {str(p.relative_to(L.root)): sha256_file(p) for p in _hashed_files(L, built)},
    }


@dataclass
class _Training:
    """The training documents (``documents/train.jsonl``, in order) and which of them the
    deduplicated dataset kept (a removed source document takes all its chunks with it)."""

    docs: list[dict]
    kept: list[bool]

    @classmethod
    def read(cls, L: Layout, dedup: dict) -> _Training:
        docs = read_jsonl(L.split_file("train"))
        removed_parents = set(dedup["removed"])
        return cls(docs, [d["id"].split("#", 1)[0] not in removed_parents for d in docs])

    @property
    def sources(self) -> dict[str, list[str]]:
        """Per dataset, the source of each of its documents, in order."""
        src = [d["source"] for d in self.docs]
        return {paths.STANDARD: src, paths.DEDUPED: [s for s, k in zip(src, self.kept) if k]}

    def documents(self, source: str, dataset: str) -> list[dict]:
        return [
            d
            for d, k in zip(self.docs, self.kept)
            if d["source"] == source and (dataset == paths.STANDARD or k)
        ]


def _source_rows(
    suite: Suite,
    manifest: dict,
    dedup: dict,
    orders: dict[str, dict],
    training: _Training,
    built: list[str],
) -> list[dict]:
    """One row per (source, built dataset): documents, bytes, tokens, removals, epochs."""
    L = Layout(suite.name)
    sources = training.sources
    tokens = {
        paths.STANDARD: _tokens_per_source(L.text_prefix("train"), sources[paths.STANDARD]),
        paths.DEDUPED: _tokens_per_source(
            L.text_prefix("train", "deduped"), sources[paths.DEDUPED]
        ),
    }
    training_tokens = suite.training.train_iters * suite.training.tokens_per_step
    rows = []
    for name, st in manifest["sources"].items():
        for dataset in built:
            sel = training.documents(name, dataset)
            per_epoch = orders[dataset]["tokens_per_epoch"]
            rows.append(
                {
                    "source": name,
                    "domain": st["domain"],
                    "dataset": dataset,
                    "documents": len(sel),
                    "bytes": sum(len(d["text"].encode()) for d in sel),
                    "tokens": int(tokens[dataset][name]),
                    "removed_duplicates": 0
                    if dataset == paths.STANDARD
                    else int(dedup["removed_items_per_source"].get(name, 0)),
                    "removed_contamination": int(st["removed_contamination"]),
                    "epochs": per_epoch and round(training_tokens / per_epoch, 3),
                    "pinned": st["pinned"],
                }
            )
    return rows


def _dataset_totals(suite: Suite, order: dict, built: bool) -> dict:
    """A dataset's totals from its ``order.json``: documents, tokens per epoch, training tokens,
    epochs seen; for a released dataset its repository, sequences and index hash instead."""
    training_tokens = suite.training.train_iters * suite.training.tokens_per_step
    if not built:
        return {
            "released": order["hub_dataset"],
            "documents": None,
            "tokens_per_epoch": None,
            "training_tokens": training_tokens,
            "epochs_seen": None,
            "order_epochs": None,
            "sequences": order["sequences_rows"],
            "idx_sha256": order["idx_sha256"],
        }
    return {
        "documents": order["num_documents"],
        "tokens_per_epoch": order["tokens_per_epoch"],
        "training_tokens": training_tokens,
        "epochs_seen": round(training_tokens / order["tokens_per_epoch"], 3),
        "order_epochs": order["num_epochs"],
        "sequences": order["sequences_rows"],
    }


def _held_out(L: Layout, manifest: dict, split: str) -> dict:
    """Documents, tokens and fraction of a held-out split (``validation`` or ``test``)."""
    tokens = _tokens_per_source(
        L.text_prefix(split), [d["source"] for d in read_jsonl(L.split_file(split))]
    )
    return {
        "documents": sum(manifest["sources"][s][f"{split}_documents"] for s in manifest["sources"]),
        "tokens": int(sum(tokens.values())),
        "fraction": manifest["val_fraction" if split == "validation" else "test_fraction"],
    }


def _tokenizer_record(suite: Suite, L: Layout) -> dict:
    tok_cfg = json.loads((L.tokenizer / "tokenizer_config.json").read_text())
    return {
        **tok_cfg.get("pythia_tokenizer", {}),
        "eod_id": 0,
        "padded_vocab_size": suite.tokenizer.padded_vocab_size,
        "sha256": sha256_file(L.tokenizer / "tokenizer.json"),
    }


def _hashed_files(L: Layout, built: list[str]) -> list[Path]:
    """The data files the card gives the sha256 of."""
    files = [L.split_file(s) for s in ("train", "validation", "test")] + [
        L.tokenizer / "tokenizer.json"
    ]
    for split in ("validation", "test"):
        files += [Path(f"{L.text_prefix(split)}.bin"), Path(f"{L.text_prefix(split)}.idx")]
    for d in paths.DATASETS:
        files += [
            Path(f"{L.text_prefix('train', d)}.bin"),
            Path(f"{L.text_prefix('train', d)}.idx"),
        ]
        if d not in built:
            continue  # the released file (hundreds of GB) is identified by its index's sha256
        files += [
            L.dataset(d) / name
            for name in (
                "sequences.bin",
                "sequences.idx",
                "doc_idx.npy",
                "sample_idx.npy",
                "shuffle_idx.npy",
            )
        ]
    return files


def render_markdown(card: dict) -> str:
    out = [f"# Data card: suite `{card['suite']}`", ""]
    out += [
        "| source | domain | dataset | documents | bytes | tokens | removed dup. | removed contam. | epochs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in card["rows"]:
        out.append(
            f"| {r['source']} | {r['domain']} | {r['dataset']} | {r['documents']:,} | {r['bytes']:,} | "
            f"{r['tokens']:,} | {r['removed_duplicates']:,} | {r['removed_contamination']:,} | {r['epochs']} |"
        )
    out += [
        "",
        "| dataset | documents | tokens per epoch | training tokens | epochs seen | sequences |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for d, t in card["datasets"].items():
        if t.get("released"):
            out.append(
                f"| {d} (released: {t['released']}) | | | {t['training_tokens']:,} | | {t['sequences']:,} |"
            )
            continue
        out.append(
            f"| {d} | {t['documents']:,} | {t['tokens_per_epoch']:,} | {t['training_tokens']:,} | "
            f"{t['epochs_seen']} | {t['sequences']:,} |"
        )
    tok = card["tokenizer"]
    out += [
        "",
        f"Tokenizer: {tok.get('kind')} ({tok.get('vocab_size')} tokens, padded to {tok['padded_vocab_size']}), "
        f"EOD id 0; sha256 {tok['sha256'][:16]}.",
        f"Held out: validation {card['held_out']['validation']['documents']} documents / "
        f"{card['held_out']['validation']['tokens']:,} tokens, test {card['held_out']['test']['documents']} / "
        f"{card['held_out']['test']['tokens']:,} (chosen by sha256 of the text).",
        f"Dedup: MinHash LSH threshold {card['dedup']['spec']['threshold']}, {card['dedup']['spec']['num_perm']} "
        f"permutations, {card['dedup']['spec']['shingle_words']}-word shingles; removed "
        f"{card['dedup']['removed_documents']} of {card['dedup']['input_documents']} documents "
        f"({card['dedup']['removed_per_source'] or 'none'}).",
        "",
    ]
    out += render_contamination(card["contamination"])
    if "duplication" in card:
        out += render_duplication(card["duplication"], card["rows"])
    return "\n".join(out)


def _share(part: int | None, whole: int) -> str:
    return "" if part is None else f"{part:,} ({100 * part / whole:.1f}%)" if whole else f"{part:,}"


def _cell(text: str, limit: int = 110) -> str:
    """One line of a Markdown table cell: newlines shown as ⏎, pipes escaped, cut at ``limit``."""
    flat = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "⏎").replace("`", "'")
    return flat if len(flat) <= limit else flat[:limit] + "…"


def render_duplication(dup: dict, rows: list[dict]) -> list[str]:
    """The duplication section of card.md: deduplication beside the Pile, the window counts per
    dataset and threshold, the repeated tokens per source, the most repeated windows."""
    w = dup["window"]
    return [
        "## Duplication",
        "",
        _deduplication_line(dup["deduplication"]),
        "",
        f"Every {w}-token window inside the training rows (the rows each model trains on, in order; no window "
        f"crosses from one row into the next), counted exactly. *Occurrences*: how often a window occurs in the "
        f"rows, so a document seen in two epochs counts twice; *places*: at how many corpus addresses (the "
        f"duplication of the text itself). Tokens: the row tokens some such window covers.",
        "",
        *_window_table(dup["datasets"]),
        "",
        *_repeated_per_source_table(rows),
        "",
        f"The most repeated {w}-token windows, one per passage (each overlaps no occurrence of one above it):",
        "",
        *_top_windows_table(dup["datasets"]),
        "",
    ]


def _deduplication_line(red: dict) -> str:
    """Deduplication's token reduction of the Pile, then of this suite's corpus."""
    pile = red["pile"]
    line = (
        f"Deduplication took the Pile from {pile['standard_tokens'] / 1e9:.0f}B to {pile['deduped_tokens'] / 1e9:.0f}B "
        f"tokens ({100 * pile['change']:+.0f}%, the Pythia paper)"
    )
    for name, r in red.items():
        if name != "pile":
            line += (
                f"; the {name} corpus from {r['standard_tokens']:,} to {r['deduped_tokens']:,} tokens per epoch "
                f"({100 * r['change']:+.1f}%)"
            )
    return line + "."


def _window_table(datasets: dict) -> list[str]:
    out = [
        "| dataset | at least | distinct windows | their occurrences | tokens covered | distinct windows (places) "
        "| tokens covered (places) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for d, p in datasets.items():
        if "skipped" in p:
            out.append(f"| {d} | not profiled: {p['skipped']} | | | | | |")
            continue
        out.append(f"| {d} | 1 | {p['distinct']:,} | {p['windows']:,} | {p['row_tokens']:,} | | |")
        for k, a in sorted(p["at_least"].items(), key=lambda kv: int(kv[0])):
            out.append(
                f"| {d} | {k} | {a['distinct']:,} | {a['windows']:,} | {_share(a['tokens'], p['row_tokens'])} | "
                f"{a.get('distinct_copies', 0):,} | {_share(a.get('tokens_copies'), p['row_tokens'])} |"
            )
    return out


def _repeated_per_source_table(rows: list[dict]) -> list[str]:
    out = [
        "| source | dataset | row tokens | in windows occurring >= 2 times | in windows at >= 2 places |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("row_tokens"):
            out.append(
                f"| {r['source']} | {r['dataset']} | {r['row_tokens']:,} | "
                f"{_share(r['repeated_tokens'], r['row_tokens'])} | {_share(r['copied_tokens'], r['row_tokens'])} |"
            )
    return out


def _top_windows_table(datasets: dict) -> list[str]:
    out = [
        "| dataset | occurrences | places | sources | text (⏎: newline) |",
        "|---|---:|---:|---|---|",
    ]
    for d, p in datasets.items():
        for t in p.get("top", []):
            src = ", ".join(f"{s} {n}" for s, n in t["sources"].items())
            out.append(f"| {d} | {t['count']:,} | {t['copies']:,} | {src} | {_cell(t['text'])} |")
    return out


def contamination_summary(report: dict) -> dict:
    """The guard's report for the card: per evaluation set what was checked (examples, items
    by rule) and what was removed (documents by rule), and every removed document with the
    set, rule and words it matched."""
    sets = {}
    for name, st in report["eval_sets"].items():
        removed = report["per_eval_set_rule"].get(name, {})
        sets[name] = {
            **st,
            "removed_documents": sum(removed.values()),
            "removed_by_rule": {
                r: removed.get(r, 0) for r in ("ngram", "whole", "line", "symbols")
            },
        }
    return {
        "ngram": report["ngram"],
        "min_item_words": report["min_item_words"],
        "evaluation_groups": report["evaluation_groups"],
        "eval_hashes": report["eval_hashes"],
        "per_source": report["per_source"],
        "per_eval_set": report["per_eval_set"],
        "sets": sets,
        "removed": report["dropped"],
    }


def render_contamination(c: dict) -> list[str]:
    """The guard's section of card.md: totals, the sets that removed something, each removed document."""
    sets = c["sets"]
    tot = {
        k: sum(st.get(k, 0) for st in sets.values())
        for k in ("examples", "items", "ngram", "whole", "line", "symbols", "empty")
    }
    n, m = c["ngram"], c["min_item_words"]
    out = [
        "## Contamination guard",
        "",
        f"Every example of {len(sets)} evaluation sets ({', '.join(c['evaluation_groups'])}) was checked: "
        f"{tot['examples']:,} examples, {tot['items']:,} items (prompt + each choice or target): "
        f"{tot['ngram']:,} by shared {n}-grams, {tot['whole']:,} of {m}-{n - 1} words as a whole, "
        f"{tot['line']:,} of fewer than {m} words as whole lines, {tot['symbols']:,} of ASCII art or symbols "
        f"as lines ({tot['empty']:,} empty). "
        f"{len(c['removed'])} training documents were removed.",
        "",
    ]
    hit = {k: st for k, st in sets.items() if st["removed_documents"]}
    if hit:
        out += [
            f"| evaluation set | examples | removed | by {n}-gram | whole item | whole line | symbols |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, st in hit.items():
            r = st["removed_by_rule"]
            out.append(
                f"| {name} | {st['examples']:,} | {st['removed_documents']} | {r['ngram']} | {r['whole']} | "
                f"{r['line']} | {r['symbols']} |"
            )
        out += [
            "",
            f"The other {len(sets) - len(hit)} sets removed nothing.",
            "",
            "| removed document | evaluation set | rule | matching words |",
            "|---|---|---|---|",
        ]
        for doc_id, why in c["removed"].items():
            words = why["match"].replace("|", "\\|")
            out.append(f"| {doc_id} | {why['set']} | {why['rule']} | {words[:120]} |")
        out.append("")
    return out


def render_csv(card: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in card["rows"]:
        w.writerow({k: r[k] for k in CSV_FIELDS})
    return buf.getvalue()


def write_card(suite: Suite) -> dict:
    """Write card.md, card.csv, card.json (last) and card.json.provenance.json."""
    root = paths.data_dir(suite.name)
    card = card_record(suite)
    write_text(root / "card.md", render_markdown(card))
    with atomic_path(root / "card.csv") as tmp:
        tmp.write_text(render_csv(card))
    write_json(root / "card.json", card)
    sources = (
        json.loads((root / "sources.json").read_text()) if (root / "sources.json").exists() else {}
    )
    write_provenance(
        root / "card.json",
        config_digest=suite.digest,
        suite=suite.name,
        archives=sources.get("archives", {}),
        outputs=card["sha256"],
    )
    return card
