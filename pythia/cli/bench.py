"""``pythia bench``: speed measurements (:mod:`pythia.bench`; the harness's in
:mod:`pythia.evaluate.benchmarks`).

    pythia bench train --suite S --model M [M ...]|all [--steps N] [--threads N] [--bf16 auto|on|off]
                       [--agreement-steps N] [--out FILE]
    pythia bench score --suite S --model M [M ...]|all [--steps N] [--threads N] [--out FILE]
    pythia bench score --suite S --model M [M ...]|all --requests [TASKS_JSON] [--rounds N]
    pythia bench memorization --suite S --model M [--rows N] [--batch N] [--device cpu|cuda] ...
    pythia bench harness --suite S [--model M] [--task T ...] [--batch-size N] [--out FILE] ...

Each writes its result JSON (default ``work/<suite>/bench/...``) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from pythia import paths
from pythia.bench import bench_memorization, bench_score, bench_train
from pythia.cli import options
from pythia.errors import require_device
from pythia.evaluate import benchmarks
from pythia.evaluate.memorization_kernels import ScanOptions
from pythia.evaluate.packed_bench import bench_requests
from pythia.io import write_json


def _log_info() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


def _cmd_bench_train(args: argparse.Namespace) -> int:
    _log_info()
    result = bench_train(
        args.suite,
        args.model,
        args.steps,
        args.warmup,
        args.threads,
        args.dataset,
        trainer=not args.no_trainer,
        matmul_n=args.matmul_n,
        rounds=args.rounds,
        bf16=args.bf16,
        agreement_steps=args.agreement_steps,
    )
    name = f"train_{'_'.join(args.model)}_t{result['threads']}.json"
    out = args.out or paths.suite_dir(result["suite"]) / "bench" / name
    write_json(out, result)
    for m in result["models"]:
        _print_train_model(m, result)
    print(
        f"matmul peak {result['peak_flops_per_s'] / 1e9:.1f} GFLOP/s at {result['threads']} threads (before: {result['matmul_peak']['flops_per_s'] / 1e9:.1f}"
        f", after: {result['matmul_peak_after']['flops_per_s'] / 1e9:.1f}); wrote {out}"
    )
    return 0


def _print_train_model(m: dict, result: dict) -> None:
    """One model's lines of ``bench train``'s summary."""
    line = (
        f"{m['model']:>6}: ours {m['ours']['step_seconds'] * 1e3:7.1f} ms/step (median "
        f"{m['ours']['median_step_seconds'] * 1e3:.1f}) {m['ours']['tokens_per_s']:9.0f} tok/s "
        f"MFU {100 * m['ours']['mfu']:5.1f}%"
    )
    if "hf_trainer" in m:
        line += (
            f" | Trainer {m['hf_trainer']['tokens_per_s']:9.0f} tok/s MFU {100 * m['hf_trainer']['mfu']:5.1f}%"
            f" | ours/Trainer {m['ours_over_trainer']:.2f}x"
        )
    print(line)
    if "ours_bf16" in m:
        line = (
            f"{'':>6}  ours bf16 {m['ours_bf16']['step_seconds'] * 1e3:7.1f} ms/step "
            f"{m['ours_bf16']['tokens_per_s']:9.0f} tok/s ({m['ours_bf16_over_ours']:.2f}x our fp32)"
        )
        if "hf_trainer_bf16" in m:
            line += (
                f" | Trainer bf16 {m['hf_trainer_bf16']['tokens_per_s']:9.0f} tok/s"
                f" | ours bf16/Trainer {m['ours_bf16_over_trainer']:.2f}x,"
                f" Trainer bf16/Trainer {m['hf_trainer_bf16_over_trainer']:.2f}x"
            )
        print(line)
    g = m["bf16_gemm"]
    print(
        f"{'':>6}  output-layer GEMM: bf16 {g['bf16_flops_per_s'] / 1e9:.1f} vs fp32 "
        f"{g['fp32_flops_per_s'] / 1e9:.1f} GFLOP/s ({g['bf16_over_fp32']:.2f}x; native bf16: "
        f"{result['bf16']['native']})"
    )
    if "loss_agreement" in m:
        a = m["loss_agreement"]
        print(
            f"{'':>6}  loss bf16 vs fp32, {a['steps']} steps ({a['data']} data): max |d| "
            f"{a['max_abs_diff']:.4f}, max relative {a['max_relative_diff']:.4f}, final "
            f"relative {a['final_relative_diff']:.4f} (tolerance {a['tolerance']['max_step_relative']}"
            f" / {a['tolerance']['final_relative']}: {'within' if a['within_tolerance'] else 'OUTSIDE'})"
        )


def _cmd_bench_requests(args: argparse.Namespace) -> int:
    """``bench score --requests``: lm-eval's HFLM vs the packed engine on section 02's requests."""
    manifest = benchmarks.read_manifest(
        args.requests
        if args.requests != "suite"
        else benchmarks.tasks_dir(args.suite) / "tasks.json"
    )
    result = bench_requests(
        args.suite,
        args.model,
        manifest,
        num_fewshot=args.num_fewshot,
        rounds=args.rounds,
        threads=args.threads,
    )
    name = f"score_requests_{'_'.join(args.model)}_t{result['threads']}.json"
    out = args.out or paths.suite_dir(result["suite"]) / "bench" / name
    write_json(out, result)
    for m in result["models"]:
        print(
            f"{m['model']:>6}: {m['requests']} requests | lm-eval HFLM "
            f"{m['lm_eval']['requests_per_s']:8.0f} req/s | packed {m['packed']['requests_per_s']:8.0f} "
            f"req/s (best round) | {m['packed_over_lm_eval']:.2f}x | input tokens "
            f"{m['input_tokens_lm_eval']} -> {m['input_tokens_packed']} | answers within "
            f"{m['max_relative_difference']:.1e}, greedy {'same' if m['same_greedy'] else 'DIFFERENT'}"
        )
    print(f"{result['threads']} threads, tasks {', '.join(result['tasks'])}; wrote {out}")
    return 0


def _cmd_bench_score(args: argparse.Namespace) -> int:
    _log_info()
    if args.requests:
        return _cmd_bench_requests(args)
    result = bench_score(
        args.suite,
        args.model,
        args.steps,
        args.warmup,
        args.threads,
        args.dataset,
        args.rounds,
        args.batch_size,
    )
    name = f"score_{'_'.join(args.model)}_t{result['threads']}.json"
    out = args.out or paths.suite_dir(result["suite"]) / "bench" / name
    write_json(out, result)
    for m in result["models"]:
        print(
            f"{m['model']:>6}: train {m['train']['tokens_per_s']:9.0f} tok/s | score {m['score']['tokens_per_s']:9.0f} "
            f"tok/s | plain forward {m['plain_forward']['tokens_per_s']:9.0f} tok/s (best of each) | score = "
            f"{m['score_over_train']:.2f}x training, {m['score_over_plain_forward']:.2f}x plain forward "
            f"(median per-batch ratios; ratio of bests {m['score_over_train_best']:.2f}x)"
        )
    print(
        f"{result['threads']} threads, data: {result['models'][0]['data'] if result['models'] else '-'}; wrote {out}"
    )
    return 0


def _cmd_bench_memorization(args: argparse.Namespace) -> int:
    _log_info()
    require_device(args.device)
    r = bench_memorization(
        args.suite,
        args.model,
        args.dataset,
        args.step,
        args.rows,
        args.batch,
        args.rounds,
        args.threads,
        args.device,
        options.catalogue(args),
        ScanOptions(args.prompt, args.continuation),
    )
    name = f"memorization_{args.model}_{args.dataset}_t{r['threads']}.json"
    out = args.out or paths.suite_dir(r["suite"]) / "bench" / name
    write_json(out, r)
    t = r["timings"]
    print(
        f"{r['checkpoint']}, {r['rows']} sequences (k={r['options']['prompt']}, l={r['options']['continuation']}), "
        f"{r['threads']} threads: scan {t['scan']['tokens_per_s']:.0f} tok/s | scan + every score "
        f"{t['scan_scores']['tokens_per_s']:.0f} tok/s | model.generate {t['generate']['tokens_per_s']:.0f} tok/s"
    )
    print(
        f"scan = {r['scan_over_generate']:.1f}x generate, scan + scores = {r['scan_scores_over_generate']:.2f}x "
        f"(median per-batch ratios); flags identical: {r['flags_identical']}, match runs identical: "
        f"{r['match_runs_identical']}, scores identical: {r['scores_identical']}; memorized {r['memorized']}; wrote {out}"
    )
    return 0


HARNESS_SUMMARY = (
    "checkpoint",
    "tokens",
    "adapter_tokens_per_s",
    "cli_tokens_per_s",
    "ratio_adapter_over_cli",
    "ratio_adapter_over_cli_in_process",
    "identical_values",
    "max_relative_difference",
)
"""The keys of ``pythia bench harness``'s result it prints."""


def _cmd_bench_harness(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    cat = options.catalogue(args)
    model = args.model or list(cat.suite.models)[-1]
    step = args.step if args.step is not None else cat.available_steps(model, args.dataset)[-1]
    ckpt = cat.checkpoint(model, args.dataset, step)
    folder = benchmarks.tasks_dir(args.suite)
    benchmarks.read_manifest(folder / "tasks.json")
    res = benchmarks.bench_adapter_vs_cli(
        ckpt,
        args.task,
        folder,
        batch_size=args.batch_size,
        threads=args.threads,
        rounds=args.rounds,
    )
    name = f"benchmarks_{model}_{'-'.join(args.task)}.json"
    out = args.out or paths.suite_dir(args.suite) / "bench" / name
    write_json(out, res)
    print(json.dumps({k: res[k] for k in HARNESS_SUMMARY}, indent=1))
    return 0


def _add_timed_models(b: argparse.ArgumentParser, unit: str) -> None:
    """What `bench train` and `bench score` share: the suite, its models, the timed and untimed
    ``unit`` (steps or batches), threads and dataset."""
    options.add_suite(b)
    b.add_argument("--model", nargs="+", required=True, help="model name(s), or 'all'")
    b.add_argument("--steps", type=int, default=20, help=f"timed {unit} (after --warmup)")
    b.add_argument("--warmup", type=int, default=3, help=f"untimed {unit} first")
    options.add_threads(b)
    b.add_argument("--dataset", default="standard", choices=options.DATASETS)


def _add_train(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("train", help="tokens/s and MFU of our loop vs transformers.Trainer")
    _add_timed_models(b, "steps")
    b.add_argument("--matmul-n", type=int, default=2048, help="size of the peak-measuring matmul")
    b.add_argument("--rounds", type=int, default=2, help="alternating rounds of ours and Trainer")
    b.add_argument(
        "--no-trainer", action="store_true", help="skip the transformers.Trainer comparison"
    )
    b.add_argument(
        "--bf16",
        choices=["auto", "on", "off"],
        default="auto",
        help="also time our CPU bf16 step and Trainer's bf16=True: auto (default) where the CPU "
        "multiplies bf16 natively (AVX512-BF16/AMX), on, off",
    )
    b.add_argument(
        "--agreement-steps",
        type=int,
        default=100,
        help="train this many steps in fp32 and in CPU bf16 from the same init and compare the "
        "loss curves (0: skip; default 100)",
    )
    b.add_argument(
        "--out",
        type=Path,
        help="result JSON (default work/<suite>/bench/train_<models>_t<threads>.json)",
    )
    b.set_defaults(func=_cmd_bench_train)


def _add_score(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "score", help="scoring tokens/s vs training tokens/s of the same model and threads"
    )
    _add_timed_models(b, "batches")
    b.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of training and scoring"
    )
    b.add_argument(
        "--batch-size", type=int, help="sequences per scoring forward pass (default: the engine's)"
    )
    b.add_argument(
        "--requests",
        metavar="TASKS_JSON",
        nargs="?",
        const="suite",
        help="time section 02's lm-eval requests instead: lm-eval's HFLM vs the packed engine on "
        "the same requests, requests/s of each (the tasks.json of a task folder; alone: the suite's, "
        "work/<suite>/benchmarks/tasks/tasks.json)",
    )
    b.add_argument(
        "--num-fewshot", type=int, default=0, help="with --requests: the tasks' shot count"
    )
    b.add_argument(
        "--out",
        type=Path,
        help="result JSON (default work/<suite>/bench/score_<models>_t<threads>.json)",
    )
    b.set_defaults(func=_cmd_bench_score)


def _add_memorization(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "memorization", help="memorization scan tokens/s vs model.generate on the same sequences"
    )
    options.add_suite(b)
    options.add_run(b, model_help="a model of the suite", dataset_default="standard")
    b.add_argument("--step", type=int, default=None, help="checkpoint step (default: the last)")
    b.add_argument(
        "--rows", type=int, default=1024, help="training sequences (the first ones of the order)"
    )
    b.add_argument("--batch", type=int, default=256, help="sequences per batch, for both")
    b.add_argument("--rounds", type=int, default=2, help="timed rounds over the sequences")
    options.add_threads(b)
    options.add_device(b)
    b.add_argument("--prompt", type=int, default=32, help="k")
    b.add_argument("--continuation", type=int, default=32, help="l")
    options.add_checkpoints(b)
    b.add_argument(
        "--out",
        type=Path,
        help="result JSON (default work/<suite>/bench/memorization_<model>_<dataset>_t<threads>.json)",
    )
    b.set_defaults(func=_cmd_bench_memorization)


def _add_harness(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("harness", help="tokens/s of our lm-eval adapter vs lm-eval's command line")
    options.add_suite(b)
    options.add_run(
        b, required=False, model_help="default: the suite's largest", dataset_default="standard"
    )
    b.add_argument("--step", type=int, help="default: the last checkpoint")
    b.add_argument("--task", nargs="+", default=["lambada_incorpus"])
    b.add_argument("--batch-size", type=int, default=32)
    options.add_threads(b)
    b.add_argument("--rounds", type=int, default=2)
    b.add_argument("--out", type=Path)
    options.add_checkpoints(b)
    b.set_defaults(func=_cmd_bench_harness)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="speed measurements (training, scoring, memorization scan, lm-eval adapter)"
    )
    bsub = options.subcommands(p, "bench")
    _add_train(bsub)
    _add_score(bsub)
    _add_memorization(bsub)
    _add_harness(bsub)
