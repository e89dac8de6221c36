"""The loopback hub (tests/hub_server.py) answers the real huggingface_hub client and transformers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub.errors import (
    EntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = "EleutherAI/pythia-14m"


def test_refs_info_tree_and_errors_have_the_hubs_shapes(hub):
    shas = hub.publish_pythia(REPO, steps=(0, 1, 2), duplicate={2: 1}, tokenizer=False)
    api = huggingface_hub.HfApi()
    refs = api.list_repo_refs(REPO)
    assert {b.name: b.target_commit for b in refs.branches} == shas
    assert len(set(shas.values())) == 4  # one commit per branch, duplicates included
    info = api.model_info(REPO, revision="step1")
    assert info.sha == shas["step1"]
    assert {s.rfilename for s in info.siblings} >= {"config.json", "model.safetensors"}
    tree = {f.path: f for f in api.list_repo_tree(REPO, revision="step2", expand=True)}
    served = hub.server.files(REPO, "step1")["model.safetensors"]
    assert tree["model.safetensors"].lfs.sha256 == hashlib.sha256(served).hexdigest()
    assert tree["model.safetensors"].lfs.size == len(served)
    assert tree["config.json"].lfs is None
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="step3")
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_refs("EleutherAI/pythia-nope")
    with pytest.raises(EntryNotFoundError):
        huggingface_hub.hf_hub_download(REPO, "nope.json", revision="step0")


def test_transformers_loads_a_branch_and_the_cache_holds_the_served_bytes(hub):
    from transformers import GPTNeoXForCausalLM

    shas = hub.publish_pythia(REPO, steps=(0, 1), tokenizer=False)
    model = GPTNeoXForCausalLM.from_pretrained(REPO, revision="step1")
    assert model.config.hidden_size == 16
    snap = hub.cache / "models--EleutherAI--pythia-14m" / "snapshots" / shas["step1"]
    for name, data in hub.server.files(REPO, "step1").items():
        if (snap / name).exists():
            assert (snap / name).read_bytes() == data, name
    assert (hub.cache / "models--EleutherAI--pythia-14m" / "refs" / "step1").read_text() == shas[
        "step1"
    ]
    # the weights came from the LFS host after a redirect that carried their sha256
    lfs = [r for r in hub.requests("/lfs/") if r[0] == "GET"]
    assert len(lfs) == 1 and lfs[0][1] == "lfs"


def test_republishing_a_branch_gives_a_new_commit(hub):
    first = hub.publish_pythia(REPO, steps=(0,), tokenizer=False)
    again = hub.publish_pythia(REPO, steps=(0,), tokenizer=False)
    other = hub.publish_pythia(REPO, steps=(0,), tokenizer=False, seed=7)
    assert first == again
    assert other["step0"] != first["step0"]


def test_dataset_repos_are_served_under_their_own_routes(hub):
    sha = hub.publish(
        "EleutherAI/pythia-memorized-evals",
        "main",
        {"memorized-evals/pythia-14m.csv": b"index\n3\n", "data/x.parquet": b"PAR1"},
        repo_type="dataset",
    )
    info = huggingface_hub.HfApi().dataset_info("EleutherAI/pythia-memorized-evals")
    assert info.sha == sha
    path = huggingface_hub.hf_hub_download(
        "EleutherAI/pythia-memorized-evals", "memorized-evals/pythia-14m.csv", repo_type="dataset"
    )
    assert Path(path).read_bytes() == b"index\n3\n"
    assert hub.requests("/datasets/EleutherAI/pythia-memorized-evals/resolve/main/")


def test_section_02_runs_on_the_hub_source(hub, smoke_data, tmp_path, monkeypatch, capsys):
    """`pythia benchmarks evaluate --checkpoints-source hub` (section 02's job) on a 2-step tiny
    model served by the loopback hub: the cached files are the served bytes, an unchanged rerun
    asks only for the refs, and HF_HUB_OFFLINE=1 gives the same values."""
    import pandas as pd

    from pythia.cli import main
    from pythia.evaluate import benchmarks

    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    manifest = benchmarks.write_tasks("smoke", ["lambada_incorpus"], tmp_path / "tasks", examples=2)
    shas = hub.publish_pythia(REPO, steps=(0, 1))
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))

    def evaluate(out: str) -> pd.DataFrame:
        argv = ["benchmarks", "evaluate", "--suite", "pythia", "--model", "14M"]
        argv += ["--dataset", "standard", "--tasks-json", str(tmp_path / "tasks" / "tasks.json")]
        argv += ["--checkpoints-source", "hub", "--steps", "0", "1", "--audit", "off"]
        assert (
            main([*argv, "--batch-size", "4", "--no-progress", "--out", str(tmp_path / out)]) == 0
        )
        return pd.read_csv(tmp_path / out)

    first = evaluate("online.csv")
    assert sorted(first["step"].unique()) == [0, 1] and manifest["tasks"] == ["lambada_incorpus"]
    for branch in ("step0", "step1"):
        snap = hub.cache / "models--EleutherAI--pythia-14m" / "snapshots" / shas[branch]
        cached = {p.name: p.read_bytes() for p in snap.iterdir()}
        served = hub.server.files(REPO, branch)
        assert "model.safetensors" in cached and cached.items() <= served.items()
    hub.reset_log()
    evaluate("rerun.csv")
    assert hub.requests() == [("GET", "hub", f"/api/models/{REPO}/refs", 200)]
    hub.reset_log()
    with hub.offline():
        offline = evaluate("offline.csv")
    assert hub.requests() == []
    pd.testing.assert_frame_equal(offline, first)
    capsys.readouterr()
