"""The Snakemake workflow: dry runs with both profiles, lint, and a real run of the smoke suite
(outputs, figures shown in the executed notebooks, reruns after a suite edit, the report,
notebooks run from notebooks/ as in JupyterLab)."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from pythia import sections

ROOT = Path(__file__).resolve().parents[1]
PATH_VARS = ("PYTHIA_PROJECT", "PYTHIA_WORK", "PYTHIA_RESULTS", "PYTHIA_SUITE_PATH")


@pytest.fixture(autouse=True)
def _relative_paths(monkeypatch):
    """pythia.paths gives paths relative to the workflow's directory here, as in its jobs."""
    for var in PATH_VARS:
        monkeypatch.delenv(var, raising=False)


SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"


def _env(**extra):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for var in PATH_VARS:
        env.pop(var, None)
    env.update(extra)
    return env


def _snakemake(*args, cwd=ROOT, timeout=600, **env):
    return subprocess.run(
        [SNAKEMAKE, *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


def test_dry_run_lists_the_seed_runs_when_the_suite_sets_seeds(tmp_path):
    # smoke with one seed run of s1 per dataset (suite key seeds): its reshuffled order, its training
    # and its evaluation are jobs, and the two sections' notebooks wait for them and write the bands
    suite = tmp_path / "smokeseeds.yaml"
    suite.write_text(
        "extends: smoke\nname: smokeseeds\nseeds: {models: [s1], seeds: [1], vary: [both]}\n"
    )
    out = _snakemake(
        "-n", "--directory", str(tmp_path), "--config", f"suite={suite}",
        "sections=[training,benchmarks]",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    jobs = _job_counts(out.stdout)
    assert jobs["train"] == 4 and jobs["train_seed"] == 2 and jobs["data_order_seed"] == 2
    assert jobs["benchmarks_evaluate"] == 4 and jobs["benchmarks_evaluate_seed"] == 2
    for run in ("standard-seed1", "deduped-seed1"):
        assert f"work/smokeseeds/models/{run}/s1/done.json" in out.stdout
        assert f"work/smokeseeds/benchmarks/evals/{run}/s1.csv" in out.stdout
    assert "--dataset standard --seed 1 --vary both" in out.stdout
    assert "--stage order --dataset deduped --data-seed 1" in out.stdout
    for name in ("loss_seed_bands.png", "seed_spread.csv", "accuracy_seed_bands.png"):
        assert name in out.stdout


def test_dry_run_slurm_profile_resolves_from_repo_root(tmp_path):
    # exactly the README's cluster command, as a dry run on the real suite: the ten sizes on both
    # datasets train on the released pre-shuffled Pile (checked by data_released), never on an
    # order built from the stand-in corpus
    out = _snakemake(
        "--cores",
        "all",
        "--profile",
        "slurm",
        "-n",
        "--directory",
        str(tmp_path),
        "--config",
        "suite=pythia",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "slurm" in out.stdout + out.stderr
    jobs = _job_counts(out.stdout)
    assert jobs["train"] == 20 and jobs["data_released"] == 2 and "data_order" not in jobs
    standin = _snakemake("-n", "--directory", str(tmp_path), "--config", "suite=pythia_standin")
    assert standin.returncode == 0, standin.stderr
    assert _job_counts(standin.stdout)["data_order"] == 2 and "data_released" not in _job_counts(
        standin.stdout
    )


def _priorities(text: str, rule: str) -> dict[tuple[str, str], int]:
    """{(dataset, model): priority} of a dry run's jobs of ``rule`` (Snakemake omits priority 0)."""
    out = {}
    for block in re.split(r"\n\s*\n", text):
        if re.search(rf"^rule {rule}:", block, re.M):
            wc = dict(
                kv.split("=") for kv in re.search(r"wildcards: (.*)", block).group(1).split(", ")
            )
            prio = re.search(r"priority: (\d+)", block)
            out[(wc["dataset"], wc["model"])] = int(prio.group(1)) if prio else 0
    return out


def test_hub_checkpoints_train_nothing(tmp_path):
    out = _snakemake(
        "-n", "--directory", str(tmp_path), "--config", "suite=pythia", "checkpoints_source=hub"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    jobs = _job_counts(out.stdout)
    assert "train" not in jobs and "training_notebook" not in jobs and jobs["suite_notebook"] == 1
    # section 06: a contrastive decoding per dataset, every model of both datasets evaluated
    assert (
        jobs["training_trajectories_generate"] == 2 and jobs["training_trajectories_evaluate"] == 20
    )
    assert jobs["training_trajectories_tasks"] == 1 and jobs["training_trajectories_notebook"] == 1
    assert (
        jobs["benchmarks_evaluate"] == 20 and jobs["benchmarks_notebook"] == 1
    )  # 10 released sizes x 2
    assert (
        jobs["memorization_scan"] == 2 * 10 and jobs["memorization_bench"] == 1
    )  # both datasets, ten sizes
    # term frequencies: counts over the released order, every released size and dataset evaluated
    assert jobs["term_frequencies_counts"] == 2 and jobs["term_frequencies_evaluate"] == 20
    # one-thread per-model jobs start largest first, so the largest never runs alone at the end
    from pythia.config import load_suite

    suite = load_suite("pythia")
    by_size = sorted(suite.models, key=lambda m: suite.total_params(suite.model(m)))
    for rule in (
        "benchmarks_evaluate",
        "memorization_scan",
        "term_frequencies_evaluate",
        "training_trajectories_evaluate",
    ):
        prio = _priorities(out.stdout, rule)
        assert len(prio) == 20 and all(prio[(d, m)] == by_size.index(m) for d, m in prio), (
            rule,
            prio,
        )
    bench = next(
        b
        for b in re.split(r"\n\s*\n", out.stdout)
        if re.search(r"^rule memorization_bench:", b, re.M)
    )
    assert (
        f"priority: {len(by_size) - 1}" in bench
    )  # beside the largest scans, not alone at the end
    # section 03: nothing trained; the deduplicated baselines of the four intervened sizes evaluated
    assert "gender_intervention_train" not in jobs and jobs["gender_intervention_evaluate"] == 4
    assert jobs["gender_intervention_tasks"] == 1 and jobs["gender_intervention_notebook"] == 1


def test_checkpoint_config_errors_are_clear(tmp_path):
    out = _snakemake(
        "-n", "--directory", str(tmp_path), "--config", "suite=pythia", "checkpoints_source=local"
    )
    assert (
        out.returncode != 0
        and "the checkpoints source 'local' needs a path" in out.stdout + out.stderr
    )
    out = _snakemake(
        "-n", "--directory", str(tmp_path), "--config", "suite=micro", "checkpoints_source=hub"
    )
    assert (
        out.returncode != 0
        and "model '138K' of suite 'micro' has no released Pythia checkpoints"
        in out.stdout + out.stderr
    )
    out = _snakemake(
        "-n", "--directory", str(tmp_path), "--config", "suite=micro", "checkpoints={steps: [5]}"
    )
    assert (
        out.returncode != 0
        and "checkpoints.steps: 5 is not a checkpoint step of suite 'micro'"
        in out.stdout + out.stderr
    )


def test_released_data_rule_checks_the_download(tmp_path):
    """A suite trained on released pre-shuffled files: the rule fails naming what to download, then
    passes once the file is there."""
    import numpy as np
    import yaml

    from pythia.data.indexed import IndexedDatasetWriter

    suite = tmp_path / "relwf.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "extends": "smoke",
                "name": "relwf",
                "data": {
                    "pretokenized": {
                        "standard": {"hub_dataset": "EleutherAI/pile-standard-pythia-preshuffled"}
                    }
                },
            }
        )
    )
    target = "work/relwf/data/standard/order.json"
    out = _snakemake(
        target, "--cores", "1", "--directory", str(tmp_path), "--config", f"suite={suite}"
    )
    assert out.returncode != 0
    log = (tmp_path / "logs" / "relwf" / "data" / "order_standard.log").read_text()
    assert "EleutherAI/pile-standard-pythia-preshuffled" in log and "pythia data unshard" in log
    rows = (
        np.random.default_rng(0).integers(0, 512, size=(24 * 4, 65)).astype(np.uint16)
    )  # smoke: 24 steps of 4 x 65
    with IndexedDatasetWriter(
        tmp_path / "work" / "relwf" / "data" / "standard" / "released" / "document", np.uint16
    ) as w:
        w.add_rows(rows)
    out = _snakemake(
        target, "--cores", "1", "--directory", str(tmp_path), "--config", f"suite={suite}"
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert json.loads((tmp_path / target).read_text())["sequences_rows"] == 96


def test_lint_is_clean():
    out = _snakemake("--lint")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Lints for" not in out.stdout + out.stderr


def test_unknown_model_in_config_fails_clearly(tmp_path):
    out = _snakemake(
        "-n", "--directory", str(tmp_path), "--config", "suite=smoke", "models=[nosuch]"
    )
    assert out.returncode != 0
    assert "unknown model 'nosuch'" in out.stdout + out.stderr


def test_config_schema_rejects_unknown_key(tmp_path):
    out = _snakemake("-n", "--directory", str(tmp_path), "--config", "suiet=smoke")
    assert out.returncode != 0
    assert "suiet" in out.stdout + out.stderr


def test_unknown_dataset_or_section_fails_with_the_list(tmp_path):
    out = _snakemake(
        "-n", "--directory", str(tmp_path), "--config", "suite=smoke", "datasets=[pile]"
    )
    assert (
        out.returncode != 0
        and "unknown dataset 'pile'; choose one of: standard, deduped" in out.stdout + out.stderr
    )
    out = _snakemake(
        "-n", "--directory", str(tmp_path), "--config", "suite=smoke", "sections=[nosuch]"
    )
    assert out.returncode != 0 and "nosuch" in out.stdout + out.stderr


def test_env_paths_move_the_workflows_outputs(tmp_path):
    out = _snakemake(
        "-n",
        "--directory",
        str(tmp_path),
        "--config",
        "suite=smoke",
        "sections=[training]",
        PYTHIA_WORK="scratch",
        PYTHIA_RESULTS=str(tmp_path / "out"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "scratch/smoke/models/standard/s1/done.json" in out.stdout
    assert (
        f"{tmp_path}/out/smoke/training/loss_curves.png" in out.stdout
        and " results/smoke" not in out.stdout
    )


@pytest.fixture(scope="session")
def smoke_workflow(tmp_path_factory):
    """Run the whole workflow on the smoke suite, for real, in a scratch directory, the way
    `make reproduce` does: through `pythia workflow run` (stale locks cleared, live ones kept)."""
    work = tmp_path_factory.mktemp("workflow")
    pythia = str(Path(sys.executable).parent / "pythia")
    out = subprocess.run(
        [
            pythia,
            "workflow",
            "run",
            "--cores",
            "2",
            "--directory",
            str(work),
            "--config",
            "suite=smoke",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-5000:]
    return work


def test_smoke_workflow_writes_the_suite_table(smoke_workflow):
    res = smoke_workflow / "results" / "smoke"
    table = (res / "suite" / "suite_table.csv").read_text().splitlines()
    assert table[0].startswith("model,total_params,non_embedding_params")
    assert [line.split(",")[0] for line in table[1:]] == ["s1", "s2"]
    for fig in ("suite_table", "parameters"):
        assert (res / "suite" / f"{fig}.png").stat().st_size > 1000
        assert (res / "suite" / f"{fig}.pdf").read_bytes().startswith(b"%PDF")
        prov = json.loads((res / "suite" / f"{fig}.png.provenance.json").read_text())
        assert prov["suite"] == "smoke" and prov["config_digest"] and prov["code_version"]
    nb = json.loads((res / "notebooks" / "00_suite.ipynb").read_text())
    assert any("papermill" in c.get("metadata", {}) for c in nb["cells"])


def test_smoke_workflow_is_idempotent(smoke_workflow):
    out = _snakemake(
        "--cores", "2", "-n", "--directory", str(smoke_workflow), "--config", "suite=smoke"
    )
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


def test_smoke_workflow_writes_every_declared_output(smoke_workflow):
    for s in sections.SECTIONS:
        for f in s.figures:
            for kind, path in s.figure_files("smoke", f.name).items():
                assert (smoke_workflow / path).stat().st_size > 0, (s.stem, f.name, kind)
        for t in s.tables:
            for kind, path in s.table_files("smoke", t.name).items():
                assert (smoke_workflow / path).stat().st_size > 0, (s.stem, t.name, kind)


def _images(nb_path: Path) -> int:
    nb = nbformat.read(nb_path, as_version=4)
    return sum(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )


@pytest.mark.parametrize("section", sections.SECTIONS, ids=lambda s: s.stem)
def test_executed_notebooks_show_every_figure(smoke_workflow, section):
    nb = smoke_workflow / section.executed_notebook("smoke")
    assert _images(nb) >= len(section.figures) > 0


def _planned(out) -> tuple[Counter, set]:
    """Jobs of a dry run: count per rule, and the wildcards of each planned train job."""
    text = out.stdout + out.stderr
    stats = text[text.index("Job stats:") :]
    jobs = Counter(
        {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m[1] != "total"}
    )
    trains = set(re.findall(r"rule train:.*?wildcards: dataset=(\w+), model=(\w+)", text, re.S))
    return jobs, trains


def _edited_suite(tmp_path, old, new):
    """A copy of the smoke suite with one edit, found by name first ($PYTHIA_SUITE_PATH)."""
    text = (ROOT / "pythia" / "suites" / "smoke.yaml").read_text()
    assert old in text
    (tmp_path / "smoke.yaml").write_text(text.replace(old, new))
    return str(tmp_path)


def test_a_suite_edit_reruns_exactly_the_jobs_that_depend_on_it(smoke_workflow, tmp_path):
    def dry(old, new):
        out = _snakemake(
            "--cores",
            "2",
            "-n",
            "--directory",
            str(smoke_workflow),
            "--config",
            "suite=smoke",
            PYTHIA_SUITE_PATH=_edited_suite(tmp_path, old, new),
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return _planned(out)

    # one model's learning rate: that model's two runs and the notebooks that show it
    # (and section 06: its hallucination-like sequences contrast s1 with s2, so every evaluation after them;
    # the checkpoint audit reads every run's checkpoints, so it hashes them again)
    trajectories = {
        "training_trajectories_generate",
        "training_trajectories_evaluate",
        "training_trajectories_notebook",
    }
    jobs, trains = dry("peak_lr: 2.0e-3", "peak_lr: 2.5e-3")
    assert trains == {("standard", "s2"), ("deduped", "s2")}
    memorization = {"memorization_scan", "memorization_bench", "memorization_notebook"}
    # (section 03 intervenes on s1 only: nothing of it is retrained or re-evaluated; its notebook,
    # which reads the suite's models, is rendered again)
    assert (
        set(jobs)
        == {
            "train",
            "training_notebook",
            "suite_notebook",
            "benchmarks_evaluate",
            "benchmarks_notebook",
            "all",
            "term_frequencies_evaluate",
            "term_frequencies_notebook",
            "gender_intervention_notebook",
            "checkpoints_audit",
        }
        | trajectories
        | memorization
    )
    assert jobs["benchmarks_evaluate"] == 2  # s2's two runs; the tasks are not rebuilt
    assert jobs["memorization_scan"] == 2  # s2's scans; the bench times the largest model, s2
    assert jobs["term_frequencies_evaluate"] == 2
    # the other model's learning rate: not s2's runs
    jobs, trains = dry("peak_lr: 3.0e-3", "peak_lr: 3.5e-3")
    assert trains == {("standard", "s1"), ("deduped", "s1")}
    assert jobs["memorization_scan"] == 2 and "memorization_bench" not in jobs
    # s1's intervened run continues the retrained baseline: retrained, and both runs re-evaluated
    assert jobs["gender_intervention_train"] == 1 and jobs["gender_intervention_evaluate"] == 2
    # section 06's sizes: its jobs only, and not the task files unless the tasks change
    jobs, trains = dry("    prompts: 4\n", "    prompts: 3\n")
    assert set(jobs) == {"all"} | trajectories and not trains
    # deduplication: the deduplicated data, its order and runs, the card; not the standard ones
    jobs, trains = dry("threshold: 0.87", "threshold: 0.8")
    assert trains == {("deduped", "s1"), ("deduped", "s2")}
    assert jobs["memorization_scan"] == 2 and "memorization_bench" not in jobs
    assert jobs["data_dedup"] == 1 and jobs["data_order"] == 1 and jobs["data_card"] == 1
    assert (
        "data_tokenize" not in jobs and jobs["suite_notebook"] == 1
    )  # its duplication table reads the card
    assert (
        jobs["benchmarks_evaluate"] == 2 and "benchmarks_tasks" not in jobs
    )  # the deduplicated runs only
    assert jobs["term_frequencies_counts"] == 1 and jobs["term_frequencies_evaluate"] == 2
    assert (
        jobs["gender_intervention_train"] == 1 and jobs["gender_intervention_evaluate"] == 2
    )  # deduplicated
    # the term-frequency section's shots: its evaluations and notebook only, no count, no training
    jobs, trains = dry("shots: [0, 2]", "shots: [0, 1]")
    assert (
        set(jobs) == {"term_frequencies_evaluate", "term_frequencies_notebook", "all"}
        and not trains
    )
    # the description: only the suite table (its figure's title)
    jobs, trains = dry("description: Two tiny sizes", "description: Two small sizes")
    assert set(jobs) == {"suite_notebook", "all"} and not trains


def test_report_has_every_sections_figures(smoke_workflow, tmp_path):
    report = tmp_path / "report.html"
    out = _snakemake(
        "--report", str(report), "--directory", str(smoke_workflow), "--config", "suite=smoke"
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    html = report.read_text()
    for s in sections.SECTIONS:
        assert f"{s.number:02d} {s.title}" in html
        for f in s.figures:
            assert f'"results/smoke/{s.stem}/{f.name}.png": {{"name": "{f.name}.png"' in html, (
                s.stem,
                f.name,
            )


def _papermill(src: Path, dest: Path, cwd: Path, env: dict, *params: str):
    papermill = shutil.which("papermill", path=str(Path(sys.executable).parent)) or "papermill"
    return subprocess.run(
        [papermill, str(src), str(dest), "--kernel", "python3", *params],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_notebooks_run_from_notebooks_dir_as_in_jupyterlab(smoke_workflow, tmp_path):
    # the repository layout: <project>/notebooks/NN_<stem>.ipynb next to the workflow's work/ and results/
    nbdir = smoke_workflow / "notebooks"
    nbdir.mkdir(exist_ok=True)
    for s in sections.SECTIONS:
        shutil.copy(ROOT / "notebooks" / f"{s.notebook}.ipynb", nbdir)
    # defaults (project_dir ".."): finds work/ and writes results/ of the project
    suite_nb = sections.get("suite")
    out = _papermill(
        nbdir / f"{suite_nb.notebook}.ipynb",
        tmp_path / "00.ipynb",
        nbdir,
        _env(),
        "-p",
        "suite",
        "smoke",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert _images(tmp_path / "00.ipynb") >= len(suite_nb.figures)
    # $PYTHIA_RESULTS moves the outputs; the training logs are still found under ../work
    elsewhere = tmp_path / "elsewhere"
    training = sections.get("training")
    before = (
        (smoke_workflow / "results" / "smoke" / "training" / "final_losses.csv").stat().st_mtime_ns
    )
    out = _papermill(
        nbdir / f"{training.notebook}.ipynb",
        tmp_path / "01.ipynb",
        nbdir,
        _env(PYTHIA_RESULTS=str(elsewhere)),
        "-p",
        "suite",
        "smoke",
        "-y",
        '{"models": ["s1", "s2"]}',
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert _images(tmp_path / "01.ipynb") >= len(training.figures)
    for f in training.figures:
        assert (elsewhere / "smoke" / "training" / f"{f.name}.png").exists()
    assert (
        smoke_workflow / "results" / "smoke" / "training" / "final_losses.csv"
    ).stat().st_mtime_ns == before


def test_results_compare_on_the_workflows_results(smoke_workflow, tmp_path):
    env = _env(PYTHIA_PROJECT=str(smoke_workflow))
    pythia = [sys.executable, "-m", "pythia.cli", "results"]
    snap = subprocess.run(
        [*pythia, "snapshot", "--suite", "smoke"], env=env, capture_output=True, text=True
    )
    assert snap.returncode == 0, snap.stderr
    out = subprocess.run(
        [*pythia, "compare", "--suite", "smoke"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verdict: reproduced" in out.stdout and "01 training" in out.stdout
