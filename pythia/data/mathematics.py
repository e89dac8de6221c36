"""DeepMind's mathematics_dataset generator (``mathematics-dataset==1.0.1``), run offline.

The wheel is unpacked once into ``$PYTHIA_CACHE/extracted/mathematics_dataset-<version>/``
and patched: three lines of ``sample/polynomials.py`` so that it runs on numpy 2 /
sympy 1.14 (:data:`_MATH_FIXES`), plus two lines of ``util/composition.py`` so that its
output does not depend on memory addresses (:data:`_MATH_DETERMINISM_FIXES`). The generator
then runs in a subprocess with that copy on ``sys.path`` and every random generator seeded,
so the same seed gives the same documents on every run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from pythia.data.archives import ARCHIVES, SourceError, fetch_archive
from pythia.io import atomic_dir, write_json
from pythia.paths import cache_dir

Document = tuple[str, str]  # (id, text)

_MATH_FIXES = [
    (
        "from sympy.solvers.diophantine import base_solution_linear",
        "from sympy.solvers.diophantine.diophantine import base_solution_linear",
    ),
    ("dtype=np.object)", "dtype=object)"),
    ("coeffs.itemset(index, value)", "coeffs[index] = value"),
    ("expanded_coefficients.itemset(power, coeffs)", "expanded_coefficients[power] = coeffs"),
]
# Not a compatibility fix but a determinism one: ``expand_entities`` collects Entity objects
# (hashed by id, i.e. by memory address) in a set and shuffles its list, so statement order
# changed from run to run even with every seed fixed. An insertion-ordered dict keeps the
# same elements in a fixed order.
_MATH_DETERMINISM_FIXES = [
    (
        "  entities = set(context.child_entities)\n",
        "  entities = dict.fromkeys(context.child_entities)\n",
    ),
    ("      entities.add(maybe_entity)\n", "      entities[maybe_entity] = None\n"),
]
_MATH_PATCH_VERSION = 2
MATH_SEED = 1234
MATH_PER_DOC = 40
"""Question/answer pairs per math document (all from one module)."""
MATH_DEFAULT_BYTES = 5_000_000
"""The generator never ends: without a byte cap (``max_bytes_per_source: null``) it stops
here (~5 min on one core)."""

_MATH_DRIVER = r"""
import json, random, sys
import numpy as np
seed, per_doc = int(sys.argv[1]), int(sys.argv[2])
random.seed(seed); np.random.seed(seed)
import sympy.core.random  # sympy's own generator (randprime, ...)
sympy.core.random.seed(seed)
sympy.core.random._assumptions_rng.seed(seed)
from mathematics_dataset import generate_settings
from mathematics_dataset.modules import modules
def entropy(range_):
    return range_
flat = {}
def add(d, prefix):
    for k, v in d.items():
        name = prefix + '__' + k if prefix else k
        if isinstance(v, dict): add(v, name)
        else: flat[name] = v
add(modules.train(entropy), '')
names = sorted(flat)
rnd = 0
while True:
    for name in names:
        qa = []
        while len(qa) < per_doc:
            p = flat[name]()
            q, a = str(p.question), str(p.answer)
            if len(q) > generate_settings.MAX_QUESTION_LENGTH or len(a) > generate_settings.MAX_ANSWER_LENGTH:
                continue
            qa.append((q, a))
        sys.stdout.write(json.dumps({"id": f"{name}/{rnd}", "qa": qa}) + "\n")
        sys.stdout.flush()
    rnd += 1
"""


def math_dir(download: bool | None = None, progress: bool = True) -> Path:
    """A private copy of mathematics_dataset patched for numpy 2 / sympy 1.14."""
    a = ARCHIVES["mathematics-dataset"]
    out = cache_dir() / "extracted" / f"mathematics_dataset-{a.version}"
    stamp = out / "patched.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("version") == _MATH_PATCH_VERSION:
        return out
    path = fetch_archive(a, download=download, progress=progress)
    with atomic_dir(out) as tmp:
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                if n.startswith("mathematics_dataset/"):
                    z.extract(n, tmp)
        pkg = tmp / "mathematics_dataset"
        for path, fixes in (
            (pkg / "sample" / "polynomials.py", _MATH_FIXES),
            (pkg / "util" / "composition.py", _MATH_DETERMINISM_FIXES),
        ):
            src = path.read_text()
            for old, new in fixes:
                if old not in src:
                    raise SourceError(
                        f"cannot patch {path}: {old!r} not found (unexpected archive content)"
                    )
                src = src.replace(old, new)
            path.write_text(src)
        write_json(
            tmp / "patched.json",
            {
                "sha256": a.sha256,
                "version": _MATH_PATCH_VERSION,
                "fixes": _MATH_FIXES,
                "determinism_fixes": _MATH_DETERMINISM_FIXES,
            },
        )
    return out


def math_documents(
    budget: int | None, per_doc: int = MATH_PER_DOC, seed: int = MATH_SEED
) -> Iterator[Document]:
    """Documents of ``per_doc`` question/answer pairs, cycling through the sorted train
    modules, generated in a subprocess (all of Python's, numpy's and sympy's generators
    seeded, ``PYTHONHASHSEED=0``) until ``budget`` bytes."""
    root = math_dir()
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONHASHSEED="0")
    proc = subprocess.Popen(
        [sys.executable, "-c", _MATH_DRIVER, str(seed), str(per_doc)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    produced = 0
    budget = MATH_DEFAULT_BYTES if budget is None else budget
    try:
        for line in proc.stdout:
            rec = json.loads(line)
            text = "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in rec["qa"])
            produced += len(text.encode())
            yield rec["id"], text
            if produced >= budget:
                break
        else:
            err = proc.stderr.read()
            raise SourceError(f"the mathematics_dataset generator stopped: {err[-2000:]}")
    finally:
        proc.kill()
        proc.wait()
