"""The conda environments of envs/ pin the same versions as pyproject.toml."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(reqs):
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^;\s]+)", r.strip())
        if m:
            out[m.group(1).lower()] = m.group(3)
    return out


def test_envs_match_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins(project["dependencies"])
    assert pins["torch"] == "2.13.0"
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert envs, "no conda environments in envs/"
    for env in envs:
        deps = yaml.safe_load(env.read_text())["dependencies"]
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        env_pins = _pins(pip)
        assert env_pins, env
        for name, version in env_pins.items():
            assert name in pins, f"{env.name}: {name} is not a dependency in pyproject.toml"
            assert version == pins[name], (
                f"{env.name}: {name}=={version}, pyproject.toml pins {pins[name]}"
            )
    main_env = _pins(
        yaml.safe_load((ROOT / "envs" / "pythia.yaml").read_text())["dependencies"][-1]["pip"]
    )
    missing = (
        set(pins) - set(main_env) - {"snakemake", "snakemake-executor-plugin-slurm", "jupyterlab"}
    )
    assert not missing, f"envs/pythia.yaml lacks {sorted(missing)}"


def test_lock_file_pins_torch_cpu_build():
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    assert "torch==2.13.0" in lock
    assert not any(line.startswith("flash-attn") or line.startswith("flash_attn") for line in lock)
