"""Figures: PNG + PDF + the plotted data, provenance in each, no timestamps, shown in notebooks."""

import json

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from PIL import Image

from pythia import plotting
from pythia.config import load_suite


@pytest.fixture
def figure():
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [3, 1, 2])
    yield fig
    plt.close(fig)


def test_save_figure_writes_png_pdf_and_data_with_provenance(tmp_path, figure):
    suite = load_suite("smoke")
    src = tmp_path / "input.txt"
    src.write_text("x")
    data = pd.DataFrame({"x": [1, 2, 3], "y": [3.0, 1.0, 2.0]})
    png = plotting.save_figure(
        figure, tmp_path / "fig.png", suite=suite, data=data, inputs={"input": src}
    )
    record = json.loads((tmp_path / "fig.png.provenance.json").read_text())
    assert (
        record["config_digest"] == suite.digest
        and record["code_version"]
        and record["data"] == "fig.data.csv"
    )
    assert (
        len(record["inputs"]["input"]) == 64 and "created" not in record
    )  # no timestamp: reruns are stable
    assert json.loads(Image.open(png).text["Provenance"]) == record
    pdf = (tmp_path / "fig.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and suite.digest.encode() in pdf and b"CreationDate" not in pdf
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "fig.data.csv"), data)
    for name in ("fig.png", "fig.pdf", "fig.data.csv", "fig.png.provenance.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, (
            name
        )  # readable by every reader of results/
    first = {p: (tmp_path / p).read_bytes() for p in ("fig.png", "fig.pdf", "fig.data.csv")}
    plotting.save_figure(
        figure, tmp_path / "fig.png", suite=suite, data=data, inputs={"input": src}
    )
    assert {
        p: (tmp_path / p).read_bytes() for p in first
    } == first  # the same figure, the same bytes


def test_figures_are_displayed_only_in_a_notebook(monkeypatch, figure):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    monkeypatch.setattr(plotting, "in_notebook", lambda: False)
    plotting.display_figure(figure)
    assert shown == [] and plt.fignum_exists(figure.number)
    monkeypatch.setattr(plotting, "in_notebook", lambda: True)
    plotting.display_figure(figure)
    assert shown == [figure] and not plt.fignum_exists(
        figure.number
    )  # closed: the inline backend won't repeat it


def test_importing_plotting_leaves_the_backend_alone():
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg'); import pythia.plotting, matplotlib.pyplot as plt; "
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"
