"""Pythia's released memorization results beside our scan (:mod:`pythia.evaluate.memorization_released`):
the released shape read from local files (hub layout, Parquet, CSV) and each bad shape refused in
one line; the whole path on a trained smoke model (our scan, a released-shaped set of the sequences
it flags plus planted disagreements, `pythia memorization released`, the agreement table with its
provenance); and the hub dataset fetched through the real huggingface_hub client from the loopback
hub (tests/hub_server.py), only the asked split, keyed by its commit, then from the cache offline;
and the workflow's jobs and optional table when memorization.released is set (a dry run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pythia import sections
from pythia.analysis import memorization as mem
from pythia.cli import main
from pythia.config import load_suite
from pythia.data.batches import open_sequences
from pythia.errors import DataError, MissingInputError, PythiaError
from pythia.evaluate import memorization as M
from pythia.evaluate import memorization_files as F
from pythia.evaluate import memorization_kernels as K
from pythia.evaluate import memorization_released as R
from pythia.runs import open_catalogue

HUB_ID = R.HUB_DATASET


def released_frame(index, tokens=None) -> pd.DataFrame:
    """A frame in the released shape: index, tokens (lists), pandas' copy of the index."""
    df = pd.DataFrame({"index": np.asarray(index, dtype=np.int64)})
    if tokens is not None:
        df["tokens"] = [list(map(int, t)) for t in tokens]
    df["__index_level_0__"] = df["index"]
    return df


def parquet_bytes(df: pd.DataFrame, tmp_path, name="x.parquet") -> bytes:
    path = tmp_path / name
    df.to_parquet(path, index=False)
    return path.read_bytes()


def test_split_names_and_source_kinds(tmp_path, monkeypatch):
    assert R.split_name("70M", "standard") == "duped.70m"
    assert R.split_name("1.4B", "deduped") == "deduped.1.4b"
    assert R.is_hub_id(HUB_ID) and R.is_hub_id(f"{HUB_ID}@refs/convert/parquet")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EleutherAI" / "pythia-memorized-evals").mkdir(parents=True)
    assert not R.is_hub_id(HUB_ID)  # an existing path is local, whatever its name
    assert not R.is_hub_id("/data/released") and not R.is_hub_id("released.csv")


def test_local_shapes_load_the_same_set(tmp_path):
    tokens = np.arange(5 * 8).reshape(5, 8)
    index = [7, 3, 12, 40, 41]
    hub_like = tmp_path / "hub_like" / "data"
    hub_like.mkdir(parents=True)
    released_frame(index[:3], tokens[:3]).to_parquet(
        hub_like / "duped.s1-00000-of-00002-aa.parquet", index=False
    )
    released_frame(index[3:], tokens[3:]).to_parquet(
        hub_like / "duped.s1-00001-of-00002-bb.parquet", index=False
    )
    # another split whose name starts the same is not read
    released_frame([999], [np.zeros(8)]).to_parquet(
        hub_like / "duped.s1.new-00000-of-00001-cc.parquet", index=False
    )
    got = R.load_released(str(tmp_path / "hub_like"), "s1", "standard")
    order = np.argsort(index)
    np.testing.assert_array_equal(got.indices, np.sort(index))
    np.testing.assert_array_equal(got.tokens, tokens[order])
    assert got.split == "duped.s1" and got.origin["kind"] == "local"
    assert sorted(got.origin["files"]) == [
        "duped.s1-00000-of-00002-aa.parquet",
        "duped.s1-00001-of-00002-bb.parquet",
    ]
    # CSV: tokens as JSON lists, or space-separated; a repeated index with the same tokens is one
    flat = tmp_path / "flat"
    flat.mkdir()
    csv = released_frame([*index, 3], np.concatenate([tokens, tokens[1:2]]))
    csv["tokens"] = [json.dumps(t) for t in csv["tokens"]]
    csv.to_csv(flat / "duped.s1.csv", index=False)
    spaced = released_frame(index, tokens)
    spaced["tokens"] = [" ".join(map(str, t)) for t in spaced["tokens"]]
    spaced.drop(columns="__index_level_0__").to_csv(tmp_path / "one.csv", index=False)
    for source in (flat, tmp_path / "one.csv"):
        again = R.load_released(str(source), "s1", "standard")
        np.testing.assert_array_equal(again.indices, got.indices)
        np.testing.assert_array_equal(again.tokens, got.tokens)
    # indices only: tokens may be left out
    pd.DataFrame({"index": index}).to_csv(tmp_path / "bare.csv", index=False)
    bare = R.load_released(str(tmp_path / "bare.csv"), "s1", "standard")
    assert bare.tokens is None and bare.indices.tolist() == sorted(index)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"idx": [1]}), "has no column 'index' .*columns: idx"),
        (pd.DataFrame({"index": [1.5]}), "column 'index' holds float64, not integers"),
        (pd.DataFrame({"index": [-1]}), "negative index -1"),
        (
            pd.DataFrame({"index": [1, 2], "__index_level_0__": [1, 3]}),
            "__index_level_0__ differs from index",
        ),
        (
            pd.DataFrame({"index": [1, 2], "tokens": [[1, 2], [1, 2, 3]]}),
            r"hold different numbers of tokens \(\[2, 3\]\)",
        ),
        (
            pd.DataFrame({"index": [4, 4], "tokens": [[1, 2], [1, 3]]}),
            "an index repeats with different tokens",
        ),
    ],
    ids=["no-index", "float-index", "negative", "pandas-index", "ragged-tokens", "repeat"],
)
def test_a_bad_shape_fails_in_one_line(tmp_path, frame, message):
    frame.to_parquet(tmp_path / "duped.s1.parquet", index=False)
    with pytest.raises(DataError, match=message) as err:
        R.load_released(str(tmp_path), "s1", "standard")
    assert "\n" not in str(err.value) and "duped.s1.parquet" in str(err.value)


def test_a_missing_source_or_split_says_what_to_give(tmp_path):
    with pytest.raises(MissingInputError, match="does not exist; give a folder laid out like"):
        R.load_released(str(tmp_path / "nowhere"), "s1", "standard")
    (tmp_path / "duped.s1.parquet").write_bytes(b"not parquet")
    with pytest.raises(R.SplitMissing, match=r"no released split 'deduped.s1' \(looked for"):
        R.load_released(str(tmp_path), "s1", "deduped")
    with pytest.raises(DataError, match="not a readable Parquet/CSV file"):
        R.load_released(str(tmp_path), "s1", "standard")


def test_agreement_counts():
    a = R.agreement(np.arange(10), [2, 5, 7], [5, 7, 8, 42])
    assert a == {
        "rows_compared": 10,
        "flagged_ours": 3,
        "flagged_released": 3,
        "both": 2,
        "only_ours": 1,
        "only_released": 1,
        "released_outside": 1,
        "agreeing_rows": 8,
    }
    with pytest.raises(ValueError, match="among the scanned"):
        R.agreement(np.arange(3), [5], [])


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _scan_smoke(tmp_path, options: K.ScanOptions) -> pd.DataFrame:
    """Our scan of s1's final checkpoint (step 24) on every sequence it has seen."""
    cat = open_catalogue("smoke", steps=[24])
    M.scan_model(
        "smoke", "standard", "s1", cat, options, progress=False, cache_root=tmp_path / "cache"
    )
    return F.read_scan(F.scan_file("smoke", "standard", "s1", 24))


def test_the_whole_path_on_a_trained_smoke_model(
    smoke_run, tmp_path, monkeypatch, one_thread, capsys
):
    """Scan -> a released-shaped file of the sequences our scan flags, with planted disagreements ->
    `pythia memorization released` -> the agreement table -> its files with provenance. (k, l) =
    (32, 1): a 24-step smoke model reproduces no 32 (nor 4) continuation tokens, and 5 of its 96
    sequences' next token; the released shape is the same with k + l tokens per row."""
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    monkeypatch.setenv("PYTHIA_RESULTS", str(tmp_path / "results"))
    suite = load_suite("smoke")
    opt = K.ScanOptions(32, 1, score_stride=0)
    scan = _scan_smoke(tmp_path, opt)
    flagged = scan.loc[scan["memorized"], "seq"].to_numpy()
    assert len(scan) == 96 and 3 <= len(flagged) < 96  # something to agree and disagree on
    rows = np.asarray(open_sequences(suite, "standard"))
    folder = tmp_path / "released" / "data"
    folder.mkdir(parents=True)

    def release(index, name="duped.s1-00000-of-00001-aa.parquet"):
        released_frame(index, rows[index, : opt.width]).to_parquet(folder / name, index=False)

    # 1. exactly the sequences our scan flags: exact agreement
    release(flagged)
    assert main(["memorization", "released", "--suite", "smoke", "--dataset", "standard",
                 "--model", "s1", "--source", str(folder.parent)]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert f"{len(flagged)} memorized sequences, {len(flagged)} in our data; tokens of 0 of" in said
    assert f"both {len(flagged)}, only ours 0, only released 0" in said
    scans = mem.load_scans(suite, ["standard"], ["s1"])
    table = mem.released_agreement(suite, scans, ["standard"], ["s1"], opt.continuation, opt.prompt)
    r = table.iloc[0]
    assert (r["step"], r["rows_compared"], r["both"], r["only_ours"], r["only_released"]) == (
        24,
        96,
        len(flagged),
        0,
        0,
    )
    assert r["agreement"] == 1.0 and r["note"] == "" and r["tokens_differ"] == 0

    # 2. planted: one flagged sequence left out, one unflagged added, one past the data, one
    # released row whose tokens are not ours
    unflagged = np.setdiff1d(np.arange(96), flagged)
    planted = np.concatenate([flagged[1:], unflagged[:1]])
    release(planted)
    extra = released_frame([10_000], [np.arange(opt.width)])
    wrong = released_frame([unflagged[1]], [rows[unflagged[1], : opt.width] + 1])
    pd.concat([extra, wrong]).to_parquet(folder / "duped.s1-00001-of-00001-bb.parquet", index=False)
    R.write_released(
        R.released_file("smoke", "standard", "s1"),
        R.load_released(str(folder.parent), "s1", "standard"),
        rows,
        24,
    )
    table = mem.released_agreement(suite, scans, ["standard"], ["s1"], opt.continuation, opt.prompt)
    r = table.iloc[0]
    assert r["flagged_ours"] == len(flagged) and r["flagged_released"] == len(flagged) + 1
    assert (r["both"], r["only_ours"], r["only_released"], r["released_outside"]) == (
        len(flagged) - 1,
        1,
        2,
        1,
    )
    assert r["agreement"] == pytest.approx(93 / 96)
    assert (r["tokens_checked"], r["tokens_differ"]) == (len(flagged) + 1, 1)
    differ = mem.released_disagreements(suite, scans, table)
    assert sorted(differ["seq"]) == sorted([flagged[0], unflagged[0], unflagged[1]])
    assert (differ["ours"] != differ["released"]).all()
    assert "only ours 1, only released 2: different sequences" in mem.released_note(table, 1)

    # 3. the table through the section's saver: CSV, Markdown, provenance naming its inputs
    out = sections.outputs("memorization", suite)
    inputs = {
        **mem.scan_files(suite, ["standard"], ["s1"]),
        **mem.released_files(suite, ["standard"], ["s1"]),
    }
    out.table("released_agreement", table, inputs=inputs)
    files = sections.get("memorization").table_files("smoke", "released_agreement")
    saved = pd.read_csv(files["csv"])
    assert saved["only_released"].tolist() == [2] and files["md"].is_file()
    prov = json.loads(files["provenance"].read_text())
    assert "standard/s1/released" in json.dumps(prov["inputs"])
    assert "table released_agreement" not in out.missing()  # optional: never asked for


def test_a_model_without_a_split_is_absent_with_the_flag(smoke_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    folder = tmp_path / "released"
    folder.mkdir()
    released_frame([1]).to_parquet(folder / "duped.s1.parquet", index=False)
    args = ["memorization", "released", "--suite", "smoke", "--dataset", "standard", "--model", "s2",
            "--source", str(folder)]  # fmt: skip
    assert main(args) == 2  # a user error, one line
    assert "no released split 'duped.s2'" in capsys.readouterr().err
    assert main([*args, "--allow-missing-split"]) == 0
    rel = R.read_released(R.released_file("smoke", "standard", "s2"))
    assert len(rel) == 0 and "no released split 'duped.s2'" in rel.attrs["absent"]


# ------------------------------------------------------------------------------ the hub


def test_the_hub_dataset_through_huggingface_hub(hub, smoke_data, tmp_path, monkeypatch):
    """`EleutherAI/pythia-memorized-evals` on the loopback hub: only the asked split's files are
    downloaded, the set is keyed by the commit, a re-upload is a new commit and a new set, the
    cache answers offline, and a missing split or repository says so in one line."""
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_data))
    rows = np.asarray(open_sequences("smoke", "standard"))
    mine = released_frame([2, 9, 30], rows[[2, 9, 30], :64])
    files = {
        "README.md": b"---\nlicense: mit\n---\n# Pythia Memorized Evals\n",
        "data/duped.s1-00000-of-00001-aa.parquet": parquet_bytes(mine, tmp_path, "a.parquet"),
        "data/deduped.s1-00000-of-00001-bb.parquet": parquet_bytes(
            released_frame([5], rows[[5], :64]), tmp_path, "b.parquet"
        ),
        "data/duped.s1.new-00000-of-00001-cc.parquet": parquet_bytes(
            released_frame([7], rows[[7], :64]), tmp_path, "c.parquet"
        ),
    }
    sha = hub.publish(HUB_ID, "main", files, repo_type="dataset")
    got = R.load_released(HUB_ID, "s1", "standard")
    assert got.indices.tolist() == [2, 9, 30] and got.origin["commit"] == sha
    assert got.origin["where"] == f"{HUB_ID}@{sha}"
    resolved = [r[2] for r in hub.requests("/resolve/")]
    assert resolved and all("/data/duped.s1-00000-of-00001-aa.parquet" in p for p in resolved)
    assert len([r for r in hub.requests("/lfs/", "GET") if r[1] == "lfs"]) == 1  # one file fetched
    meta = R.write_released(tmp_path / "released.parquet", got, rows, 24)
    assert (meta["in_data"], meta["tokens_checked"], meta["tokens_differ"]) == (3, 3, 0)

    # a re-upload under a new commit is a new set
    files["data/duped.s1-00000-of-00001-aa.parquet"] = parquet_bytes(
        released_frame([2, 9], rows[[2, 9], :64]), tmp_path, "a2.parquet"
    )
    sha2 = hub.publish(HUB_ID, "main", files, repo_type="dataset")
    again = R.load_released(HUB_ID, "s1", "standard")
    assert sha2 != sha and again.origin["commit"] == sha2 and again.indices.tolist() == [2, 9]
    # offline: the cache answers, no request made
    hub.reset_log()
    with hub.offline():
        cached = R.load_released(HUB_ID, "s1", "standard")
    assert cached.indices.tolist() == [2, 9] and hub.requests() == []
    # a pinned revision
    assert R.load_released(f"{HUB_ID}@{sha}", "s1", "standard").indices.tolist() == [2, 9, 30]

    with pytest.raises(R.SplitMissing, match=r"no split 'duped.s2' \(splits there: .*duped.s1"):
        R.load_released(HUB_ID, "s2", "standard")
    with pytest.raises(PythiaError, match=r"RepositoryNotFoundError.*Repository Not Found") as err:
        R.load_released("EleutherAI/no-such-evals", "s1", "standard")
    assert "\n" not in str(err.value) and "check the dataset id" in str(err.value)
    with pytest.raises(PythiaError, match=r"RevisionNotFoundError.*Revision Not Found"):
        R.load_released(f"{HUB_ID}@v9", "s1", "standard")


def test_the_workflow_runs_it_only_when_configured(tmp_path):
    """A dry run of section 04 on smoke with memorization.released set: one released job per
    (dataset, model), the notebook waits for them and declares the optional table, and gets the
    source as a parameter (unset, the default dry runs of tests/test_workflow.py have none of it)."""
    repo = Path(__file__).resolve().parents[2]
    snakemake = Path(sys.executable).parent / "snakemake"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHIA_WORK", "PYTHIA_RESULTS")}
    out = subprocess.run(
        [str(snakemake), "-n", "--directory", str(tmp_path), "--config", "suite=smoke",
         "sections=[memorization]", f"memorization={{released: {HUB_ID}}}"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert text.count("rule memorization_released:") == 4
    assert f"--model s2 --source {HUB_ID} --allow-missing-split" in text
    assert "work/smoke/memorization/deduped/s1/released.parquet" in text
    assert "results/smoke/memorization/released_agreement.csv" in text
    assert f'"released": "{HUB_ID}"' in text
