"""Section 06's heavy work (Xia et al., "Training Trajectories of Language Models Across Scales"):
per-token losses at every checkpoint, hallucination-like sequences, in-context accuracy.

``pythia training_trajectories ...`` runs each step for the workflow (``rules/training_trajectories.smk``):

    tasks     --suite S --out DIR                  lm-eval YAML + JSONL of the multiple-choice ICL tasks
    generate  --suite S --dataset D --out FILE      contrastive decoding of hallucination-like sequences
    evaluate  --suite S --dataset D --model M --hallucination FILE --tasks DIR --out-dir DIR
                                                    per-token losses, sequence losses and ICL at every checkpoint

What each computes (the sizes are the suite's ``analysis.training_trajectories``,
:class:`pythia.config.TrajectoriesSpec`):

* Per-token losses: the first ``val_sequences`` held-out sequences (validation split, rows of
  seq_len + 1 tokens, :func:`pythia.data.batches.validation_sequences`) are scored by
  :func:`pythia.evaluate.cached_score` at every checkpoint (cached per checkpoint and block of
  rows), and the loss of every predicted token is kept as float16: an array
  ``val_losses`` (checkpoint x token), token j = row j // seq_len, position j % seq_len + 1.
* Hallucination-like sequences (Xia et al. section 4): from the first ``prompt_tokens`` tokens of
  ``prompts`` test-split sequences, greedy decoding from the contrastive distribution of the
  smallest and the largest model at their last checkpoint,

      p(v) = (max(p_small(v) - p_large(v), 0) + eps) / sum_u (max(p_small(u) - p_large(u), 0) + eps)

  (text the small model finds likely and the large one does not: fluent, but the large model
  has learnt it is wrong). Every checkpoint of every size then scores the ``new_tokens``
  generated tokens and the true continuation of the same prompt (``gen_losses``,
  ``true_losses``: checkpoint x prompt x token, float16).
* In-context accuracy: multiple-choice evaluation sets (``icl_tasks``; empty = every one), the
  three BIG-bench tasks the registry has among them, as
  lm-eval tasks, ``icl_shots``-shot, through the lm-eval adapter
  (:func:`pythia.evaluate.evaluate_tasks`, cached per checkpoint and task, with per-question
  samples), summarised per task and checkpoint: accuracy, the chance level (mean of
  1 / options) and the per-token perplexity of the correct and of the incorrect options.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pythia import paths
from pythia.config import Suite, TrajectoriesSpec, load_suite
from pythia.errors import MissingInputError, UsageError, require_device
from pythia.io import atomic_path, write_text

log = logging.getLogger(__name__)

STEM = "training_trajectories"
TASK_PREFIX = "tt_"
"""lm-eval task names: ``tt_<evaluation set>`` (``/`` as ``_``: ``tt_bigbench_causal_judgment``)."""
SHOT_POOL = 32
"""Examples of each task set aside as the pool its shots are drawn from."""
ICL_BATCH = 16
"""lm-eval's batch size for the ICL tasks: with 2-shot prompts of ~100-250 tokens, 16 rows keep a
forward's activations in cache (1.8M on one core: ~25% faster than 64)."""
DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def settings(suite: Suite) -> TrajectoriesSpec:
    """The section's sizes for ``suite`` (``analysis.training_trajectories``)."""
    return suite.analysis.training_trajectories


def work_dir(suite: str) -> Path:
    """``work/<suite>/training_trajectories``: everything the section's rules write."""
    return paths.suite_dir(suite) / STEM


# ------------------------------------------------------------------------------ contrastive decoding


def contrastive_distribution(
    logits_small: torch.Tensor, logits_large: torch.Tensor, eps: float
) -> torch.Tensor:
    """(..., V) the renormalised ``max(p_small - p_large, 0) + eps`` (see the module docstring)."""
    p = torch.softmax(logits_small.float(), -1) - torch.softmax(logits_large.float(), -1)
    p = p.clamp_(min=0) + eps
    return p / p.sum(-1, keepdim=True)


@torch.inference_mode()
def contrastive_generate(
    small,
    large,
    prompts: np.ndarray,
    new_tokens: int,
    eps: float,
    vocab_size: int | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """(N, new_tokens) greedy tokens of the contrastive distribution of ``small`` and ``large``
    (two causal LMs with the same tokenizer) continuing ``prompts`` (N, P)."""
    device = next(small.parameters()).device
    out = np.empty((len(prompts), new_tokens), dtype=np.int64)
    for lo in range(0, len(prompts), batch_size):
        x = torch.from_numpy(
            np.ascontiguousarray(prompts[lo : lo + batch_size], dtype=np.int64)
        ).to(device)
        past_s = past_l = None
        step_in = x
        for t in range(new_tokens):
            a = small(input_ids=step_in, past_key_values=past_s, use_cache=True)
            b = large(input_ids=step_in, past_key_values=past_l, use_cache=True)
            past_s, past_l = a.past_key_values, b.past_key_values
            ls, ll = a.logits[:, -1], b.logits[:, -1]  # (b, V_padded)
            if vocab_size is not None:
                ls, ll = ls[:, :vocab_size], ll[:, :vocab_size]
            nxt = contrastive_distribution(ls, ll, eps).argmax(-1)  # (b,)
            out[lo : lo + len(x), t] = nxt.cpu().numpy()
            step_in = nxt[:, None]
    return out


def hallucination_prompts(suite: Suite) -> tuple[np.ndarray, np.ndarray]:
    """(prompts (N, prompt_tokens), true continuations (N, new_tokens)) from the test split."""
    from pythia.data.batches import validation_sequences

    s = settings(suite)
    width = suite.training.seq_len + 1
    if s.prompt_tokens + s.new_tokens > width:
        raise UsageError(
            f"analysis.training_trajectories: prompt_tokens + new_tokens = "
            f"{s.prompt_tokens + s.new_tokens} exceeds a sequence of {width} tokens; lower them"
        )
    rows = validation_sequences(suite, s.prompts, split="test")
    return rows[:, : s.prompt_tokens], rows[:, s.prompt_tokens : s.prompt_tokens + s.new_tokens]


def generate(
    suite: Suite,
    catalogue,
    dataset: str,
    out: str | Path,
    small: str | None = None,
    large: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> Path:
    """Decode the hallucination-like sequences of ``dataset`` with the smallest and largest
    models (or ``small``/``large``) at their last analysed checkpoint; write ``out`` (.npz:
    prompts, generated, true, small, large, steps)."""
    models = catalogue.models(dataset)
    if len(models) < 2:
        raise UsageError(
            f"contrastive decoding needs two models of dataset {dataset!r}; found {models or 'none'}"
        )
    small, large = small or models[0], large or models[-1]
    if small == large:
        raise UsageError(
            f"the small and the large model are both {small!r}; name two different models"
        )
    import time

    t0 = time.perf_counter()
    s = settings(suite)
    prompts, true = hallucination_prompts(suite)
    ckpts = [
        catalogue.checkpoint(m, dataset, catalogue.steps(m, dataset)[-1]) for m in (small, large)
    ]
    nets = [c.load_model(dtype=DTYPES[dtype], device=device) for c in ckpts]
    vocab = len(ckpts[0].load_tokenizer())
    gen = contrastive_generate(
        nets[0], nets[1], prompts, s.new_tokens, s.contrast_epsilon, vocab_size=vocab
    )
    out = Path(out)
    with atomic_path(out, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            prompts=prompts,
            generated=gen,
            true=true,
            models=np.array([small, large]),
            steps=np.array([c.step for c in ckpts]),
            identities=np.array([c.identity for c in ckpts]),
            seconds=time.perf_counter() - t0,
        )
    return out


# ------------------------------------------------------------------------------ lm-eval tasks


ICL_EXCLUDED = ("winobias", "crows_pairs")
"""Multiple-choice sets that are not questions with a right answer (their ``gold`` is the
stereotypical sentence): never in-context tasks."""


def task_name(evalset: str) -> str:
    """The lm-eval task name of an evaluation set (``bigbench/causal_judgment`` ->
    ``tt_bigbench_causal_judgment``)."""
    return TASK_PREFIX + evalset.replace("/", "_")


def icl_task_names(suite: Suite) -> list[str]:
    """The evaluation sets evaluated in context: ``icl_tasks``, or every multiple-choice one."""
    from pythia.data.evalsets import STATIC_SETS

    mc = sorted(
        n for n, s in STATIC_SETS.items() if s.kind == "multiple_choice" and n not in ICL_EXCLUDED
    )
    chosen = list(settings(suite).icl_tasks) or mc
    bad = [t for t in chosen if t not in mc]
    if bad:
        raise UsageError(
            f"analysis.training_trajectories.icl_tasks: {', '.join(bad)} not multiple-choice "
            f"evaluation set(s) here; choose among {', '.join(mc)} (`pythia data evalsets` lists them)"
        )
    return chosen


def task_yaml(name: str, data_file: Path, shots_file: Path) -> str:
    """An lm-eval multiple-choice task over our JSONL: the ``prompt`` (``Q: <question>\\nA:``), each
    of the ``choices`` as a continuation after a space, ``gold`` the right one; shots separated by
    a blank line, drawn from ``shots_file`` (lm-eval's seeded sampler). Fields are named, not
    Jinja templates: lm-eval compiles a template for every document and shot, which took longer
    than scoring them on small models."""
    return (
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data_file.resolve()}\n"
        f"    train: {shots_file.resolve()}\n"
        "test_split: test\nfewshot_split: train\noutput_type: multiple_choice\n"
        "doc_to_text: prompt\ndoc_to_choice: choices\ndoc_to_target: gold\n"
        'target_delimiter: " "\nfewshot_delimiter: "\\n\\n"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"
    )


def _write_jsonl(path: Path, examples) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(
                json.dumps(
                    {
                        "id": ex.id,
                        "prompt": f"Q: {ex.prompt}\nA:",
                        "choices": list(ex.choices),
                        "gold": ex.gold,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )


def write_tasks(suite: Suite, out: str | Path) -> list[str]:
    """Write one lm-eval task per chosen evaluation set into ``out``; returns the lm-eval task names.

    Of a task's multiple-choice examples with one best option, the first :data:`SHOT_POOL` are
    the pool the shots are drawn from (``<task>.shots.jsonl``, never asked), the next
    ``icl_limit`` (all, when null) the questions (``<task>.jsonl``): the shots never include the
    question, and lm-eval loads only what it evaluates (a whole 50,000-question task takes
    seconds per checkpoint to load)."""
    from pythia.data.evalsets import get_evalset

    out = Path(out)
    limit = settings(suite).icl_limit
    names = []
    for task in icl_task_names(suite):
        rows = [
            ex
            for ex in get_evalset(task).iter_examples()
            if len(ex.choices) >= 2 and ex.gold is not None and "scores" not in ex.meta
        ]
        if len(rows) <= SHOT_POOL:
            raise UsageError(
                f"evaluation set {task!r} has {len(rows)} usable multiple-choice examples, too few for "
                f"{SHOT_POOL} shot examples and questions; choose another in icl_tasks"
            )
        name = task_name(task)
        data, shots = out / f"{name}.jsonl", out / f"{name}.shots.jsonl"
        _write_jsonl(shots, rows[:SHOT_POOL])
        _write_jsonl(data, rows[SHOT_POOL:][:limit])
        write_text(out / f"{name}.yaml", task_yaml(name, data, shots))
        names.append(name)
    write_text(out / "tasks.json", json.dumps(names) + "\n")
    return names


def icl_rows(records: dict[str, dict], tokenizer, step: int) -> list[dict[str, Any]]:
    """Per task: accuracy, chance, and the mean per-token perplexity of correct and incorrect
    options (from lm-eval's per-question log-likelihoods; an option's tokens are those of
    ``" " + option``)."""
    ntok: dict[str, int] = {}

    def count(text: str) -> int:
        if text not in ntok:
            ntok[text] = max(1, len(tokenizer(" " + text)["input_ids"]))
        return ntok[text]

    rows = []
    for name, rec in records.items():
        samples = rec["samples"][name]
        correct, wrong, chance = [], [], []
        for s in samples:
            lls = [float(r[0]) for r in s["filtered_resps"]]
            choices, gold = s["doc"]["choices"], int(s["target"])
            ppl = [math.exp(-ll / count(c)) for ll, c in zip(lls, choices)]
            correct.append(math.log(ppl[gold]))
            wrong.append(float(np.mean([math.log(p) for i, p in enumerate(ppl) if i != gold])))
            chance.append(1 / len(choices))
        res = rec["results"][name]
        rows.append(
            {
                "task": name.removeprefix(TASK_PREFIX),
                "step": step,
                "n": len(samples),
                "acc": float(res["acc,none"]),
                "acc_norm": float(res["acc_norm,none"]),
                "chance": float(np.mean(chance)),
                "ppl_correct": float(np.exp(np.mean(correct))),
                "ppl_incorrect": float(np.exp(np.mean(wrong))),
            }
        )
    return rows


# ------------------------------------------------------------------------------ evaluation


def evaluate(
    suite: Suite,
    catalogue,
    dataset: str,
    model: str,
    hallucination: str | Path,
    tasks: str | Path,
    out_dir: str | Path,
    device: str = "cpu",
    dtype: str = "float32",
    batch_size: int | None = None,
    progress: bool = False,
) -> Path:
    """Every analysed checkpoint of ``model`` on ``dataset``: per-token validation losses, the
    hallucination-like and true continuations' losses, and the ICL rows. Writes
    ``out_dir/losses.npz`` and ``out_dir/icl.csv``."""
    import time

    import pandas as pd
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    from pythia.data.batches import validation_sequences
    from pythia.evaluate import cached_score, evaluate_tasks
    from pythia.evaluate.harness import folder_digest, request_cache

    s = settings(suite)
    steps = catalogue.steps(model, dataset)
    if not steps:
        raise MissingInputError(
            f"no checkpoints of model {model!r} on dataset {dataset!r} to analyse in {catalogue!r}; "
            f"train them (`pythia train --suite {suite.name} --model {model} --dataset {dataset}`) "
            f"or point --checkpoints-source/--checkpoints-path at them"
        )
    val = validation_sequences(suite, s.val_sequences)  # (N, seq_len + 1)
    hal_file = Path(hallucination)
    if not hal_file.is_file():
        raise MissingInputError(
            f"{hal_file} is missing; make it with `pythia training_trajectories generate`"
        )
    with np.load(hal_file) as h:
        prompts, gen, true = h["prompts"], h["generated"], h["true"]
    p = prompts.shape[1]
    gen_rows, true_rows = np.concatenate([prompts, gen], 1), np.concatenate([prompts, true], 1)
    tasks = Path(tasks)
    names = (
        json.loads((tasks / "tasks.json").read_text()) if (tasks / "tasks.json").is_file() else None
    )
    if names is None:
        raise MissingInputError(
            f"{tasks}/tasks.json is missing; write the tasks with `pythia training_trajectories tasks`"
        )

    # lm-eval's prompts are built once (its request cache, where lm-eval is not imported yet) and
    # tokenized once (the adapter remembers tokenizations on the tokenizer object: one per run)
    cached = (
        bool(names)
        and request_cache(
            suite.name, {"tasks": folder_digest(tasks), "shots": s.icl_shots, "limit": s.icl_limit}
        )
        is not None
    )
    tok = catalogue.checkpoint(model, dataset, steps[0]).load_tokenizer()
    vocab = len(tok)
    val_losses, gen_losses, true_losses, icl = [], [], [], []
    for step in tqdm(steps, desc=f"{model}/{dataset}", disable=not progress, unit="ckpt"):
        ckpt = catalogue.checkpoint(model, dataset, step)
        cache: dict[str, Any] = {}

        def load(ckpt=ckpt, cache=cache):
            if "model" not in cache:
                cache["model"] = ckpt.load_model(dtype=DTYPES[dtype], device=device)
            return cache["model"]

        kw = {"vocab_size": vocab, "load_model": load, "batch_size": batch_size}
        val_losses.append(
            cached_score(ckpt, val, **kw).losses.reshape(-1).astype(np.float16)
        )  # (N * seq_len,)
        gen_losses.append(
            cached_score(ckpt, gen_rows, range(p, gen_rows.shape[1]), **kw).losses.astype(
                np.float16
            )
        )
        true_losses.append(
            cached_score(ckpt, true_rows, range(p, true_rows.shape[1]), **kw).losses.astype(
                np.float16
            )
        )
        if names:
            records = evaluate_tasks(
                ckpt,
                names,
                num_fewshot=s.icl_shots,
                include_path=tasks,
                limit=s.icl_limit,
                log_samples=True,
                model=load(),
                tokenizer=tok,
                device=device,
                batch_size=ICL_BATCH,
                cache_requests=cached,
            )
            icl += [{"dataset": dataset, "model": model, **r} for r in icl_rows(records, tok, step)]
    out_dir = Path(out_dir)
    with atomic_path(out_dir / "losses.npz", suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            steps=np.array(steps),
            val_losses=np.stack(val_losses),
            gen_losses=np.stack(gen_losses),
            true_losses=np.stack(true_losses),
            seq_len=suite.training.seq_len,
            seconds=time.perf_counter() - t0,
        )
    cols = [
        "dataset",
        "model",
        "task",
        "step",
        "n",
        "acc",
        "acc_norm",
        "chance",
        "ppl_correct",
        "ppl_incorrect",
    ]
    with atomic_path(out_dir / "icl.csv") as tmp:
        pd.DataFrame(icl, columns=cols).to_csv(tmp, index=False)
    return out_dir


# ------------------------------------------------------------------------------ command line


def _suite(args) -> Suite:
    return load_suite(args.suite)


def _check_device(args) -> None:
    device, dtype = args.device, args.dtype
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    require_device(device)
    if device == "cpu" and dtype == "fp16":
        raise UsageError("--dtype fp16 is for CUDA; on CPU use float32 or bf16")


def _cmd_tasks(args) -> int:
    names = write_tasks(_suite(args), args.out)
    print(f"{len(names)} lm-eval tasks in {args.out}")
    return 0


def _cmd_generate(args) -> int:
    from pythia.runs import from_arguments

    _check_device(args)
    suite = _suite(args)
    out = generate(
        suite,
        from_arguments(suite, args),
        args.dataset,
        args.out,
        args.small,
        args.large,
        args.device,
        args.dtype,
    )
    print(f"wrote {out}")
    return 0


def _cmd_evaluate(args) -> int:
    from pythia.runs import from_arguments

    _check_device(args)
    suite = _suite(args)
    suite.model(args.model)
    out = evaluate(
        suite,
        from_arguments(suite, args),
        args.dataset,
        args.model,
        args.hallucination,
        args.tasks,
        args.out_dir,
        args.device,
        args.dtype,
        args.batch_size,
        progress=not args.no_progress,
    )
    print(f"wrote {out}/losses.npz, {out}/icl.csv")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from pythia.runs import add_arguments

    p = sub.add_parser(
        STEM, help="section 06: per-token loss trajectories, hallucination-like sequences, ICL"
    )
    cmds = p.add_subparsers(dest="tt_command", required=True, metavar="COMMAND")

    t = cmds.add_parser("tasks", help="write the multiple-choice in-context lm-eval tasks")
    t.add_argument("--suite", required=True)
    t.add_argument("--out", required=True, help="folder for the YAML and JSONL files")
    t.set_defaults(func=_cmd_tasks)

    def device_args(q):
        q.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
        q.add_argument(
            "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
        )
        q.add_argument(
            "--dtype",
            default="float32",
            choices=list(DTYPES),
            help="model weights' dtype (bf16/fp16 on CUDA; scores are accumulated in float32)",
        )

    g = cmds.add_parser("generate", help="contrastive decoding of hallucination-like sequences")
    g.add_argument("--suite", required=True)
    g.add_argument("--dataset", required=True)
    g.add_argument("--small", default=None, help="the small model (default: the suite's smallest)")
    g.add_argument("--large", default=None, help="the large model (default: the suite's largest)")
    g.add_argument("--out", required=True, help=".npz file to write")
    device_args(g)
    add_arguments(g)
    g.set_defaults(func=_cmd_generate)

    e = cmds.add_parser(
        "evaluate", help="per-token losses, sequence losses and ICL at every checkpoint of a model"
    )
    e.add_argument("--suite", required=True)
    e.add_argument("--dataset", required=True)
    e.add_argument("--model", required=True)
    e.add_argument("--hallucination", required=True, help="the .npz written by `generate`")
    e.add_argument("--tasks", required=True, help="the folder written by `tasks`")
    e.add_argument("--out-dir", required=True)
    e.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="sequences per forward pass (default: ~8k tokens)",
    )
    e.add_argument("--no-progress", action="store_true")
    device_args(e)
    add_arguments(e)
    e.set_defaults(func=_cmd_evaluate)
