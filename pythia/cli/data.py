"""``pythia data ...``: the text sources, the evaluation sets, the data build, the batch viewer.

pythia data sources [--json]                              the source registry
pythia data evalsets [--group G...] [--json] [--export NAME PATH]
                                                          the evaluation sets; export one as jsonl
pythia data fetch (--suite S | --source NAME... | --archive PKG... | --all | --all-archives)
                                                          archives into the cache, verified
pythia data build --suite S [--stage STAGE [--dataset D]] [--force]
                                                          build (all stages, skipping finished ones)
pythia data build --suite S --stage order --dataset D --data-seed N
                                                          the order with data-order seed N (seed runs)
pythia data batch --suite S --dataset D --step N [--decode] [--rows R]
                                                          print the batch of a training step
pythia data unshard DIR (--out PREFIX | --suite S --dataset D)
                                                          join downloaded pre-shuffled shards
pythia data audit (PATH | --suite S [--dataset D...]) [--hashes FILE] [--json] [--out FILE]
                                                          check pre-shuffled rows, EOD, hashes, repeats
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from pythia import paths
from pythia.cli import options
from pythia.config import load_suite
from pythia.data import archives as A
from pythia.data import audit as AU
from pythia.data import sources as S
from pythia.data.batches import batch_hash, get_batch
from pythia.data.build import STAGES, build, run_stage, setup_logging
from pythia.data.evalsets import EVAL_GROUPS, evalsets, write_jsonl
from pythia.data.layout import Layout
from pythia.data.order import write_seed_order
from pythia.data.released import released_prefix, unshard
from pythia.data.tokenizer import load_tokenizer
from pythia.errors import UsageError
from pythia.io import write_json


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _print_table(table: Table) -> None:
    Console(width=max(Console().width, 160)).print(table)


# ---------------------------------------------------------------------- sources, evalsets


def _cmd_sources(args: argparse.Namespace) -> int:
    infos = [s.info() | {"available": s.available()} for s in S.SOURCES.values()]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    t = Table(title=f"text sources (cache: {paths.cache_dir() / 'archives'})")
    for col in ("name", "domain", "pinned", "license", "sha256", "cached", "description"):
        t.add_column(col, overflow="fold")
    for i in infos:
        cached = "local" if not i["archive"] else ("yes" if i["cached"] else "no")
        if not i["available"]:
            cached = "not installed"
        t.add_row(
            i["name"],
            i["domain"],
            i["pinned"],
            i["license"],
            (i["sha256"] or "")[:12],
            cached,
            i["description"],
        )
    _print_table(t)
    return 0


def _cmd_evalsets(args: argparse.Namespace) -> int:
    groups = args.group or EVAL_GROUPS
    if args.export:
        name, path = args.export
        print(f"{name}: {write_jsonl(name, path)}")
        return 0
    infos = [s.info() for s in evalsets(groups, progress=not args.no_progress).values()]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    t = Table(title=f"evaluation sets ({len(infos)}, {sum(i['size'] for i in infos):,} examples)")
    for col in ("name", "kind", "size", "source", "license"):
        t.add_column(col, overflow="fold")
    for i in infos:
        t.add_row(i["name"], i["kind"], f"{i['size']:,}", i["source"], i["license"])
    _print_table(t)
    return 0


# ---------------------------------------------------------------------- fetch


def _cmd_fetch(args: argparse.Namespace) -> int:
    progress = not args.no_progress
    if args.suite:
        suite = load_suite(args.suite)
        setup_logging(suite.name)
        run_stage(suite, "fetch", progress=progress)
        print(
            f"fetched the archives of suite {suite.name}; see {Layout(suite.name).root / 'sources.json'}"
        )
    elif args.archive:
        _fetch_archives(args.archive, progress)
    elif args.all_archives:
        _fetch_every_archive(progress)
    else:
        _fetch_sources(args.source or [], args.all, progress)
    return 0


def _fetch_archives(packages: list[str], progress: bool) -> None:
    for pkg in packages:
        if pkg not in A.ARCHIVES:
            raise UsageError(f"unknown archive {pkg!r}; archives: {', '.join(A.ARCHIVES)}")
        print(f"{A.ARCHIVES[pkg].filename}: {A.fetch_archive(pkg, progress=progress)}")


def _fetch_every_archive(progress: bool) -> None:
    """Every pinned archive (what `make test` needs): fetch all that can be had, then fail
    naming each one that could not."""
    missing = []
    for pkg, archive in A.ARCHIVES.items():
        try:
            print(f"{archive.filename}: {A.fetch_archive(archive, progress=progress)}")
        except A.SourceError as e:
            print(f"{archive.filename}: MISSING", flush=True)
            missing.append((pkg, archive, e))
    if missing:
        raise A.ArchiveMissingError(
            f"{len(missing)} of {len(A.ARCHIVES)} pinned archives could not be had: "
            f"{', '.join(f'{a.package}=={a.version}' for _, a, _ in missing)}. "
            + " ".join(f"[{pkg}] {e}" for pkg, _, e in missing)
        )


def _fetch_sources(names: list[str], every: bool, progress: bool) -> None:
    """The archives of the sources ``names`` (``every``: of every installed source, and the
    GPT-NeoX tokenizer's)."""
    names = list(S.SOURCES) if every else names
    if not names:
        raise UsageError(
            "say what to fetch: --suite S, --source NAME ..., --archive PACKAGE ..., --all or "
            "--all-archives"
        )
    if every:
        names = [n for n in names if S.SOURCES[n].available()]
    fetched = S.prepare(names, progress=progress)
    if every:
        fetched[A.ARCHIVES["llama-cpp-python"].filename] = A.fetch_archive("llama-cpp-python")
    for f, p in fetched.items():
        print(f"{f}: {p}")


# ---------------------------------------------------------------------- build, batch, unshard


def _cmd_build(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    logfile = setup_logging(suite.name, args.verbose)
    progress = not args.no_progress
    if args.data_seed is not None:
        if args.stage != "order" or not args.dataset:
            raise UsageError(
                "--data-seed builds one dataset's order: add --stage order --dataset standard|deduped"
            )
        write_seed_order(
            suite, paths.check_dataset(args.dataset), args.data_seed, progress=progress
        )
        return 0
    if args.stage:
        run_stage(suite, args.stage, args.dataset, progress=progress)
        return 0
    if args.dataset:
        raise UsageError("--dataset needs --stage order; add --stage order or drop --dataset")
    timings = build(suite, STAGES, force=args.force, progress=progress)
    ran = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) or "up to date"
    print(f"suite {suite.name}: data built ({ran}); log {logfile}")
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    paths.check_dataset(args.dataset)
    batch = get_batch(suite, args.dataset, args.step)  # (B, seq_len + 1)
    print(
        f"suite {suite.name} dataset {args.dataset} step {args.step}: shape {tuple(batch.shape)} "
        f"dtype {batch.dtype} hash {batch_hash(batch)}"
    )
    tok = load_tokenizer(suite.name) if args.decode else None
    rows = batch if args.rows is None else batch[: args.rows]
    for i, row in enumerate(rows):
        if tok is not None:
            text = tok.decode(row.tolist(), skip_special_tokens=False)
            print(f"--- row {i} ---\n{text}")
        else:
            print(f"row {i}: {' '.join(map(str, row.tolist()))}")
    sys.stdout.flush()
    return 0


def _cmd_unshard(args: argparse.Namespace) -> int:
    if args.out is None:
        if not (args.suite and args.dataset):
            raise UsageError(
                "say where to write: --out PREFIX, or --suite S --dataset D (the suite's released path)"
            )
        suite = load_suite(args.suite)
        if args.dataset not in suite.data.pretokenized:
            raise UsageError(
                f"dataset {args.dataset!r} of suite {suite.name!r} is not a released one "
                f"(data.pretokenized: {', '.join(suite.data.pretokenized) or 'none'})"
            )
        args.out = released_prefix(suite, args.dataset)
    out = unshard(args.src, args.out, progress=not args.no_progress)
    print(f"wrote {out}.bin and {out}.idx")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    if (args.path is None) == (args.suite is None):
        raise UsageError(
            "say what to audit: a PATH (folder of shards, .bin or prefix) or --suite S"
        )
    hashes, source = None, ""
    if args.hashes:
        hashes, source = AU.read_hash_list(args.hashes), str(args.hashes)
    progress = not args.no_progress
    if args.suite:
        suite = load_suite(args.suite)
        records = [
            AU.audit_suite(
                suite,
                d,
                hashes=hashes,
                hash_source=source,
                repeats=not args.no_repeats,
                progress=progress,
            )
            for d in args.dataset or paths.DATASETS
        ]
    else:
        if hashes is None:
            hashes, source = (
                AU.published_hashes(),
                "Pythia's published list (utils/shard_hashes.txt: pythia_deduped_pile_idxmaps only; "
                "for other files give their hub LFS sha256 with --hashes FILE)",
            )
        target = AU.find_target(args.path)
        records = [
            AU.audit(
                target,
                row_tokens=args.row_tokens,
                step_rows=args.step_rows,
                eod=args.eod,
                hashes=hashes,
                hash_source=source,
                repeats=not args.no_repeats,
                progress=progress,
            )
        ]
    if args.out:
        write_json(args.out, records)
    if args.json:
        print(json.dumps(records, indent=2, sort_keys=True))
    else:
        print("\n\n".join(AU.render(r) for r in records))
    return 1 if any(r["failures"] for r in records) else 0


# ---------------------------------------------------------------------- the parser


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="text sources, data build, batch viewer")
    dsub = options.subcommands(p, "subcommand")
    _add_sources(dsub)
    _add_evalsets(dsub)
    _add_fetch(dsub)
    _add_build(dsub)
    _add_batch(dsub)
    _add_unshard(dsub)
    _add_audit(dsub)


def _add_sources(dsub: argparse._SubParsersAction) -> None:
    q = dsub.add_parser(
        "sources", help="list the text sources (pinned package, sha256, license, domain)"
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=_cmd_sources)


def _add_evalsets(dsub: argparse._SubParsersAction) -> None:
    q = dsub.add_parser(
        "evalsets", help="list the evaluation sets (size, source, licence) or export one as jsonl"
    )
    q.add_argument(
        "--group", nargs="+", choices=EVAL_GROUPS, help="only these groups (default: all)"
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument(
        "--export",
        nargs=2,
        metavar=("NAME", "PATH"),
        help="write the examples of set NAME to PATH as jsonl (for an lm-eval task)",
    )
    options.add_progress(q)
    q.set_defaults(func=_cmd_evalsets)


def _add_fetch(dsub: argparse._SubParsersAction) -> None:
    q = dsub.add_parser(
        "fetch", help="download the pinned archives into $PYTHIA_CACHE and verify their sha256"
    )
    g = q.add_mutually_exclusive_group()
    g.add_argument("--suite", help="the archives a suite needs (sources and evaluation items)")
    g.add_argument("--source", nargs="+", help="the archives of these sources")
    g.add_argument(
        "--archive",
        nargs="+",
        metavar="PACKAGE",
        help="these pinned archives by package name (e.g. llama-cpp-python, the GPT-NeoX vocabulary)",
    )
    g.add_argument(
        "--all",
        action="store_true",
        help="every installed source's archives and the GPT-NeoX tokenizer's, prepared",
    )
    g.add_argument(
        "--all-archives",
        action="store_true",
        help="every pinned archive (what the tests read); fails naming each one that cannot be had",
    )
    options.add_progress(q)
    q.set_defaults(func=_cmd_fetch)


def _add_build(dsub: argparse._SubParsersAction) -> None:
    q = dsub.add_parser("build", help="build a suite's data (all stages, skipping finished ones)")
    options.add_suite(q)
    q.add_argument("--stage", choices=STAGES, help="run only this stage (always reruns it)")
    q.add_argument("--dataset", help="with --stage order: only this dataset (standard or deduped)")
    q.add_argument(
        "--data-seed",
        type=_positive_int,
        help="with --stage order --dataset D: the order with this data-order seed, for seed runs "
        "(work/<suite>/data/<D>/seed<N>/)",
    )
    q.add_argument("--force", action="store_true", help="rerun every stage")
    options.add_progress(q)
    q.add_argument("--verbose", action="store_true", help="debug logging")
    q.set_defaults(func=_cmd_build)


def _add_batch(dsub: argparse._SubParsersAction) -> None:
    q = dsub.add_parser(
        "batch", help="print the training batch of a step (shape, hash, tokens or text)"
    )
    options.add_suite(q)
    q.add_argument("--dataset", required=True, help="standard or deduped")
    q.add_argument("--step", type=int, required=True, help="training step (0-based)")
    q.add_argument("--decode", action="store_true", help="print decoded text instead of token ids")
    q.add_argument("--rows", type=_positive_int, help="print only the first ROWS rows")
    q.set_defaults(func=_cmd_batch)


def _add_unshard(dsub: argparse._SubParsersAction) -> None:
    q = dsub.add_parser(
        "unshard", help="join downloaded pre-shuffled shards (document-000NN-of-000MM.bin + .idx)"
    )
    q.add_argument("src", help="folder holding the downloaded shards and document.idx")
    q.add_argument("--out", help="output prefix (writes PREFIX.bin and PREFIX.idx)")
    options.add_suite(
        q,
        required=False,
        help="with --dataset: write where the suite's data.pretokenized expects it",
    )
    q.add_argument("--dataset", help="standard or deduped")
    options.add_progress(q)
    q.set_defaults(func=_cmd_unshard)


def _add_audit(dsub: argparse._SubParsersAction) -> None:
    q = dsub.add_parser(
        "audit",
        help="check pre-shuffled training files: rows, EOD tokens, shard hashes, repeated rows",
    )
    q.add_argument(
        "path",
        nargs="?",
        help="folder of shards <name>-000NN-of-000MM.bin (+ .idx), a .bin, or a prefix",
    )
    options.add_suite(q, required=False, help="instead of PATH: the training rows of this suite")
    q.add_argument(
        "--dataset",
        nargs="+",
        choices=paths.DATASETS,
        help="with --suite: these datasets (default: both)",
    )
    q.add_argument(
        "--row-tokens",
        type=_positive_int,
        default=AU.ROW_TOKENS,
        help="tokens per row (PATH only; default 2049)",
    )
    q.add_argument(
        "--step-rows",
        type=_positive_int,
        default=AU.STEP_ROWS,
        help="rows per step (PATH only; default 1024)",
    )
    q.add_argument(
        "--eod", type=int, default=AU.EOD_ID, help="end-of-document token id (PATH only; default 0)"
    )
    q.add_argument(
        "--hashes",
        help="'<file> <sha256>' lines to check against (PATH default: Pythia's published list)",
    )
    q.add_argument("--no-repeats", action="store_true", help="skip the search for repeated rows")
    q.add_argument(
        "--json", action="store_true", help="print the JSON record instead of the report"
    )
    q.add_argument("--out", help="also write the JSON record to this file")
    options.add_progress(q)
    q.set_defaults(func=_cmd_audit)
