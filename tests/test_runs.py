"""The checkpoint catalogue on the workflow's own runs (a trained smoke model), on a directory laid
out like the released suite (the smoke model saved under Pythia's names), and on the hub (no
network here: the code path up to the download, and its message)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from transformers import GPTNeoXForCausalLM

from pythia.config import ConfigError, load_suite
from pythia.runs import (
    Catalogue,
    CatalogueError,
    Source,
    describe,
    hub_repo,
    open_catalogue,
    released_name,
)


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


def test_hub_tokenizer_is_one_object_per_content(released_dir, tmp_path, monkeypatch):
    """On the hub source every revision's tokenizer files are fetched into the hub cache (only
    those files) and key the same memo as local ones: the checkpoints of a model share one
    tokenizer object, and a revision with other tokenizer files gets another."""
    import shutil

    import huggingface_hub

    from pythia.runs import TOKENIZER_FILES

    source = Path(
        open_catalogue("pythia", "local", released_dir).checkpoint("70M", "standard", 512).location
    )
    calls = []

    def fake_snapshot(repo_id, *, revision, cache_dir, allow_patterns):
        calls.append((repo_id, revision, sorted(allow_patterns)))
        folder = tmp_path / "hub" / repo_id / revision
        folder.mkdir(parents=True, exist_ok=True)
        for name in allow_patterns:
            if (source / name).is_file() and not (folder / name).exists():
                shutil.copy(source / name, folder / name)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    cat = open_catalogue("pythia", "hub", tmp_path / "hf-cache")
    a, b, c = (cat.checkpoint("70M", "deduped", s) for s in (1000, 2000, 3000))
    tok = a.load_tokenizer()
    assert b.load_tokenizer() is tok and a.load_tokenizer() is tok
    assert calls[0] == (
        "EleutherAI/pythia-70m-deduped",
        "step1000",
        sorted([*TOKENIZER_FILES, "config.json"]),
    )
    cfg = tmp_path / "hub" / "EleutherAI/pythia-70m-deduped" / "step3000" / "tokenizer_config.json"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(
        json.dumps(
            {**json.loads((source / "tokenizer_config.json").read_text()), "model_max_length": 777}
        )
    )
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


def test_hub_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cat = open_catalogue("pythia", "hub", tmp_path / "hf-cache")
    assert cat.datasets() == ["standard", "deduped"] and cat.models()[:3] == ["14M", "31M", "70M"]
    assert len(cat.available_steps("70M", "deduped")) == 154
    assert cat.steps("70M", "deduped") == load_suite("pythia").analysis_steps()
    ckpt = cat.checkpoint("70M", "deduped", 3000)
    assert (ckpt.location, ckpt.revision) == ("EleutherAI/pythia-70m-deduped", "step3000")
    assert ckpt.identity == "hub:EleutherAI/pythia-70m-deduped@step3000"
    with pytest.raises(CatalogueError) as err:
        ckpt.load_model()
    msg = str(err.value)
    assert "EleutherAI/pythia-70m-deduped at revision step3000" in msg
    assert (
        "hf download EleutherAI/pythia-70m-deduped --revision step3000 --local-dir <dir>/pythia-70m-deduped/step3000"
        in msg
    )
    assert "source 'local' with path <dir>" in msg
    with pytest.raises(CatalogueError, match="tokenizer of EleutherAI/pythia-70m-deduped"):
        ckpt.load_tokenizer()
    with pytest.raises(
        CatalogueError, match=r"EleutherAI/pythia-70m has no step 1500.*nearest: 1000, 2000"
    ):
        cat.checkpoint("70M", "standard", 1500)
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
