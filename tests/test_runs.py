"""The checkpoint catalogue on the workflow's own runs (a trained smoke model), on a directory laid
out like the released suite (the smoke model saved under Pythia's names), and on the hub (no
network here: the code path up to the download, and its message)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from transformers import GPTNeoXForCausalLM

from pythia.config import ConfigError
from pythia.runs import (
    Catalogue,
    CatalogueError,
    Source,
    describe,
    hub_repo,
    open_catalogue,
    released_name,
    released_runs,
)
from tests.hub_server import Hub


@pytest.fixture
def work(smoke_run, monkeypatch) -> Path:
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    return smoke_run


@pytest.fixture
def released_dir(work, tmp_path) -> Path:
    """The trained smoke checkpoints saved under Pythia's names, as a user's download would be:
    plain HF dirs, and one step as the cache_dir ``from_pretrained(..., cache_dir=...)`` leaves."""
    run = work / "smoke" / "models" / "standard" / "s1"
    root = tmp_path / "pythia"
    for name, step, src in [
        ("pythia-70m", 0, 0),
        ("pythia-70m", 512, 24),
        ("pythia-70m", 143000, 24),
        ("pythia-70m-deduped", 143000, 16),
    ]:
        shutil.copytree(run / f"step{src}", root / name / f"step{step}")
    snap = (
        root
        / "pythia-160m"
        / "step1000"
        / "models--EleutherAI--pythia-160m"
        / "snapshots"
        / "0123abcd"
    )
    shutil.copytree(run / "step8", snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "step1000").write_text("0123abcd")
    (root / "pythia-410m").mkdir()  # an empty download folder is no model
    return root


def test_released_names():
    assert released_name("70M") == "pythia-70m"
    assert released_name("1.4B", "deduped") == "pythia-1.4b-deduped"
    assert hub_repo("6.9B", "standard") == "EleutherAI/pythia-6.9b"


def test_trained_runs(work):
    cat = open_catalogue("smoke")
    assert cat.source is Source.trained and "standard" in cat.datasets()
    assert "s1" in cat.models("standard")
    assert cat.available_steps("s1", "standard") == [0, 1, 2, 4, 8, 16, 24]
    assert cat.steps("s1", "standard") == [0, 1, 2, 4, 8, 16, 24]  # smoke analyses every checkpoint
    ckpt = cat.checkpoint("s1", "standard", 24)
    assert (
        ckpt.name == "s1/standard/step24"
        and Path(ckpt.location) == work / "smoke/models/standard/s1/step24"
    )
    model = ckpt.load_model()
    assert isinstance(model, GPTNeoXForCausalLM) and not model.training
    assert (
        next(model.parameters()).dtype.is_floating_point
        and str(next(model.parameters()).dtype) == "torch.float32"
    )
    assert ckpt.load_model(dtype="bf16").dtype.__str__() == "torch.bfloat16"
    tok = ckpt.load_tokenizer()
    assert tok("def main():")["input_ids"]
    # every checkpoint of the run carries the same tokenizer files: one object serves them all
    assert cat.checkpoint("s1", "standard", 16).load_tokenizer() is tok
    # the identity is stable across catalogues, and differs between steps
    again = Catalogue("smoke", "trained").checkpoint("s1", "standard", 24)
    assert again.identity == ckpt.identity and ckpt.identity.startswith(
        "trained:smoke/standard/s1/step24@"
    )
    assert cat.checkpoint("s1", "standard", 16).identity != ckpt.identity
    assert cat.tokens_seen(24) == 24 * 4 * 64
    sub = open_catalogue("smoke", steps=[0, 24])
    assert sub.steps("s1", "standard") == [0, 24]
    assert [c.step for c in sub.checkpoints(models=["s1"], datasets=["standard"])] == [0, 24]


def test_local_released_layout(released_dir):
    cat = open_catalogue("pythia", "local", released_dir)
    assert cat.datasets() == ["standard", "deduped"]
    assert cat.models() == ["70M", "160M"] and cat.models("deduped") == ["70M"]
    assert cat.available_steps("70M", "standard") == [0, 512, 143000]
    assert cat.available_steps("160M", "standard") == [1000]
    assert cat.available_steps("410M", "standard") == []
    assert cat.steps("70M", "standard") == [0, 512, 143000]  # all in pythia's analysis steps
    model = cat.checkpoint("70M", "deduped", 143000).load_model()
    assert model.config.hidden_size == 16  # the smoke model saved under Pythia's name
    snap = cat.checkpoint("160M", "standard", 1000)
    assert snap.location.endswith("snapshots/0123abcd")
    snap.load_model()
    assert snap.load_tokenizer()("x")["input_ids"]
    a, b = cat.checkpoint("70M", "standard", 512), cat.checkpoint("70M", "standard", 143000)
    assert a.identity.split("@")[1] == b.identity.split("@")[1]  # same files (both step 24 of s1)
    assert a.identity != b.identity  # but another step
    # replacing the weights gives a new identity
    weights = Path(b.location) / "model.safetensors"
    tensors = load_file(str(weights))
    first = next(iter(tensors))
    tensors[first] = tensors[first] + 1
    save_file(tensors, str(weights), metadata={"format": "pt"})
    assert (
        open_catalogue("pythia", "local", released_dir)
        .checkpoint("70M", "standard", 143000)
        .identity
        != b.identity
    )
    info = describe(cat)
    assert info["datasets"]["standard"]["70M"] == {
        "available": [0, 512, 143000],
        "selected": [0, 512, 143000],
    }


def test_one_tokenizer_object_per_tokenizer_content(released_dir):
    """Checkpoints whose tokenizer files are equal share one tokenizer object (what callers keep on
    it, such as the lm-eval adapter's tokenizations, serves every checkpoint); another tokenizer,
    even in a folder seen before, is another object."""
    cat = open_catalogue("pythia", "local", released_dir)
    a, b = cat.checkpoint("70M", "standard", 512), cat.checkpoint("70M", "standard", 143000)
    tok = a.load_tokenizer()
    assert b.load_tokenizer() is tok
    cfg = Path(b.location) / "tokenizer_config.json"
    data = json.loads(cfg.read_text())
    data["model_max_length"] = 12345
    cfg.write_text(json.dumps(data))
    other = b.load_tokenizer()
    assert other is not tok and other.model_max_length == 12345
    assert a.load_tokenizer() is tok


def test_hub_tokenizer_is_one_object_per_content(hub):
    """On the hub source every revision's tokenizer files are fetched into the hub cache (only
    those files, no weights) and key the same memo as local ones: the checkpoints of a model share
    one tokenizer object, and a revision with other tokenizer files gets another."""
    repo = "EleutherAI/pythia-70m-deduped"
    hub.publish_pythia(repo, steps=(1000, 2000, 3000))
    files = hub.server.files(repo, "step3000")
    cfg = {**json.loads(files["tokenizer_config.json"]), "model_max_length": 777}
    hub.publish(repo, "step3000", {**files, "tokenizer_config.json": json.dumps(cfg).encode()})
    cat = open_catalogue("pythia", "hub")
    a, b, c = (cat.checkpoint("70M", "deduped", s) for s in (1000, 2000, 3000))
    tok = a.load_tokenizer()
    assert b.load_tokenizer() is tok and a.load_tokenizer() is tok
    assert not hub.requests("model.safetensors")
    other = c.load_tokenizer()
    assert other is not tok and other.model_max_length == 777


def test_clear_errors(released_dir):
    cat = open_catalogue("pythia", "local", released_dir)
    with pytest.raises(
        ConfigError, match=r"unknown model '99B' in suite 'pythia'; models: 14M, 31M"
    ):
        cat.checkpoint("99B", "standard", 0)
    with pytest.raises(
        CatalogueError,
        match=r"no step 1000 of 70M/standard in .*pythia-70m \(steps there: 0, 512, "
        r"143000; nearest: 0, 512\)",
    ):
        cat.checkpoint("70M", "standard", 1000)
    with pytest.raises(
        CatalogueError,
        match=r"no checkpoints of model '410M' on dataset 'standard' in .*pythia-410m; "
        r"download them into",
    ):
        cat.checkpoint("410M", "standard", 0)
    with pytest.raises(CatalogueError, match="needs a path"):
        open_catalogue("pythia", "local")
    with pytest.raises(CatalogueError, match="does not exist"):
        open_catalogue("pythia", "local", released_dir / "nosuch")
    with pytest.raises(
        CatalogueError,
        match="unknown checkpoints source 'cloud'; choose one of: trained, local, hub",
    ):
        open_catalogue("pythia", "cloud")
    with pytest.raises(
        ValueError,
        match="checkpoints.steps: 1500 is not a checkpoint step of suite 'pythia' "
        r"\(nearest: 1000, 2000",
    ):
        open_catalogue("pythia", "hub", steps=[1500])
    with pytest.raises(
        CatalogueError,
        match=r"no checkpoints of model 's2' .*pythia train --suite smoke --model s2",
    ):
        open_catalogue("smoke").checkpoint("s2", "standard", 24)


def test_hub_without_network(tmp_path):
    """HF_HUB_OFFLINE=1 (the test session's default) with an empty cache: the hub's runs and
    models are listed, no step is available, and asking for one says why in one line."""
    cat = open_catalogue("pythia", "hub", tmp_path / "hf-cache")
    assert cat.datasets() == ["standard", "deduped"] and cat.models()[:3] == ["14M", "31M", "70M"]
    assert cat.available_steps("70M", "deduped") == []
    with pytest.raises(CatalogueError) as err:
        cat.checkpoint("70M", "deduped", 3000)
    msg = str(err.value)
    assert msg.startswith("EleutherAI/pythia-70m-deduped step3000 was never downloaded")
    assert "HF_HUB_OFFLINE=1" in msg and "source 'local'" in msg
    with pytest.raises(
        CatalogueError, match="model '1.8M' of suite 'micro' has no released Pythia checkpoints"
    ):
        open_catalogue("micro", "hub").checkpoint("1.8M", "standard", 0)


def test_cli_lists_checkpoints(released_dir):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pythia.cli",
            "checkpoints",
            "--suite",
            "pythia",
            "--checkpoints-source",
            "local",
            "--checkpoints-path",
            str(released_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["source"] == "local" and info["datasets"]["deduped"] == {
        "70M": {"available": [143000], "selected": [143000]}
    }
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "pythia.cli",
            "checkpoints",
            "--suite",
            "pythia",
            "--checkpoints-source",
            "local",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "needs a path" in bad.stderr


# ---------------------------------------------------------------------- the hub (loopback server)

HUB_REPO = "EleutherAI/pythia-14m"


def _tokens(n: int = 4, width: int = 24) -> np.ndarray:
    return np.random.default_rng(0).integers(1, 500, size=(n, width))


def test_hub_identity_is_the_commit_and_a_reupload_recomputes(hub, tmp_path):
    """The identity is the commit the branch resolves to: a branch re-uploaded with other weights
    is a new identity, so scores cached by identity are computed again (a9ee7a7 kept
    ``hub:<repo>@step2`` and reused the old scores); an unchanged rerun asks only for the refs."""
    from pythia.evaluate.cache import cached_score

    shas = hub.publish_pythia(HUB_REPO, steps=(0, 1, 2), tokenizer=False)
    root, tokens = tmp_path / "scores", _tokens()
    ckpt = open_catalogue("pythia", "hub", steps=[2]).checkpoint("14M", "standard", 2)
    assert ckpt.identity == f"hub:{HUB_REPO}@{shas['step2']}"
    first = cached_score(ckpt, tokens, root=root).logprobs

    hub.reset_log()
    again = open_catalogue("pythia", "hub", steps=[2]).checkpoint("14M", "standard", 2)
    assert again.identity == ckpt.identity
    assert np.array_equal(cached_score(again, tokens, root=root).logprobs, first)
    assert hub.requests() == [("GET", "hub", f"/api/models/{HUB_REPO}/refs", 200)]

    new = hub.publish(
        HUB_REPO, "step2", {**hub.server.files(HUB_REPO, "step2"), **hub.model_files(99)}
    )
    assert new != shas["step2"]
    hub.reset_log()
    fresh = open_catalogue("pythia", "hub", steps=[2]).checkpoint("14M", "standard", 2)
    assert fresh.identity == f"hub:{HUB_REPO}@{new}"
    rescored = cached_score(fresh, tokens, root=root).logprobs
    assert not np.allclose(rescored, first)
    direct = cached_score(fresh, tokens, root=tmp_path / "other").logprobs
    assert np.array_equal(rescored, direct)
    assert hub.requests("/lfs/"), "the new weights were downloaded"


def test_hub_offline_resolves_from_the_cache(hub, tmp_path):
    """With HF_HUB_OFFLINE=1 a branch resolves to the commit the cache recorded (same identity,
    0 requests); a revision never downloaded is one clear error."""
    hub.publish_pythia(HUB_REPO, steps=(0, 1, 2), tokenizer=False)
    online = open_catalogue("pythia", "hub").checkpoint("14M", "standard", 1)
    online.load_model()
    hub.reset_log()
    with hub.offline():
        cat = open_catalogue("pythia", "hub")
        assert cat.available_steps("14M", "standard") == [1]
        ckpt = cat.checkpoint("14M", "standard", 1)
        assert ckpt.identity == online.identity
        ckpt.load_model()
        with pytest.raises(CatalogueError) as err:
            cat.checkpoint("14M", "standard", 2)
    assert hub.requests() == []
    msg = str(err.value)
    assert "never downloaded" in msg and "HF_HUB_OFFLINE=1" in msg and "\n" not in msg


def test_hub_errors_keep_their_reason(hub, monkeypatch):
    """No such branch, no such repository, and an unreachable hub are three different one-line
    errors; only the last suggests downloading with network access (a9ee7a7 said
    "(404 Client Error.)" and suggested a download for all three)."""
    from huggingface_hub import constants

    hub.publish_pythia(HUB_REPO, steps=(0, 1, 2, 4), tokenizer=False)
    cat = open_catalogue("pythia", "hub")
    with pytest.raises(CatalogueError) as branch:
        cat.checkpoint("14M", "standard", 8)
    with pytest.raises(CatalogueError) as repo:
        cat.checkpoint("70M", "standard", 8)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(CatalogueError) as down:
        open_catalogue("pythia", "hub").checkpoint("31M", "standard", 8)
    msgs = [str(e.value) for e in (branch, repo, down)]
    assert msgs[0] == (
        f"model {HUB_REPO} has no branch step8; branches that exist near it: step2, step4"
    )
    assert "EleutherAI/pythia-70m is not a repository on the Hugging Face hub" in msgs[1]
    assert "not reachable (ConnectError" in msgs[2] and "checkpoints source 'local'" in msgs[2]
    assert all("\n" not in m for m in msgs)
    assert all("network access" not in m for m in msgs[:2])


def test_hub_loads_a_bin_only_branch_without_the_conversion_service(hub):
    """A branch with only pytorch_model.bin loads; transformers' safetensors conversion (a thread
    that asks the hub for the repository's commits and discussions, then posts to
    https://safetensors-convert.hf.space) is never started: DISABLE_SAFETENSORS_CONVERSION."""
    import threading

    hub.publish_pythia(HUB_REPO, steps=(0,), weights="bin", tokenizer=False)
    assert "pytorch_model.bin" in hub.server.files(HUB_REPO, "step0")
    model = open_catalogue("pythia", "hub").checkpoint("14M", "standard", 0).load_model()
    assert model.config.hidden_size == 16
    for t in threading.enumerate():
        if t.name == "Thread-auto_conversion":
            t.join(30)
    assert os.environ["DISABLE_SAFETENSORS_CONVERSION"] == "1"
    assert not hub.requests("/commits/") and not hub.requests("/discussions")
    assert {host for _, host, _, _ in hub.requests()} <= {"hub", "lfs"}


def test_checkpoints_command_asks_the_hub(hub, capsys):
    """`pythia checkpoints --checkpoints-source hub` lists each repository's branches (one refs
    request per repository) and states the missing ones and the repositories not there
    (a9ee7a7 printed Pythia's 154 steps without a request); the listing does not run the
    checkpoint audit (whose filter reads every branch's tree), whatever ``--audit`` says."""
    from pythia.cli import main

    hub.publish_pythia(HUB_REPO, steps=(0, 1, 2, 4), tokenizer=False)
    argv = ["checkpoints", "--suite", "pythia", "--checkpoints-source", "hub"]
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out  # in process: a library's log line may come first
    info = json.loads(out[out.index("{\n") :])
    entry = info["datasets"]["standard"]["14M"]
    assert entry["repo"] == HUB_REPO and entry["available"] == [0, 1, 2, 4]
    assert 8 in entry["missing"] and len(entry["missing"]) == 150
    assert "is not a repository" in info["datasets"]["deduped"]["14M"]["error"]
    assert len(hub.requests("/refs")) == 20  # 10 sizes x 2 datasets, one request each
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{HUB_REPO}: 4 of 154 step branches" in out and "missing: step8, step16" in out


def test_hub_released_variants(hub):
    """Seed runs (PolyPythias) and the intervention models are runs of the hub catalogue, named
    like the trained runs (<dataset>-seed<N>, <dataset>-data-seed<N>, deduped-intervention)."""
    assert released_name("160M", "standard-seed3") == "pythia-160m-seed3"
    assert hub_repo("160M", "standard-data-seed2") == "EleutherAI/pythia-160m-data-seed2"
    assert hub_repo("160M", "standard-weight-seed1") == "EleutherAI/pythia-160m-weight-seed1"
    assert hub_repo("70M", "deduped-intervention") == "EleutherAI/pythia-intervention-70m-deduped"
    assert (
        hub_repo("1.4B", "deduped-intervention_long")
        == "EleutherAI/pythia-intervention-long-1.4b-deduped"
    )
    assert "standard-seed9" in released_runs("410M") and "standard-seed1" not in released_runs("1B")
    hub.publish_pythia("EleutherAI/pythia-160m-seed1", steps=(0, 1), tokenizer=False)
    hub.publish("EleutherAI/pythia-intervention-70m-deduped", "main", Hub.model_files(5))
    default = open_catalogue("pythia", "hub")
    assert default.datasets() == ["standard", "deduped"]
    assert default.available_steps("160M", "standard-seed1") == [0, 1]  # asked for by name
    cat = open_catalogue("pythia", "hub", runs=["standard-seed1", "deduped-intervention"])
    assert cat.datasets() == ["standard-seed1", "deduped-intervention"]
    assert cat.models("standard-seed1") == ["14M", "31M", "70M", "160M", "410M"]
    assert cat.models("deduped-intervention") == ["70M", "410M", "1.4B", "6.9B"]
    assert cat.available_steps("160M", "standard-seed1") == [0, 1]
    ckpt = cat.checkpoint("70M", "deduped-intervention", 143000)
    assert (ckpt.location, ckpt.revision) == ("EleutherAI/pythia-intervention-70m-deduped", "main")
    assert ckpt.load_model().config.hidden_size == 16
    with pytest.raises(CatalogueError, match="Pythia released no run 'deduped-seed1'"):
        open_catalogue("pythia", "hub", runs=["deduped-seed1"])
    with pytest.raises(CatalogueError, match="released no run 'standard-seed1' of model 1B"):
        cat.available_steps("1B", "standard-seed1")
