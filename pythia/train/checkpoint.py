"""Checkpoints and training state of one run, all written atomically, no pickles.

Run directory ``work/<suite>/models/<run>/<model>/`` (``pythia.paths.run_dir``):

    run.json               suite, run digest (:func:`run_digest`), model, dataset: which config the run belongs to
    step{N}/               Hugging Face model dir at each checkpoint step (config.json,
                           model.safetensors, tokenizer files); loads with
                           GPTNeoXForCausalLM.from_pretrained; named like Pythia's revisions
    state/step{N}/         training state at the suite's state steps (+ ``state_every``):
        model.safetensors      fp32 weights
        optimizer.safetensors  AdamW moments per parameter name: ``<name>.exp_avg``,
                               ``<name>.exp_avg_sq``, ``<name>.step``
        rng.safetensors        torch CPU (and CUDA) generator states (uint8 tensors)
        state.json             step, tokens, lr, optimizer hyper-parameters, numpy and python
                               RNG states (as lists), config digest, sizes of the files above
    train_log.jsonl        one JSON record per step
    done.json              written when training finished

Every directory is written beside its final name and renamed into place
(``pythia.io.atomic_dir``), so a kill during a write leaves the previous checkpoint intact.
Everything loads with ``safetensors`` / ``json`` (or ``torch.load(weights_only=True)`` is
never needed). A file whose size differs from the one recorded, or that safetensors cannot
parse, raises :class:`CheckpointError` naming the file and what to do.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pythia.config import RunSeeds, Suite, config_digest
from pythia.data.build import stage_digest
from pythia.errors import PythiaError
from pythia.io import atomic_dir, write_json
from pythia.paths import parse_run

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger("pythia.train")

STEP_RE = re.compile(r"^step(\d+)$")
STATE_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)


class CheckpointError(PythiaError, ValueError):
    """A checkpoint or state file is missing, truncated or belongs to another run (the CLI
    prints the message, which names the file and what to do, without a traceback)."""


# --------------------------------------------------------------------------- run.json


def run_digest(suite: Suite, model: str, dataset: str, seeds: RunSeeds | None = None) -> str:
    """Digest of everything a run's weights depend on: the model's settings, the suite's training
    settings, and the tokenizer and data order of its dataset (the order stage's digest); for a
    seed run (``seeds`` of a seed > 0) also its init and data-order seeds. Other
    models' settings and the suite's description are not in it, so editing them leaves this
    run current. The workflow's ``train`` rule carries it in ``params``; ``run.json`` records it."""
    parts: dict[str, Any] = {
        "model": suite.model(model).model_dump(mode="json"),
        "training": suite.training.digest_dump(),
        "data": stage_digest(suite, "order", dataset),
    }
    if seeds is not None and seeds.seed:
        parts["seeds"] = {"init": seeds.init_seed, "data": seeds.data_seed}
    return config_digest(parts)


def seed_run_digest(suite: Suite, model: str, seedrun: str) -> str:
    """:func:`run_digest` of a seed run given by name (the workflow's ``train_seed`` jobs)."""
    dataset = parse_run(seedrun)[0]
    return run_digest(suite, model, dataset, suite.run_seeds(seedrun))


def run_record(suite_name: str, digest: str, model: str, dataset: str) -> dict:
    return {"suite": suite_name, "run_digest": digest, "model": model, "dataset": dataset}


def check_run_dir(run_dir: Path, record: dict, replace_stale: bool = False) -> None:
    """Write ``run.json`` for a new run; refuse a directory that belongs to another config, or
    with ``replace_stale`` delete it and start over (the workflow does, after a config edit)."""
    path = run_dir / "run.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(
                f"{path} is not valid JSON ({e}); delete it if the directory is yours"
            ) from None
        diff = {k: (old.get(k), v) for k, v in record.items() if old.get(k) != v}
        if not diff:
            return
        what = ", ".join(f"{k}: {a!r} there vs {b!r} now" for k, (a, b) in diff.items())
        if not replace_stale:
            raise CheckpointError(
                f"{run_dir} belongs to a run with a different configuration ({what}); "
                "train into another directory (--out), delete this one, or pass --replace-stale"
            )
        log.warning(
            "%s belongs to a run with a different configuration (%s): deleting it and starting over",
            run_dir,
            what,
        )
        shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
    write_json(path, record)


# --------------------------------------------------------------------------- model dirs


def model_dir(run_dir: Path, step: int) -> Path:
    return run_dir / f"step{step}"


def save_model_checkpoint(
    model: PreTrainedModel, path: Path, tokenizer_dir: Path | None = None, extra: dict | None = None
) -> Path:
    """Save a Hugging Face model dir atomically (safetensors weights, config, tokenizer files)."""
    from transformers.utils import logging as hf_logging  # heavy: only saving a model needs it

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar per checkpoint
    with atomic_dir(path) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700: checkpoints are for sharing
        model.save_pretrained(tmp)
        if tokenizer_dir is not None and Path(tokenizer_dir).is_dir():
            for name in TOKENIZER_FILES:
                src = Path(tokenizer_dir) / name
                if src.is_file():
                    shutil.copy2(src, tmp / name)
        if extra:
            (tmp / "pythia_checkpoint.json").write_text(
                json.dumps(extra, indent=2, sort_keys=True) + "\n"
            )
    return path


# --------------------------------------------------------------------------- RNG


def rng_state(devices: tuple[str, ...] = ()) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, json) with the RNG states of torch (CPU, CUDA), numpy and python."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and "cuda" in devices:
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    kind, keys, pos, has_gauss, cached = legacy
    version, pystate, gauss = random.getstate()
    meta = {
        "numpy": {
            "kind": kind,
            "keys": keys.tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": list(pystate), "gauss_next": gauss},
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = sorted(k for k in tensors if k.startswith("torch_cuda_"))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    n = meta["numpy"]
    np.random.set_state(
        (
            n["kind"],
            np.asarray(n["keys"], dtype=np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = meta["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


# --------------------------------------------------------------------------- optimizer


def optimizer_tensors(
    optimizer: torch.optim.Optimizer, names: list[str]
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """AdamW state keyed by parameter name, and the param groups' hyper-parameters."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"{names[idx]}.{key}"] = t.detach().to("cpu").contiguous()
    groups = [{k: v for k, v in g.items() if k not in ("params",)} for g in sd["param_groups"]]
    return tensors, groups


def load_optimizer_tensors(
    optimizer: torch.optim.Optimizer,
    names: list[str],
    tensors: dict[str, torch.Tensor],
    groups: list[dict],
) -> None:
    sd = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for idx, name in enumerate(names):
        keys = [
            k[len(name) + 1 :]
            for k in tensors
            if k.startswith(name + ".") and "." not in k[len(name) + 1 :]
        ]
        if keys:
            state[idx] = {k: tensors[f"{name}.{k}"] for k in keys}
    if len(groups) != len(sd["param_groups"]):
        raise CheckpointError(
            f"saved optimizer has {len(groups)} parameter groups, this model {len(sd['param_groups'])}"
        )
    new_groups = []
    for saved, current in zip(groups, sd["param_groups"]):
        g = dict(current)
        g.update({k: (tuple(v) if k == "betas" else v) for k, v in saved.items()})
        g["params"] = current["params"]
        new_groups.append(g)
    optimizer.load_state_dict({"state": state, "param_groups": new_groups})


# --------------------------------------------------------------------------- state dirs


def state_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "state" / f"step{step}"


def save_state(
    path: Path,
    *,
    model_tensors: dict[str, torch.Tensor],
    optim_tensors: dict[str, torch.Tensor],
    rng_tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> Path:
    """Write a training-state directory atomically; ``state.json`` records file sizes."""
    with atomic_dir(path) as tmp:
        os.chmod(tmp, 0o755)
        files = {
            "model.safetensors": {
                k: v.detach().to("cpu").contiguous() for k, v in model_tensors.items()
            },
            "optimizer.safetensors": optim_tensors,
            "rng.safetensors": rng_tensors,
        }
        sizes = {}
        for name, tensors in files.items():
            save_file(tensors, str(tmp / name), metadata={"format": "pt"})
            sizes[name] = (tmp / name).stat().st_size
        meta = {**meta, "files": sizes}
        (tmp / "state.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return path


def _advice(path: Path, previous: Path | None) -> str:
    if previous is not None:
        return f"delete {path} and run again with --resume to continue from the previous state {previous}"
    return f"delete {path} and run again (with --resume) to start from the beginning"


def load_state(path: Path, previous: Path | None = None) -> dict[str, Any]:
    """Read a state dir: {"meta", "model", "optimizer", "rng"}; damage raises CheckpointError."""
    meta_path = path / "state.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{meta_path} is missing: the state is incomplete; {_advice(path, previous)}"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{meta_path} is corrupted ({e}); {_advice(path, previous)}"
        ) from None
    out: dict[str, Any] = {"meta": meta}
    for name in STATE_FILES:
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f} is missing; {_advice(path, previous)}")
        want = meta.get("files", {}).get(name)
        got = f.stat().st_size
        if want is not None and want != got:
            raise CheckpointError(
                f"{f} is truncated or corrupted ({got} bytes, {want} expected); {_advice(path, previous)}"
            )
        try:
            out[name.split(".")[0]] = load_file(str(f))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{f} cannot be read ({e}); {_advice(path, previous)}") from None
    return out


def saved_steps(parent: Path) -> list[int]:
    """Steps N of the ``step{N}`` directories under ``parent`` (temporary dirs ignored)."""
    if not parent.is_dir():
        return []
    return sorted(
        int(m.group(1)) for p in parent.iterdir() if p.is_dir() and (m := STEP_RE.match(p.name))
    )


def latest_state(run_dir: Path) -> tuple[Path | None, Path | None]:
    """(latest state dir, the one before it) of a run, or (None, None)."""
    steps = saved_steps(run_dir / "state")
    if not steps:
        return None, None
    prev = state_dir(run_dir, steps[-2]) if len(steps) > 1 else None
    return state_dir(run_dir, steps[-1]), prev
