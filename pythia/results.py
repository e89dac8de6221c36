"""Did my rerun reproduce the reference? ``pythia results compare`` and ``pythia results snapshot``.

A reader reruns the compendium (``make reproduce``) and asks whether they got the committed
results. This module compares every table and every figure's data (``<figure>.data.csv``)
that the section registry (:mod:`pythia.sections`) declares with the reference copy:

- rows are matched on the output's key columns; a missing or extra row is a difference;
- integer, text and boolean columns must be equal: parameter counts, data card, order
  hashes and the batch proof are exact results;
- float columns must satisfy ``|new - ref| <= atol + rtol * |ref|``, with the tolerance the
  registry states for that output (trained losses: :data:`pythia.sections.LOSS_RTOL`, because
  CPU kernels differ in the last digits between machines; exact elsewhere);
- columns the registry marks machine-dependent (timings) are not compared.

Run metadata that always changes (the code version, the hashes of training logs that hold
timings, the executed notebooks) is not compared: it is printed once, in the header.

The reference is, by default, the committed copy: ``git show HEAD:results/<suite>/...``
(the working tree's files are what the rerun wrote). Outside a git checkout it is the
snapshot that ``pythia results snapshot`` took before the rerun (``make reproduce`` takes one
when there is none: ``work/<suite>/reference/``), or any directory given with ``--reference``.

Exit status: 0 when every output is reproduced (or there is no reference to compare with),
1 when an output differs beyond its tolerance, 2 on an error.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pythia import paths, sections
from pythia.config import load_suite, register_suite_file
from pythia.errors import MissingInputError
from pythia.sections import Compare

SNAPSHOT = "reference"
"""Name of the snapshot directory under ``work/<suite>/``."""


# ------------------------------------------------------------------------------ reference trees


class DirTree:
    """Result files under a directory (``results/<suite>`` or a snapshot of it)."""

    def __init__(self, root: Path, label: str | None = None) -> None:
        self.root = Path(root)
        self.label = label or str(root)

    def read(self, rel: str) -> bytes | None:
        p = self.root / rel
        return p.read_bytes() if p.is_file() else None


class GitTree:
    """Result files as committed at ``rev`` (``git show REV:results/<suite>/<rel>``)."""

    def __init__(self, repo: Path, rev: str, prefix: str) -> None:
        self.repo, self.rev, self.prefix = repo, rev, prefix.strip("/")
        self.label = f"git {rev}:{self.prefix}"

    def read(self, rel: str) -> bytes | None:
        out = subprocess.run(
            ["git", "-C", str(self.repo), "show", f"{self.rev}:{self.prefix}/{rel}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        return out.stdout if out.returncode == 0 else None


def _git_reference(results: Path, rev: str) -> GitTree | None:
    """The committed copy of ``results`` at ``rev``, if ``results`` is inside a git checkout
    and the revision holds it."""
    probe = (
        results if results.is_dir() else next((p for p in results.parents if p.is_dir()), Path("."))
    )
    try:
        top = subprocess.run(
            ["git", "-C", str(probe), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if top.returncode != 0:
        return None
    repo = Path(top.stdout.strip())
    try:
        prefix = results.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return None
    ok = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "-e", f"{rev}:{prefix}"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return GitTree(repo, rev, prefix) if ok.returncode == 0 else None


def snapshot_dir(suite: str) -> Path:
    return paths.suite_dir(suite) / SNAPSHOT


def reference_tree(
    suite: str, reference: str | Path | None = None, rev: str = "HEAD"
) -> DirTree | GitTree | None:
    """Where the reference results of ``suite`` are: ``reference`` if given (a directory holding
    the section directories, or ``<suite>/`` with them), else the committed copy at ``rev``,
    else the snapshot in ``work/<suite>/reference``; None if there is none."""
    if reference is not None:
        root = Path(reference)
        if not root.is_dir():
            raise MissingInputError(
                f"reference directory {root} does not exist; pass the directory holding "
                f"the reference results (its <stem>/ folders, or <suite>/ with them)"
            )
        return DirTree(root / suite if (root / suite).is_dir() else root)
    tree = _git_reference(paths.results_dir(suite), rev)
    if tree is not None:
        return tree
    snap = snapshot_dir(suite)
    return DirTree(snap, f"snapshot {snap}") if snap.is_dir() else None


def compared_files(suite: str) -> list[str]:
    """Every file ``compare`` reads, relative to ``results/<suite>`` (for ``snapshot``)."""
    out = []
    for s in sections.SECTIONS:
        for kind, name, _ in s.compared():
            files = s.table_files(suite, name) if kind == "table" else s.figure_files(suite, name)
            data = files["csv"] if kind == "table" else files["data"]
            out += [f"{s.stem}/{data.name}", f"{s.stem}/{files['provenance'].name}"]
    return out


def snapshot(suite: str, force: bool = False) -> tuple[Path, int]:
    """Copy the result files of ``suite`` that ``compare`` reads into ``work/<suite>/reference``
    (unless a snapshot exists and not ``force``; none when there are no results). Returns the
    directory and the number of files copied."""
    dest = snapshot_dir(suite)
    if dest.exists() and not force:
        return dest, 0
    src = paths.results_dir(suite)
    files = [rel for rel in compared_files(suite) if (src / rel).is_file()]
    if dest.exists():
        shutil.rmtree(dest)
    for rel in files:  # nothing to keep, no snapshot: an empty one would pass for a reference
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dest / rel)
    return dest, len(files)


# ------------------------------------------------------------------------------ comparison


@dataclass
class Verdict:
    """The comparison of one table or figure's data."""

    section: str
    kind: str
    name: str
    status: str
    """``equal``, ``within tolerance``, ``DIFFERS``, ``missing``, ``no reference``, ``other config``."""
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("DIFFERS", "missing")

    def line(self) -> str:
        return f"  {self.kind:<6} {self.name:<16} {self.status}" + (
            f": {self.detail}" if self.detail else ""
        )


def _plain(value: object) -> str:
    """A cell as text (numpy scalars without their type name)."""
    return repr(value.item()) if isinstance(value, np.generic) else repr(value)


def _read_csv(blob: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(blob))


def _fmt_key(row: pd.Series, keys: tuple[str, ...]) -> str:
    return " ".join(f"{k}={row[k]}" for k in keys) if keys else f"row {row.name}"


def _show(idx: pd.Index) -> str:
    return ", ".join(map(str, list(idx[:3]))) + (" ..." if len(idx) > 3 else "")


def _aligned(
    new: pd.DataFrame, ref: pd.DataFrame, keys: tuple[str, ...]
) -> tuple[pd.DataFrame, pd.DataFrame] | str:
    """``new`` and ``ref`` with their rows in the same order (matched on ``keys``, else by
    position), or why they cannot be."""
    if not keys:
        if len(new) != len(ref):
            return f"{len(new)} rows, reference {len(ref)}"
        return new.reset_index(drop=True), ref.reset_index(drop=True)
    for name, df in (("new", new), ("reference", ref)):
        dup = df.duplicated(list(keys))
        if dup.any():
            return f"{name} has repeated rows for {_fmt_key(df[dup].iloc[0], keys)}"
    a = new.astype(dict.fromkeys(keys, str)).set_index(list(keys)).sort_index()
    b = ref.astype(dict.fromkeys(keys, str)).set_index(list(keys)).sort_index()
    extra, missing = a.index.difference(b.index), b.index.difference(a.index)
    if len(extra) or len(missing):
        return (
            f"rows differ: {len(extra)} new ({_show(extra) or '-'}), "
            f"{len(missing)} missing ({_show(missing) or '-'})"
        )
    return a, b.loc[a.index]


def _column_bad(x: pd.Series, y: pd.Series, spec: Compare) -> tuple[np.ndarray, float | None]:
    """Which values of column ``x`` differ from ``y`` beyond ``spec``'s tolerance, and the largest
    relative difference among those within it (None: all within it are equal)."""
    if not (x.dtype.kind == "f" or y.dtype.kind == "f"):
        return x.astype(str).to_numpy() != y.astype(str).to_numpy(), None
    xv, yv = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
    both_nan = np.isnan(xv) & np.isnan(yv)
    diff = np.abs(xv - yv)
    bad = ~both_nan & ~(diff <= spec.atol + spec.rtol * np.abs(yv))
    close = ~both_nan & ~bad
    if close.any() and (diff[close] > 0).any():
        rel = diff[close] / np.maximum(np.abs(yv[close]), np.finfo(float).tiny)
        return bad, float(rel.max())
    return bad, None


def _where(a: pd.DataFrame, keys: tuple[str, ...], i: int) -> str:
    if not keys:
        return f"row {i}"
    values = a.index[i] if len(keys) > 1 else (a.index[i],)
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values))


def compare_frames(new: pd.DataFrame, ref: pd.DataFrame, spec: Compare) -> tuple[str, str]:
    """``(status, detail)`` of ``new`` against ``ref`` under ``spec`` (see the module docstring)."""
    if set(new.columns) != set(ref.columns):
        added, gone = (
            sorted(set(new.columns) - set(ref.columns)),
            sorted(set(ref.columns) - set(new.columns)),
        )
        return "DIFFERS", f"columns differ (new: {added or '-'}; only in reference: {gone or '-'})"
    keys = tuple(k for k in spec.keys if k in new.columns)
    aligned = _aligned(new, ref, keys)
    if isinstance(aligned, str):
        return "DIFFERS", aligned
    a, b = aligned
    problems, worst, inexact = [], 0.0, False
    for col in (c for c in a.columns if c not in spec.ignore):
        x, y = a[col], b[col]
        bad, rel = _column_bad(x, y, spec)
        if rel is not None:
            inexact, worst = True, max(worst, rel)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            problems.append(
                f"{col}: {int(bad.sum())} of {len(bad)} values, e.g. {_where(a, keys, i)}: "
                f"{_plain(x.iloc[i])} vs {_plain(y.iloc[i])}"
            )
    if problems:
        tol = f" beyond rtol {spec.rtol:g}" if not spec.exact else ""
        return "DIFFERS", "; ".join(problems[:3]) + tol + (" ..." if len(problems) > 3 else "")
    ignored = (
        f"; not compared: {', '.join(c for c in spec.ignore if c in a.columns)} ({spec.why})"
        if spec.ignore
        else ""
    )
    if inexact:
        return (
            "within tolerance",
            f"max rel. diff {worst:.1e} <= {spec.rtol:g} ({spec.why}){ignored}",
        )
    return "equal", ("exact" if not spec.ignore else "rows equal") + ignored


def _config_digest(blob: bytes | None) -> str | None:
    try:
        return json.loads(blob).get("config_digest") if blob else None
    except ValueError:
        return None


def _code_version(blob: bytes | None) -> str | None:
    try:
        return json.loads(blob).get("code_version") if blob else None
    except ValueError:
        return None


def compare(
    suite: str, reference: DirTree | GitTree, only: list[str] | None = None
) -> tuple[list[Verdict], dict]:
    """Compare ``results/<suite>`` with ``reference``. Returns the verdicts and the run metadata
    of both sides (``code_version`` of each, for the header)."""
    new = DirTree(paths.results_dir(suite))
    verdicts: list[Verdict] = []
    meta: dict[str, set] = {"new": set(), "reference": set()}
    for s in sections.SECTIONS:
        if only and s.stem not in only:
            continue
        for kind, name, spec in s.compared():
            files = s.table_files(suite, name) if kind == "table" else s.figure_files(suite, name)
            data = f"{s.stem}/{(files['csv'] if kind == 'table' else files['data']).name}"
            prov = f"{s.stem}/{files['provenance'].name}"
            got, want = new.read(data), reference.read(data)
            pn, pr = new.read(prov), reference.read(prov)
            for side, blob in (("new", pn), ("reference", pr)):
                if _code_version(blob):
                    meta[side].add(_code_version(blob))
            v = Verdict(s.stem, kind, name, "")
            if want is None and got is None:
                continue  # a section neither side has
            if want is None:
                v.status, v.detail = "no reference", f"{reference.label} has no {data}"
            elif got is None:
                v.status, v.detail = (
                    "missing",
                    f"{new.label}/{data} was not written: rerun the workflow",
                )
            elif got == want:
                v.status, v.detail = (
                    "equal",
                    "identical file" + (f" ({spec.why})" if spec.ignore else ""),
                )
            else:
                v.status, v.detail = compare_frames(_read_csv(got), _read_csv(want), spec)
                cn, cr = _config_digest(pn), _config_digest(pr)
                if v.failed and cn and cr and cn != cr:
                    v.status = "other config"
                    v.detail = (
                        f"made with config {cn}, reference with {cr}: not comparable ({v.detail})"
                    )
            verdicts.append(v)
    return verdicts, {k: sorted(x) for k, x in meta.items()}


def report(suite: str, verdicts: list[Verdict], meta: dict, label: str) -> str:
    """The printed verdict: a header, one line per output by section, a summary line."""
    lines = [
        f"results/{suite} (this run) vs {label}",
        f"run metadata, not compared: code {', '.join(meta['new']) or '?'} "
        f"(reference: {', '.join(meta['reference']) or '?'}); executed notebooks and provenance files differ by design",
    ]
    by_section: dict[str, list[Verdict]] = {}
    for v in verdicts:
        by_section.setdefault(v.section, []).append(v)
    for s in sections.SECTIONS:
        if s.stem in by_section:
            lines.append(f"{s.number:02d} {s.stem}")
            lines += [v.line() for v in by_section[s.stem]]
    failed = [v for v in verdicts if v.failed]
    other = [v for v in verdicts if v.status == "other config"]
    counts = {
        st: sum(v.status == st for v in verdicts)
        for st in ("equal", "within tolerance", "other config", "no reference")
    }
    tally = ", ".join(f"{n} {st}" for st, n in counts.items() if n)
    if failed:
        lines.append(
            f"verdict: NOT reproduced: {len(failed)} of {len(verdicts)} outputs differ "
            f"({', '.join(f'{v.section}/{v.kind} {v.name}' for v in failed)}); {tally}"
        )
    elif other:
        lines.append(
            f"verdict: not comparable: {len(other)} of {len(verdicts)} outputs were made with another "
            f"configuration than the reference's; {tally}"
        )
    elif not counts["equal"] + counts["within tolerance"]:
        lines.append("verdict: nothing compared: the reference holds none of these outputs")
    else:
        lines.append(f"verdict: reproduced: {len(verdicts)} outputs ({tally})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ CLI


def default_suite() -> str:
    """The suite of the workflow's ``config/config.yaml`` (the project's), else ``micro``."""
    cfg = paths.project_dir() / "config" / "config.yaml"
    try:
        return str(yaml.safe_load(cfg.read_text()).get("suite") or "micro")
    except (OSError, AttributeError, yaml.YAMLError):
        return "micro"


def suite_name(name: str | None) -> str:
    """The name of suite ``name`` (a name or a suite YAML), or of :func:`default_suite`."""
    name = name or default_suite()
    return (
        register_suite_file(name) if name.endswith((".yaml", ".yml")) else load_suite(name)
    ).name
