"""The checkpoint audit: is every checkpoint what its step says?

Released checkpoints are not always what their branch name says (EleutherAI/pythia issues):
step branches that serve the final weights (#205: 86 of pythia-2.8b's 154 branches), one shard
of a sharded checkpoint that is another step's (#206, pythia-12b), step0 = step1 = step2
(#83, #198), missing branches (#202), runs that do not descend from their own step0 (#203,
PolyPythias' ``weight-seed`` runs). A training-dynamics study that reads such a checkpoint draws
a wrong curve and never knows it. The audit finds them from the weight files' sha256:

1. **Files.** For every run of a catalogue (:mod:`pythia.runs`), every ``step<N>`` checkpoint
   and the sha256 of each weight file (``*.safetensors``, ``*.bin``). Hub: the branches from
   the refs (``list_repo_refs``) and each branch's LFS sha256 from its commit's tree
   (``list_repo_tree``), without downloading a weight file (the trees are cached per commit
   under ``work/<suite>/cache/checkpoints-audit/``). Trained and local: the files streamed
   through :func:`pythia.io.sha256_file` (remembered per path, size and mtime in a process).
2. **Flags** per (model, run, step) (:func:`flag`). Weight files are compared per format (a
   branch holding both ``model.safetensors`` and ``pytorch_model.bin`` is two checkpoints to a
   loader, and #205 is about one of them):

   ``ok``                 nothing found;
   ``duplicate``          all files of a format equal another branch's; ``same_as`` names the
                          branch whose weights these are: the final step or ``main`` when a step
                          serves the final weights (#205 kind), else the earliest branch
                          holding them; the note says when that is the neighbouring step
                          (#83/#198 kind). The final step and ``main`` are never flagged for
                          being equal to each other;
   ``step0==step1``       the duplicate of step1 is step0 (its own flag: #83);
   ``partial-duplicate``  one shard (file) equals another branch's file, the rest differ (#206);
   ``missing``            a step of the schedule with no checkpoint (#202).

   The schedule: the suite's checkpoint steps (``--steps``: those), for the hub those on
   Pythia's released schedule; a trained variant run that continues a baseline (the gender
   intervention's) is expected from its first step on.
3. **Tensors** (optional, :func:`tensor_checks`; the weights are loaded through the
   catalogue, downloaded for the hub): a fingerprint per tensor (blake2b of its bytes; how many
   tensors equal the previous step's), and the relative L2 distance ``||a - b|| / ||b||`` over
   all tensors to the run's own step0, to the other runs' step0 of the same model (those whose
   init differs from this run's), and to the previous step. ``not-from-init``: a step closer
   (or as close) to another run's init than to its own (#203 kind); ``jump``: a step farther
   from its previous step than from its own init, i.e. the previous step is not on its path
   (a replaced file, #108 kind).

The catalogue uses the audit through :class:`StepFilter` (``checkpoints.audit: warn|skip|off``):
``pythia.cli.options.catalogue`` hands one to the :class:`~pythia.runs.Catalogue` (which cannot
import this module: this module imports it), whose :meth:`~pythia.runs.Catalogue.steps` then
warns once per run naming the flagged steps it returns, or leaves them out and says which. The
flags come from ``results/<suite>/checkpoints/audit.csv`` when it holds rows of the catalogue's
source, else, for the hub, from the refs and trees on first use (cached as
``work/<suite>/cache/checkpoints-audit/<org>--<name>.csv``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pythia import paths
from pythia.config import load_suite
from pythia.errors import PythiaError
from pythia.io import atomic_path, sha256_file, write_json
from pythia.runs import WEIGHT_SUFFIXES, Catalogue, Source, hub_repo, released_runs

POLICIES = ("warn", "skip", "off")
"""``checkpoints.audit``: what an analysis does with a flagged checkpoint."""
OK = "ok"
FLAGS = ("duplicate", "step0==step1", "partial-duplicate", "missing", "not-from-init", "jump")
"""Every status but ``ok``, in the order of the figure's legend."""
COLUMNS = (
    "suite",
    "source",
    "model",
    "run",
    "location",
    "branch",
    "step",
    "file",
    "size",
    "sha256",
    "status",
    "same_as",
    "note",
)
"""The columns of ``audit.csv``: one row per model x run x step x weight file (a missing step:
one row without a file)."""
TENSOR_COLUMNS = (
    "tensors",
    "tensors_fingerprint",
    "tensors_same_as_prev",
    "init_distance",
    "other_init_distance",
    "prev_distance",
)
"""Added by ``--tensors``, per (model, run, step)."""
CACHE = "checkpoints-audit"


class AuditError(PythiaError, ValueError):
    """The audit cannot run (the hub unreachable, nothing to audit); one line with what to do."""


class CheckpointAuditWarning(UserWarning):
    """An analysis reads (or skips) checkpoints the audit flagged."""


@dataclass
class Branch:
    """One checkpoint of a run: its step (None for ``main``), where it is, its weight files."""

    name: str
    step: int | None
    location: str
    files: dict[str, str] = field(default_factory=dict)
    """weight file -> sha256."""
    sizes: dict[str, int] = field(default_factory=dict)

    def formats(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """Per weight format (suffix), its files and hashes: what a loader of that format reads."""
        out: dict[str, list[tuple[str, str]]] = {}
        for name, sha in sorted(self.files.items()):
            out.setdefault(Path(name).suffix, []).append((name, sha))
        return {k: tuple(v) for k, v in out.items()}


@dataclass
class Verdict:
    """The audit of one checkpoint."""

    status: str = OK
    same_as: str = ""
    note: str = ""


# ------------------------------------------------------------------------ the flags


def _rank(b: Branch, legit: set[str]) -> tuple[int, float]:
    """Who owns weights several branches hold: the final step and main first, then the earliest."""
    return (0 if b.name in legit else 1, float("inf") if b.step is None else b.step)


def _previous(b: Branch, branches: list[Branch]) -> Branch | None:
    earlier = [o for o in branches if o.step is not None and b.step is not None and o.step < b.step]
    return max(earlier, key=lambda o: o.step or 0) if earlier else None


def _duplicate(b: Branch, owner: Branch, group: list[Branch], fmt: str, legit: set[str]):
    prev = _previous(b, [o for o in group if o.step is not None] + [b])
    partly = "" if len(b.formats()) == 1 else f" (its {fmt} files; the other formats differ)"
    if owner.name in legit:
        note = f"serves the final weights of {owner.name} (pythia#205 kind){partly}"
    elif prev is not None and prev in group:
        note = f"equal to the neighbouring {prev.name} (pythia#83/#198 kind){partly}"
    else:
        note = f"equal to {owner.name}{partly}"
    status = "step0==step1" if b.step == 1 and owner.step == 0 else "duplicate"
    return Verdict(status, owner.name, note)


def _verdict(b: Branch, branches: list[Branch], legit: set[str]) -> Verdict:
    if not b.files:
        return Verdict("missing", "", "the checkpoint has no weight file")
    if b.name in legit:
        return Verdict()
    others = [o for o in branches if o is not b]
    partial = None
    for fmt, key in b.formats().items():
        group = [o for o in others if o.formats().get(fmt) == key]
        if group:
            owner = min([*group, b], key=lambda o: _rank(o, legit))
            if owner is not b:
                return _duplicate(b, owner, group, fmt, legit)
            continue
        for name, sha in key:
            holders = [o for o in others if sha in o.files.values()]
            owner = min([*holders, b], key=lambda o: _rank(o, legit))
            if holders and owner is not b and partial is None:
                theirs = next(n for n, s in owner.files.items() if s == sha)
                partial = Verdict(
                    "partial-duplicate",
                    owner.name,
                    f"its {name} is {owner.name}'s {theirs} (pythia#206 kind)",
                )
    return partial or Verdict()


def flag(branches: list[Branch], schedule: Iterable[int]) -> dict[str, Verdict]:
    """The verdict of every step branch (by name) and of every step of ``schedule`` that has
    none (``step<N>``: ``missing``). ``main`` is a reference, not audited."""
    steps = [b for b in branches if b.step is not None]
    final = max((b.step for b in steps if b.step is not None), default=None)
    legit = {"main"} | ({f"step{final}"} if final is not None else set())
    out = {b.name: _verdict(b, branches, legit) for b in sorted(steps, key=lambda b: b.step or 0)}
    for s in schedule:
        if f"step{s}" not in out:
            out[f"step{s}"] = Verdict(
                "missing", "", "a step of the schedule with no checkpoint (pythia#202 kind)"
            )
    return dict(sorted(out.items(), key=lambda kv: int(kv[0][4:])))


# ------------------------------------------------------------------------ files


_SHA: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a weight file, streamed; remembered per path, size and mtime in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        _SHA[key] = sha256_file(path)
    return _SHA[key]


def schedule(cat: Catalogue, run: str, steps: list[int] | None, present: list[int]) -> list[int]:
    """The steps a run should have: ``steps``, else the suite's checkpoint steps (hub: those on
    Pythia's released schedule); a trained variant continuing a baseline from its first step on."""
    want = list(steps) if steps else cat.suite.checkpoint_steps()
    if cat.source is Source.hub:
        released = set(load_suite("pythia").checkpoint_steps())
        return [s for s in want if s in released]
    if cat.source is Source.trained and paths.parse_run(run)[1] and not paths.parse_seed(run):
        return [s for s in want if present and s >= min(present)]
    return want


def disk_branches(cat: Catalogue, model: str, run: str) -> list[Branch]:
    """The checkpoints of a trained or local run, each weight file hashed."""
    out = []
    for step in cat.available_steps(model, run):
        folder = Path(cat.checkpoint(model, run, step).location)
        files = sorted(
            p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)
        )
        out.append(
            Branch(
                f"step{step}",
                step,
                str(folder),
                {p.name: file_sha256(p) for p in files},
                {p.name: p.stat().st_size for p in files},
            )
        )
    return out


class RepoError(AuditError):
    """One repository cannot be audited (not found, a failed request); the others can."""


def _offline(reason: str) -> AuditError:
    return AuditError(
        f"the Hugging Face hub is not reachable ({reason}); rerun online, or audit downloaded "
        f"checkpoints with --checkpoints-source local --checkpoints-path DIR"
    )


def _hub_call(repo: str, what: str, call: Callable[[], Any]) -> Any:
    """``call()`` (a hub request), its failures as one line: a repository or revision the hub does
    not have (:class:`RepoError`), or a hub that cannot be reached (:class:`AuditError`)."""
    import httpx  # heavy: huggingface_hub's HTTP client, only the hub source talks to the hub
    from huggingface_hub import errors  # heavy: only the hub source talks to the hub

    try:
        return call()
    except errors.RepositoryNotFoundError:
        raise RepoError(
            f"{repo}: repository not found on the hub (is the model released?)"
        ) from None
    except errors.RevisionNotFoundError:
        raise RepoError(f"{repo}: {what}: revision not found on the hub") from None
    except errors.OfflineModeIsEnabled:
        raise _offline("HF_HUB_OFFLINE is set") from None
    except httpx.TransportError as e:
        raise _offline(
            f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        ) from None
    except errors.HfHubHTTPError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RepoError(f"{repo}: {what} failed ({first})") from None


def _slug(repo: str) -> str:
    return repo.replace("/", "--")


def _tree(api: Any, repo: str, commit: str, cache: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Weight file -> sha256 (LFS) and size at one commit of ``repo``, from the hub's tree
    listing (no download), cached per commit (a commit never changes)."""
    path = cache / "trees" / _slug(repo) / f"{commit}.json"
    if path.is_file():
        got = json.loads(path.read_text())
        return got["files"], got["sizes"]
    entries = _hub_call(
        repo, f"tree of {commit}", lambda: list(api.list_repo_tree(repo, revision=commit))
    )
    files, sizes = {}, {}
    for e in entries:
        name = getattr(e, "path", "")
        if "/" in name or not name.endswith(WEIGHT_SUFFIXES) or not hasattr(e, "size"):
            continue
        lfs = getattr(e, "lfs", None)
        files[name] = lfs.sha256 if lfs is not None else f"git-blob:{e.blob_id}"
        sizes[name] = int(e.size)
    write_json(path, {"files": files, "sizes": sizes})
    return files, sizes


def hub_branches(cat: Catalogue, repo: str, progress: bool = False) -> list[Branch]:
    """The ``step<N>`` branches and ``main`` of a hub repository with their weight files' LFS
    sha256, from the refs and each branch's tree (no weight file is downloaded)."""
    from huggingface_hub import HfApi  # heavy: only the hub source talks to the hub
    from tqdm.auto import tqdm  # heavy-ish: progress only when auditing

    api = HfApi()
    refs = _hub_call(repo, "list of branches", lambda: api.list_repo_refs(repo))
    cache = paths.suite_dir(cat.suite.name) / "cache" / CACHE
    out = []
    for ref in tqdm(refs.branches, desc=repo, disable=not progress, leave=False):
        m = ref.name[4:] if ref.name.startswith("step") else None
        if ref.name != "main" and not (m and m.isdigit()):
            continue
        files, sizes = _tree(api, repo, ref.target_commit, cache)
        step = int(m) if m else None
        out.append(Branch(ref.name, step, f"{repo}@{ref.target_commit}", files, sizes))
    return out


# ------------------------------------------------------------------------ the table

EXPECTED = "expected: "
"""A flag's note starting so explains the flag as intended: the catalogue's policy leaves it be."""
EXPECTED_STEP1 = (
    EXPECTED + "the first update's learning rate is 0 (the warmup starts from 0, as in GPT-NeoX "
    "and Pythia, pythia#83), so step1 holds step0's weights"
)


def _first_lr(cat: Catalogue, model: str, run: str) -> float | None:
    """The learning rate of a trained run's first update, from its ``train_log.jsonl``."""
    log = paths.run_dir(cat.suite.name, run, model) / "train_log.jsonl"
    if not log.is_file():
        return None
    with open(log) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("step") == 1 and "lr" in rec:
                return float(rec["lr"])
    return None


def run_rows(cat: Catalogue, model: str, run: str, branches: list[Branch], steps: list[int] | None):
    """The rows of one run (:data:`COLUMNS`): its files with their verdicts, and missing steps."""
    present = [b.step for b in branches if b.step is not None]
    verdicts = flag(branches, schedule(cat, run, steps, present))
    if cat.source is Source.trained and _first_lr(cat, model, run) == 0:
        for v in verdicts.values():
            if v.status == "step0==step1":
                v.note = EXPECTED_STEP1
    by_name = {b.name: b for b in branches}
    base = {"suite": cat.suite.name, "source": cat.source.value, "model": model, "run": run}
    rows = []
    for name, v in verdicts.items():
        b = by_name.get(name)
        files = sorted(b.files) if b is not None and b.files else [""]
        for f in files:
            rows.append(
                {
                    **base,
                    "location": b.location if b is not None else "",
                    "branch": name,
                    "step": int(name[4:]),
                    "file": f,
                    "size": b.sizes.get(f, "") if b is not None and f else "",
                    "sha256": b.files[f] if b is not None and f else "",
                    "status": v.status,
                    "same_as": v.same_as,
                    "note": v.note,
                }
            )
    return rows


def runs_of(
    cat: Catalogue, models: list[str] | None, runs: list[str] | None
) -> list[tuple[str, str]]:
    """(model, run) pairs to audit: the given ones, else every run of the catalogue and its models;
    for the hub every run Pythia released of each model (:func:`pythia.runs.released_runs`:
    the deduplicated twin, PolyPythias' seeds and decoupled runs, the intervention models)."""
    runs = runs or cat.runs or None
    if cat.source is Source.hub and not runs:
        return [(cat.check_model(m), r) for m in models or cat.models() for r in released_runs(m)]
    out = []
    for run in runs or cat.datasets():
        for model in models or cat.models(run):
            out.append((cat.check_model(model), run))
    return out


def audit(
    cat: Catalogue,
    models: list[str] | None = None,
    runs: list[str] | None = None,
    steps: list[int] | None = None,
    progress: bool = False,
    on_error: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The audit rows (:data:`COLUMNS`) of every (model, run) of ``cat`` (or those given). A
    repository the hub does not have is reported through ``on_error`` (one line) and left out;
    an unreachable hub stops the audit (:class:`AuditError`)."""
    from tqdm.auto import tqdm  # heavy-ish: progress only when auditing

    rows: list[dict[str, Any]] = []
    pairs = runs_of(cat, models, runs)
    errors = []
    for model, run in tqdm(pairs, desc="checkpoints audit", disable=not progress):
        try:
            if cat.source is Source.hub:
                branches = hub_branches(cat, hub_repo(model, run), progress)
            else:
                branches = disk_branches(cat, model, run)
        except RepoError as e:
            errors.append(str(e))
            if on_error is not None:
                on_error(str(e))
            continue
        rows += run_rows(cat, model, run, branches, steps)
    if not rows:
        raise AuditError(
            "nothing to audit: " + ("; ".join(errors) if errors else f"no checkpoints in {cat!r}")
        )
    return rows


def flagged(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[int, Verdict]]:
    """The flagged steps of each (model, run) of audit rows."""
    out: dict[tuple[str, str], dict[int, Verdict]] = {}
    for r in rows:
        if r["status"] != OK and not r["note"].startswith(EXPECTED):
            out.setdefault((r["model"], r["run"]), {})[int(r["step"])] = Verdict(
                r["status"], r["same_as"], r["note"]
            )
    return out


# ------------------------------------------------------------------------ tensors


def _state(cat: Catalogue, model: str, run: str, step: int) -> dict[str, Any]:
    """The checkpoint's tensors (float32, CPU), loaded through the catalogue."""
    net = cat.checkpoint(model, run, step).load_model()
    return {k: v.detach().float() for k, v in net.state_dict().items()}


def _fingerprint(t: Any) -> str:
    return hashlib.blake2b(t.contiguous().view(-1).numpy().tobytes(), digest_size=8).hexdigest()


def distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Relative L2 distance ``||a - b|| / ||b||`` over the tensors both hold with one shape."""
    num = den = 0.0
    for k, ref in b.items():
        x = a.get(k)
        if x is not None and x.shape == ref.shape:
            num += float(((x.double() - ref.double()) ** 2).sum())
            den += float((ref.double() ** 2).sum())
    return (num / den) ** 0.5 if den else float("nan")


def _tensor_flag(step: int, d_init: float, d_other: float, d_prev: float) -> str:
    if step > 0 and d_other == d_other and d_init >= d_other:
        return "not-from-init"
    if step > 0 and d_prev == d_prev and d_prev > d_init:
        return "jump"
    return OK


def _run_tensors(cat, model, run, steps, own_init, other_inits) -> Iterator[tuple[int, dict]]:
    prev: tuple[int, dict[str, Any], dict[str, str]] | None = None
    for step in steps:
        state = _state(cat, model, run, step)
        prints = {k: _fingerprint(v) for k, v in state.items()}
        d_init = distance(state, own_init) if own_init is not None else float("nan")
        others = [distance(state, o) for o in other_inits]
        d_other = min(others) if others else float("nan")
        d_prev = distance(state, prev[1]) if prev is not None and prev[0] > 0 else float("nan")
        yield (
            step,
            {
                "tensors": len(state),
                "tensors_fingerprint": hashlib.sha256(
                    json.dumps(prints, sort_keys=True).encode()
                ).hexdigest()[:16],
                "tensors_same_as_prev": sum(prints[k] == prev[2].get(k) for k in prints)
                if prev
                else "",
                "init_distance": d_init,
                "other_init_distance": d_other,
                "prev_distance": d_prev,
                "tensor_status": _tensor_flag(step, d_init, d_other, d_prev),
            },
        )
        prev = (step, state, prints)


TENSOR_NOTES = {
    "not-from-init": "as near another run's step0 as its own or nearer: the run does not descend "
    "from its own step0 (pythia#203 kind)",
    "jump": "farther from the previous step than from its own step0: the previous step is not on "
    "its path (a replaced checkpoint, pythia#108 kind)",
}


def tensor_checks(
    cat: Catalogue, rows: list[dict[str, Any]], progress: bool = False
) -> list[dict[str, Any]]:
    """``rows`` with :data:`TENSOR_COLUMNS` per checkpoint (loaded through the catalogue; the hub's
    are downloaded); an ``ok`` checkpoint the tensors flag gets that flag (module docstring)."""
    from tqdm.auto import tqdm  # heavy-ish: progress only when auditing

    present: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        if r["file"]:
            present.setdefault((r["model"], r["run"]), [])
            if r["step"] not in present[(r["model"], r["run"])]:
                present[(r["model"], r["run"])].append(r["step"])
    inits = {key: _state(cat, *key, 0) for key, steps in present.items() if 0 in steps}
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    for (model, run), steps in tqdm(present.items(), desc="tensors", disable=not progress):
        own = inits.get((model, run))
        others = [
            s
            for (m, r), s in inits.items()
            if m == model and r != run and own is not None and distance(s, own) > 0
        ]
        for step, got in _run_tensors(cat, model, run, sorted(steps), own, others):
            found[(model, run, step)] = got
    out = []
    for r in rows:
        got = dict(found.get((r["model"], r["run"], r["step"]), {}))
        flag_ = got.pop("tensor_status", OK)
        row = {**r, **{c: got.get(c, "") for c in TENSOR_COLUMNS}}
        if r["status"] == OK and flag_ != OK:
            row["status"], row["note"] = flag_, TENSOR_NOTES[flag_]
        out.append(row)
    return out


# ------------------------------------------------------------------------ the catalogue's policy


def results_table(suite: str) -> Path:
    """``results/<suite>/checkpoints/audit.csv``: the audit the workflow (and the command) writes."""
    return paths.results_dir(suite) / "checkpoints" / "audit.csv"


def read_rows(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Audit rows as CSV (atomically; the hub cache, where no provenance is asked)."""
    with atomic_path(path, suffix=".csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return path


class StepFilter:
    """What :meth:`pythia.runs.Catalogue.steps` does with checkpoints the audit flagged:
    ``warn`` (once per run, naming them) or ``skip`` (leave them out, saying which).

    The flags of a run: the rows of the catalogue's source in ``results/<suite>/checkpoints/
    audit.csv`` (a local source's: of its directory); else, for the hub, the audit of the
    repository from its refs and trees on first use, cached under ``work/<suite>/cache/
    checkpoints-audit/`` (unreachable: one warning, nothing filtered)."""

    def __init__(self, cat: Catalogue, policy: str):
        if policy not in POLICIES:
            raise AuditError(
                f"unknown checkpoints audit policy {policy!r}; choose one of: {', '.join(POLICIES)}"
            )
        self.cat, self.policy = cat, policy
        self._flags: dict[tuple[str, str], dict[int, Verdict]] | None = None
        self._warned: set[tuple[str, str]] = set()
        self._covered: set[tuple[str, str]] = set()

    def _table_flags(self) -> dict[tuple[str, str], dict[int, Verdict]]:
        if self._flags is None:
            path = results_table(self.cat.suite.name)
            rows = read_rows(path) if path.is_file() else []
            where = str(self.cat.path) if self.cat.path else ""
            mine = [
                r
                for r in rows
                if r.get("source") == self.cat.source.value
                and (self.cat.source is not Source.local or r.get("location", "").startswith(where))
            ]
            self._flags = flagged(mine)
            self._covered = {(r["model"], r["run"]) for r in mine}
        return self._flags

    def _hub_flags(self, model: str, run: str) -> dict[int, Verdict]:
        repo = hub_repo(model, run)
        path = paths.suite_dir(self.cat.suite.name) / "cache" / CACHE / f"{_slug(repo)}.csv"
        if not path.is_file():
            try:
                branches = hub_branches(self.cat, repo)
            except AuditError as e:
                warnings.warn(f"{repo} not audited: {e}", CheckpointAuditWarning, stacklevel=4)
                return {}
            write_rows(path, run_rows(self.cat, model, run, branches, None))
        return flagged(read_rows(path)).get((model, run), {})

    def flags(self, model: str, run: str) -> dict[int, Verdict]:
        """The flagged steps of a run (step -> verdict)."""
        table = self._table_flags()
        if (model, run) in self._covered or self.cat.source is not Source.hub:
            return table.get((model, run), {})
        return self._hub_flags(model, run)

    def __call__(self, model: str, run: str, steps: list[int]) -> list[int]:
        if self.policy == "off":
            return steps
        bad = {s: v for s, v in self.flags(model, run).items() if s in steps}
        if not bad:
            return steps
        if (model, run) not in self._warned:
            self._warned.add((model, run))
            what = "; ".join(
                f"step{s} {v.status}" + (f" (= {v.same_as})" if v.same_as else "")
                for s, v in sorted(bad.items())
            )
            verb = (
                "skipped"
                if self.policy == "skip"
                else "read anyway (checkpoints.audit: skip leaves them out)"
            )
            warnings.warn(
                f"{model}/{run}: {len(bad)} checkpoint(s) flagged by the audit {verb}: {what}",
                CheckpointAuditWarning,
                stacklevel=3,
            )
        return [s for s in steps if s not in bad] if self.policy == "skip" else steps


def step_filter(cat: Catalogue, policy: str) -> StepFilter | None:
    """The filter for ``cat`` under ``policy`` (None for ``off``)."""
    return None if policy == "off" else StepFilter(cat, policy)
