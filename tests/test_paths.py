"""pythia.paths: the one place for paths (project root, environment, runs and their variants)."""

from pathlib import Path

import pytest

from pythia import paths


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("PYTHIA_PROJECT", "PYTHIA_WORK", "PYTHIA_RESULTS", "PYTHIA_CACHE"):
        monkeypatch.setenv(var, "")  # recorded, so set_project's change is undone after the test
        monkeypatch.delenv(var)
    return monkeypatch


def test_defaults_are_relative_to_the_working_directory(clean_env):
    # the workflow runs in the project: its paths stay relative (Snakemake's outputs)
    assert paths.work_dir() == Path("work") and paths.results_root() == Path("results")
    assert paths.run_dir("micro", "deduped", "1.8M") == Path("work/micro/models/deduped/1.8M")
    assert paths.section_dir("micro", "training") == Path("results/micro/training")
    assert paths.notebooks_dir("micro") == Path("results/micro/notebooks")
    assert paths.logs_dir("micro") == Path("logs/micro")


def test_a_notebook_finds_the_project_from_notebooks(clean_env, tmp_path):
    (tmp_path / "notebooks").mkdir()
    clean_env.chdir(tmp_path / "notebooks")
    root = paths.set_project("..")
    assert root == tmp_path.resolve()
    assert paths.work_dir() == tmp_path.resolve() / "work"
    assert paths.results_dir("smoke") == tmp_path.resolve() / "results" / "smoke"


def test_environment_overrides_resolve_against_the_project(clean_env, tmp_path):
    paths.set_project(tmp_path)
    clean_env.setenv("PYTHIA_WORK", "scratch/w")  # relative: under the project
    clean_env.setenv("PYTHIA_RESULTS", str(tmp_path / "elsewhere"))  # absolute: as given
    clean_env.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    assert paths.work_dir() == tmp_path.resolve() / "scratch" / "w"
    assert paths.results_dir("micro") == tmp_path / "elsewhere" / "micro"
    assert paths.cache_dir() == tmp_path / "cache"


def test_run_names_and_variants(clean_env):
    assert paths.run_name("standard") == "standard" and paths.parse_run("deduped") == (
        "deduped",
        None,
    )
    with pytest.raises(ValueError, match="unknown run variant 'swap'"):
        paths.run_name("deduped", "swap")
    clean_env.setitem(paths.VARIANTS, "swap", "continued on changed data")
    assert paths.run_name("deduped", "swap") == "deduped-swap"
    assert paths.parse_run("deduped-swap") == ("deduped", "swap")
    assert paths.run_dir("micro", "deduped-swap", "1.8M") == Path(
        "work/micro/models/deduped-swap/1.8M"
    )
    for bad in ("nosuch", "deduped-nosuch", "deduped-"):
        with pytest.raises(ValueError, match="unknown run"):
            paths.parse_run(bad)
    with pytest.raises(ValueError, match="unknown dataset 'pile'"):
        paths.run_name("pile")


def test_list_runs_finds_trained_runs_in_order(clean_env, tmp_path):
    clean_env.setenv("PYTHIA_WORK", str(tmp_path))
    clean_env.setitem(paths.VARIANTS, "swap", "continued on changed data")
    clean_env.setitem(paths.VARIANTS, "other", "another variant")
    assert paths.list_runs("micro") == []
    for run in ("deduped-swap", "standard", "deduped", "notarun"):
        (tmp_path / "micro" / "models" / run / "1.8M").mkdir(parents=True)
    (tmp_path / "micro" / "models" / "standard-other").mkdir()  # no model in it: not a run
    assert paths.list_runs("micro") == ["standard", "deduped", "deduped-swap"]
