"""pythia results compare: exact where results are exact, a stated tolerance for trained losses,
timings ignored, against a directory, a snapshot or the committed copy in git."""

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from pythia import results, sections
from pythia.sections import Compare

SUITE = "smoke"


def _frames() -> dict[str, pd.DataFrame]:
    """A plausible CSV for every table and figure of the registry (keyed section/kind/name)."""
    rng = np.random.default_rng(0)
    out = {}
    for s in sections.SECTIONS:
        for kind, name, spec in s.compared():
            cols = {k: [f"{k}{i}" for i in range(4)] for k in spec.keys}
            cols.update({c: rng.uniform(1, 2, 4) for c in spec.ignore})
            cols["value"] = rng.uniform(3, 6, 4)
            cols["count"] = np.arange(4) * 1000
            out[f"{s.stem}/{kind}/{name}"] = pd.DataFrame(cols)
    return out


def _write(root, frames, digest="cfg1", code="abc"):
    for key, df in frames.items():
        stem, kind, name = key.split("/")
        s = sections.get(stem)
        files = s.table_files(SUITE, name) if kind == "table" else s.figure_files(SUITE, name)
        csv = files["csv"] if kind == "table" else files["data"]
        target = root / stem / csv.name
        target.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(target, index=False)
        (root / stem / files["provenance"].name).write_text(
            json.dumps({"config_digest": digest, "code_version": code})
        )


@pytest.fixture
def project(tmp_path, monkeypatch):
    for var in ("PYTHIA_WORK", "PYTHIA_RESULTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHIA_PROJECT", str(tmp_path))
    frames = _frames()
    _write(tmp_path / "results" / SUITE, frames)
    _write(tmp_path / "reference" / SUITE, frames)
    return tmp_path, frames


def _verdicts(project_dir):
    verdicts, _ = results.compare(SUITE, results.DirTree(project_dir / "reference" / SUITE))
    return {f"{v.section}/{v.kind}/{v.name}": v for v in verdicts}


def test_identical_results_are_reproduced(project):
    root, frames = project
    v = _verdicts(root)
    assert set(v) == set(frames) and all(x.status == "equal" for x in v.values())


def test_float_noise_in_trained_losses_is_within_tolerance(project):
    root, frames = project
    df = frames["training/table/final_losses"].copy()
    df["value"] *= 1 + 3e-8  # what another machine's CPU kernels do to a trained loss
    _write(
        root / "results" / SUITE, {"training/table/final_losses": df.sample(frac=1, random_state=1)}
    )  # row order too
    v = _verdicts(root)["training/table/final_losses"]
    assert v.status == "within tolerance" and not v.failed and "<= 0.0001" in v.detail
    df["value"] *= 1.01  # a real change
    _write(root / "results" / SUITE, {"training/table/final_losses": df})
    v = _verdicts(root)["training/table/final_losses"]
    assert v.failed and "value: 4 of 4 values" in v.detail and "beyond rtol 0.0001" in v.detail


def test_exact_results_allow_no_difference(project):
    root, frames = project
    for key in ("training/table/batch_proof", "suite/table/suite_table"):
        df = frames[key].copy()
        df.loc[2, "count"] += 1
        _write(root / "results" / SUITE, {key: df})
        v = _verdicts(root)[key]
        assert v.failed and "count: 1 of 4 values" in v.detail and "2001 vs 2000" in v.detail
        df = frames[key].copy()
        df["value"] += 1e-12  # exact means exact, floats too
        _write(root / "results" / SUITE, {key: df})
        assert _verdicts(root)[key].failed


def test_timings_are_not_compared_but_rows_are(project):
    root, frames = project
    df = frames["training/table/throughput"].copy()
    for col in sections.get("training").table("throughput").compare.ignore:
        df[col] *= 3
    _write(root / "results" / SUITE, {"training/table/throughput": df})
    v = _verdicts(root)["training/table/throughput"]
    assert v.status == "equal" and "not compared" in v.detail
    _write(root / "results" / SUITE, {"training/table/throughput": df.iloc[:3]})
    v = _verdicts(root)["training/table/throughput"]
    assert v.failed and "rows differ" in v.detail


def test_missing_output_and_other_config(project):
    root, frames = project
    (root / "results" / SUITE / "training" / "val_loss.data.csv").unlink()
    df = frames["training/figure/loss_curves"].copy()
    df["value"] += 1
    _write(root / "results" / SUITE, {"training/figure/loss_curves": df}, digest="cfg2")
    v = _verdicts(root)
    assert (
        v["training/figure/val_loss"].status == "missing" and v["training/figure/val_loss"].failed
    )
    assert (
        v["training/figure/loss_curves"].status == "other config"
        and not v["training/figure/loss_curves"].failed
    )


@pytest.mark.parametrize(
    "new,ref,status,detail",
    [
        ({"a": [1, 2]}, {"a": [1, 2], "b": [0, 0]}, "DIFFERS", "columns differ"),
        (
            {"k": ["x", "x"], "a": [1, 2]},
            {"k": ["x", "y"], "a": [1, 2]},
            "DIFFERS",
            "repeated rows",
        ),
        (
            {"k": ["x", "y"], "a": [1.0, np.nan]},
            {"k": ["y", "x"], "a": [np.nan, 1.0]},
            "equal",
            "exact",
        ),
        (
            {"k": ["x", "y"], "a": [1.0, 2.0]},
            {"k": ["x", "y"], "a": [1.0, np.nan]},
            "DIFFERS",
            "a: 1 of 2",
        ),
    ],
)
def test_compare_frames_cases(new, ref, status, detail):
    got = results.compare_frames(pd.DataFrame(new), pd.DataFrame(ref), Compare(keys=("k",)))
    assert got[0] == status and detail in got[1]


class _Out:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(monkeypatch, capsys):
    """``pythia results ...`` in-process (PYTHIA_PROJECT set by the test's env), output captured."""
    from pythia.cli import main

    def run(*args, cwd, env=None):
        monkeypatch.chdir(cwd)
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        code = main(["results", *args])
        out = capsys.readouterr()
        return _Out(code, out.out, out.err)

    return run


def test_cli_compares_with_the_committed_copy_in_git(project, cli):
    root, frames = project
    shutil.rmtree(root / "reference")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "results"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "reference"], check=True)
    env = {"PYTHIA_PROJECT": str(root)}
    # a rerun with float noise: reproduced, exit 0
    df = frames["training/figure/loss_curves"].copy()
    df["value"] *= 1 + 1e-7
    _write(root / "results" / SUITE, {"training/figure/loss_curves": df}, code="def")
    out = cli("compare", "--suite", SUITE, cwd=root, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"vs git HEAD:results/{SUITE}" in out.stdout and "verdict: reproduced" in out.stdout
    assert (
        "code abc, def (reference: abc)" in out.stdout
        and "loss_curves      within tolerance" in out.stdout
    )
    # a real difference: exit 1, named in the verdict
    df = frames["training/table/data_order"].copy()
    df["count"] += 1
    _write(root / "results" / SUITE, {"training/table/data_order": df})
    out = cli("compare", "--suite", SUITE, "--section", "training", cwd=root, env=env)
    assert (
        out.returncode == 1
        and "NOT reproduced: 1 of" in out.stdout
        and "training/table data_order" in out.stdout
    )
    assert "00 suite" not in out.stdout


def test_cli_snapshot_then_compare_outside_git(project, cli):
    root, frames = project
    shutil.rmtree(root / "reference")
    env = {"PYTHIA_PROJECT": str(root)}
    out = cli("snapshot", "--suite", SUITE, cwd=root, env=env)
    assert out.returncode == 0 and "files" in out.stdout
    assert (root / "work" / SUITE / "reference" / "training" / "final_losses.csv").exists()
    df = frames["training/table/final_losses"].copy()
    df["value"] += 1
    _write(root / "results" / SUITE, {"training/table/final_losses": df})
    assert (
        "kept" in cli("snapshot", "--suite", SUITE, cwd=root, env=env).stdout
    )  # the first snapshot stays
    out = cli("compare", "--suite", SUITE, cwd=root, env=env)
    assert out.returncode == 1 and "vs snapshot" in out.stdout
    assert "final_losses     DIFFERS" in out.stdout


def test_cli_without_any_reference_says_so(tmp_path, cli):
    env = {"PYTHIA_PROJECT": str(tmp_path)}
    assert (
        "no results yet: no snapshot"
        in cli("snapshot", "--suite", SUITE, cwd=tmp_path, env=env).stdout
    )
    out = cli("compare", "--suite", SUITE, cwd=tmp_path, env=env)
    assert out.returncode == 0 and "no reference to compare with" in out.stdout
    _write(
        tmp_path / "ref" / SUITE, {"suite/table/suite_table": _frames()["suite/table/suite_table"]}
    )
    _write(
        tmp_path / "results" / SUITE,
        {"training/table/batch_proof": _frames()["training/table/batch_proof"]},
    )
    out = cli(
        "compare", "--suite", SUITE, "--reference", str(tmp_path / "ref"), cwd=tmp_path, env=env
    )
    assert (
        out.returncode == 1 and "suite_table      missing" in out.stdout
    )  # the reference has it, the rerun not
    assert "batch_proof      no reference" in out.stdout
    out = cli(
        "compare",
        "--suite",
        SUITE,
        "--reference",
        str(tmp_path / "nosuch"),
        cwd=tmp_path,
        env={"PYTHIA_PROJECT": str(tmp_path)},
    )
    assert out.returncode == 2 and "does not exist" in out.stderr
    (tmp_path / "empty").mkdir()
    out = cli(
        "compare", "--suite", SUITE, "--reference", str(tmp_path / "empty"), cwd=tmp_path, env=env
    )
    assert out.returncode == 0 and "verdict: nothing compared" in out.stdout
