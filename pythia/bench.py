"""``pythia bench train``, ``pythia bench score`` and ``pythia bench memorization``: throughput.

``pythia bench memorization --suite micro --model 1.8M [--rows 1024] [--threads 2]`` times the
memorization scan (:mod:`pythia.evaluate.memorization`: flags and match runs from one teacher-forced
pass; and with every fractional score) against ``model.generate`` (greedy, ``min_length``) on the
same training sequences of one checkpoint, batch by batch interleaved, checks that flags, match
runs and scores are identical, and reports tokens/s and the ratios (goal: scan >= 20x generate).

``pythia bench score --suite micro --model 1.8M [--threads 2]`` times, in alternating rounds
on the same batches and thread count, our training step (as below), the scoring engine
(``pythia.evaluate.score``: per-token log-probabilities and greedy tokens of every position
of the batch) and the plain way to get the same numbers (``model(x).logits``, then
``log_softmax``, ``gather`` and ``argmax``), interleaved batch by batch so that load from
other processes falls on all three alike, and reports tokens/s of each (best batch) and the
ratios scoring / training (goal >= 2.5) and scoring / plain forward as medians of the
per-batch ratios. A scored token is a predicted position, so a batch scores as many tokens as
a training step trains.

``pythia bench train``: training throughput and model-FLOPs utilisation (MFU).

    pythia bench train --suite micro --model 1.8M [--steps 20] [--threads 2] [--out FILE]

For one model (or ``--model all``) it times

* our trainer's step (``pythia.train.loop.Trainer.train_step``: the code ``pythia train`` runs),
* the same model, batch, data and optimizer settings trained by ``transformers.Trainer``
  (AdamW, betas/eps/weight decay/clipping as the suite, no evaluation, no saving),
* the machine's dense fp32 matmul peak, measured in the same run with the same thread count
  (best of several ``torch.mm`` of n x n matrices: 2 n^3 flops each),

and reports tokens/s, seconds per step, MFU = achieved model flops / matmul peak, and the
ratio ours / Trainer. The two run in alternating rounds (``--rounds``); the step time is the
best over all timed steps and the peak the better of a measurement before and after, as
other processes on a shared machine can only slow either down; medians are reported too.

Model flops per trained token (forward + backward, PaLM's convention):

    6 * (N_nonembedding + V * d)  +  12 * L * d * T

N_nonembedding = the transformer blocks and final LayerNorm; V * d = the output layer (the input
embedding is a lookup and costs no matmul flops); 12 L d T = the attention score and value
products (QK^T and AV, 2 matmuls of 2 T d flops per token and layer, x3 for fwd + bwd; the
full T x T, as PaLM counts it, not the causal half). T = seq_len.

The batch comes from ``get_batch`` when the suite's data is built, else uniformly random tokens
(recorded as ``data`` in the result): throughput does not depend on token values.
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pythia import paths
from pythia.config import ModelSpec, Suite, load_suite
from pythia.errors import require_device
from pythia.io import write_json

log = logging.getLogger("pythia.bench")


def flops_per_token(suite: Suite, spec: ModelSpec) -> float:
    """Model flops per trained token (see the module docstring)."""
    d, L, T = spec.hidden_size, spec.num_layers, suite.training.seq_len
    matmul_params = spec.non_embedding_params() + suite.vocab_rows(spec) * d
    return 6.0 * matmul_params + 12.0 * L * d * T


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> dict[str, Any]:
    """Dense fp32 matmul flops/s of this machine at ``threads`` threads: the best of
    ``repeats`` ``torch.mm`` calls at sizes n/2 and n (2 m^3 flops each)."""
    torch.set_num_threads(threads)
    best_rate, best = 0.0, {}
    for m in (n // 2, n):
        a = torch.randn(m, m)
        b = torch.randn(m, m)
        torch.mm(a, b)  # warm up
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            dt = time.perf_counter() - t0
            if 2.0 * m**3 / dt > best_rate:
                best_rate, best = 2.0 * m**3 / dt, {"n": m, "seconds": dt}
    return {**best, "flops_per_s": best_rate, "threads": threads}


def bench_batches(suite: Suite, dataset: str, steps: int) -> tuple[list[np.ndarray], str]:
    """``steps`` batches: the real ones from get_batch when built, else random tokens."""
    try:
        from pythia.data.batches import get_batch

        return [get_batch(suite, dataset, s) for s in range(steps)], "get_batch"
    except (FileNotFoundError, ImportError, IndexError, ValueError):
        rng = np.random.default_rng(suite.training.seed)
        t = suite.training
        shape = (t.global_batch, t.seq_len + 1)
        return [
            rng.integers(0, suite.tokenizer.vocab_size, shape, dtype=np.int64) for _ in range(steps)
        ], "synthetic"


def bench_ours(
    suite: Suite, model: str, batches: list[np.ndarray], warmup: int, threads: int
) -> dict[str, Any]:
    from pythia.train.loop import Trainer, TrainOptions

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            TrainOptions(suite=suite, model=model, out=Path(tmp) / "run", threads=threads)
        )
        times = []
        for s, batch in enumerate(batches):
            t0 = time.perf_counter()
            out = trainer.train_step(s, batch)
            times.append(time.perf_counter() - t0)
    return {
        "times": times[warmup:],
        "final_loss": out["loss"],
        "micro_batch": trainer.micro,
        "accumulation": trainer.accum,
    }


def bench_hf_trainer(
    suite: Suite, model: str, batches: list[np.ndarray], warmup: int, threads: int
) -> dict[str, Any]:
    """The same model/batches through ``transformers.Trainer`` (same AdamW settings, no eval).

    It runs with torch's default (non-deterministic) settings, as a Trainer user gets them:
    under ``torch.use_deterministic_algorithms`` its step is ~2.5x slower on CPU, which would
    flatter our (deterministic) loop.
    """
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from transformers.utils import logging as hf_logging

    from pythia.model import build_model
    from pythia.train.deepspeed_config import micro_and_accum

    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(False)
    torch.utils.deterministic.fill_uninitialized_memory = True
    spec = suite.model(model)
    t = suite.training
    micro, accum = micro_and_accum(suite, 1)
    net = build_model(suite, spec, seed=t.seed, device="cpu", attn_implementation="sdpa")
    rows = np.concatenate(batches)  # (steps * B, L+1), in training order

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            x = torch.from_numpy(rows[i].astype(np.int64))
            return {"input_ids": x[:-1], "labels": x[:-1]}  # transformers shifts labels itself

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=micro,
            gradient_accumulation_steps=accum,
            max_steps=len(batches),
            learning_rate=spec.peak_lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=t.weight_decay,
            adam_beta1=t.adam_beta1,
            adam_beta2=t.adam_beta2,
            adam_epsilon=t.adam_eps,
            max_grad_norm=t.grad_clip,
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            use_cpu=True,
            dataloader_num_workers=0,
            seed=t.seed,
            disable_tqdm=True,
            dataloader_drop_last=True,
        )
        trainer = Trainer(model=net, args=args, train_dataset=Rows(), callbacks=[Clock()])
        trainer.train()
        optim = str(args.optim)
    gaps = np.diff(stamps)[max(warmup - 1, 0) :]
    return {"times": [float(g) for g in gaps], "optim": optim}


def bench_model(
    suite: Suite,
    model: str,
    steps: int,
    warmup: int,
    threads: int,
    dataset: str,
    peak: dict,
    trainer: bool = True,
    rounds: int = 2,
) -> dict[str, Any]:
    """Ours and Trainer in alternating rounds; the step time is the best (min) over all timed
    steps, which other processes on a shared machine can only make worse; medians are kept."""
    spec = suite.model(model)
    t = suite.training
    batches, source = bench_batches(suite, dataset, steps + warmup)
    fpt = flops_per_token(suite, spec)
    tokens = t.tokens_per_step
    res: dict[str, Any] = {
        "model": model,
        "total_params": suite.total_params(spec),
        "non_embedding_params": spec.non_embedding_params(),
        "flops_per_token": fpt,
        "tokens_per_step": tokens,
        "data": source,
        "rounds": rounds,
    }
    runs: dict[str, list[dict]] = {"ours": [], "hf_trainer": []}
    for _ in range(rounds):
        runs["ours"].append(bench_ours(suite, model, batches, warmup, threads))
        if trainer:
            runs["hf_trainer"].append(bench_hf_trainer(suite, model, batches, warmup, threads))

    def summarise(rs: list[dict]) -> dict:
        times = [x for r in rs for x in r.pop("times")]
        out = dict(rs[-1].items())
        out["step_seconds"] = float(np.min(times))
        out["median_step_seconds"] = float(np.median(times))
        out["tokens_per_s"] = tokens / out["step_seconds"]
        out["median_tokens_per_s"] = tokens / out["median_step_seconds"]
        out["model_flops_per_s"] = fpt * out["tokens_per_s"]
        out["mfu"] = out["model_flops_per_s"] / peak["flops_per_s"]
        out["median_mfu"] = fpt * out["median_tokens_per_s"] / peak["flops_per_s"]
        out["timed_steps"] = len(times)
        return out

    res["ours"] = summarise(runs["ours"])
    log.info(
        "%s ours: %.3f s/step, %.0f tok/s, MFU %.1f%%",
        model,
        res["ours"]["step_seconds"],
        res["ours"]["tokens_per_s"],
        100 * res["ours"]["mfu"],
    )
    if trainer:
        res["hf_trainer"] = summarise(runs["hf_trainer"])
        res["ours_over_trainer"] = res["ours"]["tokens_per_s"] / res["hf_trainer"]["tokens_per_s"]
        res["ours_over_trainer_median"] = (
            res["ours"]["median_tokens_per_s"] / res["hf_trainer"]["median_tokens_per_s"]
        )
        log.info(
            "%s transformers.Trainer: %.3f s/step, %.0f tok/s; ours/Trainer %.2fx",
            model,
            res["hf_trainer"]["step_seconds"],
            res["hf_trainer"]["tokens_per_s"],
            res["ours_over_trainer"],
        )
    return res


def bench_train(
    suite: str | Suite,
    models: list[str],
    steps: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    dataset: str = "standard",
    trainer: bool = True,
    matmul_n: int = 2048,
    rounds: int = 2,
) -> dict[str, Any]:
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    threads = threads or torch.get_num_threads()
    if models == ["all"]:
        models = list(suite.models)
    for m in models:
        suite.model(m)  # an unknown name fails now, not after the peak measurement
    peak = matmul_peak(threads, matmul_n)
    log.info("fp32 matmul peak at %d threads: %.1f GFLOP/s", threads, peak["flops_per_s"] / 1e9)
    results = [
        bench_model(suite, m, steps, warmup, threads, dataset, peak, trainer, rounds)
        for m in models
    ]
    # measured again afterwards; MFU uses the better of the two (like the step times, the
    # best case is what other processes on a shared machine cannot inflate)
    after = matmul_peak(threads, matmul_n)
    best = max(peak["flops_per_s"], after["flops_per_s"])
    for r in results:
        for key in ("ours", "hf_trainer"):
            if key in r:
                r[key]["mfu"] = r[key]["model_flops_per_s"] / best
                r[key]["median_mfu"] = r["flops_per_token"] * r[key]["median_tokens_per_s"] / best
    return {
        "suite": suite.name,
        "suite_digest": suite.digest,
        "threads": threads,
        "steps": steps,
        "warmup": warmup,
        "device": "cpu",
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "matmul_peak": peak,
        "matmul_peak_after": after,
        "peak_flops_per_s": best,
        "flops_formula": "6*(N_nonembedding + V*d) + 12*L*d*T per token (fwd+bwd; input embedding excluded)",
        "models": results,
    }


@torch.inference_mode()
def _plain_forward(model, batch: np.ndarray) -> None:
    """The same numbers as ``score`` the usual way: full logits, log_softmax, gather, argmax."""
    x = torch.from_numpy(batch)
    logits = model(input_ids=x[:, :-1], use_cache=False).logits  # (B, L, V)
    logprobs = torch.log_softmax(logits.float(), dim=-1).gather(2, x[:, 1:, None])  # (B, L, 1)
    logits.argmax(-1).numpy(), logprobs.numpy()


def _timings(seconds: list[float], tokens: int) -> dict[str, Any]:
    return {
        "step_seconds": float(np.min(seconds)),
        "median_step_seconds": float(np.median(seconds)),
        "tokens_per_s": tokens / float(np.min(seconds)),
        "median_tokens_per_s": tokens / float(np.median(seconds)),
        "timed_batches": len(seconds),
    }


def bench_score_model(
    suite: Suite,
    name: str,
    batches: list[np.ndarray],
    warmup: int,
    threads: int,
    batch_size: int | None = None,
) -> dict[str, list[float]]:
    """Seconds per batch of a training step, of scoring and of a plain forward, interleaved batch by
    batch (train, score, plain on batch i, then batch i+1), so that load from other processes on a
    shared machine falls on all three alike and the per-batch ratios stay fair."""
    from pythia.evaluate.scoring import score
    from pythia.model import build_model
    from pythia.train.loop import Trainer, TrainOptions

    times: dict[str, list[float]] = {"train": [], "score": [], "plain_forward": []}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            TrainOptions(suite=suite, model=name, out=Path(tmp) / "run", threads=threads)
        )
        model = build_model(
            suite, name, seed=suite.training.seed, attn_implementation="sdpa"
        ).eval()
        for step, batch in enumerate(batches):
            torch.use_deterministic_algorithms(True, warn_only=True)  # as `pythia train` runs
            t0 = time.perf_counter()
            trainer.train_step(step, batch)
            t1 = time.perf_counter()
            torch.use_deterministic_algorithms(False)  # as a section runs: torch's default kernels
            score(model, batch, batch_size=batch_size)
            t2 = time.perf_counter()
            _plain_forward(model, batch)
            t3 = time.perf_counter()
            if step >= warmup:
                times["train"].append(t1 - t0)
                times["score"].append(t2 - t1)
                times["plain_forward"].append(t3 - t2)
    return times


def bench_score(
    suite: str | Suite,
    models: list[str],
    steps: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    dataset: str = "standard",
    rounds: int = 2,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Scoring vs training tokens/s of each model (see the module docstring). The headline ratio is the
    median over batches of (training seconds / scoring seconds) of the same batch."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    threads = threads or torch.get_num_threads()
    if models == ["all"]:
        models = list(suite.models)
    tokens = suite.training.tokens_per_step
    results = []
    for name in models:
        batches, source = bench_batches(suite, dataset, steps + warmup)
        times: dict[str, list[float]] = {"train": [], "score": [], "plain_forward": []}
        for _ in range(rounds):
            for key, ts in bench_score_model(
                suite, name, batches, warmup, threads, batch_size
            ).items():
                times[key] += ts
        train, scored, plain = (np.array(times[k]) for k in ("train", "score", "plain_forward"))
        res: dict[str, Any] = {
            "model": name,
            "total_params": suite.total_params(suite.model(name)),
            "tokens_per_batch": tokens,
            "data": source,
            "rounds": rounds,
        }
        res.update({key: _timings(ts, tokens) for key, ts in times.items()})
        res["score_over_train"] = float(np.median(train / scored))
        res["score_over_train_best"] = res["score"]["tokens_per_s"] / res["train"]["tokens_per_s"]
        res["score_over_plain_forward"] = float(np.median(plain / scored))
        log.info(
            "%s: train %.0f tok/s, score %.0f tok/s, plain forward %.0f tok/s (best); score/train %.2fx "
            "(median of per-batch ratios)",
            name,
            res["train"]["tokens_per_s"],
            res["score"]["tokens_per_s"],
            res["plain_forward"]["tokens_per_s"],
            res["score_over_train"],
        )
        results.append(res)
    return {
        "suite": suite.name,
        "suite_digest": suite.digest,
        "threads": threads,
        "steps": steps,
        "warmup": warmup,
        "batch_size": batch_size,
        "device": "cpu",
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "models": results,
    }


def _cmd_bench_score(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
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
    out = (
        args.out
        or paths.suite_dir(result["suite"])
        / "bench"
        / f"score_{'_'.join(args.model)}_t{result['threads']}.json"
    )
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


def _cmd_bench_train(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
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
    )
    suite_name = result["suite"]
    out = (
        args.out
        or paths.suite_dir(suite_name)
        / "bench"
        / f"train_{'_'.join(args.model)}_t{result['threads']}.json"
    )
    write_json(out, result)
    for m in result["models"]:
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
    print(
        f"matmul peak {result['peak_flops_per_s'] / 1e9:.1f} GFLOP/s at {result['threads']} threads (before: {result['matmul_peak']['flops_per_s'] / 1e9:.1f}"
        f", after: {result['matmul_peak_after']['flops_per_s'] / 1e9:.1f}); wrote {out}"
    )
    return 0


def _cmd_bench_memorization(args: argparse.Namespace) -> int:
    from pythia import runs
    from pythia.evaluate.memorization import ScanOptions, bench_memorization

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    require_device(args.device)
    cat = runs.from_arguments(args.suite, args)
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
        cat,
        ScanOptions(args.prompt, args.continuation),
    )
    out = (
        args.out
        or paths.suite_dir(r["suite"])
        / "bench"
        / f"memorization_{args.model}_{args.dataset}_t{r['threads']}.json"
    )
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (training and scoring throughput, MFU)")
    bsub = p.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    b = bsub.add_parser("train", help="tokens/s and MFU of our loop vs transformers.Trainer")
    b.add_argument("--suite", required=True)
    b.add_argument("--model", nargs="+", required=True, help="model name(s), or 'all'")
    b.add_argument("--steps", type=int, default=20, help="timed steps (after --warmup)")
    b.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    b.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    b.add_argument("--dataset", default="standard", choices=paths.DATASETS)
    b.add_argument("--matmul-n", type=int, default=2048, help="size of the peak-measuring matmul")
    b.add_argument("--rounds", type=int, default=2, help="alternating rounds of ours and Trainer")
    b.add_argument(
        "--no-trainer", action="store_true", help="skip the transformers.Trainer comparison"
    )
    b.add_argument(
        "--out",
        type=Path,
        help="result JSON (default work/<suite>/bench/train_<models>_t<threads>.json)",
    )
    b.set_defaults(func=_cmd_bench_train)

    b = bsub.add_parser(
        "score", help="scoring tokens/s vs training tokens/s of the same model and threads"
    )
    b.add_argument("--suite", required=True)
    b.add_argument("--model", nargs="+", required=True, help="model name(s), or 'all'")
    b.add_argument("--steps", type=int, default=20, help="timed batches (after --warmup)")
    b.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    b.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    b.add_argument("--dataset", default="standard", choices=paths.DATASETS)
    b.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of training and scoring"
    )
    b.add_argument(
        "--batch-size", type=int, help="sequences per scoring forward pass (default: the engine's)"
    )
    b.add_argument(
        "--out",
        type=Path,
        help="result JSON (default work/<suite>/bench/score_<models>_t<threads>.json)",
    )
    b.set_defaults(func=_cmd_bench_score)

    b = bsub.add_parser(
        "memorization", help="memorization scan tokens/s vs model.generate on the same sequences"
    )
    b.add_argument("--suite", required=True)
    b.add_argument("--model", required=True, help="a model of the suite")
    b.add_argument("--dataset", default="standard", choices=paths.DATASETS)
    b.add_argument("--step", type=int, default=None, help="checkpoint step (default: the last)")
    b.add_argument(
        "--rows", type=int, default=1024, help="training sequences (the first ones of the order)"
    )
    b.add_argument("--batch", type=int, default=256, help="sequences per batch, for both")
    b.add_argument("--rounds", type=int, default=2, help="timed rounds over the sequences")
    b.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    b.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    b.add_argument("--prompt", type=int, default=32, help="k")
    b.add_argument("--continuation", type=int, default=32, help="l")
    from pythia import runs

    runs.add_arguments(b)
    b.add_argument(
        "--out",
        type=Path,
        help="result JSON (default work/<suite>/bench/memorization_<model>_<dataset>_t<threads>.json)",
    )
    b.set_defaults(func=_cmd_bench_memorization)
