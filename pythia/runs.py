"""The checkpoint catalogue: which models, datasets and steps exist, and the model at step N.

Every analysis asks the same questions whatever produced the checkpoints, through one
interface over three sources:

    trained  the workflow's own runs: ``work/<suite>/models/<run>/<model>/step<N>/`` (pythia.paths)
             (Hugging Face dirs with their tokenizer, written by ``pythia train``)
    local    a directory laid out like the released suite, one folder per model and step:
             ``<path>/pythia-160m-deduped/step143000/``, each an HF model dir, or the
             ``cache_dir`` that ``from_pretrained(..., revision="step143000", cache_dir=...)``
             fills (as Pythia's README suggests downloading them)
    hub      ``EleutherAI/pythia-<size>[-deduped]`` at revision ``step<N>`` on the Hugging Face
             hub (online; ``path``, if given, is the download cache)

Suite model names map to released names by :func:`released_name` (``70M`` + ``deduped`` ->
``pythia-70m-deduped``; ``1.4B`` -> ``pythia-1.4b``). Steps: what is on disk (trained, local);
Pythia's 154 checkpoint steps (hub). Which steps the sections analyse is the suite's
``analysis.steps`` (all checkpoints when unset; a subset for ``pythia``), or the ``steps``
given here.

Each :class:`Checkpoint` has a stable :attr:`~Checkpoint.identity` for caches: source, suite,
dataset, model, step and a fingerprint of its ``config.json`` and weights (a retrained or
replaced checkpoint gets a new identity); for the hub, the repository and revision.

A section's code::

    from pythia.runs import open_catalogue

    cat = open_catalogue("micro")                         # or source="local", path=...; source="hub"
    for model in cat.models():
        for dataset in cat.datasets():
            for step in cat.steps(model, dataset):        # the steps to analyse that exist
                ckpt = cat.checkpoint(model, dataset, step)
                net = ckpt.load_model()                   # eval mode; fp32 on CPU by default
                tok = ckpt.load_tokenizer()
                key = ckpt.identity                       # e.g. for pythia.evaluate's caches

Errors are one line naming the problem and what to do: an unknown model lists the suite's
models, a missing step lists the steps that exist, a hub download that fails (offline) says
what to download and how to use it as ``local``.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pythia import paths
from pythia.config import Suite, load_suite
from pythia.errors import PythiaError

HUB_ORG = "EleutherAI"
RELEASED_SIZES = ("14M", "31M", "70M", "160M", "410M", "1B", "1.4B", "2.8B", "6.9B", "12B")
"""Sizes of the released Pythia suite (``EleutherAI/pythia-<size>[-deduped]``)."""
STEP_RE = re.compile(r"^step(\d+)$")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
FULL_HASH_BYTES = 256 << 20
"""Weight files up to this size are hashed whole for the identity; larger ones by samples."""


class Source(str, enum.Enum):
    """Where checkpoints come from."""

    trained = "trained"
    """The workflow's own runs under ``work/<suite>/models/``."""
    local = "local"
    """A directory laid out like the released suite (``pythia-70m-deduped/step3000/``)."""
    hub = "hub"
    """The released models on the Hugging Face hub (online)."""


class CatalogueError(PythiaError, ValueError):
    """A model, dataset or step that is not there, or a checkpoint that cannot be loaded; the
    message names it and what to do (the CLI prints it as one line, without a traceback)."""


def released_name(model: str, dataset: str = "standard") -> str:
    """The released folder / repository name of a suite model: ``70M`` -> ``pythia-70m``,
    ``1.4B`` + ``deduped`` -> ``pythia-1.4b-deduped``."""
    return f"pythia-{model.lower()}" + ("-deduped" if dataset == "deduped" else "")


def hub_repo(model: str, dataset: str = "standard") -> str:
    """``EleutherAI/pythia-<size>[-deduped]``."""
    return f"{HUB_ORG}/{released_name(model, dataset)}"


def _nearest(steps: list[int], step: int, k: int = 2) -> str:
    return ", ".join(str(s) for s in sorted(sorted(steps, key=lambda s: (abs(s - step), s))[:k]))


def _hf_model_dir(step_dir: Path) -> Path | None:
    """The HF model dir of a step folder: itself, or the one snapshot of an HF cache inside it."""
    if (step_dir / "config.json").is_file():
        return step_dir
    snaps = sorted(step_dir.glob("models--*/snapshots/*/config.json"))
    if len(snaps) == 1:
        return snaps[0].parent
    if (
        len(snaps) > 1
    ):  # several revisions cached in one folder: take the one the folder is named after
        ref = next(iter(step_dir.glob(f"models--*/refs/{step_dir.name}")), None)
        if ref is not None:
            snap = ref.parent.parent / "snapshots" / ref.read_text().strip()
            if (snap / "config.json").is_file():
                return snap
    return None


def _file_digest(path: Path) -> str:
    """sha256 of a file, or for large ones of its size and 16 evenly spaced 1 MiB blocks (a
    retrained model differs everywhere; hashing 24 GB per checkpoint would not scale)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= FULL_HASH_BYTES:
            while block := f.read(1 << 22):
                h.update(block)
        else:
            for i in range(16):
                f.seek((size - (1 << 20)) * i // 15)
                h.update(f.read(1 << 20))
    return h.hexdigest()


_FINGERPRINTS: dict[tuple, str] = {}


def fingerprint(model_dir: str | Path) -> str:
    """16 hex digits identifying a model dir's ``config.json`` and weights (cached per process by
    path, size and modification time)."""
    model_dir = Path(model_dir)
    files = [
        model_dir / "config.json",
        *sorted(p for p in model_dir.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)),
    ]
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        for p in files:
            h.update(p.name.encode() + b"\0" + _file_digest(p).encode())
        _FINGERPRINTS[key] = h.hexdigest()[:16]
    return _FINGERPRINTS[key]


def _torch_dtype(dtype: Any):
    import torch  # heavy: `pythia checkpoints` lists checkpoints without it

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if dtype not in names:
        raise CatalogueError(f"unknown dtype {dtype!r}; choose one of: auto, {', '.join(names)}")
    return names[dtype]


@dataclass(frozen=True)
class Checkpoint:
    """One model at one step. Load it with :meth:`load_model` / :meth:`load_tokenizer`."""

    source: Source
    suite: str
    model: str
    """Suite model name, e.g. ``70M``."""
    dataset: str
    """``standard`` or ``deduped`` (or a run variant of one)."""
    step: int
    location: str
    """The HF model dir (trained, local) or the hub repository id."""
    revision: str | None = None
    """Hub revision (``step<N>``)."""
    cache_dir: str | None = None
    """Hub download cache (None: Hugging Face's default)."""
    tokenizer_fallback: str | None = field(default=None, compare=False)
    """Tokenizer dir used when the checkpoint dir has none (the suite's built tokenizer)."""

    @property
    def name(self) -> str:
        """``<model>/<dataset>/step<N>``."""
        return f"{self.model}/{self.dataset}/step{self.step}"

    @cached_property
    def identity(self) -> str:
        """Stable key for caches: what was loaded, including a fingerprint of the files (local,
        trained) or the repository and revision (hub)."""
        if self.source is Source.hub:
            return f"hub:{self.location}@{self.revision}"
        return f"{self.source.value}:{self.suite}/{self.dataset}/{self.model}/step{self.step}@{fingerprint(self.location)}"

    def _hub_failure(self, what: str, err: Exception) -> CatalogueError:
        target = f"<dir>/{released_name(self.model, self.dataset)}/{self.revision}"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return CatalogueError(
            f"cannot load the {what} of {self.location} at revision {self.revision} from the Hugging Face hub "
            f"({first}); with network access download it (`hf download {self.location} --revision {self.revision} "
            f"--local-dir {target}`) and use the checkpoints source 'local' with path <dir>"
        )

    def load_model(self, dtype: Any = None, device: str = "cpu", attn_implementation: str = "sdpa"):
        """The ``GPTNeoXForCausalLM`` in eval mode on ``device``.

        ``dtype``: None = float32 (exact scoring; Pythia's released weights are fp16 and load
        exactly into fp32), ``"auto"`` = as stored, or a torch dtype / name (``bf16``, ``fp16``).
        """
        from transformers import GPTNeoXForCausalLM  # heavy: listing checkpoints needs no model
        from transformers.utils import logging as hf_logging  # heavy: as above

        hf_logging.disable_progress_bar()
        kwargs: dict[str, Any] = {
            "dtype": _torch_dtype(dtype) or _torch_dtype("float32"),
            "attn_implementation": attn_implementation,
        }
        if self.source is Source.hub:
            try:
                model = GPTNeoXForCausalLM.from_pretrained(
                    self.location,
                    revision=self.revision or "main",
                    cache_dir=self.cache_dir,
                    **kwargs,
                )
            except (OSError, ValueError) as e:
                raise self._hub_failure("model", e) from None
        else:
            try:
                model = GPTNeoXForCausalLM.from_pretrained(self.location, **kwargs)
            except (OSError, ValueError) as e:
                raise CatalogueError(
                    f"cannot load the checkpoint {self.location} ({e}); delete it and retrain "
                    f"or download it again"
                ) from None
        return model.to(device).eval()  # type: ignore[arg-type]  # transformers' to() wrapper hides its signature

    def load_tokenizer(self):
        """The checkpoint's tokenizer (trained checkpoints and the released ones carry it), else the
        suite's built tokenizer. One object per distinct tokenizer in a process
        (:func:`_local_tokenizer`), from the hub too (its revision's tokenizer files, fetched into
        the hub cache, key it): treat it as read-only."""
        if self.source is Source.hub:
            from huggingface_hub import snapshot_download  # heavy: only the hub source downloads

            try:
                folder = snapshot_download(
                    self.location,
                    revision=self.revision,
                    cache_dir=self.cache_dir,
                    allow_patterns=[*TOKENIZER_FILES, "config.json"],
                )
                return _local_tokenizer(Path(folder))
            except (OSError, ValueError) as e:
                raise self._hub_failure("tokenizer", e) from None
        here = Path(self.location)
        if (here / "tokenizer.json").is_file():
            return _local_tokenizer(here)
        fallback = Path(self.tokenizer_fallback) if self.tokenizer_fallback else None
        if fallback is not None and (fallback / "tokenizer.json").is_file():
            return _local_tokenizer(fallback)
        raise CatalogueError(
            f"{here} has no tokenizer.json and suite {self.suite!r} has no built tokenizer "
            f"({fallback}); run `pythia data build --suite {self.suite}` or copy the tokenizer files there"
        )


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
)
"""The files ``AutoTokenizer`` reads from a folder (a GPT-NeoX tokenizer); their bytes key :func:`_local_tokenizer`."""
_TOKENIZERS: OrderedDict[str, Any] = OrderedDict()
TOKENIZER_MEMO = 4
"""Distinct tokenizers :func:`_local_tokenizer` keeps (least recently used dropped)."""


def _local_tokenizer(folder: Path):
    """``AutoTokenizer.from_pretrained(folder)``, once per distinct content in a process.

    Every checkpoint of a run (and of a suite) carries the same tokenizer files; loading them
    again for each checkpoint costs time and, worse, a new object, which loses what callers keep
    on it (the lm-eval adapter remembers tokenizations on the tokenizer). The key is the bytes
    of the files the tokenizer is built from, so a changed tokenizer is a new object."""
    from transformers import AutoTokenizer  # heavy: listing checkpoints needs no tokenizer

    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        f = folder / name
        if f.is_file():
            h.update(name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    key = h.hexdigest()
    tok = _TOKENIZERS.get(key)
    if tok is None:
        tok = _TOKENIZERS[key] = AutoTokenizer.from_pretrained(str(folder))
        while len(_TOKENIZERS) > TOKENIZER_MEMO:
            _TOKENIZERS.popitem(last=False)
    _TOKENIZERS.move_to_end(key)
    return tok


class Catalogue:
    """The checkpoints of one suite from one source (see the module docstring).

    ``steps``: the steps to analyse (None: the suite's ``analysis.steps``, every checkpoint step
    when unset); :meth:`steps` returns those that exist for a model and dataset,
    :meth:`available_steps` all that exist.
    """

    def __init__(
        self,
        suite: str | Suite,
        source: str | Source = Source.trained,
        path: str | Path | None = None,
        steps: list[int] | None = None,
    ):
        self.suite = suite if isinstance(suite, Suite) else load_suite(suite)
        try:
            self.source = Source(source)
        except ValueError:
            raise CatalogueError(
                f"unknown checkpoints source {source!r}; choose one of: "
                f"{', '.join(s.value for s in Source)}"
            ) from None
        self.path = Path(os.path.expanduser(str(path))) if path else None
        if self.source is Source.local:
            if self.path is None:
                raise CatalogueError(
                    "the checkpoints source 'local' needs a path: the directory holding "
                    "pythia-<size>[-deduped]/step<N>/ folders"
                )
            if not self.path.is_dir():
                raise CatalogueError(
                    f"checkpoints directory {self.path} does not exist; download the checkpoints "
                    f"there (pythia-<size>[-deduped]/step<N>/) or fix checkpoints.path"
                )
        self.selected = (
            self.suite.check_steps(steps, "checkpoints.steps")
            if steps
            else self.suite.analysis_steps()
        )

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"Catalogue(suite={self.suite.name!r}, source={self.source.value!r}{where})"

    # ------------------------------------------------------------------ where things are
    def check_model(self, model: str) -> str:
        """``model`` if the suite has it (and, for the hub, Pythia released it); else a one-line error."""
        self.suite.model(model)  # unknown: ConfigError listing the suite's models
        if self.source is Source.hub and model not in RELEASED_SIZES:
            raise CatalogueError(
                f"model {model!r} of suite {self.suite.name!r} has no released Pythia checkpoints; "
                f"released sizes: {', '.join(RELEASED_SIZES)}"
            )
        return model

    def _check_dataset(self, dataset: str) -> str:
        if dataset not in self.datasets():
            raise CatalogueError(
                f"no dataset {dataset!r} in the {self.source.value} checkpoints of suite "
                f"{self.suite.name!r}; datasets: {', '.join(self.datasets()) or 'none'}"
            )
        return dataset

    @property
    def _local_dir(self) -> Path:
        """The ``local`` source's directory (the constructor checked that it exists)."""
        if self.path is None:
            raise CatalogueError("this catalogue has no checkpoints directory")
        return self.path

    def model_dir(self, model: str, dataset: str) -> Path:
        """The folder holding ``step<N>`` of a model (trained, local)."""
        if self.source is Source.trained:
            return paths.run_dir(self.suite.name, dataset, model)
        if self.source is Source.local:
            return self._local_dir / released_name(model, dataset)
        raise CatalogueError("hub checkpoints have no local folder; use checkpoint(...).location")

    # ------------------------------------------------------------------ the questions
    def datasets(self) -> list[str]:
        """Datasets with checkpoints: the trained runs' (``standard``, ``deduped`` first, then
        variants), the local folders', or both for the hub."""
        if self.source is Source.hub:
            return list(paths.DATASETS)
        if self.source is Source.trained:
            return paths.list_runs(self.suite.name)  # baselines, each followed by its variants
        return [
            d
            for d in paths.DATASETS
            if any((self._local_dir / released_name(m, d)).is_dir() for m in self.suite.models)
        ]

    def models(self, dataset: str | None = None) -> list[str]:
        """Suite models (in the suite's order) with at least one checkpoint (of ``dataset``, if given)."""
        datasets = [dataset] if dataset else self.datasets()
        if self.source is Source.hub:
            return [m for m in self.suite.models if m in RELEASED_SIZES] if self.datasets() else []
        return [
            m
            for m in self.suite.models
            if any(self.available_steps(m, d) for d in datasets if d in self.datasets())
        ]

    def available_steps(self, model: str, dataset: str) -> list[int]:
        """Every step with a checkpoint of ``model`` on ``dataset`` (hub: Pythia's 154 steps)."""
        self.check_model(model)
        if self.source is Source.hub:
            self._check_dataset(dataset)
            return load_suite("pythia").checkpoint_steps()
        parent = self.model_dir(model, dataset)
        if not parent.is_dir():
            return []
        return sorted(
            int(m.group(1))
            for p in parent.iterdir()
            if p.is_dir() and (m := STEP_RE.match(p.name)) and _hf_model_dir(p) is not None
        )

    step_filter: Callable[[str, str, list[int]], list[int]] | None = None
    """Applied by :meth:`steps` (``pythia.cli.options.catalogue`` sets the checkpoint audit's
    :class:`pythia.audit.StepFilter`: warn about or skip flagged checkpoints)."""

    def steps(self, model: str, dataset: str) -> list[int]:
        """The steps to analyse (the catalogue's selection) that exist for ``model`` on ``dataset``
        (through :attr:`step_filter`, if set)."""
        have = set(self.available_steps(model, dataset))
        chosen = [s for s in self.selected if s in have]
        return self.step_filter(model, dataset, chosen) if self.step_filter else chosen

    def checkpoint(self, model: str, dataset: str, step: int) -> Checkpoint:
        """The checkpoint of ``model`` trained on ``dataset`` after ``step`` steps."""
        self.check_model(model)
        tok_dir = str(paths.data_dir(self.suite.name) / "tokenizer")
        if self.source is Source.hub:
            self._check_dataset(dataset)
            steps = self.available_steps(model, dataset)
            if step not in steps:
                raise CatalogueError(
                    f"{hub_repo(model, dataset)} has no step {step}; its checkpoints are steps "
                    f"0, 1, 2, 4, ..., 512, 1000, 2000, ..., 143000 (nearest: {_nearest(steps, step)})"
                )
            return Checkpoint(
                Source.hub,
                self.suite.name,
                model,
                dataset,
                step,
                hub_repo(model, dataset),
                revision=f"step{step}",
                cache_dir=str(self.path) if self.path else None,
                tokenizer_fallback=tok_dir,
            )
        folder = self.model_dir(model, dataset)
        steps = self.available_steps(model, dataset)
        if not steps:
            what = (
                f"train it (`pythia train --suite {self.suite.name} --model {model} --dataset {dataset}`)"
                if self.source is Source.trained
                else f"download them into {folder}/step<N>/"
            )
            raise CatalogueError(
                f"no checkpoints of model {model!r} on dataset {dataset!r} in {folder}; {what}"
            )
        if step not in steps:
            shown = (
                ", ".join(map(str, steps))
                if len(steps) <= 12
                else f"{len(steps)} steps from {steps[0]} to {steps[-1]}"
            )
            raise CatalogueError(
                f"no step {step} of {model}/{dataset} in {folder} (steps there: {shown}; "
                f"nearest: {_nearest(steps, step)})"
            )
        return Checkpoint(
            self.source,
            self.suite.name,
            model,
            dataset,
            step,
            str(_hf_model_dir(folder / f"step{step}")),
            tokenizer_fallback=tok_dir,
        )

    def checkpoints(
        self, models: list[str] | None = None, datasets: list[str] | None = None
    ) -> list[Checkpoint]:
        """Every checkpoint to analyse: ``models`` x ``datasets`` (default: all there are) x :meth:`steps`."""
        out = []
        for dataset in datasets or self.datasets():
            for model in models or self.models(dataset):
                out += [self.checkpoint(model, dataset, s) for s in self.steps(model, dataset)]
        return out

    def tokens_seen(self, step: int) -> int:
        """Training tokens behind a checkpoint: step x tokens per step of the suite."""
        return step * self.suite.training.tokens_per_step


def open_catalogue(
    suite: str | Suite,
    source: str | Source = Source.trained,
    path: str | Path | None = None,
    steps: list[int] | None = None,
) -> Catalogue:
    """The :class:`Catalogue` of ``suite`` from ``source`` (``trained``, ``local`` with ``path``, ``hub``)."""
    return Catalogue(suite, source, path, steps)


# ---------------------------------------------------------------------- command-line glue


def describe(cat: Catalogue) -> dict[str, Any]:
    """Models, datasets and steps of a catalogue, as JSON-ready data (``pythia checkpoints``)."""
    out: dict[str, Any] = {
        "suite": cat.suite.name,
        "source": cat.source.value,
        "path": str(cat.path) if cat.path else None,
        "datasets": {},
    }
    for d in cat.datasets():
        out["datasets"][d] = {
            m: {"available": cat.available_steps(m, d), "selected": cat.steps(m, d)}
            for m in cat.models(d)
        }
    return out
