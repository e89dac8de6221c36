"""The gender intervention (the Pythia paper, section 4.1): continue a trained run from its saved
state over the last part of training, on the same batches with masculine pronoun tokens replaced
by feminine ones.

The swap is a token-level, length-preserving map (:func:`pronoun_map`), applied to exactly the
batch ``get_batch`` returns for each intervened step::

    original = get_batch(suite, dataset, s)         # (B, L+1) int64, the baseline's batch s
    swapped  = lut[original]                        # lut: identity except masculine -> feminine ids

so order, optimizer state, learning rate and RNG are the baseline's; only those token ids differ.
GPT-NeoX's ``intervention`` branch swaps these ten token pairs of the GPT-NeoX-20B tokenizer:
" He"->" She", " His"->" Her", "His"->"Her", "He"->"She", " his"->" her", " he"->" she",
" him"->" her", "his"->"her", "him"->"her", "he"->"she". For another tokenizer (the micro
suite's BPE) the same string pairs are used where both sides are single tokens. (Its later
text-level branch re-tokenised the unmodified string, so that swap never took effect.)

Intervened runs are run *variants* (:data:`pythia.paths.VARIANTS`, the suite's
``intervention.runs``): ``work/<suite>/models/<dataset>-<variant>/<model>/``, with checkpoints
on the suite's schedule, a ``train_log.jsonl`` like the baseline's (``batch_hash`` of the swapped
batch, ``original_batch_hash`` of the baseline's, ``swaps`` per step, ``swap_seconds``) and
``done.json``. A run starts at ``Suite.step_before_end(fraction)``: from the baseline's state
there, or, if that step has no saved state, from the nearest earlier state, replaying the
unmodified batches up to the start (deterministic, so the replayed weights are the baseline's:
:func:`InterventionTrainer.replay_proof` checks them against the baseline's checkpoint there).
The start point is written as the run's first checkpoint, its state too, so a killed run
resumes from its own states like any run.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pythia import paths
from pythia.config import Suite, config_digest, load_suite
from pythia.errors import MissingInputError, UsageError, require_device

log = logging.getLogger("pythia.intervene")

PRONOUN_PAIRS: tuple[tuple[str, str], ...] = (
    (" He", " She"),
    (" His", " Her"),
    ("His", "Her"),
    ("He", "She"),
    (" his", " her"),
    (" he", " she"),
    (" him", " her"),
    ("his", "her"),
    ("him", "her"),
    ("he", "she"),
)
"""Masculine -> feminine strings of GPT-NeoX's ``intervention`` branch, in its order."""


class InterventionError(MissingInputError):
    """An intervened run cannot start: no saved state of the baseline before its start step."""


# ------------------------------------------------------------------------------ the map


@dataclass(frozen=True)
class PronounMap:
    """Masculine -> feminine token ids of one tokenizer, and the pairs that were left out."""

    pairs: tuple[tuple[str, str, int, int], ...]
    """(masculine string, feminine string, masculine id, feminine id) of every usable pair."""
    skipped: tuple[tuple[str, str], ...]
    """String pairs not both single tokens in this tokenizer (not swapped)."""
    vocab_size: int

    @property
    def masculine(self) -> np.ndarray:
        return np.array(sorted({m for _, _, m, _ in self.pairs}), dtype=np.int64)

    @property
    def feminine(self) -> np.ndarray:
        return np.array(sorted({f for _, _, _, f in self.pairs}), dtype=np.int64)

    def lut(self, size: int | None = None) -> np.ndarray:
        """(V,) int64 lookup table: identity except ``lut[masculine] = feminine``."""
        table = np.arange(max(size or 0, self.vocab_size), dtype=np.int64)
        for _, _, m, f in self.pairs:
            table[m] = f
        return table

    def groups(self) -> dict[int, list[int]]:
        """Feminine id -> the masculine ids that map to it (" her" <- " his", " him")."""
        out: dict[int, list[int]] = {}
        for _, _, m, f in self.pairs:
            out.setdefault(f, []).append(m)
        return out

    def to_json(self) -> dict:
        return {
            "pairs": [list(p) for p in self.pairs],
            "skipped": [list(p) for p in self.skipped],
            "vocab_size": self.vocab_size,
        }

    @property
    def digest(self) -> str:
        return config_digest(self.to_json())


def pronoun_map(tokenizer, pairs=None) -> PronounMap:
    """The swap for ``tokenizer``: each pair of ``pairs`` (default :data:`PRONOUN_PAIRS`) whose two
    strings are single tokens (encoding without special tokens gives one id that decodes back to
    the string)."""
    strings = [tuple(p) for p in (pairs or PRONOUN_PAIRS)]
    found, skipped = [], []

    def single(text: str) -> int | None:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[0] if len(ids) == 1 and tokenizer.decode(ids) == text else None

    for m, f in strings:
        mi, fi = single(m), single(f)
        if mi is None or fi is None:
            skipped.append((m, f))
        else:
            found.append((m, f, mi, fi))
    if not found:
        raise UsageError(
            f"no pair of {strings} is one token on both sides in "
            f"this tokenizer, so the intervention would change nothing; give single-token pairs in the "
            f"suite's intervention.pairs"
        )
    return PronounMap(tuple(found), tuple(skipped), len(tokenizer))


def suite_map(suite: Suite | str) -> PronounMap:
    """The pronoun map of a suite's built tokenizer."""
    from pythia.data.tokenizer import load_tokenizer

    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    return pronoun_map(load_tokenizer(suite), suite.intervention.pairs)


def swap(batch: np.ndarray, lut: np.ndarray) -> tuple[np.ndarray, int]:
    """(swapped batch, number of tokens changed): one gather, same shape and dtype."""
    out = lut[batch]
    return out, int(np.count_nonzero(out != batch))


# ------------------------------------------------------------------------------ runs


def window(suite: Suite, variant: str) -> tuple[int, int]:
    """(start step, end step) of an intervened run variant of ``suite``; an empty window (a suite
    too short for the fraction) is a one-line error."""
    run = run_spec(suite, variant)
    start, end = suite.step_before_end(run.fraction), suite.training.train_iters
    if start >= end:
        raise UsageError(
            f"intervention.runs.{variant}: fraction {run.fraction} of suite {suite.name!r} starts at step "
            f"{start}, the last step (no window); use a larger fraction"
        )
    return start, end


def run_spec(suite: Suite, variant: str):
    runs = suite.intervention.runs
    if variant not in runs:
        raise UsageError(
            f"suite {suite.name!r} has no intervened run {variant!r}; its intervention.runs: "
            f"{', '.join(runs) or 'none'}"
        )
    return runs[variant]


def intervened_runs(suite: Suite) -> list[tuple[str, str]]:
    """(run name, model) of every intervened run the suite configures."""
    ds = suite.intervention.dataset
    return [
        (paths.run_name(ds, v), m)
        for v, r in suite.intervention.runs.items()
        for m in r.models
        if m in suite.models
    ]


def intervention_digest(suite: Suite, model: str, variant: str) -> str:
    """What an intervened run's weights depend on: the baseline run, the start step and the map's
    definition (the tokenizer is in the baseline's digest)."""
    from pythia.train.checkpoint import run_digest

    dataset = suite.intervention.dataset
    return config_digest(
        {
            "baseline": run_digest(suite, model, dataset),
            "variant": variant,
            "start": window(suite, variant)[0],
            "pairs": suite.intervention.pairs or PRONOUN_PAIRS,
        }
    )


def _trainer_class():
    from pythia.train import checkpoint as ckpt
    from pythia.train.loop import Trainer, _hash_list

    class InterventionTrainer(Trainer):
        """The trainer of an intervened run: starts from the baseline's state at the window's
        start (replaying unmodified batches from an earlier state if needed), swaps pronouns in
        every batch after it, and logs both batches' hashes."""

        def __init__(self, opts, variant: str, ctx=None):
            super().__init__(opts, ctx)
            self.variant = variant
            self.start, _ = window(self.suite, variant)
            self.baseline_dir = paths.run_dir(self.suite.name, self.dataset, self.spec.name)
            self.baseline_digest = self.run_digest
            self.run_dir = (
                Path(opts.out)
                if opts.out
                else paths.run_dir(
                    self.suite.name, paths.run_name(self.dataset, variant), self.spec.name
                )
            )
            self.run_digest = intervention_digest(self.suite, self.spec.name, variant)
            self.map = suite_map(self.suite)
            self.lut = self.map.lut(self.suite.vocab_rows(self.spec))
            self.replay: dict[str, Any] = {}

        def run_record(self) -> dict:
            rec = super().run_record()
            return {
                **rec,
                "variant": self.variant,
                "start_step": self.start,
                "baseline": str(self.baseline_dir),
                "baseline_run_digest": self.baseline_digest,
                "pronoun_map": self.map.to_json(),
            }

        def load_batch(self, step: int) -> tuple[np.ndarray, dict[str, Any]]:
            original = self.batches.get_batch(self.suite, self.dataset, step)
            if step < self.start:
                return original, {}
            t0 = time.perf_counter()
            swapped, n = swap(original, self.lut)
            dt = time.perf_counter() - t0
            return swapped, {
                "original_batch_hash": self.batches.batch_hash(original),
                "swaps": n,
                "swap_seconds": dt,
            }

        def baseline_start_state(self) -> tuple[Path, int]:
            """The baseline's saved state at or before the start step; none is a one-line error."""
            have = ckpt.saved_steps(self.baseline_dir / "state")
            usable = [s for s in have if s <= self.start]
            if not usable:
                raise InterventionError(
                    f"no saved training state of {self.baseline_dir} at or before step {self.start} (the start of "
                    f"{self.variant}); states saved at steps: {', '.join(map(str, have)) or 'none'}; train the "
                    f"baseline with that state (training.checkpoints.state_at_fractions_before_end or state_every) "
                    f"or choose a later intervention fraction"
                )
            return ckpt.state_dir(self.baseline_dir, usable[-1]), usable[-1]

        def _prepare_run_dir(self) -> int:
            if self.opts.resume and ckpt.latest_state(self.run_dir)[0] is not None:
                return super()._prepare_run_dir()  # our own state: resume like any run
            if self.ctx.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                ckpt.check_run_dir(
                    self.run_dir, self.run_record(), replace_stale=self.opts.replace_stale
                )
                if ckpt.saved_steps(self.run_dir) and not self.opts.resume:
                    raise ckpt.CheckpointError(
                        f"{self.run_dir} already holds checkpoints of this run; pass --resume "
                        "to continue it, or delete the directory to start over"
                    )
            state, step = self.baseline_start_state()
            digest, self.run_digest = self.run_digest, self.baseline_digest
            try:
                self.load_state(state, None)  # checks it is the baseline's state
            finally:
                self.run_digest = digest
            log.info("%s: loaded the baseline state of step %d from %s", self.variant, step, state)
            t0 = time.perf_counter()
            for s in range(step, self.start):  # unmodified batches: the baseline's own steps
                self.train_step(s, self.batches.get_batch(self.suite, self.dataset, s))
            self.replay = {
                "state_step": step,
                "replayed_steps": self.start - step,
                "replay_seconds": time.perf_counter() - t0,
                **self.replay_proof(),
            }
            if self.ctx.is_main:
                self._truncate_log(-1)
                rec: dict[str, Any] = {
                    "step": self.start,
                    "tokens_seen": self.start * self.training.tokens_per_step,
                    "start": True,
                    **self.replay,
                }
                rec["val_loss"] = self.validate()
                self.save_checkpoint(self.start, rec)
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(rec, sort_keys=True) + "\n")
            self.save_state(self.start)
            return self.start

        def replay_proof(self) -> dict[str, Any]:
            """Whether the weights at the start equal the baseline's checkpoint there, bit for bit."""
            from safetensors.torch import load_file

            path = ckpt.model_dir(self.baseline_dir, self.start) / "model.safetensors"
            if not path.is_file():
                return {"start_matches_baseline": None}
            saved = load_file(str(path))
            mine = self.model.state_dict()
            # the same output layer is "embed_out" in GPT-NeoX checkpoints and "lm_head" in transformers 5's module
            norm = {"embed_out.weight": "lm_head.weight"}
            saved = {norm.get(k, k): v for k, v in saved.items()}
            mine = {norm.get(k, k): v for k, v in mine.items()}
            same = saved.keys() == mine.keys() and all(
                mine[k].cpu().equal(v) for k, v in saved.items()
            )
            if not same:
                log.warning(
                    "the weights at step %d differ from the baseline's checkpoint %s",
                    self.start,
                    path,
                )
            return {"start_matches_baseline": bool(same)}

        def write_done(self) -> dict[str, Any]:
            done = super().write_done()
            records = [json.loads(x) for x in self.log_path.read_text().splitlines() if x.strip()]
            swaps = [r["swaps"] for r in records if "swaps" in r]
            done.update(
                {
                    "variant": self.variant,
                    "start_step": self.start,
                    "baseline_run_digest": self.baseline_digest,
                    "swaps": int(sum(swaps)),
                    "swapped_steps": len(swaps),
                    "original_batch_hashes_sha256": _hash_list(
                        [r["original_batch_hash"] for r in records if "original_batch_hash" in r]
                    ),
                    **{
                        k: v
                        for k, v in records[0].items()
                        if k in ("state_step", "replayed_steps", "start_matches_baseline")
                    },
                }
            )
            from pythia.io import write_json

            write_json(self.run_dir / "done.json", done)
            return done

    return InterventionTrainer


def train_intervention(opts, variant: str, ctx=None) -> dict[str, Any]:
    """Train one intervened run (``opts``: :class:`pythia.train.loop.TrainOptions` of the baseline's
    model and dataset); returns the summary (``done.json`` at the end). Holds the run's lock."""
    from contextlib import nullcontext

    from pythia import locks

    suite = (
        opts.suite
        if isinstance(opts.suite, Suite)
        else load_suite(opts.suite, opts.overrides or None)
    )
    opts.suite = suite
    opts.dataset = suite.intervention.dataset
    spec = run_spec(suite, variant)
    window(suite, variant)
    if opts.model not in spec.models:
        raise UsageError(
            f"suite {suite.name!r} has no intervened run {variant!r} of model {opts.model!r}; its "
            f"models: {', '.join(spec.models)} (intervention.runs.{variant}.models)"
        )
    trainer = _trainer_class()(opts, variant, ctx)
    with (
        locks.exclusive(trainer.run_dir, "pythia gender_intervention train")
        if trainer.ctx.is_main
        else nullcontext()
    ):
        return trainer.run()


# ------------------------------------------------------------------------------ the batch viewer


def view_batch(
    suite: Suite | str, step: int, row: int = 0, dataset: str | None = None
) -> dict[str, Any]:
    """Row ``row`` of training batch ``step`` before and after the swap, decoded, with the swapped
    positions: what ``pythia gender_intervention view`` prints."""
    from pythia.data.batches import get_batch
    from pythia.data.tokenizer import load_tokenizer

    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    tok = load_tokenizer(suite)
    pmap = pronoun_map(tok, suite.intervention.pairs)
    batch = get_batch(suite, dataset or suite.intervention.dataset, step)
    if not 0 <= row < len(batch):
        raise UsageError(f"row {row} out of range: a batch has rows 0..{len(batch) - 1}")
    swapped, n = swap(batch, pmap.lut())
    where = np.flatnonzero(swapped[row] != batch[row])
    return {
        "step": step,
        "row": row,
        "swaps_in_batch": n,
        "swaps_in_row": len(where),
        "positions": where.tolist(),
        "before": tok.decode(batch[row]),
        "after": tok.decode(swapped[row]),
        "pairs": [f"{m!r}->{f!r}" for m, f, _, _ in pmap.pairs],
    }


# ------------------------------------------------------------------------------ command line


def _cmd_train(args) -> int:
    from pythia.train.loop import TrainOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    opts = TrainOptions(
        suite=args.suite,
        model=args.model,
        out=args.out,
        resume=args.resume,
        replace_stale=args.replace_stale,
        threads=args.threads,
        device=args.device,
        deepspeed=args.deepspeed,
        progress=False if args.no_progress else None,
    )
    summary = train_intervention(opts, args.variant)
    if summary.get("finished"):
        log.info("finished: %s", json.dumps(summary, sort_keys=True))
    return 0


def _cmd_map(args) -> int:
    print(json.dumps(suite_map(args.suite).to_json(), indent=2, ensure_ascii=False))
    return 0


def _cmd_view(args) -> int:
    v = view_batch(args.suite, args.step, args.row, args.dataset)
    print(
        f"step {v['step']} row {v['row']}: {v['swaps_in_row']} tokens swapped in the row, {v['swaps_in_batch']} "
        f"in the batch (pairs: {', '.join(v['pairs'])})"
    )
    print(f"positions: {v['positions']}")
    print("--- before\n" + v["before"] + "\n--- after\n" + v["after"])
    return 0


def _cmd_tasks(args) -> int:
    from pythia.evaluate.bias import write_tasks

    suite = load_suite(args.suite)
    print(write_tasks(args.out, suite, args.examples or suite.analysis.benchmarks_examples))
    return 0


def _cmd_evaluate(args) -> int:
    from pythia import runs
    from pythia.evaluate.bias import evaluate_run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    suite = load_suite(args.suite)
    paths.parse_run(args.run)
    suite.model(args.model)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cat = runs.from_arguments(suite, args)
    require_device(args.device)
    evaluate_run(
        suite,
        cat,
        args.run,
        args.model,
        args.tasks,
        args.out,
        device=args.device,
        dtype=args.dtype,
        online=args.online,
        progress=not args.no_progress,
    )
    return 0


def _cmd_published(args) -> int:
    from pythia.published.bias import convert

    for p in convert(args.reference, args.out):
        print(p)
    return 0


def register(sub) -> None:
    from pythia import runs

    p = sub.add_parser(
        "gender_intervention", help="the gender intervention (section 03): train, evaluate, inspect"
    )
    s = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    q = s.add_parser(
        "train",
        help="train an intervened run: the baseline's saved state, then pronoun-swapped batches",
    )
    q.add_argument("--suite", required=True, help="suite name or YAML path")
    q.add_argument("--model", required=True)
    q.add_argument(
        "--variant",
        default="intervention",
        choices=list(paths.VARIANTS),
        help="the run variant (its window is the suite's intervention.runs.<variant>.fraction)",
    )
    q.add_argument(
        "--out",
        type=Path,
        help="run directory (default work/<suite>/models/<dataset>-<variant>/<model>)",
    )
    q.add_argument(
        "--resume", action="store_true", help="continue from the run's latest saved state"
    )
    q.add_argument(
        "--replace-stale",
        action="store_true",
        help="start over if the directory holds another configuration",
    )
    q.add_argument("--threads", type=int, help="torch CPU threads")
    q.add_argument("--device", default="cpu", help="cpu or cuda")
    q.add_argument("--deepspeed", action="store_true", help="train through DeepSpeed (GPU)")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=_cmd_train)

    q = s.add_parser("map", help="print the pronoun map of the suite's tokenizer")
    q.add_argument("--suite", required=True)
    q.set_defaults(func=_cmd_map)

    q = s.add_parser("view", help="a training batch row before and after the swap")
    q.add_argument("--suite", required=True)
    q.add_argument("--step", type=int, required=True)
    q.add_argument("--row", type=int, default=0)
    q.add_argument(
        "--dataset", choices=paths.DATASETS, help="default: the suite's intervention.dataset"
    )
    q.set_defaults(func=_cmd_view)

    q = s.add_parser(
        "tasks",
        help="write the offline lm-eval tasks (CrowS-Pairs gender, WinoBias, the suite's "
        "in-corpus cloze) into a folder",
    )
    q.add_argument(
        "--suite",
        required=True,
        help="suite name or YAML path (its held-out documents give the cloze)",
    )
    q.add_argument(
        "--examples",
        type=int,
        help="cloze passages / 2 (default: the suite's analysis.benchmarks_examples)",
    )
    q.add_argument("--out", type=Path, required=True)
    q.set_defaults(func=_cmd_tasks)

    q = s.add_parser(
        "evaluate", help="bias, pronoun log-odds and validation loss of a run's window checkpoints"
    )
    q.add_argument("--suite", required=True)
    q.add_argument("--run", required=True, help="a dataset or <dataset>-<variant>")
    q.add_argument("--model", required=True)
    q.add_argument(
        "--tasks",
        type=Path,
        help="the folder of `pythia gender_intervention tasks` (offline tasks)",
    )
    q.add_argument(
        "--online",
        action="store_true",
        help="lm-eval's hub tasks crows_pairs_english_gender and lambada_openai "
        "instead of the offline CrowS-Pairs and cloze",
    )
    q.add_argument("--out", type=Path, required=True, help="CSV of the measures")
    q.add_argument("--device", default="cpu")
    q.add_argument("--dtype", default=None, help="model dtype (default float32; bf16/fp16 on CUDA)")
    q.add_argument("--threads", type=int)
    q.add_argument("--no-progress", action="store_true")
    runs.add_arguments(q)
    q.set_defaults(func=_cmd_evaluate)

    q = s.add_parser(
        "published",
        help="convert EleutherAI's published bias evals into the project's compact table",
    )
    q.add_argument(
        "--reference",
        type=Path,
        required=True,
        help="the pythia-evals folder (bias-evals/, pythia-v0/)",
    )
    q.add_argument("--out", type=Path, default=Path(__file__).parent / "published" / "tables")
    q.set_defaults(func=_cmd_published)
