"""The section registry: one stem per section everywhere, outputs named once."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from pythia import sections
from pythia.config import load_suite
from pythia.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
PAPER_ORDER = [
    "suite",
    "training",
    "benchmarks",
    "gender_intervention",
    "memorization",
    "term_frequencies",
    "training_trajectories",
]


def test_sections_are_numbered_in_the_papers_order():
    stems = sections.stems()
    # sections land one by one, not necessarily in order: registered ones keep the paper's order and number
    assert stems == [s for s in PAPER_ORDER if s in stems], (
        "sections must follow the paper's order (docs/sections.md)"
    )
    assert [s.number for s in sections.SECTIONS] == [PAPER_ORDER.index(s) for s in stems]


@pytest.mark.parametrize("section", sections.SECTIONS, ids=lambda s: s.stem)
def test_every_section_has_its_files(section):
    stem = section.stem
    assert (ROOT / "rules" / f"{stem}.smk").exists()
    assert (ROOT / "pythia" / "analysis" / f"{stem}.py").exists()
    assert (ROOT / "notebooks" / f"{section.notebook}.ipynb").exists()
    assert (ROOT / "tests" / "analysis" / f"test_{stem}.py").exists()
    for fig in section.figures + section.optional_figures:
        assert (ROOT / "report" / stem / f"{fig.name}.rst").exists(), (
            f"report caption of {stem}/{fig.name}"
        )
    rules = (ROOT / "rules" / f"{stem}.smk").read_text()
    assert f'section_outputs("{stem}")' in rules and f'register_targets("{stem}"' in rules


def test_no_notebook_rule_file_or_caption_outside_the_registry():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert notebooks == {s.notebook for s in sections.SECTIONS}
    # rules/checkpoints.smk: the checkpoint audit, a rule file that is no section
    rule_files = {p.stem for p in (ROOT / "rules").glob("*.smk")} - {
        "common",
        "data",
        "checkpoints",
    }
    assert rule_files == set(sections.stems())
    captions = {f"{p.parent.name}/{p.stem}" for p in (ROOT / "report").glob("*/*.rst")}
    captions -= {"checkpoints/audit"}  # the checkpoint audit's grid (rules/checkpoints.smk)
    assert captions == {
        f"{s.stem}/{f.name}" for s in sections.SECTIONS for f in s.figures + s.optional_figures
    }


def test_config_schema_lists_the_sections_that_exist():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    sec = schema["properties"]["sections"]
    assert sec["items"]["enum"] == sections.stems() == sec["default"]
    assert (
        yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["sections"]
        == sections.stems()
    )


def test_unknown_names_fail_with_the_list():
    with pytest.raises(UsageError, match="unknown section 'nosuch'; sections: suite, training"):
        sections.get("nosuch")
    with pytest.raises(UsageError, match="declares no figure 'nosuch'"):
        sections.get("training").figure_files("micro", "nosuch")


def test_notebook_outputs_write_only_declared_names(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHIA_RESULTS", str(tmp_path))
    out = sections.outputs("suite", "smoke")
    with pytest.raises(UsageError, match="declares no table 'other'"):
        out.table("other", pd.DataFrame({"a": [1]}))
    out.table("suite_table", pd.DataFrame({"model": ["s1"]}))
    assert (tmp_path / "smoke" / "suite" / "suite_table.csv").exists()
    assert out.missing() == ["figure suite_table", "figure parameters", "table duplication"]


def test_section_digest_follows_what_the_notebook_reads():
    smoke = load_suite("smoke")
    described = smoke.model_copy(update={"description": "another description"})
    suite_sec, training = sections.get("suite"), sections.get("training")
    assert suite_sec.digest(described) != suite_sec.digest(
        smoke
    )  # the table figure's title shows it
    assert training.digest(described) == training.digest(smoke)
