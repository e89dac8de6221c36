"""The checkpoint audit (pythia/audit.py, `pythia checkpoints audit`): on the trained smoke run,
on a local copy of it with one step copied over another and one removed, on the loopback hub
(tests/hub_server.py) with a planted duplicate and a missing branch (read from the hub's
metadata, no weight file downloaded), the catalogue's warn/skip policy, and the tensor checks
on a run whose steps do not descend from its own step0."""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import load_file, save_file
from safetensors.torch import save as safetensors_save

from pythia.audit import Branch, CheckpointAuditWarning, StepFilter, flag
from pythia.cli import main
from pythia.config import load_suite
from pythia.model import build_model
from pythia.runs import Catalogue

SMOKE_STEPS = [0, 1, 2, 4, 8, 16, 24]


@pytest.fixture
def work(smoke_run, monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    monkeypatch.setenv("PYTHIA_RESULTS", str(tmp_path / "results"))
    return smoke_run


def _statuses(path: Path) -> dict[tuple[str, str, int], tuple[str, str, str]]:
    with open(path, newline="") as f:
        return {
            (r["model"], r["run"], int(r["step"])): (r["status"], r["same_as"], r["note"])
            for r in csv.DictReader(f)
        }


def _audit_tensors(root, out):
    """``pythia checkpoints audit --tensors`` of the local copy ``root`` at steps 0, 2, 4: its statuses."""
    args = ["checkpoints", "audit", "--suite", "smoke", "--checkpoints-source", "local"]
    rest = [
        "--checkpoints-path",
        str(root),
        "--steps",
        "0",
        "2",
        "4",
        "--tensors",
        "--out",
        str(out),
    ]
    assert main([*args, *rest, "--no-progress"]) == 0
    return _statuses(out / "audit.csv")


@pytest.fixture
def planted(work, tmp_path) -> Path:
    """The smoke run as a local download, step16 replaced by a copy of step8, step4 removed."""
    run = work / "smoke" / "models" / "standard" / "s1"
    root = tmp_path / "pythia"
    for s in SMOKE_STEPS:
        if s != 4:
            shutil.copytree(run / f"step{8 if s == 16 else s}", root / "pythia-s1" / f"step{s}")
    return root


def test_local_audit_flags_the_copied_and_the_removed_step(planted, tmp_path, capsys):
    out = tmp_path / "audit"
    args = ["checkpoints", "audit", "--suite", "smoke", "--checkpoints-source", "local"]
    assert (
        main([*args, "--checkpoints-path", str(planted), "--out", str(out), "--no-progress"]) == 0
    )
    got = _statuses(out / "audit.csv")
    assert got[("s1", "standard", 16)][:2] == ("duplicate", "step8")
    assert "neighbouring step8" in got[("s1", "standard", 16)][2]
    assert got[("s1", "standard", 4)][0] == "missing"
    # the smoke run's first update has learning rate 0: step1 holds step0's weights (pythia#83)
    assert got[("s1", "standard", 1)][:2] == ("step0==step1", "step0")
    assert {s for (_, _, s), v in got.items() if v[0] == "ok"} == {0, 2, 8, 24}
    for name in (
        "audit.md",
        "audit.csv.provenance.json",
        "audit.png",
        "audit.pdf",
        "audit.data.csv",
    ):
        assert (out / name).is_file(), name
    assert "1 duplicate" in capsys.readouterr().out


def test_trained_audit_explains_step1_and_flags_nothing_else(work, tmp_path):
    out = tmp_path / "audit"
    assert (
        main(["checkpoints", "audit", "--suite", "smoke", "--out", str(out), "--no-progress"]) == 0
    )
    got = _statuses(out / "audit.csv")
    assert sorted(s for (_, run, s) in got if run == "standard") == SMOKE_STEPS
    status, same, note = got[("s1", "standard", 1)]
    assert (status, same) == ("step0==step1", "step0") and note.startswith("expected: ")
    assert all(v[0] == "ok" for k, v in got.items() if k[2] != 1)


def test_the_catalogue_warns_about_or_skips_flagged_steps(planted):
    assert main(["checkpoints", "audit", "--suite", "smoke", "--checkpoints-source", "local",
                 "--checkpoints-path", str(planted), "--no-progress"]) == 0  # fmt: skip
    cat = Catalogue("smoke", "local", planted)
    assert cat.steps("s1", "standard") == [0, 1, 2, 8, 16, 24]
    cat.step_filter = StepFilter(cat, "warn")
    with pytest.warns(CheckpointAuditWarning, match=r"step1 step0==step1.*step16 duplicate"):
        assert cat.steps("s1", "standard") == [0, 1, 2, 8, 16, 24]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per run
        cat.steps("s1", "standard")
    cat.step_filter = StepFilter(cat, "skip")
    with pytest.warns(CheckpointAuditWarning, match="skipped"):
        assert cat.steps("s1", "standard") == [0, 2, 8, 24]
    cat.step_filter = StepFilter(cat, "off")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cat.steps("s1", "standard") == [0, 1, 2, 8, 16, 24]


def test_hub_audit_reads_metadata_only(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("PYTHIA_RESULTS", str(tmp_path / "results"))
    # step2 serves step1's files (a neighbour, #83 kind), step8 the final step16's (#205 kind),
    # step4 has no branch (#202 kind)
    hub.publish_pythia(steps=(0, 1, 2, 8, 16), duplicate={2: 1, 8: 16}, tokenizer=False)
    hub.reset_log()
    out = tmp_path / "audit"
    args = ["checkpoints", "audit", "--suite", "pythia", "--checkpoints-source", "hub"]
    sel = ["--models", "14M", "--datasets", "standard", "--steps", "0", "1", "2", "4", "8", "16"]
    assert main([*args, *sel, "--out", str(out), "--no-progress"]) == 0
    got = _statuses(out / "audit.csv")
    assert got[("14M", "standard", 2)][:2] == ("duplicate", "step1")
    assert got[("14M", "standard", 8)][:2] == ("duplicate", "step16")
    assert "pythia#205" in got[("14M", "standard", 8)][2]
    assert got[("14M", "standard", 4)][0] == "missing"
    assert {s for (_, _, s), v in got.items() if v[0] == "ok"} == {0, 1, 16}
    assert hub.requests("/refs") and hub.requests("/tree/")
    assert not hub.requests("/resolve/") and not [r for r in hub.server.log if r[1] == "lfs"]


def test_hub_catalogue_audits_on_first_use_then_from_its_cache(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("PYTHIA_RESULTS", str(tmp_path / "results"))
    hub.publish_pythia(steps=(0, 1, 2, 8, 16), duplicate={8: 16}, tokenizer=False)
    cat = Catalogue("pythia", "hub", steps=[0, 1, 2, 8, 16])
    cat.step_filter = StepFilter(cat, "skip")
    with pytest.warns(CheckpointAuditWarning, match=r"14M/standard: 1 checkpoint.*step8 duplicate"):
        assert cat.steps("14M", "standard") == [0, 1, 2, 16]
    assert not hub.requests("/resolve/")
    hub.reset_log()
    again = Catalogue("pythia", "hub", steps=[0, 1, 2, 8, 16])
    again.step_filter = StepFilter(again, "skip")
    with pytest.warns(CheckpointAuditWarning):
        assert again.steps("14M", "standard") == [0, 1, 2, 16]
    assert not hub.requests("/tree/")  # the audit came from the cache (the catalogue may list refs)


def test_hub_audit_names_a_repository_the_hub_lacks(hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    hub.publish_pythia(steps=(0, 1), tokenizer=False)
    args = ["checkpoints", "audit", "--suite", "pythia", "--checkpoints-source", "hub"]
    sel = ["--models", "14M", "31M", "--datasets", "standard", "--steps", "0", "1"]
    assert main([*args, *sel, "--out", str(tmp_path / "a"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "EleutherAI/pythia-31m: repository not found on the hub" in err
    with hub.offline():
        assert main([*args, *sel, "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rerun online" in err[0] and "--checkpoints-source local" in err[0]


def test_tensors_flag_a_run_that_does_not_descend_from_its_own_step0(work, tmp_path):
    """pythia#203's kind: the deduped run's step0 is another init, its later steps the standard
    run's (which descend from the standard step0)."""
    run = work / "smoke" / "models" / "standard" / "s1"
    root = tmp_path / "pythia"
    for s in (0, 2, 4):
        shutil.copytree(run / f"step{s}", root / "pythia-s1" / f"step{s}")
        if s:
            shutil.copytree(run / f"step{s}", root / "pythia-s1-deduped" / f"step{s}")
    build_model(load_suite("smoke"), "s1", seed=7).save_pretrained(
        root / "pythia-s1-deduped" / "step0"
    )
    out = tmp_path / "audit"
    got = _audit_tensors(root, out)
    assert got[("s1", "deduped", 2)][0] == got[("s1", "deduped", 4)][0] == "not-from-init"
    assert all(
        got[("s1", d, s)][0] == "ok" for d, s in [("standard", 2), ("standard", 4), ("deduped", 0)]
    )
    with open(out / "audit.csv", newline="") as f:
        rows = {(r["run"], int(r["step"])): r for r in csv.DictReader(f)}
    std = rows[("standard", 4)]
    assert 0 < float(std["init_distance"]) < float(std["other_init_distance"])
    assert int(std["tensors_same_as_prev"]) < int(std["tensors"])


def test_flag_finds_a_shard_of_another_step():
    """pythia#206's kind: the first shard of a sharded step is the final step's."""

    def b(step: int, shards: tuple[str, str]) -> Branch:
        names = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
        return Branch(f"step{step}", step, "x", dict(zip(names, shards, strict=True)))

    got = flag([b(1000, ("a", "b")), b(2000, ("z", "c")), b(3000, ("z", "d"))], [1000, 2000, 3000])
    assert got["step2000"].status == "partial-duplicate" and got["step2000"].same_as == "step3000"
    assert "pythia#206" in got["step2000"].note
    assert got["step1000"].status == got["step3000"].status == "ok"


def test_hub_audit_of_a_size_covers_its_released_seed_runs(hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    hub.publish_pythia(steps=(0, 1, 2), tokenizer=False)
    hub.publish_pythia("EleutherAI/pythia-14m-seed3", steps=(0, 2), tokenizer=False, seed=30)
    out = tmp_path / "audit"
    args = ["checkpoints", "audit", "--suite", "pythia", "--checkpoints-source", "hub"]
    sel = ["--models", "14M", "--steps", "0", "1", "2", "--out", str(out), "--no-progress"]
    assert main([*args, *sel]) == 1  # the repositories of the other seeds are not there
    got = _statuses(out / "audit.csv")
    assert {run for (_, run, _) in got} == {"standard", "standard-seed3"}
    assert got[("14M", "standard-seed3", 1)][0] == "missing"  # pythia#202's kind
    assert got[("14M", "standard-seed3", 2)][0] == got[("14M", "standard", 2)][0] == "ok"
    assert "EleutherAI/pythia-14m-seed1: repository not found" in capsys.readouterr().err


def test_tensors_flag_a_step_off_its_runs_path(work, tmp_path):
    """pythia#108's kind: step4 replaced by weights that are not between step2 and what follows
    (here 3 * step0 - 2 * step2: as far again on the other side of the init)."""
    run = work / "smoke" / "models" / "standard" / "s1"
    root = tmp_path / "pythia"
    for s in (0, 2, 4):
        shutil.copytree(run / f"step{s}", root / "pythia-s1" / f"step{s}")
    init, two = (load_file(run / f"step{s}" / "model.safetensors") for s in (0, 2))
    save_file(
        {k: (3 * init[k] - 2 * two[k]).contiguous() for k in init},
        root / "pythia-s1" / "step4" / "model.safetensors",
        metadata={"format": "pt"},
    )
    got = _audit_tensors(root, tmp_path / "audit")
    assert got[("s1", "standard", 4)][0] == "jump"
    assert got[("s1", "standard", 2)][0] == got[("s1", "standard", 0)][0] == "ok"


def _nudged(files: dict[str, bytes], scale: float, seed: int) -> dict[str, bytes]:
    """``files`` with every weight moved by ``scale`` x standard normal noise (a training step)."""
    gen = torch.Generator().manual_seed(seed)
    state = safetensors_load(files["model.safetensors"])
    moved = {
        k: (v + scale * torch.randn(v.shape, generator=gen)).contiguous() for k, v in state.items()
    }
    return {**files, "model.safetensors": safetensors_save(moved, metadata={"format": "pt"})}


def test_hub_tensors_flag_a_run_not_descending_from_its_step0(hub, tmp_path, monkeypatch):
    """pythia#203 over the hub: the deduped repo's step0 is another init, its step1 the standard
    run's step1 (the weights are downloaded through the catalogue for the tensor checks)."""
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    std0 = hub.model_files(0)
    std1 = _nudged(std0, 1e-3, 1)
    for repo, step0 in (
        ("EleutherAI/pythia-14m", std0),
        ("EleutherAI/pythia-14m-deduped", hub.model_files(100)),
    ):
        hub.publish(repo, "step0", step0)
        hub.publish(repo, "step1", std1)
        hub.publish(repo, "main", std1)
    out = tmp_path / "audit"
    args = [
        "checkpoints",
        "audit",
        "--suite",
        "pythia",
        "--checkpoints-source",
        "hub",
        "--models",
        "14M",
    ]
    rest = [
        "--datasets",
        "standard",
        "deduped",
        "--steps",
        "0",
        "1",
        "--tensors",
        "--out",
        str(out),
    ]
    assert main([*args, *rest, "--no-progress"]) == 0
    got = _statuses(out / "audit.csv")
    assert got[("14M", "deduped", 1)][0] == "not-from-init"
    assert got[("14M", "standard", 1)][0] == got[("14M", "standard", 0)][0] == "ok"
    assert hub.requests("/resolve/")  # the tensor checks load the weights
