"""Typed, documented configuration of a model suite.

A *suite* is a set of model sizes trained on one data order with one global batch,
like Pythia. Suites live as YAML files in ``pythia/suites/`` (``pythia``, ``micro``,
``smoke``) or anywhere on disk. Loading validates strictly: an unknown key, a wrong type,
an unknown suite or an unknown model fails with the key's path and the allowed values.

Every field carries a description; ``pythia config-reference`` renders them as a page.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import os
import typing
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pythia.errors import PythiaError
from pythia.paths import DATASETS, VARIANTS, parse_run, parse_seed, seed_run_name

SUITES_DIR = Path(__file__).parent / "suites"


class ConfigError(PythiaError, ValueError):
    """A configuration file or name is wrong; the message says which key and what to do."""


class InitScheme(str, enum.Enum):
    """How weights are initialised."""

    small_init = "small_init"
    """Pythia (<= 2.8B): normal(0, sqrt(2/(5d))); output projections wang_init 2/(L*sqrt(d))."""
    neox_default = "neox_default"
    """GPT-NeoX defaults (Pythia 6.9B, 12B): normal(0, 0.02); output projections 0.02/sqrt(2L)."""


class Precision(str, enum.Enum):
    """Numeric format of training (GPUs: per model; CPU: ``training.cpu_precision``)."""

    fp32 = "fp32"
    """Full precision (what CPU training uses unless ``training.cpu_precision`` says bf16)."""
    fp16 = "fp16"
    """Mixed precision with dynamic loss scaling (Pythia: every model but the standard 1B)."""
    bf16 = "bf16"
    """Mixed precision in bfloat16, no loss scaling (Pythia: the standard 1B only)."""


class TokenizerKind(str, enum.Enum):
    """Which tokenizer a suite uses."""

    neox20b = "neox20b"
    """The GPT-NeoX-20B BPE (50,277 tokens), built offline from a GGUF vocabulary."""
    bpe = "bpe"
    """A byte-level BPE trained on the suite's own training split."""


class _Strict(BaseModel):
    # Validated in strict JSON mode (see load_suite): no silent str->int coercion, enums by value.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ModelSpec(_Strict):
    """One model size of a suite (a row of the Pythia paper's Table 1)."""

    name: str = ""
    """Model name within the suite, e.g. ``70M`` (filled from the key of ``models``)."""
    num_layers: Annotated[int, Field(gt=0)]
    """Number of transformer layers."""
    hidden_size: Annotated[int, Field(gt=0)]
    """Model dimension d_model."""
    num_heads: Annotated[int, Field(gt=0)]
    """Attention heads; d_head = hidden_size / num_heads."""
    peak_lr: Annotated[float, Field(gt=0)]
    """Learning rate at the end of warmup."""
    min_lr: Annotated[float, Field(ge=0)]
    """Floor of the cosine decay (Pythia: 0.1 x peak)."""
    init: InitScheme = InitScheme.small_init
    """Weight initialisation scheme."""
    precision: Precision = Precision.fp16
    """Training precision on GPUs for every dataset not named in ``precision_by_dataset``
    (CPU training runs in the suite's ``training.cpu_precision``, fp32 by default)."""
    precision_by_dataset: dict[str, Precision] = {}
    """Precision for one dataset, overriding ``precision``: Pythia trained only the standard 1B in
    bf16 (its fp16 run had an unrecoverable loss spike); 1B deduplicated was fp16 like the rest."""
    tensor_parallel: Annotated[int, Field(ge=1)] = 1
    """Tensor-parallel degree used by the original run."""
    padded_vocab_size: Annotated[int, Field(gt=0)] | None = None
    """Embedding rows, overriding the suite's padded vocabulary (Pythia 6.9B: 50,432; 12B: 50,688)."""

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelSpec:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        return self

    @model_validator(mode="after")
    def _precision_datasets_exist(self) -> ModelSpec:
        unknown = sorted(set(self.precision_by_dataset) - set(DATASETS))
        if unknown:
            raise ValueError(
                f"precision_by_dataset names unknown datasets: {', '.join(unknown)}; "
                f"datasets: {', '.join(DATASETS)}"
            )
        return self

    def precision_for(self, dataset: str) -> Precision:
        """GPU training precision of this model on ``dataset`` (its own entry, else ``precision``)."""
        if dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
        return self.precision_by_dataset.get(dataset, self.precision)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def non_embedding_params(self) -> int:
        """Parameters outside the two (untied) embedding matrices."""
        d = self.hidden_size
        return self.num_layers * (12 * d * d + 13 * d) + 2 * d


class TokenizerSpec(_Strict):
    """The suite's tokenizer and its padded vocabulary."""

    kind: TokenizerKind = TokenizerKind.bpe
    """``neox20b`` (the real Pythia tokenizer) or ``bpe`` (trained on the suite's data)."""
    vocab_size: Annotated[int, Field(gt=256)] = 50277
    """Tokens in the tokenizer (for ``bpe``: the trained vocabulary size, special tokens included)."""
    pad_multiple: Annotated[int, Field(gt=0)] = 128
    """Embedding rows are padded up to a multiple of this (GPT-NeoX: 128 x tensor parallel)."""

    @property
    def padded_vocab_size(self) -> int:
        return math.ceil(self.vocab_size / self.pad_multiple) * self.pad_multiple


class DedupSpec(_Strict):
    """Near-deduplication with MinHash LSH (datasketch)."""

    threshold: Annotated[float, Field(gt=0, le=1)] = 0.87
    """Jaccard similarity above which two documents are one cluster (Pythia: 0.87)."""
    num_perm: Annotated[int, Field(gt=0)] = 128
    """MinHash permutations."""
    shingle_words: Annotated[int, Field(gt=0)] = 5
    """Documents are sets of overlapping word n-grams of this length."""


class SourceSpec(_Strict):
    """A user-supplied extra text source (online users: the Pile, any HF dataset, a jsonl file)."""

    name: str
    """Name used in the data card."""
    kind: str
    """``jsonl`` (a local file, one JSON object per line) or ``hf`` (a Hugging Face dataset id)."""
    path: str
    """File path (jsonl) or dataset id (hf)."""
    text_field: str = "text"
    """Field holding the document text."""
    split: str = "train"
    """Dataset split (hf)."""
    domain: str = "web"
    """Pile-like domain label for the data card."""
    max_documents: Annotated[int, Field(gt=0)] | None = None
    """Keep at most this many documents (in source order)."""


class PretokenizedSpec(_Strict):
    """Training sequences published ready to use, like Pythia's pre-shuffled Pile: a GPT-NeoX
    ``MMapIndexedDataset`` in which row j is training sequence j (seq_len + 1 tokens), so step s
    is rows [B*s, B*(s+1)). ``get_batch`` reads it as is instead of an order built from ``sources``."""

    hub_dataset: str
    """Hugging Face dataset repository publishing the files (what to download), e.g. ``EleutherAI/pile-deduped-pythia-preshuffled``."""
    path: str = ""
    """Path prefix of the unsharded ``.bin``/``.idx`` pair (``~`` and ``$VARIABLES`` expand); empty: ``<PYTHIA_WORK>/<suite>/data/<dataset>/released/document``."""
    shards: Annotated[int, Field(gt=0)] = 21
    """The repository splits the ``.bin`` into this many files ``document-00000-of-000NN.bin`` (joined by ``pythia data unshard``)."""


class DataSpec(_Strict):
    """Which text the suite is trained on and how it is split."""

    sources: list[str]
    """Names of built-in sources (see ``pythia data sources``)."""
    extra_sources: list[SourceSpec] = []
    """Additional user sources (jsonl files or Hugging Face datasets)."""
    max_bytes_per_source: Annotated[int, Field(gt=0)] | None = None
    """Cap on the text taken from each source (documents in a fixed order until the cap)."""
    source_max_bytes: dict[str, Annotated[int, Field(gt=0)]] = {}
    """Per-source caps overriding ``max_bytes_per_source`` (e.g. more of a source rich in natural duplicates)."""
    val_fraction: Annotated[float, Field(ge=0, lt=0.5)] = 0.01
    """Fraction of documents held out for validation, chosen by a hash of the document."""
    test_fraction: Annotated[float, Field(ge=0, lt=0.5)] = 0.01
    """Fraction of documents held out for testing, chosen by a hash of the document."""
    dedup: DedupSpec = DedupSpec()
    """Settings of the deduplicated twin."""
    contamination_ngram: Annotated[int, Field(gt=0)] = 13
    """Training documents sharing an n-gram of this many words with an evaluation item are dropped."""
    seed: int = 1234
    """Seed of the data order (GPT-NeoX: the training seed)."""
    pretokenized: dict[str, PretokenizedSpec] = {}
    """Datasets (``standard``, ``deduped``) trained on published pre-shuffled files instead of an order built
    from ``sources`` (the ``pythia`` suite: Pythia's released Pile). The tokenizer and the validation and
    test splits are still built from ``sources``."""

    def cap(self, source: str) -> int | None:
        """Byte cap of ``source``: its own entry in ``source_max_bytes`` or ``max_bytes_per_source``."""
        return self.source_max_bytes.get(source, self.max_bytes_per_source)

    @model_validator(mode="after")
    def _caps_name_sources(self) -> DataSpec:
        known = set(self.sources) | {s.name for s in self.extra_sources}
        unknown = sorted(set(self.source_max_bytes) - known)
        if unknown:
            raise ValueError(
                f"source_max_bytes names sources not in this suite: {', '.join(unknown)}; sources: {', '.join(sorted(known))}"
            )
        wrong = sorted(set(self.pretokenized) - set(DATASETS))
        if wrong:
            raise ValueError(
                f"pretokenized names unknown datasets: {', '.join(wrong)}; datasets: {', '.join(DATASETS)}"
            )
        return self


class CheckpointSchedule(_Strict):
    """Pythia's checkpoint shape: step 0, log-spaced steps, then evenly spaced."""

    log_spaced_until: Annotated[int, Field(ge=0)]
    """Save steps 1, 2, 4, ... up to and including this power of two (Pythia: 512)."""
    every: Annotated[int, Field(gt=0)]
    """Then every this many steps up to the last step (Pythia: 1000)."""
    state_at_fractions_before_end: list[Annotated[float, Field(ge=0, lt=1)]] = [0.0, 0.07, 0.21]
    """Training state (optimizer, RNG, data position) is saved this fraction of training before
    the end (0 = the final step), at the nearest checkpoint step (Pythia 7%: step 133,000)."""
    state_every: Annotated[int, Field(ge=0)] = 0
    """Also save training state every this many steps for resumption (0: only the listed ones)."""


class TrainingSpec(_Strict):
    """Optimisation settings shared by every size of the suite."""

    seq_len: Annotated[int, Field(gt=0)]
    """Tokens per training sequence (each stored sample has seq_len + 1 tokens)."""
    global_batch: Annotated[int, Field(gt=0)]
    """Sequences per optimizer step, the same for every size."""
    micro_batch: Annotated[int, Field(gt=0)] | None = None
    """Sequences per forward pass on one device (None: the whole global batch)."""
    train_iters: Annotated[int, Field(gt=0)]
    """Optimizer steps."""
    warmup_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.01
    """Linear warmup over this fraction of train_iters (kept fractional: micro's 0.01 x 640 = 6.4 steps)."""
    adam_beta1: float = 0.9
    """Adam beta1."""
    adam_beta2: float = 0.95
    """Adam beta2."""
    adam_eps: float = 1e-8
    """Adam epsilon."""
    weight_decay: float = 0.1
    """Decoupled weight decay, not applied to LayerNorm weights or biases."""
    grad_clip: float = 1.0
    """Gradient norm clipping."""
    seed: int = 1234
    """Seed of initialisation and training."""
    zero_stage: Annotated[int, Field(ge=0, le=3)] = 1
    """DeepSpeed ZeRO stage on GPUs."""
    checkpoints: CheckpointSchedule
    """When to save checkpoints."""
    val_sequences: Annotated[int, Field(gt=0)] = 64
    """Held-out sequences scored at every checkpoint."""
    cpu_precision: Precision = Field(default=Precision.fp32, exclude=True)
    """Precision of CPU training: ``fp32`` (default), or ``bf16``, the opt-in mixed-precision CPU
    path (:mod:`pythia.train.precision`: bf16 compute, fp32 master weights and AdamW state);
    ``fp16`` is GPU-only. Left out of ``model_dump`` (so every digest of a suite that does not set
    it stays what it was); :meth:`digest_dump` adds a non-default value to the suite's and the
    runs' digests (a bf16 run is another run)."""

    @model_validator(mode="after")
    def _cpu_precision_known(self) -> TrainingSpec:
        if self.cpu_precision is Precision.fp16:
            raise ValueError(
                "training.cpu_precision fp16 is not supported on CPU (no loss scaling there); "
                "use fp32 or bf16"
            )
        return self

    def digest_dump(self) -> dict[str, Any]:
        """The settings as the digests see them: ``cpu_precision`` only when not the default."""
        dump = self.model_dump(mode="json")
        if self.cpu_precision is not Precision.fp32:
            dump["cpu_precision"] = self.cpu_precision.value
        return dump

    @property
    def warmup_iters(self) -> float:
        """Warmup length in steps, a float as GPT-NeoX v1.0 keeps it (``warmup * train_iters`` in
        ``get_learning_rate_scheduler``, never rounded): Pythia's 1430.0, micro's 6.4."""
        return self.warmup_fraction * self.train_iters

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.seq_len


class TrajectoriesSpec(_Strict):
    """Section 06, training trajectories (Xia et al.): how much each analysis evaluates (defaults: the paper's setup; small suites set less)."""

    val_sequences: Annotated[int, Field(gt=0)] = 256
    """Held-out (validation) sequences whose every token's loss is kept at every checkpoint."""
    start_fractions: list[Annotated[float, Field(ge=0, lt=1)]] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    """Token classes are fitted on the checkpoints from these fractions of training on (the paper's t)."""
    prompts: Annotated[int, Field(gt=0)] = 256
    """Held-out prompts (test split) for the hallucination-like sequences."""
    prompt_tokens: Annotated[int, Field(gt=0)] = 32
    """Tokens of each prompt."""
    new_tokens: Annotated[int, Field(gt=0)] = 32
    """Tokens generated from each prompt (compared with its true continuation of the same length)."""
    contrast_epsilon: Annotated[float, Field(gt=0)] = 1e-5
    """The small constant added to max(p_small - p_large, 0) before renormalising."""
    icl_tasks: list[str] = []
    """Multiple-choice evaluation sets (:mod:`pythia.data.evalsets` names) evaluated in context;
    empty: every one the project has."""
    icl_shots: Annotated[int, Field(ge=0)] = 2
    """Examples shown before each question (the paper: 2)."""
    icl_limit: Annotated[int, Field(gt=0)] | None = None
    """Questions per task (null: all)."""


class OperandSet(_Strict):
    """Operands of one arithmetic prompt set of the term-frequency section (``Q:What is {x1} plus {x2}? A:``)."""

    x1: list[Annotated[int, Field(ge=0, le=99)]] = Field(
        default_factory=lambda: [0, 99], min_length=2, max_length=2
    )
    """First operand, an inclusive range [lo, hi] within 0..99 (the paper: [0, 99])."""
    x2: list[Annotated[int, Field(ge=1, le=50)]] = Field(
        default_factory=lambda: [1, 50], min_length=2, max_length=2
    )
    """Second operand, an inclusive range [lo, hi] within 1..50 (the paper: [1, 50]); shots are drawn from x1 x x2."""
    x2_values: list[Annotated[int, Field(ge=1, le=50)]] | None = None
    """The x2 values evaluated (a subset of the range, to make a small suite's evaluation cheap); null: every x2."""


class TermFrequencySpec(_Strict):
    """Section 05, term frequencies: operand counts in the training data and few-shot arithmetic (Razeghi et al.
    2022, as the Pythia paper ran it). Defaults are the paper's."""

    steps: list[Annotated[int, Field(ge=0)]] | None = None
    """Checkpoints evaluated (each a checkpoint step, checked when the section runs: a suite extending this one may
    train fewer steps; the paper: 13k, 39k, 65k, 91k, 117k, 143k); null: the analysis steps."""
    shard_steps: Annotated[int, Field(gt=0)] = 13000
    """Training steps per counting range (the paper's 13,000-step shards); ranges also end at every evaluated step."""
    shots: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [0, 2, 4, 8, 16], min_length=1
    )
    """Few-shot sizes k."""
    operations: list[Literal["plus", "times"]] = Field(
        default_factory=lambda: ["plus", "times"],  # type: ignore[arg-type]  # literals, not str
        min_length=1,
    )
    """Operations: plus, times."""
    operands: OperandSet = OperandSet()
    """The paper's prompt set."""
    simple: OperandSet | None = None
    """A simpler prompt set small models can partly solve (e.g. single-digit operands); null: none."""
    heldout: bool = False
    """Also evaluate, zero-shot, the true arithmetic statements of the suite's held-out (validation, test)
    documents cut before the answer (``12 plus 34 equals`` -> 46): the training text's own format, never
    trained on."""
    seed: int = 42
    """Seed of the shots drawn for each prompt (the paper: Random(42))."""
    max_new_tokens: Annotated[int, Field(gt=0)] = 16
    """Greedy generation stops at a newline or after this many tokens."""


class AnalysisSpec(_Strict):
    """What the analysis sections read. It never changes a trained weight, so it is not part of the suite's digest."""

    steps: list[Annotated[int, Field(ge=0)]] | None = None
    """Checkpoint steps the sections analyse, each a checkpoint step of the suite; null: every checkpoint step.
    The workflow's ``checkpoints.steps`` overrides it."""
    training_trajectories: TrajectoriesSpec = TrajectoriesSpec()
    """Sizes of section 06's evaluations (pythia.analysis.training_trajectories)."""
    benchmarks_examples: Annotated[int, Field(ge=1)] = 100
    """Examples kept per offline benchmark task (section 02; the cloze keeps twice as many), unless the
    workflow's ``benchmarks.examples`` sets them."""
    term_frequencies: TermFrequencySpec = TermFrequencySpec()
    """Settings of the term-frequency section."""


class InterventionRun(_Strict):
    """One intervened run variant: which models continue from which point with pronouns swapped."""

    fraction: Annotated[float, Field(gt=0, lt=1)]
    """Fraction of training before the end where the swap starts, at the nearest checkpoint step
    (:meth:`Suite.step_before_end`; Pythia: 0.07 -> step 133,000, 0.21 -> step 113,000)."""
    models: list[str]
    """Models of the suite that get this run (Pythia's paper: 70M, 410M, 1.4B, 6.9B for 7%; 1.4B for 21%)."""


class InterventionSpec(_Strict):
    """The gender intervention (section 03): continue trained runs from their saved state with
    masculine pronoun tokens replaced by feminine ones (:mod:`pythia.train.intervention`). It never changes
    a baseline run, so it is not part of the suite's digest."""

    dataset: str = "deduped"
    """The baseline runs the intervention continues (Pythia: the deduplicated models)."""
    runs: dict[str, InterventionRun] = {}
    """Run variant (a key of ``pythia.paths.VARIANTS``: ``intervention``, ``intervention_long``) -> its window."""
    pronoun_context: Annotated[int, Field(gt=0)] = 32
    """Tokens of held-out text before each pronoun the she/he log-odds measure reads."""
    pronoun_positions: Annotated[int, Field(gt=0)] = 1000
    """At most this many pronoun positions of the held-out text are scored per checkpoint."""
    eval_limit: Annotated[int, Field(gt=0)] | None = None
    """lm-eval ``limit`` per bias task (None: every example)."""
    pairs: list[Annotated[list[str], Field(min_length=2, max_length=2)]] | None = None
    """Masculine -> feminine strings to swap (None: GPT-NeoX's ten pairs, ``pythia.data.pronouns.PRONOUN_PAIRS``);
    only pairs that are single tokens on both sides are used."""


class SeedVary(str, enum.Enum):
    """What a seed run's seed changes (PolyPythias: ``seed<N>``, and the decoupled 160M runs)."""

    both = "both"
    """The initialisation and the data order (``<dataset>-seed<N>``, PolyPythias' ``pythia-<size>-seed<N>``)."""
    data = "data"
    """Only the data order; the initialisation is the baseline's (``<dataset>-data-seed<N>``)."""
    weight = "weight"
    """Only the initialisation; the data order is the baseline's (``<dataset>-weight-seed<N>``)."""


class SeedsSpec(_Strict):
    """Seed runs: some models of the suite trained again on both datasets with other seeds, so a
    difference can be told from seed noise (PolyPythias: seeds 1-9 of 14M-410M). Seed N sets the
    initialisation seed (``training.seed``) and/or the data-order seed (``data.seed``) to N; seed 0
    is the baseline run. The baselines never change, so this key is not part of the suite's digest."""

    models: list[str] = []
    """Models of the suite that get seed runs (micro: the two smallest)."""
    seeds: list[Annotated[int, Field(ge=1)]] = []
    """Seeds of the extra runs, each >= 1 (0 is the baseline) and none equal to the baseline's seeds."""
    vary: list[SeedVary] = Field(default_factory=lambda: [SeedVary.both])
    """What each seed changes: ``both`` (init and data order), ``data`` (order only), ``weight`` (init only)."""


class RunSeeds(BaseModel):
    """The seeds of one run: what it was initialised and ordered with."""

    model_config = ConfigDict(frozen=True)

    seed: int
    """The run's seed number (0: the baseline)."""
    vary: SeedVary | None
    """What the seed changed (None: the baseline)."""
    init_seed: int
    """Seed of the weight initialisation (and of torch's, numpy's and Python's RNGs)."""
    data_seed: int
    """Seed of the data order (:func:`pythia.data.order.build_indices`)."""


class Suite(_Strict):
    """A suite: sizes, tokenizer, data and training settings."""

    name: str
    """Suite name."""
    description: str = ""
    """One line on what the suite is for."""
    tokenizer: TokenizerSpec
    """The tokenizer."""
    data: DataSpec
    """The training data."""
    training: TrainingSpec
    """Shared optimisation settings."""
    models: dict[str, ModelSpec]
    """Model sizes by name, smallest first."""
    analysis: AnalysisSpec = AnalysisSpec()
    """Which checkpoints the analysis sections read."""
    intervention: InterventionSpec = InterventionSpec()
    """The gender intervention's runs (section 03)."""
    seeds: SeedsSpec = SeedsSpec()
    """Seed runs of some models (sections 01 and 02 draw the spread over seeds as bands)."""

    @model_validator(mode="before")
    @classmethod
    def _name_models(cls, values: Any) -> Any:
        if isinstance(values, dict) and isinstance(values.get("models"), dict):
            values = dict(values)
            values["models"] = {
                k: ({**v, "name": k} if isinstance(v, dict) else v)
                for k, v in values["models"].items()
            }
        return values

    @model_validator(mode="after")
    def _analysis_steps_exist(self) -> Suite:
        if self.analysis.steps is not None:
            self.check_steps(self.analysis.steps, "analysis.steps")
        return self

    @model_validator(mode="after")
    def _intervention_runs_valid(self) -> Suite:
        iv = self.intervention
        if iv.dataset not in DATASETS:
            raise ValueError(
                f"intervention.dataset {iv.dataset!r} is not a dataset ({', '.join(DATASETS)})"
            )
        for variant in iv.runs:
            if variant not in VARIANTS:
                raise ValueError(
                    f"intervention.runs: {variant!r} is not a run variant ({', '.join(VARIANTS)})"
                )
        return self

    @model_validator(mode="after")
    def _seeds_valid(self) -> Suite:
        sp = self.seeds
        unknown = [m for m in sp.models if m not in self.models]
        if unknown:
            raise ValueError(
                f"seeds.models names unknown models: {', '.join(unknown)}; models: {', '.join(self.models)}"
            )
        for what, values in (("models", sp.models), ("seeds", sp.seeds), ("vary", sp.vary)):
            if len(set(values)) != len(values):
                raise ValueError(f"seeds.{what} lists a value twice: {values}; list each once")
        base = {self.training.seed, self.data.seed}
        same = sorted(base & set(sp.seeds))
        if same:
            raise ValueError(
                f"seeds.seeds: {same[0]} is a baseline seed (training.seed, data.seed), so its run "
                "would repeat the baseline; pick another seed"
            )
        if sp.models and not sp.seeds:
            raise ValueError(
                "seeds.models is set but seeds.seeds is empty; list the seeds, e.g. [1, 2]"
            )
        return self

    def seed_runs(self, datasets: list[str] | tuple[str, ...] = DATASETS) -> list[tuple[str, str]]:
        """``(run, model)`` of every seed run of ``datasets`` (:func:`pythia.paths.seed_run_name`),
        by dataset, then kind, then seed, then model."""
        return [
            (seed_run_name(d, n, v.value), m)
            for d in datasets
            for v in self.seeds.vary
            for n in self.seeds.seeds
            for m in self.seeds.models
        ]

    def run_seeds(self, run: str) -> RunSeeds:
        """The initialisation and data-order seeds of ``run`` (a baseline, a variant or a seed run)."""
        parse_run(run)  # an unknown run fails here, naming the run kinds
        parsed = parse_seed(run)
        init, data = self.training.seed, self.data.seed
        if parsed is None:
            return RunSeeds(seed=0, vary=None, init_seed=init, data_seed=data)
        vary, n = SeedVary(parsed[0]), parsed[1]
        seeds = RunSeeds(
            seed=n,
            vary=vary,
            init_seed=init if vary is SeedVary.data else n,
            data_seed=data if vary is SeedVary.weight else n,
        )
        if (seeds.init_seed, seeds.data_seed) == (init, data):
            raise ConfigError(
                f"run {run!r} would repeat the baseline of suite {self.name!r} (its seeds are "
                f"training.seed {init} and data.seed {data}); pick another seed"
            )
        return seeds

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``; an unknown name lists the suite's models."""
        try:
            return self.models[name]
        except KeyError:
            raise ConfigError(
                f"unknown model {name!r} in suite {self.name!r}; models: {', '.join(self.models)}"
            ) from None

    def vocab_rows(self, model: ModelSpec) -> int:
        """Embedding rows of ``model``: its own override or the suite's padded vocabulary."""
        return model.padded_vocab_size or self.tokenizer.padded_vocab_size

    def total_params(self, model: ModelSpec) -> int:
        """Total parameters: non-embedding plus two untied embedding matrices."""
        return model.non_embedding_params() + 2 * self.vocab_rows(model) * model.hidden_size

    def checkpoint_steps(self) -> list[int]:
        """Steps at which a checkpoint is written (Pythia: 154 steps)."""
        return checkpoint_steps(
            self.training.train_iters,
            self.training.checkpoints.log_spaced_until,
            self.training.checkpoints.every,
        )

    def check_steps(self, steps: list[int], what: str = "steps") -> list[int]:
        """``steps`` if each is a checkpoint step of the suite; otherwise a ConfigError naming the first that
        is not, with its nearest checkpoint steps."""
        ckpts = self.checkpoint_steps()
        have = set(ckpts)
        for s in steps:
            if s not in have:
                near = sorted(ckpts, key=lambda c: (abs(c - s), c))[:2]
                raise ConfigError(
                    f"{what}: {s} is not a checkpoint step of suite {self.name!r} "
                    f"(nearest: {', '.join(map(str, sorted(near)))}; {len(ckpts)} steps from 0 to {ckpts[-1]})"
                )
        return list(steps)

    def analysis_steps(self) -> list[int]:
        """Checkpoint steps the analysis sections read: ``analysis.steps`` or every checkpoint step."""
        steps = self.analysis.steps
        return sorted(set(steps)) if steps is not None else self.checkpoint_steps()

    def step_before_end(self, fraction: float) -> int:
        """The checkpoint step nearest ``fraction`` of training before the end (ties: the earlier):
        where state is saved for it and where an intervention over that fraction starts."""
        total = self.training.train_iters
        target = round(total * (1 - fraction))
        return min(self.checkpoint_steps(), key=lambda s: (abs(s - target), s))

    def state_steps(self) -> list[int]:
        """Steps at which full training state is saved (always includes the final step)."""
        total = self.training.train_iters
        steps = {total}
        for frac in self.training.checkpoints.state_at_fractions_before_end:
            steps.add(self.step_before_end(frac))
        every = self.training.checkpoints.state_every
        if every:
            steps.update(range(every, total + 1, every))
        return sorted(steps)

    @cached_property
    def digest(self) -> str:
        """sha256 of the suite's canonical JSON: which config produced an output.

        ``analysis``, ``intervention`` and ``seeds`` are left out (they choose what sections read and
        which variants and seed runs train beside a baseline, never what a baseline trains), and so is an
        empty ``data.pretokenized`` (suites that build their own order keep the digest they had) and a
        default ``training.cpu_precision`` (fp32)."""
        dump = self.model_dump(mode="json", exclude={"analysis", "intervention", "seeds"})
        if not dump["data"]["pretokenized"]:
            del dump["data"]["pretokenized"]
        dump["training"] = self.training.digest_dump()
        return config_digest(dump)


def checkpoint_steps(train_iters: int, log_spaced_until: int, every: int) -> list[int]:
    """Step 0, then 1, 2, 4, ... <= log_spaced_until, then every ``every`` steps to the end."""
    steps = {0}
    p = 1
    while p <= min(log_spaced_until, train_iters):
        steps.add(p)
        p *= 2
    steps.update(range(every, train_iters + 1, every))
    steps.add(train_iters)
    return sorted(steps)


def config_digest(obj: Any) -> str:
    """Short sha256 of a JSON-serialisable object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def suite_dirs() -> list[Path]:
    """Where suites are looked up by name: ``$PYTHIA_SUITE_PATH`` (colon-separated), then ``pythia/suites``."""
    extra = [Path(p) for p in os.environ.get("PYTHIA_SUITE_PATH", "").split(os.pathsep) if p]
    return [*extra, SUITES_DIR]


def register_suite_file(path: str | Path) -> Suite:
    """Load a suite from a YAML file and make it loadable by name from now on, in this process
    and in the processes it starts (``$PYTHIA_SUITE_PATH``). The file must be named after its suite."""
    path = Path(path).resolve()
    suite = load_suite(path)
    if suite.name != path.stem:
        raise ConfigError(f"suite file {path} must be named after its suite: {suite.name}.yaml")
    dirs = [
        str(path.parent),
        *(p for p in os.environ.get("PYTHIA_SUITE_PATH", "").split(os.pathsep) if p),
    ]
    os.environ["PYTHIA_SUITE_PATH"] = os.pathsep.join(dict.fromkeys(dirs))
    return suite


def available_suites() -> list[str]:
    """Names of the suites that ``load_suite`` finds by name."""
    return sorted({p.stem for d in suite_dirs() for p in d.glob("*.yaml")})


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid suite configuration in {source}:"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(
                f"  {path}: unknown key (misspelled?); see `pythia config-reference` for the allowed keys"
            )
        elif e["type"] == "enum":
            lines.append(f"  {path}: {e['msg']}")
        elif (
            e["type"] == "value_error"
        ):  # our own checks: the message says it all (the input may be the whole suite)
            lines.append(f"  {path}: {e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {path}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def load_suite(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Suite:
    """Load a suite by name (``micro``) or from a YAML path, validating every key.

    A suite file may start from another suite (``extends: pythia``) and give only what differs.
    ``overrides`` is a nested dict merged over the file (e.g. ``{"training": {"train_iters": 10}}``).
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        named = _named_suite_file(str(name_or_path))
        if named is None:
            raise ConfigError(
                f"unknown suite {str(name_or_path)!r}; suites: {', '.join(available_suites())}"
            )
        path = named
    elif not path.exists():
        raise ConfigError(f"suite file {path} does not exist")
    raw = _read_raw(path)
    if overrides:
        raw = _merge(raw, overrides)
    try:
        return Suite.model_validate_json(json.dumps(raw), strict=True)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, str(path))) from None


def _named_suite_file(name: str) -> Path | None:
    """The file of the suite called ``name``: the first ``<name>.yaml`` in :func:`suite_dirs`, or None."""
    return next((d / f"{name}.yaml" for d in suite_dirs() if (d / f"{name}.yaml").exists()), None)


def _read_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A suite file's settings, with ``extends: BASE`` (a suite name or a path relative to the file)
    resolved: the file's keys are merged over the base suite's (see :func:`_merge`)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML ({e}); fix its syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of suite settings")
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw
    base = Path(str(base_name))
    if base.suffix in (".yaml", ".yml"):
        base = base if base.is_absolute() else path.parent / base
    else:
        named = _named_suite_file(str(base_name))
        if named is None:
            raise ConfigError(
                f"{path}: extends unknown suite {str(base_name)!r}; suites: {', '.join(available_suites())}"
            )
        base = named
    if not base.exists():
        raise ConfigError(f"{path}: extends {base}, which does not exist")
    if base.resolve() in seen or base.resolve() == path.resolve():
        raise ConfigError(f"{path}: circular extends through {base}")
    return _merge(_read_raw(base, (*seen, path.resolve())), raw)


def _merge(base: dict, over: dict) -> dict:
    """``over`` merged into ``base``: mappings merge key by key; any other value, and an empty
    mapping (``{}``: "none of these"), replaces the base's value."""
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _merge(out[k], v) if isinstance(v, dict) and v and isinstance(out.get(k), dict) else v
        )
    return out


def _type_name(tp: Any) -> str:
    """A readable name of a field's type: ``int or null``, ``list of str``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__} of " + ", ".join(_type_name(a) for a in args)
    return getattr(tp, "__name__", str(tp))


def reference_markdown() -> str:
    """A reference page of every configuration field, generated from the docstrings."""
    out = ["# Suite configuration reference", "", "Generated by `pythia config-reference`.", ""]
    for cls in (
        Suite,
        TokenizerSpec,
        DataSpec,
        DedupSpec,
        SourceSpec,
        PretokenizedSpec,
        TrainingSpec,
        CheckpointSchedule,
        ModelSpec,
        AnalysisSpec,
        TermFrequencySpec,
        OperandSet,
        TrajectoriesSpec,
        SeedsSpec,
    ):
        out += [
            f"## {cls.__name__}",
            "",
            (cls.__doc__ or "").strip(),
            "",
            "| key | type | default | description |",
            "|---|---|---|---|",
        ]
        for key, field in cls.model_fields.items():
            ann = _type_name(field.annotation)
            default = (
                "required"
                if field.is_required()
                else repr(field.get_default(call_default_factory=True))
            )
            if isinstance(field.default, BaseModel):
                default = "(see section)"
            desc = (field.description or "").replace("\n", " ")
            out.append(f"| `{key}` | {ann} | {default} | {desc} |")
        out.append("")
    return "\n".join(out)
