"""The Snakemake workflow: dry runs with both profiles, lint, and a real run of the smoke suite."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _snakemake(*args, cwd=ROOT, timeout=600):
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def test_dry_run_default_profile(tmp_path):
    out = _snakemake("-n", "--directory", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "profiles/default" in out.stdout + out.stderr
    assert "rule all" in out.stdout or "all" in out.stdout


def test_dry_run_slurm_profile_resolves_from_repo_root(tmp_path):
    # exactly the README's cluster command, as a dry run on the real suite
    out = _snakemake("--cores", "all", "--profile", "slurm", "-n", "--directory", str(tmp_path), "--config", "suite=pythia")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "slurm" in out.stdout + out.stderr


def test_lint_is_clean():
    out = _snakemake("--lint")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Lints for" not in out.stdout + out.stderr


def test_unknown_model_in_config_fails_clearly(tmp_path):
    out = _snakemake("-n", "--directory", str(tmp_path), "--config", "suite=smoke", "models=[nosuch]")
    assert out.returncode != 0
    assert "unknown model 'nosuch'" in out.stdout + out.stderr


def test_config_schema_rejects_unknown_key(tmp_path):
    out = _snakemake("-n", "--directory", str(tmp_path), "--config", "suiet=smoke")
    assert out.returncode != 0
    assert "suiet" in out.stdout + out.stderr


@pytest.fixture(scope="session")
def smoke_workflow(tmp_path_factory):
    """Run the whole workflow on the smoke suite, for real, in a scratch directory, the way
    `make reproduce` does: through `pythia workflow run` (stale locks cleared, live ones kept)."""
    work = tmp_path_factory.mktemp("workflow")
    pythia = str(Path(sys.executable).parent / "pythia")
    out = subprocess.run([pythia, "workflow", "run", "--cores", "2", "--directory", str(work), "--config", "suite=smoke"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-5000:]
    return work


def test_smoke_workflow_writes_the_suite_table(smoke_workflow):
    res = smoke_workflow / "results" / "smoke"
    table = (res / "suite" / "suite_table.csv").read_text().splitlines()
    assert table[0].startswith("model,total_params,non_embedding_params")
    assert [line.split(",")[0] for line in table[1:]] == ["s1", "s2"]
    for fig in ("suite_table.png", "parameters.png"):
        assert (res / "suite" / fig).stat().st_size > 1000
        prov = json.loads((res / "suite" / f"{fig}.provenance.json").read_text())
        assert prov["suite"] == "smoke" and prov["config_digest"] and prov["code_version"]
    nb = json.loads((res / "notebooks" / "00_suite.ipynb").read_text())
    assert any("papermill" in c.get("metadata", {}) for c in nb["cells"])


def test_smoke_workflow_is_idempotent(smoke_workflow):
    out = _snakemake("--cores", "2", "-n", "--directory", str(smoke_workflow), "--config", "suite=smoke")
    assert out.returncode == 0
    assert "Nothing to be done" in out.stdout + out.stderr


def test_smoke_workflow_builds_data_trains_and_renders_training(smoke_workflow):
    work = smoke_workflow / "work" / "smoke"
    for dataset in ("standard", "deduped"):
        order = json.loads((work / "data" / dataset / "order.json").read_text())
        assert order["seq_len"] == 64
        for model in ("s1", "s2"):
            run = work / "models" / dataset / model
            done = json.loads((run / "done.json").read_text())
            assert done["steps"] == 24 and done["checkpoints"] == [0, 1, 2, 4, 8, 16, 24]
            assert (run / "step24" / "model.safetensors").exists()
    res = smoke_workflow / "results" / "smoke" / "training"
    for fig in ("loss_curves", "val_loss", "loss_vs_size", "lr_schedule", "throughput"):
        assert (res / f"{fig}.png").stat().st_size > 1000
        assert json.loads((res / f"{fig}.png.provenance.json").read_text())["inputs"]
    proof = (res / "batch_proof.csv").read_text().splitlines()
    assert proof[0] == "model,dataset,steps_checked,mismatched"
    assert len(proof) == 5 and all(line.endswith(",24,0") for line in proof[1:])
    assert (res / "data_card.csv").read_text().count("\n") >= 4
