"""Released pre-shuffled data (Pythia's Pile): a fake "released" file in the real format (rows of
seq_len + 1 tokens, written with the project's indexed writer and cut into shards like
EleutherAI's), read through get_batch, the batch viewer and the trainer; a missing download
fails naming what to get and where to put it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pythia import paths
from pythia.config import ConfigError, load_suite
from pythia.data import released
from pythia.data.batches import DataNotBuiltError, batch_hash, get_batch
from pythia.data.build import is_done, run_stage, stage_outputs
from pythia.data.indexed import IndexedDatasetWriter
from pythia.data.order import verify_released

HUB = "EleutherAI/pile-standard-pythia-preshuffled"


def write_released(prefix: Path, rows: int, width: int, seed: int = 0) -> np.ndarray:
    """A pre-shuffled file like EleutherAI's: one item (and document) per training sequence."""
    data = np.random.default_rng(seed).integers(0, 300, size=(rows, width)).astype(np.uint16)
    with IndexedDatasetWriter(prefix, np.uint16) as w:
        w.add_rows(data)
    return data


def shard(prefix: Path, out_dir: Path, n: int) -> None:
    """Cut ``<prefix>.bin`` into n byte ranges named like the Hugging Face repositories' shards."""
    blob = Path(f"{prefix}.bin").read_bytes()
    out_dir.mkdir(parents=True, exist_ok=True)
    cuts = np.linspace(0, len(blob), n + 1).astype(
        int
    )  # not aligned to rows, like the real 5 GB shards
    for i in range(n):
        (out_dir / f"document-{i:05d}-of-{n - 1:05d}.bin").write_bytes(blob[cuts[i] : cuts[i + 1]])
    (out_dir / "document.idx").write_bytes(Path(f"{prefix}.idx").read_bytes())


@pytest.fixture
def rel_suite(tmp_path, monkeypatch):
    """A small suite (extending smoke) whose standard dataset is a released file."""
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    raw = {
        "extends": "smoke",
        "name": "relsuite",
        "training": {
            "seq_len": 16,
            "global_batch": 4,
            "train_iters": 6,
            "checkpoints": {
                "log_spaced_until": 2,
                "every": 3,
                "state_at_fractions_before_end": [0.0],
            },
        },
        "data": {"pretokenized": {"standard": {"hub_dataset": HUB}}},
    }
    path = tmp_path / "relsuite.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_suite(path), path


def test_suite_extends_another_and_pythia_reads_the_released_pile():
    pythia = load_suite("pythia")
    assert set(pythia.data.pretokenized) == {"standard", "deduped"}
    assert (
        pythia.data.pretokenized["deduped"].hub_dataset
        == "EleutherAI/pile-deduped-pythia-preshuffled"
    )
    standin = load_suite("pythia_standin")  # the stand-in corpus, asked for by name
    assert standin.data.pretokenized == {}
    assert standin.models == pythia.models and standin.training == pythia.training
    assert standin.digest != pythia.digest


def test_extends_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(ConfigError, match="circular extends"):
        load_suite(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nosuch\nname: c\n")
    with pytest.raises(ConfigError, match="extends unknown suite 'nosuch'"):
        load_suite(tmp_path / "c.yaml")


def test_missing_released_pile_names_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path))
    with pytest.raises(DataNotBuiltError) as err:
        get_batch(load_suite("pythia"), "deduped", 0)
    msg = str(err.value)
    for part in (
        "EleutherAI/pile-deduped-pythia-preshuffled",
        "document-00000-of-00020.bin",
        "document.idx",
        "pythia data unshard",
        str(tmp_path / "pythia" / "data" / "deduped" / "released" / "document"),
        "suite pythia_standin",
    ):
        assert part in msg, (part, msg)


def test_unshard_then_get_batch_reads_the_released_rows(rel_suite, tmp_path):
    suite, _ = rel_suite
    t = suite.training
    src = write_released(
        tmp_path / "orig" / "document", 30, t.seq_len + 1
    )  # 7 steps of 4 (and 2 rows over)
    shard(tmp_path / "orig" / "document", tmp_path / "download", 3)
    prefix = released.unshard(
        tmp_path / "download", released.released_prefix(suite, "standard"), progress=False
    )
    assert prefix == paths.dataset_dir("relsuite", "standard") / "released" / "document"
    assert Path(f"{prefix}.bin").read_bytes() == (tmp_path / "orig" / "document.bin").read_bytes()
    for step in range(7):
        np.testing.assert_array_equal(
            get_batch(suite, "standard", step), src[4 * step : 4 * (step + 1)]
        )
    # the data build's order stage checks the file and records it; it writes no sequences.bin
    rec = run_stage(suite, "order", "standard", progress=False)["standard"]
    assert (rec["sequences_rows"], rec["steps_covered"], rec["hub_dataset"]) == (30, 7, HUB)
    assert stage_outputs(suite, "order", "standard") == [
        paths.dataset_dir("relsuite", "standard") / "order.json"
    ]
    assert is_done(suite, "order", "standard")
    assert not (paths.dataset_dir("relsuite", "standard") / "sequences.bin").exists()


def test_unshard_names_a_missing_shard(tmp_path):
    write_released(tmp_path / "orig" / "document", 10, 9)
    shard(tmp_path / "orig" / "document", tmp_path / "download", 3)
    (tmp_path / "download" / "document-00001-of-00002.bin").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"1 of the 3 shards are missing.*document-00001-of-00002.bin"
    ):
        released.unshard(tmp_path / "download", tmp_path / "out" / "document", progress=False)
    # a cut-short download is caught by the index check, naming the download
    write_released(tmp_path / "o2" / "document", 10, 9)
    shard(tmp_path / "o2" / "document", tmp_path / "d2", 2)
    last = tmp_path / "d2" / "document-00001-of-00001.bin"
    last.write_bytes(last.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"inconsistent with its index.*download it again"):
        released.unshard(tmp_path / "d2", tmp_path / "out2" / "document", progress=False)


def test_released_file_must_fit_the_suite(rel_suite):
    suite, _ = rel_suite
    prefix = released.released_prefix(suite, "standard")
    write_released(prefix, 20, suite.training.seq_len + 1)  # 5 steps, the suite trains 6
    with pytest.raises(
        ValueError, match=r"holds 20 sequences = 5 steps, but suite 'relsuite' trains 6 steps"
    ):
        verify_released(suite, "standard")
    write_released(prefix, 24, 33)  # rows of 33 tokens, the suite needs 17
    with pytest.raises(
        ValueError, match="sequences of 33 tokens but suite 'relsuite' has seq_len 16"
    ):
        get_batch(suite, "standard", 0)


def _pythia(*args: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pythia.cli", *args]
    return subprocess.run(
        cmd, env=env, check=False, capture_output=True, text=True, timeout=timeout
    )


def test_trainer_and_batch_viewer_read_the_released_order(rel_suite, tmp_path):
    suite, path = rel_suite
    t = suite.training
    rows = write_released(released.released_prefix(suite, "standard"), 24, t.seq_len + 1, seed=3)
    with IndexedDatasetWriter(
        paths.data_dir("relsuite") / "validation_text_document", np.uint16
    ) as w:
        for doc in np.random.default_rng(4).integers(1, 300, size=(4, 40)):
            w.add_item(doc)
            w.end_document()
    run = ("--suite", str(path), "--dataset", "standard")
    out = _pythia("train", *run, "--model", "s1", "--threads", "1", "--no-progress", timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    log_path = paths.run_dir("relsuite", "standard", "s1") / "train_log.jsonl"
    log = [json.loads(x) for x in log_path.read_text().splitlines()]
    hashes = [r["batch_hash"] for r in log if "batch_hash" in r]
    assert hashes == [batch_hash(rows[4 * s : 4 * (s + 1)].astype(np.int64)) for s in range(6)]
    viewer = _pythia("data", "batch", *run, "--step", "5", "--rows", "1", timeout=120)
    assert viewer.returncode == 0, viewer.stderr
    assert batch_hash(rows[20:24].astype(np.int64)) in viewer.stdout
    assert " ".join(map(str, rows[20].tolist())) in viewer.stdout


def test_unshard_cli_writes_where_the_suite_expects(rel_suite, tmp_path):
    suite, path = rel_suite
    write_released(tmp_path / "orig" / "document", 24, 17)
    shard(tmp_path / "orig" / "document", tmp_path / "dl", 2)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pythia.cli",
            "data",
            "unshard",
            str(tmp_path / "dl"),
            "--suite",
            str(path),
            "--dataset",
            "standard",
            "--no-progress",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert Path(f"{released.released_prefix(suite, 'standard')}.bin").is_file()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "pythia.cli",
            "data",
            "unshard",
            str(tmp_path / "dl"),
            "--suite",
            str(path),
            "--dataset",
            "deduped",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "is not a released one" in bad.stderr


def test_data_build_with_a_released_dataset(tmp_path, monkeypatch):
    """The whole data build of a suite whose standard dataset is released: the deduplicated twin is
    built as usual, the standard order is the released file, and the card says so."""
    from pythia.data.build import build

    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    path = tmp_path / "relbuild.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "extends": "smoke",
                "name": "relbuild",
                "data": {"pretokenized": {"standard": {"hub_dataset": HUB}}},
            }
        )
    )
    suite = load_suite(path)
    write_released(released.released_prefix(suite, "standard"), 24 * 4, 65)
    build(suite, progress=False)
    data = paths.data_dir("relbuild")
    card = json.loads((data / "card.json").read_text())
    assert (
        card["datasets"]["standard"]["released"] == HUB
        and card["datasets"]["standard"]["sequences"] == 96
    )
    assert (
        card["datasets"]["deduped"]["sequences"] == 24 * 4
        and "released" not in card["datasets"]["deduped"]
    )
    assert {r["dataset"] for r in card["rows"]} == {"deduped"}
    assert (
        "| standard (released: EleutherAI/pile-standard-pythia-preshuffled) |"
        in (data / "card.md").read_text()
    )
    assert (
        not (data / "standard" / "sequences.bin").exists()
        and (data / "deduped" / "sequences.bin").is_file()
    )
    assert build(suite, progress=False) == {}  # everything up to date
