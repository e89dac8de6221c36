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


def _job_counts(text: str) -> dict[str, int]:
    """Snakemake's "Job stats" table of a dry run: {rule: jobs}."""
    counts, on = {}, False
    for line in text.splitlines():
        if line.startswith("Job stats"):
            on = True
        elif on and line.strip() and not line.startswith(("job", "---", "total")):
            rule, n = line.split()
            counts[rule] = int(n)
        elif on and line.startswith("total"):
            break
    return counts


def test_dry_run_slurm_profile_resolves_from_repo_root(tmp_path):
    # exactly the README's cluster command, as a dry run on the real suite: the ten sizes on both
    # datasets train on the released pre-shuffled Pile (checked by data_released), never on an
    # order built from the stand-in corpus
    out = _snakemake("--cores", "all", "--profile", "slurm", "-n", "--directory", str(tmp_path), "--config", "suite=pythia")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "slurm" in out.stdout + out.stderr
    jobs = _job_counts(out.stdout)
    assert jobs["train"] == 20 and jobs["data_released"] == 2 and "data_order" not in jobs
    standin = _snakemake("-n", "--directory", str(tmp_path), "--config", "suite=pythia_standin")
    assert standin.returncode == 0, standin.stderr
    assert _job_counts(standin.stdout)["data_order"] == 2 and "data_released" not in _job_counts(standin.stdout)


def test_hub_checkpoints_train_nothing(tmp_path):
    out = _snakemake("-n", "--directory", str(tmp_path), "--config", "suite=pythia", "checkpoints_source=hub")
    assert out.returncode == 0, out.stdout + out.stderr
    jobs = _job_counts(out.stdout)
    assert "train" not in jobs and "notebook_training" not in jobs and jobs["notebook_suite"] == 1


def test_checkpoint_config_errors_are_clear(tmp_path):
    out = _snakemake("-n", "--directory", str(tmp_path), "--config", "suite=pythia", "checkpoints_source=local")
    assert out.returncode != 0 and "the checkpoints source 'local' needs a path" in out.stdout + out.stderr
    out = _snakemake("-n", "--directory", str(tmp_path), "--config", "suite=micro", "checkpoints_source=hub")
    assert out.returncode != 0 and "model '138K' of suite 'micro' has no released Pythia checkpoints" in out.stdout + out.stderr
    out = _snakemake("-n", "--directory", str(tmp_path), "--config", "suite=micro", "checkpoints={steps: [5]}")
    assert out.returncode != 0 and "checkpoints.steps: 5 is not a checkpoint step of suite 'micro'" in out.stdout + out.stderr


def test_released_data_rule_checks_the_download(tmp_path):
    """A suite trained on released pre-shuffled files: the rule fails naming what to download, then
    passes once the file is there."""
    import numpy as np
    import yaml

    from pythia.data.indexed import IndexedDatasetWriter

    suite = tmp_path / "relwf.yaml"
    suite.write_text(yaml.safe_dump({"extends": "smoke", "name": "relwf", "data": {"pretokenized": {
        "standard": {"hub_dataset": "EleutherAI/pile-standard-pythia-preshuffled"}}}}))
    target = "work/relwf/data/standard/order.json"
    out = _snakemake(target, "--cores", "1", "--directory", str(tmp_path), "--config", f"suite={suite}")
    assert out.returncode != 0
    log = (tmp_path / "logs" / "relwf" / "data" / "order_standard.log").read_text()
    assert "EleutherAI/pile-standard-pythia-preshuffled" in log and "pythia data unshard" in log
    rows = np.random.default_rng(0).integers(0, 512, size=(24 * 4, 65)).astype(np.uint16)  # smoke: 24 steps of 4 x 65
    with IndexedDatasetWriter(tmp_path / "work" / "relwf" / "data" / "standard" / "released" / "document", np.uint16) as w:
        w.add_rows(rows)
    out = _snakemake(target, "--cores", "1", "--directory", str(tmp_path), "--config", f"suite={suite}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert json.loads((tmp_path / target).read_text())["sequences_rows"] == 96


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
