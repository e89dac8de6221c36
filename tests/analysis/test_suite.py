"""Section 00: the suite table, its figure and the parameter counts, from the configuration."""

import pytest

from pythia.analysis import suite as st
from pythia.config import load_suite


def test_pythia_table_has_the_papers_counts():
    table = st.suite_table(load_suite("pythia"))
    row = table.set_index("model").loc["70M"]
    assert row.total_params == 70_426_624 and row.non_embedding_params == 18_915_328
    assert table.set_index("model").loc["12B"].total_params == 11_846_072_320
    assert (table.batch_tokens == 1024 * 2048).all() and (table.steps == 143_000).all()


def test_table_figure_cells_are_formatted_counts():
    suite = load_suite("pythia")
    cells = st.table_figure_data(st.suite_table(suite))
    assert list(cells.columns) == list(st.FIGURE_COLUMNS)
    assert cells.set_index("model").loc["70M", "total_params"] == "70,426,624"
    assert cells.set_index("model").loc["70M", "peak_lr"] == "1.0e-03"


def test_parameter_counts_are_long_and_exact():
    suite = load_suite("micro")
    counts = st.parameter_counts(st.suite_table(suite))
    assert len(counts) == 2 * len(suite.models)
    assert set(counts["count"]) == {"total_params", "non_embedding_params"}
    one = counts[
        (counts.model == "1.8M") & (counts["count"] == "non_embedding_params")
    ].parameters.item()
    assert one == suite.model("1.8M").non_embedding_params()


@pytest.mark.parametrize("suite_name", ["smoke", "pythia"])
def test_figures_render(suite_name):
    suite = load_suite(suite_name)
    table = st.suite_table(suite)
    fig = st.plot_table(st.table_figure_data(table), suite)
    assert fig.axes[0].tables and suite.name in fig.axes[0].get_title()
    fig = st.plot_parameters(st.parameter_counts(table), suite)
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].patches
