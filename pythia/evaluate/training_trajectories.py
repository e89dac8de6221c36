"""Section 06's heavy work (Xia et al., "Training Trajectories of Language Models Across Scales"):
per-token losses at every checkpoint, hallucination-like sequences, in-context accuracy.

``pythia training-trajectories ...`` (:mod:`pythia.cli.training_trajectories`) runs each step for
the workflow (``rules/training_trajectories.smk``):

    tasks     --suite S --out DIR                  lm-eval YAML + JSONL of the multiple-choice ICL tasks
    generate  --suite S --dataset D --out FILE      contrastive decoding of hallucination-like sequences
    evaluate  --suite S --dataset D --model M --hallucination FILE --tasks DIR --out-dir DIR
                                                    per-token losses, sequence losses and ICL at every checkpoint

What each computes (the sizes are the suite's ``analysis.training_trajectories``,
:class:`pythia.config.TrajectoriesSpec`):

* Per-token losses: the first ``val_sequences`` held-out sequences (validation split, rows of
  seq_len + 1 tokens, :func:`pythia.data.batches.validation_sequences`; or a tokenized file,
  ``--validation``: :func:`pythia.data.validation.validation_rows`) are scored by
  :func:`pythia.evaluate.cache.cached_score` at every checkpoint (cached per checkpoint and block of
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
  (:func:`pythia.evaluate.harness.evaluate_tasks`, cached per checkpoint and task, with per-question
  samples), summarised per task and checkpoint: accuracy, the chance level (mean of
  1 / options) and the per-token perplexity of the correct and of the incorrect options.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from pythia import paths
from pythia.config import Suite, TrajectoriesSpec
from pythia.data.batches import validation_sequences
from pythia.data.evalsets import STATIC_SETS, get_evalset
from pythia.data.validation import validation_rows
from pythia.errors import MissingInputError, UsageError
from pythia.evaluate.cache import cached_score
from pythia.evaluate.harness import evaluate_tasks, folder_digest, request_cache
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
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""The weights' dtypes, by the command line's names (``--dtype``)."""


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


ICL_COLUMNS = [
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
"""The columns of ``icl.csv``."""


@dataclass(frozen=True)
class _Inputs:
    """What every checkpoint of a run is scored on."""

    val: np.ndarray
    """(N, seq_len + 1) held-out validation sequences."""
    gen_rows: np.ndarray
    """(P, prompt + new tokens) the prompts with their hallucination-like continuations."""
    true_rows: np.ndarray
    """(P, prompt + new tokens) the prompts with their true continuations."""
    prompt_tokens: int
    tasks: Path
    """The folder of the ICL tasks."""
    names: list[str]
    """The lm-eval names of the ICL tasks (none: no ICL rows)."""


class _OnDemand:
    """A checkpoint's model, loaded on first use (only if something must be scored)."""

    def __init__(self, ckpt, dtype: str, device: str):
        self.ckpt, self.dtype, self.device = ckpt, dtype, device
        self.model = None

    def __call__(self):
        if self.model is None:
            self.model = self.ckpt.load_model(dtype=DTYPES[self.dtype], device=self.device)
        return self.model


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
    validation: str | Path | None = None,
) -> Path:
    """Every analysed checkpoint of ``model`` on ``dataset``: per-token validation losses, the
    hallucination-like and true continuations' losses, and the ICL rows. Writes
    ``out_dir/losses.npz`` and ``out_dir/icl.csv``. ``validation``: a tokenized file of
    validation text instead of the suite's split (pythia.data.validation)."""
    t0 = time.perf_counter()
    s = settings(suite)
    steps = catalogue.steps(model, dataset)
    if not steps:
        raise MissingInputError(
            f"no checkpoints of model {model!r} on dataset {dataset!r} to analyse in {catalogue!r}; "
            f"train them (`pythia train --suite {suite.name} --model {model} --dataset {dataset}`) "
            f"or point --checkpoints-source/--checkpoints-path at them"
        )
    inputs = _read_inputs(suite, hallucination, tasks, validation)
    # lm-eval's prompts are built once (its request cache, where lm-eval is not imported yet) and
    # tokenized once (the adapter remembers tokenizations on the tokenizer object: one per run)
    key = {"tasks": folder_digest(inputs.tasks), "shots": s.icl_shots, "limit": s.icl_limit}
    cached = bool(inputs.names) and request_cache(suite.name, key) is not None
    tok = catalogue.checkpoint(model, dataset, steps[0]).load_tokenizer()
    losses: dict[str, list[np.ndarray]] = {"val_losses": [], "gen_losses": [], "true_losses": []}
    icl: list[dict[str, Any]] = []
    for step in tqdm(steps, desc=f"{model}/{dataset}", disable=not progress, unit="ckpt"):
        ckpt = catalogue.checkpoint(model, dataset, step)
        load = _OnDemand(ckpt, dtype, device)
        for name, value in _losses(ckpt, inputs, len(tok), load, batch_size).items():
            losses[name].append(value)
        if inputs.names:
            records = evaluate_tasks(
                ckpt,
                inputs.names,
                num_fewshot=s.icl_shots,
                include_path=inputs.tasks,
                limit=s.icl_limit,
                log_samples=True,
                model=load(),
                tokenizer=tok,
                device=device,
                batch_size=ICL_BATCH,
                cache_requests=cached,
            )
            icl += [{"dataset": dataset, "model": model, **r} for r in icl_rows(records, tok, step)]
    arrays = {name: np.stack(values) for name, values in losses.items()}
    _write_outputs(Path(out_dir), suite, steps, arrays, icl, t0)
    return Path(out_dir)


def _read_inputs(
    suite: Suite, hallucination: str | Path, tasks: str | Path, validation: str | Path | None = None
) -> _Inputs:
    """The validation sequences (the suite's split or the file ``validation``), the prompts and
    continuations of the hallucination file (written by ``generate``) and the ICL task names
    (``tasks.json`` of ``tasks``)."""
    n = settings(suite).val_sequences
    needed_by = "section 06 (analysis.training_trajectories.val_sequences)"
    val = validation_rows(suite, n, validation, needed_by)  # (N, seq_len + 1)
    hal_file = Path(hallucination)
    if not hal_file.is_file():
        raise MissingInputError(
            f"{hal_file} is missing; make it with `pythia training-trajectories generate`"
        )
    with np.load(hal_file) as h:
        prompts, gen, true = h["prompts"], h["generated"], h["true"]
    tasks = Path(tasks)
    if not (tasks / "tasks.json").is_file():
        raise MissingInputError(
            f"{tasks}/tasks.json is missing; write the tasks with `pythia training-trajectories tasks`"
        )
    return _Inputs(
        val=val,
        gen_rows=np.concatenate([prompts, gen], 1),
        true_rows=np.concatenate([prompts, true], 1),
        prompt_tokens=prompts.shape[1],
        tasks=tasks,
        names=json.loads((tasks / "tasks.json").read_text()),
    )


def _losses(
    ckpt, inputs: _Inputs, vocab: int, load: _OnDemand, batch_size: int | None
) -> dict[str, np.ndarray]:
    """One checkpoint's float16 token losses (cached per block of rows): ``val_losses``
    (N * seq_len,) of the validation sequences, ``gen_losses`` and ``true_losses``
    (P, new tokens) of the continuations after their prompt."""
    p = inputs.prompt_tokens

    def losses(rows: np.ndarray, positions: range | None = None) -> np.ndarray:
        scores = cached_score(
            ckpt, rows, positions, vocab_size=vocab, load_model=load, batch_size=batch_size
        )
        return scores.losses.astype(np.float16)

    return {
        "val_losses": losses(inputs.val).reshape(-1),
        "gen_losses": losses(inputs.gen_rows, range(p, inputs.gen_rows.shape[1])),
        "true_losses": losses(inputs.true_rows, range(p, inputs.true_rows.shape[1])),
    }


def _write_outputs(
    out_dir: Path,
    suite: Suite,
    steps: list[int],
    losses: dict[str, np.ndarray],
    icl: list[dict],
    t0: float,
) -> None:
    """``out_dir/losses.npz`` (the steps, every checkpoint's losses, the sequence length and the
    job's seconds since ``t0``) and ``out_dir/icl.csv``, each written atomically."""
    with atomic_path(out_dir / "losses.npz", suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            steps=np.array(steps),
            val_losses=losses["val_losses"],
            gen_losses=losses["gen_losses"],
            true_losses=losses["true_losses"],
            seq_len=suite.training.seq_len,
            seconds=time.perf_counter() - t0,
        )
    with atomic_path(out_dir / "icl.csv") as tmp:
        pd.DataFrame(icl, columns=ICL_COLUMNS).to_csv(tmp, index=False)
