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
             hub (``path``, if given, is the download cache); its steps are the repository's
             ``step<N>`` branches (one ``list_repo_refs`` request per repository), with
             ``HF_HUB_OFFLINE=1`` those the Hugging Face cache holds

Suite model names map to released names by :func:`released_name` (``70M`` + ``deduped`` ->
``pythia-70m-deduped``; ``1.4B`` -> ``pythia-1.4b``). Runs are named as the trained ones
(:mod:`pythia.paths`): ``<dataset>[-<variant>]``; the hub also has Pythia's released variants
(:func:`released_runs`): PolyPythias' ``standard-seed<N>`` (``pythia-160m-seed3``), the decoupled
``standard-data-seed<N>`` / ``standard-weight-seed<N>`` (160M), and the gender-intervention models
``deduped-intervention`` / ``deduped-intervention_long`` (``pythia-intervention-<size>-deduped``,
one ``main`` branch: the final step). Steps: what is on disk (trained, local); the branches
(hub). Which steps the sections analyse is the suite's
``analysis.steps`` (all checkpoints when unset; a subset for ``pythia``), or the ``steps``
given here.

Each :class:`Checkpoint` has a stable :attr:`~Checkpoint.identity` for caches: source, suite,
dataset, model, step and a fingerprint of its ``config.json`` and weights (a retrained or
replaced checkpoint gets a new identity); for the hub, the repository and the commit sha its
branch resolved to (``hub:EleutherAI/pythia-70m@<sha>``: a re-uploaded branch is a new
identity, so every cache keyed on it recomputes). Hub checkpoints load by that commit sha, so a
rerun finds everything in the Hugging Face cache without a request; the branch -> commit is
written to the cache's ``refs/`` too, for ``HF_HUB_OFFLINE=1``. ``DISABLE_SAFETENSORS_CONVERSION``
is set (if unset) for the loads, so transformers never asks its outside conversion service.

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
models, a missing step lists the steps that exist; on the hub a missing branch names the
branches near it, a missing repository says so, and only a hub that cannot be reached (or
offline mode with nothing cached) says what to download and how to use it as ``local``
(:func:`hub_error`).
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
from pythia.io import atomic_path

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


POLYPYTHIA_SIZES = ("14M", "31M", "70M", "160M", "410M")
"""Sizes with PolyPythias seed runs (``EleutherAI/pythia-<size>-seed<N>``)."""
POLYPYTHIA_SEEDS = tuple(range(1, 10))
"""PolyPythias' seeds (seed 0 is the original run)."""
DECOUPLED_SIZES = ("160M",)
"""Sizes with PolyPythias' decoupled runs (``pythia-160m-data-seed<N>``, ``-weight-seed<N>``)."""
INTERVENTION_SIZES: dict[str, tuple[str, ...]] = {
    "intervention": ("70M", "410M", "1.4B", "6.9B"),
    "intervention_long": ("1.4B",),
}
"""Released gender-intervention models (deduplicated data only, one ``main`` branch each):
``EleutherAI/pythia-intervention-<size>-deduped`` (the last 7% retrained) and
``EleutherAI/pythia-intervention-long-1.4b-deduped`` (21%). Source: their hub pages
(huggingface.co/EleutherAI/pythia-intervention-410m-deduped, ...-long-1.4b-deduped, ...) and
EleutherAI/pythia's case-study README ("EleutherAI/pythia-intervention-MODELSIZE-deduped");
the sizes are those of pythia#52. The ``intervention-pythia-v1.1-*`` names found in some notes
are not on the hub."""
HUB_FINAL_STEP = 143000
"""The step of a released model that has only a ``main`` branch (the intervention models)."""


def released_name(model: str, dataset: str = "standard") -> str:
    """The released folder / repository name of a suite model on a run (``<dataset>[-<variant>]``,
    :mod:`pythia.paths`): ``70M`` -> ``pythia-70m``; ``1.4B`` + ``deduped`` ->
    ``pythia-1.4b-deduped``; ``160M`` + ``standard-seed3`` -> ``pythia-160m-seed3`` (PolyPythias;
    ``standard-data-seed3`` -> ``pythia-160m-data-seed3``); ``1.4B`` + ``deduped-intervention``
    -> ``pythia-intervention-1.4b-deduped`` (``deduped-intervention_long`` ->
    ``pythia-intervention-long-1.4b-deduped``)."""
    base, variant = paths.parse_run(dataset)
    deduped = "-deduped" if base == paths.DEDUPED else ""
    if variant in INTERVENTION_SIZES:
        kind = variant.replace("_", "-")
        return f"pythia-{kind}-{model.lower()}{deduped}"
    return f"pythia-{model.lower()}{deduped}" + (f"-{variant}" if variant else "")


def hub_repo(model: str, dataset: str = "standard") -> str:
    """``EleutherAI/<released_name>``, e.g. ``EleutherAI/pythia-70m-deduped``."""
    return f"{HUB_ORG}/{released_name(model, dataset)}"


def released_runs(model: str) -> list[str]:
    """The runs Pythia released for a size on the hub: ``standard``, ``deduped``, the
    intervention runs, PolyPythias' ``standard-seed<N>`` and the decoupled
    ``standard-data-seed<N>`` / ``standard-weight-seed<N>``."""
    if model not in RELEASED_SIZES:
        return []
    runs = list(paths.DATASETS)
    runs += [
        paths.run_name(paths.DEDUPED, v)
        for v, sizes in INTERVENTION_SIZES.items()
        if model in sizes
    ]
    for vary, sizes in (
        ("both", POLYPYTHIA_SIZES),
        ("data", DECOUPLED_SIZES),
        ("weight", DECOUPLED_SIZES),
    ):
        if model in sizes:
            runs += [paths.seed_run_name(paths.STANDARD, n, vary) for n in POLYPYTHIA_SEEDS]
    return runs


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


# ---------------------------------------------------------------------- the hub


def hub_offline() -> bool:
    """Whether huggingface_hub is in offline mode (``HF_HUB_OFFLINE=1``, read at its import)."""
    from huggingface_hub import constants  # heavy: only the hub source talks to the hub

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache(cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face hub cache: ``cache_dir``, else ``HF_HUB_CACHE`` (``$HF_HOME/hub``)."""
    from huggingface_hub import constants  # heavy: as above

    return Path(cache_dir) if cache_dir else Path(constants.HF_HUB_CACHE)


def _cached_repo(repo: str, cache_dir: str | Path | None) -> Path:
    return hub_cache(cache_dir) / ("models--" + repo.replace("/", "--"))


def cached_branches(repo: str, cache_dir: str | Path | None = None) -> dict[str, str]:
    """Branch -> commit sha of ``repo`` as the Hugging Face cache recorded them (``refs/<branch>``):
    what can be loaded without the network."""
    refs = _cached_repo(repo, cache_dir) / "refs"
    if not refs.is_dir():
        return {}
    return {
        p.name: p.read_text().strip()
        for p in sorted(refs.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def remember_branch(
    repo: str, branch: str, commit: str, cache_dir: str | Path | None = None
) -> None:
    """Write ``refs/<branch>`` = ``commit`` into the Hugging Face cache (its own layout, as
    huggingface_hub writes it after a download by branch name)."""
    ref = _cached_repo(repo, cache_dir) / "refs" / branch
    if ref.is_file() and ref.read_text().strip() == commit:
        return
    ref.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(ref) as tmp:
        tmp.write_text(commit)


def _hub_cause(err: BaseException) -> tuple[str, BaseException]:
    """Why a hub call failed: ``revision``, ``repo``, ``entry`` (a file), ``http`` (another
    answer of the hub), ``unreachable`` (no network, offline mode, not in the cache) or ``other``,
    and the huggingface_hub error that says so (found along the exception's causes)."""
    import httpx2  # heavy: huggingface_hub's HTTP client
    from huggingface_hub import errors  # heavy: only the hub source talks to the hub

    kinds: tuple[tuple[str, tuple[type[BaseException], ...]], ...] = (
        ("unreachable", (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled)),
        ("unreachable", (httpx2.TransportError, ConnectionError, TimeoutError)),
        ("revision", (errors.RevisionNotFoundError,)),
        ("repo", (errors.RepositoryNotFoundError,)),
        ("entry", (errors.RemoteEntryNotFoundError,)),
        ("http", (errors.HfHubHTTPError,)),
    )
    chain: list[BaseException] = []
    link: BaseException | None = err
    while link is not None and all(link is not c for c in chain):
        chain.append(link)
        link = link.__cause__ or link.__context__
    for kind, classes in kinds:
        for e in chain:
            if isinstance(e, classes):
                return kind, e
    return "other", err


def _short(err: BaseException) -> str:
    """``Type: the first line that says something`` of an error (not ``404 Client Error.``)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not re.fullmatch(r"\d{3} Client Error\.?", ln)]
    return f"{type(err).__name__}: {(useful or lines or [''])[0]}".rstrip(": ")


def hub_error(
    err: BaseException, repo: str, revision: str, what: str, cache_dir: str | Path | None = None
) -> CatalogueError:
    """One line for a failed hub call that keeps its reason: no such branch, no such repository,
    no such file, another answer of the hub, or a hub that cannot be reached (then, and only then,
    how to download with network access and use the ``local`` source)."""
    kind, cause = _hub_cause(err)
    if kind == "revision":
        return CatalogueError(f"model {repo} has no branch {revision} on the Hugging Face hub")
    if kind == "repo":
        return CatalogueError(
            f"{repo} is not a repository on the Hugging Face hub (RepositoryNotFound); check the "
            f"model and run names (released runs: pythia.runs.released_runs)"
        )
    if kind == "entry":
        return CatalogueError(
            f"{repo} at {revision} lacks a file the {what} needs ({_short(cause)})"
        )
    if kind == "http":
        return CatalogueError(
            f"the Hugging Face hub refused the {what} of {repo} at {revision} ({_short(cause)})"
        )
    target = f"<dir>/{repo.split('/')[-1]}/{revision}"
    reason = "HF_HUB_OFFLINE=1" if hub_offline() else _short(cause)
    return CatalogueError(
        f"cannot load the {what} of {repo} at revision {revision}: the Hugging Face hub is not "
        f"reachable ({reason}) and the cache {hub_cache(cache_dir)} does not hold it; with network "
        f"access download it (`hf download {repo} --revision {revision} --local-dir {target}`) "
        f"and use the checkpoints source 'local' with path <dir>"
    )


def list_branches(repo: str, cache_dir: str | Path | None = None) -> dict[str, str]:
    """Branch -> commit sha of a hub repository: one ``list_repo_refs`` request online; the
    branches in the Hugging Face cache with ``HF_HUB_OFFLINE=1``."""
    if hub_offline():
        return cached_branches(repo, cache_dir)
    from huggingface_hub import HfApi  # heavy: only the hub source talks to the hub

    try:
        refs = HfApi().list_repo_refs(repo)
    except Exception as e:  # classified below; anything that is not a hub failure re-raises
        if _hub_cause(e)[0] == "other":
            raise
        raise hub_error(e, repo, "main", "list of branches", cache_dir) from None
    return {b.name: b.target_commit for b in refs.branches}


def branch_steps(branches: dict[str, str]) -> dict[int, str]:
    """Step -> branch: the ``step<N>`` branches; a repository with none but ``main`` (the
    intervention models) has its final step (:data:`HUB_FINAL_STEP`) on ``main``."""
    steps = {int(m.group(1)): b for b in branches if (m := STEP_RE.match(b))}
    if not steps and "main" in branches:
        steps[HUB_FINAL_STEP] = "main"
    return dict(sorted(steps.items()))


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
    commit: str | None = None
    """Hub: the commit sha the revision resolved to (what is loaded, and the identity)."""

    @property
    def name(self) -> str:
        """``<model>/<dataset>/step<N>``."""
        return f"{self.model}/{self.dataset}/step{self.step}"

    @cached_property
    def identity(self) -> str:
        """Stable key for caches: what was loaded, including a fingerprint of the files (local,
        trained) or the repository and the commit its revision resolved to (hub: a branch
        re-uploaded under a new commit is a new identity, so every cache keyed on it recomputes)."""
        if self.source is Source.hub:
            return f"hub:{self.location}@{self.commit or self.revision}"
        return f"{self.source.value}:{self.suite}/{self.dataset}/{self.model}/step{self.step}@{fingerprint(self.location)}"

    def _hub_failure(self, what: str, err: BaseException) -> CatalogueError:
        return hub_error(err, self.location, self.revision or "main", what, self.cache_dir)

    def _remember_branch(self) -> None:
        """Record in the Hugging Face cache which commit the branch resolved to (loads by commit
        sha do not), so that ``HF_HUB_OFFLINE=1`` resolves it the same way later."""
        if self.commit and self.revision and self.revision != self.commit:
            remember_branch(self.location, self.revision, self.commit, self.cache_dir)

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
            # transformers would otherwise ask an outside service to convert a branch that has
            # only pytorch_model.bin (safetensors_conversion.py); the catalogue only reads
            os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
            try:
                model = GPTNeoXForCausalLM.from_pretrained(
                    self.location,
                    revision=self.commit or self.revision or "main",
                    cache_dir=self.cache_dir,
                    **kwargs,
                )
            except (OSError, ValueError, RuntimeError) as e:
                raise self._hub_failure("model", e) from None
            self._remember_branch()
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
                    revision=self.commit or self.revision,
                    cache_dir=self.cache_dir,
                    allow_patterns=[*TOKENIZER_FILES, "config.json"],
                )
            except (OSError, ValueError, RuntimeError) as e:
                raise self._hub_failure("tokenizer", e) from None
            self._remember_branch()
            return _local_tokenizer(Path(folder))
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
    :meth:`available_steps` all that exist. ``runs``: the runs (``<dataset>[-<variant>]``) to
    read (None: for the hub ``standard`` and ``deduped``, for the others every run there is);
    for the hub also the released variants (:func:`released_runs`: ``standard-seed3``,
    ``standard-data-seed1``, ``deduped-intervention``, ...).

    Hub: a model's branches come from one ``list_repo_refs`` request per repository (kept for
    the catalogue's life), or from the Hugging Face cache with ``HF_HUB_OFFLINE=1``; a
    checkpoint carries the commit sha its branch points at.
    """

    def __init__(
        self,
        suite: str | Suite,
        source: str | Source = Source.trained,
        path: str | Path | None = None,
        steps: list[int] | None = None,
        runs: list[str] | None = None,
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
        self.runs = [self._check_run(r) for r in runs] if runs else None
        self._branches: dict[str, dict[str, str]] = {}

    def _check_run(self, run: str) -> str:
        paths.parse_run(run)  # not a run name: UsageError naming the run kinds
        if self.source is Source.hub and not any(run in released_runs(m) for m in RELEASED_SIZES):
            known = sorted({r for m in RELEASED_SIZES for r in released_runs(m)}, key=len)
            raise CatalogueError(
                f"Pythia released no run {run!r}; released runs: {', '.join(known[:6])}, ... "
                f"(pythia.runs.released_runs)"
            )
        return run

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

    def _check_dataset(self, dataset: str, model: str | None = None) -> str:
        """``dataset`` (a run) if the catalogue has it; the hub has every released run of a model
        (:func:`released_runs`), asked for or not."""
        if self.source is Source.hub and model is not None and dataset in released_runs(model):
            return dataset
        if dataset not in self.datasets():
            raise CatalogueError(
                f"no dataset {dataset!r} in the {self.source.value} checkpoints of suite "
                f"{self.suite.name!r}; datasets: {', '.join(self.datasets()) or 'none'}"
            )
        if self.source is Source.hub and model is not None and dataset not in released_runs(model):
            raise CatalogueError(
                f"Pythia released no run {dataset!r} of model {model}; its runs: "
                f"{', '.join(released_runs(model))}"
            )
        return dataset

    # ------------------------------------------------------------------ the hub's branches
    def hub_branches(self, model: str, dataset: str) -> dict[str, str]:
        """Branch -> commit sha of the model's hub repository (:func:`list_branches`, once)."""
        repo = hub_repo(model, dataset)
        if repo not in self._branches:
            self._branches[repo] = list_branches(repo, self.path)
        return self._branches[repo]

    def expected_steps(self, model: str, dataset: str) -> list[int]:
        """The steps a released run should have: Pythia's 154 checkpoint steps (the intervention
        models: their final step, on ``main``)."""
        if paths.parse_run(dataset)[1] in INTERVENTION_SIZES:
            return [HUB_FINAL_STEP]
        return load_suite("pythia").checkpoint_steps()

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
            return list(self.runs or paths.DATASETS)
        if self.source is Source.trained:
            there = paths.list_runs(self.suite.name)  # baselines, each followed by its variants
        else:
            there = [
                d
                for d in paths.DATASETS
                if any((self._local_dir / released_name(m, d)).is_dir() for m in self.suite.models)
            ]
        return [d for d in there if d in self.runs] if self.runs else there

    def models(self, dataset: str | None = None) -> list[str]:
        """Suite models (in the suite's order) with at least one checkpoint (of ``dataset``, if given)."""
        datasets = [dataset] if dataset else self.datasets()
        if self.source is Source.hub:
            return [
                m
                for m in self.suite.models
                if m in RELEASED_SIZES and any(d in released_runs(m) for d in datasets)
            ]
        return [
            m
            for m in self.suite.models
            if any(self.available_steps(m, d) for d in datasets if d in self.datasets())
        ]

    def available_steps(self, model: str, dataset: str) -> list[int]:
        """Every step with a checkpoint of ``model`` on ``dataset`` (hub: its ``step<N>`` branches;
        offline, those in the Hugging Face cache)."""
        self.check_model(model)
        if self.source is Source.hub:
            self._check_dataset(dataset, model)
            return list(branch_steps(self.hub_branches(model, dataset)))
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
            return self._hub_checkpoint(model, dataset, step, tok_dir)
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

    def _hub_checkpoint(self, model: str, dataset: str, step: int, tok_dir: str) -> Checkpoint:
        steps = branch_steps(self.hub_branches(model, dataset))
        repo = hub_repo(model, dataset)
        if step not in steps:
            if hub_offline():
                raise CatalogueError(
                    f"{repo} step{step} was never downloaded into the Hugging Face cache "
                    f"({hub_cache(self.path)}) and HF_HUB_OFFLINE=1 keeps the hub from being asked; "
                    f"load it once with network access, or use the checkpoints source 'local'"
                )
            near = ", ".join(f"step{s}" for s in _nearest(list(steps), step).split(", ") if s)
            raise CatalogueError(
                f"model {repo} has no branch step{step}; branches that exist near it: {near or 'none'}"
            )
        branch = steps[step]
        return Checkpoint(
            Source.hub,
            self.suite.name,
            model,
            dataset,
            step,
            repo,
            revision=branch,
            cache_dir=str(self.path) if self.path else None,
            tokenizer_fallback=tok_dir,
            commit=self.hub_branches(model, dataset)[branch],
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
    runs: list[str] | None = None,
) -> Catalogue:
    """The :class:`Catalogue` of ``suite`` from ``source`` (``trained``, ``local`` with ``path``, ``hub``)."""
    return Catalogue(suite, source, path, steps, runs)


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
            m: _hub_entry(cat, m, d)
            if cat.source is Source.hub
            else {"available": cat.available_steps(m, d), "selected": cat.steps(m, d)}
            for m in cat.models(d)
        }
    return out


def _hub_entry(cat: Catalogue, model: str, dataset: str) -> dict[str, Any]:
    """A hub model's branches as the hub lists them: the step branches there are, the expected
    ones that are missing, and the error (a repository that is not there) instead of hiding it.
    One refs request per repository: ``selected`` is the catalogue's selection among the
    branches, without its :attr:`~Catalogue.step_filter` (the checkpoint audit would read every
    branch's tree; ``pythia checkpoints audit`` does that)."""
    entry: dict[str, Any] = {
        "repo": hub_repo(model, dataset),
        "available": [],
        "selected": [],
        "missing": [],
        "error": None,
    }
    try:
        entry["available"] = cat.available_steps(model, dataset)
    except CatalogueError as e:
        entry["error"] = str(e)
        return entry
    have = set(entry["available"])
    entry["selected"] = [s for s in cat.selected if s in have]
    entry["missing"] = [s for s in cat.expected_steps(model, dataset) if s not in have]
    return entry
