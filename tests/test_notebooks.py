"""Source notebooks: stored without outputs, one tagged `parameters` cell, thin."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    assert "suite =" in tagged[0].source and "project_dir =" in tagged[0].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                "store notebooks without outputs"
            )
            compile(cell.source, f"{path.name}", "exec")  # every code cell is valid Python


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_takes_paths_and_output_names_from_the_package(path):
    """Paths from pythia.paths (so $PYTHIA_WORK/$PYTHIA_RESULTS and JupyterLab's cwd work), output
    names from the section registry, figures shown (no backend forced)."""
    stem = path.stem.split("_", 1)[1]
    code = "\n".join(
        c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
    )
    assert "paths.set_project(project_dir)" in code
    assert f'sections.outputs("{stem}"' in code and "out.missing()" in code
    for literal in (
        '"results',
        "'results",
        '"work',
        "'work",
        "matplotlib.use",
        "savefig",
        "os.environ",
    ):
        assert literal not in code, f"{path.name}: {literal} (use pythia.paths / sections.outputs)"
