"""The checkpoint audit's table and grid (pythia/analysis/checkpoints.py) on hand-made audit rows:
the files written with provenance, the grid's data one row per checkpoint in the suite's model
order, the summary counting an explained flag apart."""

from __future__ import annotations

import json

import pandas as pd

from pythia.analysis.checkpoints import STATUS_COLOURS, STATUSES, grid_data, save, summary
from pythia.audit import COLUMNS, EXPECTED, FLAGS
from pythia.config import load_suite


def _row(
    model: str,
    run: str,
    step: int,
    status: str = "ok",
    file: str = "model.safetensors",
    note: str = "",
):
    return {
        **dict.fromkeys(COLUMNS, ""),
        "suite": "smoke",
        "source": "local",
        "model": model,
        "run": run,
        "branch": f"step{step}",
        "step": step,
        "file": file,
        "sha256": f"{model}{run}{step}{file}",
        "status": status,
        "note": note,
    }


ROWS = [
    _row("s2", "standard", 0),
    _row("s1", "standard", 0),
    _row("s1", "standard", 1, "step0==step1", note=EXPECTED + "lr 0"),
    _row("s1", "standard", 2, "duplicate"),
    _row("s1", "standard", 2, "duplicate", file="pytorch_model.bin"),
    _row("s1", "standard", 4, "missing", file=""),
]


def test_save_writes_the_table_and_the_grid_with_provenance(tmp_path):
    got = save(ROWS, load_suite("smoke"), tmp_path, source="local")
    assert got["table"] == tmp_path / "audit.csv" and got["figure"] == tmp_path / "audit.png"
    table = pd.read_csv(tmp_path / "audit.csv", keep_default_na=False)
    assert list(table.columns) == list(COLUMNS) and len(table) == len(ROWS)
    assert list(table["model"]) == ["s1"] * 5 + ["s2"]  # sorted by model, run, step, file
    for name in ("audit.md", "audit.pdf", "audit.data.csv"):
        assert (tmp_path / name).is_file()
    prov = json.loads((tmp_path / "audit.png.provenance.json").read_text())
    assert (
        prov["suite"] == "smoke" and prov["source"] == "local" and prov["data"] == "audit.data.csv"
    )
    assert (
        json.loads((tmp_path / "audit.csv.provenance.json").read_text())["section"] == "checkpoints"
    )


def test_grid_has_one_row_per_checkpoint_in_the_suites_order():
    grid = grid_data(pd.DataFrame(ROWS), load_suite("smoke"))
    assert list(zip(grid["model"], grid["step"], strict=True)) == [
        ("s1", 0), ("s1", 1), ("s1", 2), ("s1", 4), ("s2", 0)
    ]  # fmt: skip
    assert set(STATUSES) == {"ok", *FLAGS} == set(STATUS_COLOURS)


def test_summary_counts_an_explained_flag_apart():
    got = summary(pd.DataFrame(ROWS))
    s1 = dict(
        zip(
            got[got["model"] == "s1"]["status"],
            got[got["model"] == "s1"]["checkpoints"],
            strict=True,
        )
    )
    assert s1 == {"ok": 1, "step0==step1 (expected)": 1, "duplicate": 1, "missing": 1}
