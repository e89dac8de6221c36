"""Speed measurements: ``pythia bench train``, ``pythia bench score`` and ``pythia bench memorization``.

(``pythia bench harness``, our lm-eval adapter against lm-eval's command line, is
:func:`pythia.evaluate.benchmarks.bench_adapter_vs_cli`; the commands are :mod:`pythia.cli.bench`.)

``pythia bench memorization --suite micro --model 1.8M [--rows 1024] [--threads 2]`` times the
memorization scan (:mod:`pythia.evaluate.memorization_kernels`: flags and match runs from one
teacher-forced pass; and with every fractional score) against ``model.generate`` (greedy,
``min_length``: :func:`generate_reference`, what Pythia ran) on the same training sequences of one
checkpoint, batch by batch interleaved, checks that flags, match runs and scores are identical, and
reports tokens/s and the ratios (goal: scan >= 20x generate).

``pythia bench score --suite micro --model 1.8M [--threads 2]`` times, in alternating rounds
on the same batches and thread count, our training step (as below), the scoring engine
(``pythia.evaluate.scoring.score``: per-token log-probabilities and greedy tokens of every position
of the batch) and the plain way to get the same numbers (``model(x).logits``, then
``log_softmax``, ``gather`` and ``argmax``), interleaved batch by batch so that load from
other processes falls on all three alike, and reports tokens/s of each (best batch) and the
ratios scoring / training (goal >= 2.5) and scoring / plain forward as medians of the
per-batch ratios. A scored token is a predicted position, so a batch scores as many tokens as
a training step trains.

``pythia bench train``: training throughput and model-FLOPs utilisation (MFU).

    pythia bench train --suite micro --model 1.8M [--steps 20] [--threads 2] [--bf16 auto|on|off]
                       [--agreement-steps 100] [--out FILE]

For one model (or ``--model all``) it times

* our trainer's step (``pythia.train.loop.Trainer.train_step``: the code ``pythia train`` runs),
  in fp32 (``ours``) and, with ``--bf16 on`` or ``auto`` on a CPU with native bf16 GEMMs, in the
  opt-in CPU bf16 precision (``ours_bf16``; :mod:`pythia.train.precision`),
* the same model, batch, data and optimizer settings trained by ``transformers.Trainer``
  (AdamW, betas/eps/weight decay/clipping as the suite, no evaluation, no saving), fp32
  (``hf_trainer``) and, with the bf16 sides, ``bf16=True`` (``hf_trainer_bf16``: its autocast),
* the machine's dense fp32 matmul peak, measured in the same run with the same thread count
  (best of several ``torch.mm`` of n x n matrices: 2 n^3 flops each),

and reports tokens/s, seconds per step, MFU = achieved model flops / matmul peak, and the
ratio of each side to fp32 Trainer (``ours_over_trainer``, ``ours_bf16_over_trainer``,
``hf_trainer_bf16_over_trainer``). It also records the output layer's GEMM rate in bf16 and
fp32 (``bf16_gemm``: whether bf16 can pay on this CPU) and, with ``--agreement-steps N``
(default 100), trains N steps in fp32 and in CPU bf16 from the same init on the same batches
and reports how far apart the loss curves are (``loss_agreement``: max |delta loss|, max and
final relative differences, against :data:`LOSS_TOLERANCE`). The two run in alternating rounds (``--rounds``); the step time is the
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

import logging
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pythia.config import ModelSpec, Precision, Suite, load_suite
from pythia.data.batches import get_batch, num_steps
from pythia.evaluate.memorization import block_rows
from pythia.evaluate.memorization_kernels import (
    DEFAULT_OPTIONS,
    EOD,
    ScanOptions,
    leading_run,
    memorization,
)
from pythia.evaluate.scoring import score
from pythia.model import build_model
from pythia.runs import Catalogue, Checkpoint, open_catalogue
from pythia.train.deepspeed_config import micro_and_accum
from pythia.train.loop import Trainer, TrainOptions
from pythia.train.precision import cpu_bf16_native, with_cpu_precision

if TYPE_CHECKING:
    from transformers import GPTNeoXForCausalLM

log = logging.getLogger("pythia.bench")


# ------------------------------------------------------------------------------ training: ours vs transformers.Trainer


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
        return [get_batch(suite, dataset, s) for s in range(steps)], "get_batch"
    except (FileNotFoundError, ImportError, IndexError, ValueError):
        rng = np.random.default_rng(suite.training.seed)
        t = suite.training
        shape = (t.global_batch, t.seq_len + 1)
        return [
            rng.integers(0, suite.tokenizer.vocab_size, shape, dtype=np.int64) for _ in range(steps)
        ], "synthetic"


def bench_ours(
    suite: Suite,
    model: str,
    batches: list[np.ndarray],
    warmup: int,
    threads: int,
    precision: Precision = Precision.fp32,
) -> dict[str, Any]:
    """Our trainer's steps on ``batches`` in CPU ``precision`` (``training.cpu_precision``);
    returns the step times after ``warmup`` and every step's loss."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            TrainOptions(
                suite=with_cpu_precision(suite, precision),
                model=model,
                out=Path(tmp) / "run",
                threads=threads,
            )
        )
        times, losses = [], []
        for s, batch in enumerate(batches):
            t0 = time.perf_counter()
            out = trainer.train_step(s, batch)
            times.append(time.perf_counter() - t0)
            losses.append(out["loss"])
    return {
        "times": times[warmup:],
        "losses": losses,
        "final_loss": out["loss"],
        "micro_batch": trainer.micro,
        "accumulation": trainer.accum,
        "precision": trainer.precision.value,
    }


LOSS_TOLERANCE = {"max_step_relative": 0.02, "final_relative": 0.01}
"""How close CPU bf16's loss curve must stay to fp32's (:func:`loss_agreement`): every step's
loss within 2% (relative) and the final loss (mean of the last 10 steps) within 1%. bf16 rounds
weights and activations to 8 significant bits (0.4%); measured on the micro suite's 1.8M, the
curves differ by far less (max relative 7e-5 over 100 steps of random tokens and over 40 of
micro's real batches, final 4e-5), so the tolerance leaves room for the slow drift of longer
runs while a broken path (stale weights, lost gradients: no learning) fails it. Checked by ``pythia bench train``
(``loss_agreement.within_tolerance``) and tests/train/test_cpu_mixed_precision.py."""


def loss_agreement(reference: list[float], other: list[float]) -> dict[str, Any]:
    """How far ``other``'s per-step losses are from ``reference``'s (same init, same batches)."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(other, dtype=np.float64)
    diff = np.abs(b - a)
    tail = min(10, len(a))
    final_rel = abs(float(b[-tail:].mean() - a[-tail:].mean())) / abs(float(a[-tail:].mean()))
    max_rel = float((diff / np.abs(a)).max())
    out: dict[str, Any] = {
        "steps": len(a),
        "max_abs_diff": float(diff.max()),
        "max_relative_diff": max_rel,
        "mean_relative_diff": float((diff / np.abs(a)).mean()),
        "final_loss_fp32": float(a[-tail:].mean()),
        "final_loss_other": float(b[-tail:].mean()),
        "final_relative_diff": final_rel,
        "first_loss": float(a[0]),
        "tolerance": dict(LOSS_TOLERANCE),
    }
    out["within_tolerance"] = bool(
        max_rel <= LOSS_TOLERANCE["max_step_relative"]
        and final_rel <= LOSS_TOLERANCE["final_relative"]
    )
    return out


def bench_loss_agreement(
    suite: Suite, model: str, steps: int, threads: int, dataset: str
) -> dict[str, Any]:
    """Train ``model`` ``steps`` steps in fp32 and in CPU bf16 from the same init on the same
    batches (the suite's LR schedule) and compare the loss curves (:func:`loss_agreement`)."""
    batches, source = bench_batches(suite, dataset, steps)
    fp32 = bench_ours(suite, model, batches, 0, threads, Precision.fp32)
    bf16 = bench_ours(suite, model, batches, 0, threads, Precision.bf16)
    out = loss_agreement(fp32["losses"], bf16["losses"])
    out["data"] = source
    out["losses_fp32"] = fp32["losses"]
    out["losses_bf16"] = bf16["losses"]
    return out


def gemm_rates(d: int, vocab: int, threads: int, rows: int = 1024) -> dict[str, float]:
    """fp32 and bf16 flops/s of the output layer's GEMM ((rows, d) @ (d, vocab)), best of 3:
    why CPU bf16 pays on one machine and not on another."""
    torch.set_num_threads(threads)
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(rows, d).to(dtype), torch.randn(d, vocab).to(dtype)
        torch.mm(a, b)
        best = min(_seconds(lambda a=a, b=b: torch.mm(a, b)) for _ in range(3))
        out[f"{name}_flops_per_s"] = 2.0 * rows * d * vocab / best
    out["bf16_over_fp32"] = out["bf16_flops_per_s"] / out["fp32_flops_per_s"]
    return out


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class _Rows(torch.utils.data.Dataset):
    """Training rows (n, L+1) as ``transformers.Trainer`` examples (it shifts the labels itself)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(self.rows[i].astype(np.int64))
        return {"input_ids": x[:-1], "labels": x[:-1]}  # transformers shifts labels itself


def _trainer_arguments(suite: Suite, model: str, steps: int, output_dir: str, bf16: bool = False):
    """``transformers.TrainingArguments`` of the suite's optimizer settings (AdamW, constant
    learning rate, clipping), ``steps`` steps, no evaluation, no saving, on CPU; ``bf16``: its
    CPU mixed precision (``torch.autocast`` in bf16)."""
    from transformers import TrainingArguments  # heavy: only this comparison needs it

    spec = suite.model(model)
    t = suite.training
    micro, accum = micro_and_accum(suite, 1)
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        max_steps=steps,
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
        bf16=bf16,
    )


def bench_hf_trainer(
    suite: Suite,
    model: str,
    batches: list[np.ndarray],
    warmup: int,
    threads: int,
    bf16: bool = False,
) -> dict[str, Any]:
    """The same model/batches through ``transformers.Trainer`` (same AdamW settings, no eval;
    ``bf16``: ``TrainingArguments(bf16=True)``, its CPU autocast).

    It runs with torch's default (non-deterministic) settings, as a Trainer user gets them:
    under ``torch.use_deterministic_algorithms`` its step is ~2.5x slower on CPU, which would
    flatter our (deterministic) loop.
    """
    import transformers  # heavy: only this comparison needs transformers.Trainer
    from transformers.utils import logging as hf_logging  # heavy: as above

    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(False)
    torch.utils.deterministic.fill_uninitialized_memory = True  # type: ignore[attr-defined]  # a torch flag its stubs lack
    net = build_model(
        suite,
        suite.model(model),
        seed=suite.training.seed,
        device="cpu",
        attn_implementation="sdpa",
    )
    rows = _Rows(np.concatenate(batches))  # (steps * B, L+1), in training order
    stamps: list[float] = []
    clock = transformers.TrainerCallback()  # a no-op at every event but the end of a step:
    clock.on_step_end = lambda *args, **kwargs: stamps.append(time.perf_counter())  # type: ignore[method-assign]  # one event of a stock callback
    with tempfile.TemporaryDirectory() as tmp:
        args = _trainer_arguments(suite, model, len(batches), tmp, bf16=bf16)
        trainer = transformers.Trainer(model=net, args=args, train_dataset=rows, callbacks=[clock])
        trainer.train()
        optim = str(args.optim)
    gaps = np.diff(stamps)[max(warmup - 1, 0) :]
    return {"times": [float(g) for g in gaps], "optim": optim, "bf16": bf16}


def _summarise(
    rs: list[dict], tokens: int, flops_per_token: float, peak: dict[str, Any]
) -> dict[str, Any]:
    """One side's rounds (:func:`bench_ours` or :func:`bench_hf_trainer` results) in one summary:
    the last round's details, the best and median step over all rounds' timed steps, tokens/s, MFU."""
    times = [x for r in rs for x in r.pop("times")]
    for r in rs:
        r.pop("losses", None)
    out = dict(rs[-1].items())
    out["step_seconds"] = float(np.min(times))
    out["median_step_seconds"] = float(np.median(times))
    out["tokens_per_s"] = tokens / out["step_seconds"]
    out["median_tokens_per_s"] = tokens / out["median_step_seconds"]
    out["model_flops_per_s"] = flops_per_token * out["tokens_per_s"]
    out["mfu"] = out["model_flops_per_s"] / peak["flops_per_s"]
    out["median_mfu"] = flops_per_token * out["median_tokens_per_s"] / peak["flops_per_s"]
    out["timed_steps"] = len(times)
    return out


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
    bf16: bool = False,
) -> dict[str, Any]:
    """Ours and Trainer in alternating rounds; the step time is the best (min) over all timed
    steps, which other processes on a shared machine can only make worse; medians are kept.
    ``bf16``: each round also times our CPU bf16 step (``ours_bf16``) and Trainer's
    ``bf16=True`` (``hf_trainer_bf16``); every side's ratio to fp32 Trainer is ``<side>_over_trainer``."""
    spec = suite.model(model)
    batches, source = bench_batches(suite, dataset, steps + warmup)
    fpt = flops_per_token(suite, spec)
    tokens = suite.training.tokens_per_step
    res: dict[str, Any] = {
        "model": model,
        "total_params": suite.total_params(spec),
        "non_embedding_params": spec.non_embedding_params(),
        "flops_per_token": fpt,
        "tokens_per_step": tokens,
        "data": source,
        "rounds": rounds,
    }
    runs = _alternating_rounds(suite, model, batches, warmup, threads, trainer, rounds, bf16)
    res["ours"] = ours = _summarise(runs["ours"], tokens, fpt, peak)
    if bf16:
        res["ours_bf16"] = b = _summarise(runs["ours_bf16"], tokens, fpt, peak)
        res["ours_bf16_over_ours"] = b["tokens_per_s"] / ours["tokens_per_s"]
        log.info(
            "%s ours bf16: %.3f s/step, %.0f tok/s (%.2fx our fp32)",
            *(model, b["step_seconds"], b["tokens_per_s"], res["ours_bf16_over_ours"]),
        )
    log.info(
        "%s ours: %.3f s/step, %.0f tok/s, MFU %.1f%%",
        model,
        ours["step_seconds"],
        ours["tokens_per_s"],
        100 * ours["mfu"],
    )
    if trainer:
        res["hf_trainer"] = hf = _summarise(runs["hf_trainer"], tokens, fpt, peak)
        res["ours_over_trainer"] = ours["tokens_per_s"] / hf["tokens_per_s"]
        res["ours_over_trainer_median"] = ours["median_tokens_per_s"] / hf["median_tokens_per_s"]
        log.info(
            "%s transformers.Trainer: %.3f s/step, %.0f tok/s; ours/Trainer %.2fx",
            model,
            hf["step_seconds"],
            hf["tokens_per_s"],
            res["ours_over_trainer"],
        )
    if trainer and bf16:
        _bf16_over_trainer(res, runs["hf_trainer_bf16"], tokens, fpt, peak)
    return res


def _alternating_rounds(
    suite: Suite,
    model: str,
    batches: list[np.ndarray],
    warmup: int,
    threads: int,
    trainer: bool,
    rounds: int,
    bf16: bool,
) -> dict[str, list[dict]]:
    """Each side's timings, one entry per round: ours, ours in bf16, Trainer, Trainer in bf16."""
    runs: dict[str, list[dict]] = {
        "ours": [],
        "ours_bf16": [],
        "hf_trainer": [],
        "hf_trainer_bf16": [],
    }
    for _ in range(rounds):
        runs["ours"].append(bench_ours(suite, model, batches, warmup, threads))
        if bf16:
            runs["ours_bf16"].append(
                bench_ours(suite, model, batches, warmup, threads, Precision.bf16)
            )
        if trainer:
            runs["hf_trainer"].append(bench_hf_trainer(suite, model, batches, warmup, threads))
        if trainer and bf16:
            runs["hf_trainer_bf16"].append(
                bench_hf_trainer(suite, model, batches, warmup, threads, bf16=True)
            )
    return runs


def _bf16_over_trainer(
    res: dict[str, Any], trainer_bf16: list[dict], tokens: int, fpt: float, peak: dict
) -> None:
    """Trainer's bf16 summary, and both bf16 sides' ratios to fp32 Trainer, into ``res``."""
    hf = res["hf_trainer"]
    res["hf_trainer_bf16"] = _summarise(trainer_bf16, tokens, fpt, peak)
    for key in ("ours_bf16", "hf_trainer_bf16"):
        res[f"{key}_over_trainer"] = res[key]["tokens_per_s"] / hf["tokens_per_s"]
        res[f"{key}_over_trainer_median"] = (
            res[key]["median_tokens_per_s"] / hf["median_tokens_per_s"]
        )


def _bf16_checks(
    suite: Suite, r: dict[str, Any], agreement_steps: int, threads: int, dataset: str
) -> None:
    """A model's bf16 vs fp32 GEMM rates and (``agreement_steps`` > 0) loss agreement, into ``r``."""
    spec = suite.model(r["model"])
    r["bf16_gemm"] = gemm_rates(spec.hidden_size, suite.vocab_rows(spec), threads)
    if agreement_steps > 0:
        r["loss_agreement"] = a = bench_loss_agreement(
            suite, r["model"], agreement_steps, threads, dataset
        )
        log.info(
            "%s loss bf16 vs fp32 over %d steps: max |d| %.4f, max rel %.4f, final rel %.4f (%s)",
            r["model"],
            a["steps"],
            a["max_abs_diff"],
            a["max_relative_diff"],
            a["final_relative_diff"],
            "within tolerance" if a["within_tolerance"] else "OUTSIDE tolerance",
        )


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
    bf16: str = "auto",
    agreement_steps: int = 100,
) -> dict[str, Any]:
    """The training benchmark (module docstring). ``bf16``: time the CPU bf16 sides too:
    ``auto`` where the CPU multiplies bf16 natively (:func:`cpu_bf16_native`), ``on``, ``off``.
    ``agreement_steps`` > 0: also train each model that many steps in fp32 and in CPU bf16 from
    the same init and compare the loss curves (:func:`bench_loss_agreement`, :data:`LOSS_TOLERANCE`)."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    threads = threads or torch.get_num_threads()
    if models == ["all"]:
        models = list(suite.models)
    for m in models:
        suite.model(m)  # an unknown name fails now, not after the peak measurement
    native = cpu_bf16_native()
    time_bf16 = bf16 == "on" or (bf16 == "auto" and native)
    peak = matmul_peak(threads, matmul_n)
    log.info("fp32 matmul peak at %d threads: %.1f GFLOP/s", threads, peak["flops_per_s"] / 1e9)
    results = [
        bench_model(suite, m, steps, warmup, threads, dataset, peak, trainer, rounds, time_bf16)
        for m in models
    ]
    for r in results:
        _bf16_checks(suite, r, agreement_steps, threads, dataset)
    # measured again afterwards; MFU uses the better of the two (like the step times, the
    # best case is what other processes on a shared machine cannot inflate)
    after = matmul_peak(threads, matmul_n)
    best = max(peak["flops_per_s"], after["flops_per_s"])
    for r in results:
        for key in ("ours", "ours_bf16", "hf_trainer", "hf_trainer_bf16"):
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
        "bf16": {"mode": bf16, "native": native, "timed": time_bf16},
        "flops_formula": "6*(N_nonembedding + V*d) + 12*L*d*T per token (fwd+bwd; input embedding excluded)",
        "models": results,
    }


# ------------------------------------------------------------------------------ scoring vs training


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


def _bench_score_one(
    suite: Suite,
    name: str,
    steps: int,
    warmup: int,
    threads: int,
    dataset: str,
    rounds: int,
    batch_size: int | None,
) -> dict[str, Any]:
    """One model's result of :func:`bench_score`."""
    tokens = suite.training.tokens_per_step
    batches, source = bench_batches(suite, dataset, steps + warmup)
    times: dict[str, list[float]] = {"train": [], "score": [], "plain_forward": []}
    for _ in range(rounds):
        for key, ts in bench_score_model(suite, name, batches, warmup, threads, batch_size).items():
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
    return res


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
    results = [
        _bench_score_one(suite, name, steps, warmup, threads, dataset, rounds, batch_size)
        for name in models
    ]
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


# ------------------------------------------------------------------------------ the memorization scan vs generate


@torch.inference_mode()
def generate_reference(
    model: GPTNeoXForCausalLM,
    rows: np.ndarray,
    options: ScanOptions = DEFAULT_OPTIONS,
    *,
    vocab_size: int | None = None,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """What Pythia's scan computes, with ``transformers``' ``model.generate``: greedy, ``min_length =
    max_length = k + l`` (end-of-document never generated), padded vocabulary suppressed. Returns
    ``memorized``, ``match_run``, ``matches`` like
    :func:`~pythia.evaluate.memorization_kernels.memorization` (matches for every row), and the
    generated ``tokens``."""
    k, l = options.prompt, options.continuation
    device = next(model.parameters()).device
    rows = np.asarray(rows, dtype=np.int64)[:, : k + l]
    padded = model.get_output_embeddings().weight.shape[0]
    suppress = (
        list(range(vocab_size, padded)) if vocab_size is not None and vocab_size < padded else None
    )
    out = np.empty((len(rows), l), dtype=np.int64)
    for lo in range(0, len(rows), batch_size):
        x = torch.from_numpy(rows[lo : lo + batch_size, :k]).to(device)  # (b, k)
        kwargs: dict[str, Any] = {
            "max_length": k + l,
            "do_sample": False,
            "num_beams": 1,
            "pad_token_id": EOD,
            "eos_token_id": EOD,
            "attention_mask": torch.ones_like(x),
        }
        if options.forbid_eod:
            kwargs["min_length"] = k + l
        if suppress:
            kwargs["suppress_tokens"] = suppress
        gen = model.generate(x, **kwargs)  # type: ignore[misc]  # transformers annotates generate with self twice
        out[lo : lo + len(x)] = gen[:, k:].cpu().numpy()
    correct = out == rows[:, k:]  # (N, l)
    run = leading_run(correct)
    return {
        "memorized": run == l,
        "match_run": run,
        "matches": correct.sum(axis=1).astype(np.int16),
        "tokens": out,
    }


def _time_scan_and_generate(
    net: GPTNeoXForCausalLM,
    tokens: np.ndarray,
    options: ScanOptions,
    *,
    vocab_size: int,
    batch: int,
    rounds: int,
) -> tuple[dict[str, list[float]], dict[str, list[dict]]]:
    """Seconds per batch of the scan (flags and match runs), the scan with every score and
    :func:`generate_reference`, batch by batch interleaved, over ``rounds`` rounds; and the first
    round's results of each, batch by batch."""
    flags_only = ScanOptions(options.prompt, options.continuation, 0, options.forbid_eod)
    times: dict[str, list[float]] = {"scan": [], "scan_scores": [], "generate": []}
    results: dict[str, list[dict]] = {k: [] for k in times}
    for rnd in range(rounds):
        for lo in range(0, len(tokens), batch):
            x = tokens[lo : lo + batch]
            for name, fn in (
                ("scan", lambda x=x: memorization(net, x, flags_only, vocab_size=vocab_size)),
                (
                    "scan_scores",
                    lambda x=x: memorization(
                        net, x, options, vocab_size=vocab_size, decode_batch=batch
                    ),
                ),
                (
                    "generate",
                    lambda x=x: generate_reference(
                        net, x, options, vocab_size=vocab_size, batch_size=batch
                    ),
                ),
            ):
                t0 = time.perf_counter()
                r = fn()
                times[name].append(time.perf_counter() - t0)
                if rnd == 0:
                    results[name].append(r)
    return times, results


def _parity(results: dict[str, list[dict]]) -> dict[str, Any]:
    """Whether the scans' flags, match runs and scores are those of ``generate``."""
    got = {
        name: {k: np.concatenate([r[k] for r in rs]) for k in ("memorized", "match_run", "matches")}
        for name, rs in results.items()
    }
    ref, scan, scores = got["generate"], got["scan"], got["scan_scores"]
    return {
        "flags_identical": bool(
            np.array_equal(scan["memorized"], ref["memorized"])
            and np.array_equal(scores["memorized"], ref["memorized"])
        ),
        "match_runs_identical": bool(np.array_equal(scan["match_run"], ref["match_run"])),
        "scores_identical": bool(np.array_equal(scores["matches"], ref["matches"])),
        "rows_differing_scores": int((scores["matches"] != ref["matches"]).sum()),
        "reference": ref,
    }


def _checkpoint(cat: Catalogue, model: str, dataset: str, step: int | None) -> Checkpoint:
    """The checkpoint at ``step`` (default: the last there is) of ``model`` on ``dataset``."""
    have = cat.available_steps(model, dataset)
    step = have[-1] if step is None and have else step
    return cat.checkpoint(model, dataset, step if step is not None else 0)


def bench_memorization(
    suite: str | Suite,
    model: str,
    dataset: str = "standard",
    step: int | None = None,
    rows: int = 1024,
    batch: int = 256,
    rounds: int = 2,
    threads: int | None = None,
    device: str = "cpu",
    catalogue: Catalogue | None = None,
    options: ScanOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """Tokens/s of the scan (flags and match runs; and with every fractional score) against
    ``model.generate`` on the same ``rows`` first training sequences (all of them if there are
    fewer) of checkpoint ``step`` (default: the last), batch by batch interleaved (so load from
    other processes falls on all alike), in ``rounds`` rounds; checks that the flags, match runs
    and scores are identical. The headline ratio is the median over batches of generate seconds /
    scan seconds."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if threads:
        torch.set_num_threads(threads)
    ckpt = _checkpoint(catalogue or open_catalogue(suite), model, dataset, step)
    net = ckpt.load_model(device=device)
    b = suite.training.global_batch
    # the first rows of the order (all, if fewer)
    need_steps = min(-(-rows // b), num_steps(suite, dataset))
    tokens = block_rows(suite, dataset, range(need_steps), options.width)[1][:rows]
    times, results = _time_scan_and_generate(
        net, tokens, options, vocab_size=suite.tokenizer.vocab_size, batch=batch, rounds=rounds
    )
    parity = _parity(results)
    ref = parity.pop("reference")
    per_batch = {k: np.array(v) for k, v in times.items()}
    return {
        "suite": suite.name,
        "model": model,
        "dataset": dataset,
        "checkpoint": ckpt.name,
        "identity": ckpt.identity,
        "rows": len(tokens),
        "batch": batch,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "device": device,
        "options": asdict(options),
        "memorized": int(ref["memorized"].sum()),
        "mean_match_run": float(ref["match_run"].mean()),
        "mean_score": float(ref["matches"].mean() / options.continuation),
        "timings": _scan_timings(per_batch, rounds, len(tokens), options.width),
        **parity,
        "scan_over_generate": float(np.median(per_batch["generate"] / per_batch["scan"])),
        "scan_scores_over_generate": float(
            np.median(per_batch["generate"] / per_batch["scan_scores"])
        ),
        "torch": torch.__version__,
    }


def _scan_timings(
    per_batch: dict[str, np.ndarray], rounds: int, rows: int, tokens_per_row: int
) -> dict[str, dict[str, float]]:
    """Seconds per round, tokens/s and sequences/s of each of :func:`bench_memorization`'s three."""
    return {
        k: {
            "seconds": float(v.sum() / rounds),
            "tokens_per_s": rounds * rows * tokens_per_row / float(v.sum()),
            "sequences_per_s": rounds * rows / float(v.sum()),
        }
        for k, v in per_batch.items()
    }
