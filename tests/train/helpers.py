"""Shared helpers of the training tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

PY = sys.executable


def pythia_cmd(*args: str) -> list[str]:
    return [PY, "-m", "pythia.cli", *args]


def run_cli(args: list[str], env: dict, timeout: int = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        pythia_cmd(*args), env=env, check=False, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def read_log(run_dir: Path) -> list[dict]:
    return [
        json.loads(x) for x in (run_dir / "train_log.jsonl").read_text().splitlines() if x.strip()
    ]


def weights(step_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(step_dir / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs between {a} and {b}"
