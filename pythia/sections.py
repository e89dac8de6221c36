"""The paper's sections, in order: the one registry of section stems and output names.

A section is one stem everywhere (``rules/<stem>.smk``, ``pythia/analysis/<stem>.py``,
``notebooks/NN_<stem>.ipynb``, ``results/<suite>/<stem>/``, ``tests/analysis/test_<stem>.py``,
``report/<stem>/<figure>.rst``). Its entry here names every figure and table it writes, once:
the section's rule declares them as outputs (``section_outputs`` in ``rules/common.smk``),
its notebook saves them through :func:`outputs` (which refuses a name not declared here),
and ``pythia results compare`` checks them against the committed reference with the
:class:`Compare` rule given here. ``docs/sections.md`` says how to add a section.

Files of one section in ``results/<suite>/<stem>/``:

    <figure>.png, <figure>.pdf          the figure (provenance in the image metadata)
    <figure>.data.csv                   the data the figure plots (what ``results compare`` checks)
    <figure>.png.provenance.json        code version, config digest, sha256 of the inputs
    <table>.csv, <table>.md             a table (CSV for code, Markdown for people)
    <table>.csv.provenance.json
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pythia import paths
from pythia.config import Suite, config_digest, load_suite
from pythia.errors import UsageError
from pythia.plotting import save_figure, save_table

if TYPE_CHECKING:
    import matplotlib.pyplot as plt
    import pandas as pd


@dataclass(frozen=True)
class Compare:
    """How ``pythia results compare`` checks a table (or a figure's data) against the reference.

    Rows are matched on ``keys``. Integer, text and boolean columns must be equal; float
    columns must satisfy ``|new - ref| <= atol + rtol * |ref|`` (``rtol = atol = 0``: exact);
    ``ignore`` lists columns that depend on the machine (timings) and are not compared.
    ``why`` states the reason for a tolerance, printed with the verdict.
    """

    keys: tuple[str, ...] = ()
    rtol: float = 0.0
    atol: float = 0.0
    ignore: tuple[str, ...] = ()
    why: str = ""

    @property
    def exact(self) -> bool:
        return self.rtol == 0 and self.atol == 0


EXACT = Compare()

LOSS_RTOL = 1e-4
"""Tolerance of trained losses. CPU kernels differ between machines: final losses of a micro
rerun elsewhere differ in the 7th-8th significant digit (a killed and resumed run on one
machine is bit-identical). 1e-4 leaves three orders of margin for that noise and still flags
any change in data, order, model or optimiser (which moves losses by 1e-3 or more)."""


BENCH_WHY = (
    "scores of trained weights: CPU kernel noise moves log-likelihoods by ~1e-6 and can flip a near-tie "
    "choice (1 of 200 examples = 0.005)"
)


def trained(*keys: str) -> Compare:
    """The comparison of values that come out of training: losses within :data:`LOSS_RTOL`."""
    return Compare(
        keys=keys, rtol=LOSS_RTOL, why="trained losses: CPU kernels differ across machines"
    )


def timing(*keys: str, ignore: tuple[str, ...]) -> Compare:
    """Machine-dependent measurements: only the rows (which runs) are compared."""
    return Compare(keys=keys, ignore=ignore, why="timings depend on the machine; not compared")


@dataclass(frozen=True)
class Figure:
    """A figure: PNG and PDF, and the data it plots. Its report caption is ``report/<stem>/<name>.rst``."""

    name: str
    compare: Compare = EXACT


@dataclass(frozen=True)
class Table:
    """A table: CSV and Markdown."""

    name: str
    compare: Compare = EXACT


@dataclass(frozen=True)
class Section:
    """One section of the paper: number, stem, title and the outputs it writes."""

    number: int
    stem: str
    title: str
    figures: tuple[Figure, ...] = ()
    tables: tuple[Table, ...] = ()
    optional_tables: tuple[Table, ...] = ()
    """Tables written only when their input is configured (section 04's ``released_agreement``:
    ``memorization.released``): the section's rule declares them then, :meth:`Outputs.missing`
    does not ask for them, and ``pythia results compare`` checks them where either side has one."""
    optional_figures: tuple[Figure, ...] = ()
    """Figures written only when their input is configured (sections 01 and 02's seed bands: the
    suite's ``seeds``), declared and compared like :attr:`optional_tables`."""
    reads: tuple[str, ...] = ("description", "tokenizer", "data", "training", "models")
    """Parts of the suite configuration the notebook reads: their digest is the notebook rule's
    ``params.digest``, so editing one of them reruns the notebook (and editing others does not)."""

    def __post_init__(self) -> None:
        # a figure and a table may share a name (their files differ: .png vs .csv), two figures not
        for kind, names in (
            ("figure", [f.name for f in self.figures + self.optional_figures]),
            ("table", [t.name for t in self.tables + self.optional_tables]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"section {self.stem!r}: a {kind} name repeats in {names}")

    @property
    def notebook(self) -> str:
        """The notebook's stem, ``NN_<stem>``."""
        return f"{self.number:02d}_{self.stem}"

    @property
    def category(self) -> str:
        """The Snakemake report category."""
        return f"{self.number:02d} {self.title}"

    def figure(self, name: str) -> Figure:
        for f in self.figures + self.optional_figures:
            if f.name == name:
                return f
        raise UsageError(
            f"section {self.stem!r} declares no figure {name!r}; figures: "
            f"{', '.join(f.name for f in self.figures + self.optional_figures) or 'none'} "
            f"(add it in pythia/sections.py)"
        )

    def table(self, name: str) -> Table:
        for t in self.tables + self.optional_tables:
            if t.name == name:
                return t
        raise UsageError(
            f"section {self.stem!r} declares no table {name!r}; tables: "
            f"{', '.join(t.name for t in self.tables + self.optional_tables) or 'none'} "
            f"(add it in pythia/sections.py)"
        )

    # ---------------------------------------------------------------- files
    def results_dir(self, suite: str) -> Path:
        return paths.section_dir(suite, self.stem)

    def figure_files(self, suite: str, name: str) -> dict[str, Path]:
        """``png``, ``pdf``, ``data`` (the plotted data) and ``provenance`` of a figure."""
        self.figure(name)
        d = self.results_dir(suite)
        return {
            "png": d / f"{name}.png",
            "pdf": d / f"{name}.pdf",
            "data": d / f"{name}.data.csv",
            "provenance": d / f"{name}.png.provenance.json",
        }

    def table_files(self, suite: str, name: str) -> dict[str, Path]:
        """``csv``, ``md`` and ``provenance`` of a table."""
        self.table(name)
        d = self.results_dir(suite)
        return {
            "csv": d / f"{name}.csv",
            "md": d / f"{name}.md",
            "provenance": d / f"{name}.csv.provenance.json",
        }

    def executed_notebook(self, suite: str) -> Path:
        return paths.notebooks_dir(suite) / f"{self.notebook}.ipynb"

    def compared(self) -> list[tuple[str, str, Compare]]:
        """``(kind, name, compare)`` of everything ``results compare`` checks, tables first."""
        return [("table", t.name, t.compare) for t in self.tables + self.optional_tables] + [
            ("figure", f.name, f.compare) for f in self.figures + self.optional_figures
        ]

    def digest(self, suite: Suite) -> str:
        """Digest of the parts of ``suite`` the notebook reads (:attr:`reads`; a dotted name such as
        ``analysis.term_frequencies`` is one part of a block, so editing another section's part of
        that block leaves this notebook current)."""
        dump = suite.model_dump(mode="json")

        def part(name: str):
            value = dump
            for key in name.split("."):
                value = value[key]
            return value

        return config_digest({k: part(k) for k in self.reads})


# The paper's order. Section issues add their entry here (see docs/sections.md):
#   02 benchmarks, 03 gender_intervention, 04 memorization, 05 term_frequencies,
#   06 training_trajectories.
SECTIONS: tuple[Section, ...] = (
    Section(
        0,
        "suite",
        "The suite (Table 1)",
        figures=(Figure("suite_table"), Figure("parameters")),
        tables=(
            Table("suite_table", Compare(keys=("model",))),
            Table("duplication", Compare(keys=("dataset", "at_least"))),
        ),
        reads=("description", "tokenizer", "training", "models"),
    ),
    Section(
        1,
        "training",
        "Training",
        figures=(
            Figure("loss_curves", trained("model", "dataset", "step")),
            Figure("val_loss", trained("model", "dataset", "step")),
            Figure("loss_vs_size", trained("model", "dataset")),
            Figure(
                "lr_schedule",
                Compare(
                    keys=("source", "model", "step"),
                    rtol=1e-9,
                    why="the schedule's formula in floating point",
                ),
            ),
            Figure(
                "throughput",
                timing("model", "dataset", ignore=("median_tokens_per_s", "train_seconds")),
            ),
        ),
        tables=(
            Table("data_card", Compare(keys=("source", "dataset"))),
            Table("data_order", Compare(keys=("dataset",))),
            Table("final_losses", trained("model", "dataset")),
            Table(
                "throughput",
                timing("model", "dataset", ignore=("median_tokens_per_s", "train_seconds")),
            ),
            Table("batch_proof", Compare(keys=("model", "dataset"))),
        ),
        optional_figures=(
            Figure("loss_seed_bands", trained("metric", "model", "dataset", "vary", "step")),
        ),
        optional_tables=(Table("seed_spread", trained("vary", "model", "quantity")),),
        reads=("tokenizer", "data", "training", "models", "seeds"),
    ),
    Section(
        2,
        "benchmarks",
        "Benchmarks",
        figures=(
            Figure(
                "accuracy_curves",
                Compare(
                    keys=("task", "dataset", "model", "step"), rtol=1e-3, atol=0.011, why=BENCH_WHY
                ),
            ),
            Figure(
                "cloze_quality",
                Compare(keys=("dataset", "model", "step"), rtol=1e-3, atol=0.011, why=BENCH_WHY),
            ),
            Figure(
                "final_vs_params",
                Compare(
                    keys=("task", "metric", "dataset", "model"),
                    rtol=1e-3,
                    atol=0.011,
                    why=BENCH_WHY,
                ),
            ),
            Figure("published_curves", Compare(keys=("paper_task", "dataset", "model", "step"))),
        ),
        tables=(
            Table(
                "evals",
                Compare(
                    keys=("source", "dataset", "model", "step", "task", "num_fewshot", "metric"),
                    rtol=1e-3,
                    atol=0.011,
                    why=BENCH_WHY,
                ),
            ),
            Table(
                "final_checkpoints",
                Compare(keys=("model", "dataset"), rtol=1e-3, atol=0.011, why=BENCH_WHY),
            ),
            Table("micro_reach", Compare(keys=("paper_task",))),
        ),
        optional_figures=(
            Figure(
                "accuracy_seed_bands",
                Compare(
                    keys=("task", "dataset", "model", "vary", "step"),
                    rtol=1e-3,
                    atol=0.011,
                    why=BENCH_WHY,
                ),
            ),
        ),
        reads=("training", "models", "seeds"),
    ),
    Section(
        3,
        "gender_intervention",
        "Gender intervention",
        figures=(
            Figure("trajectories", trained("window", "model", "metric", "step")),
            Figure("published", Compare(keys=("model", "variant", "metric", "step"))),
        ),
        tables=(
            Table("final_measures", trained("model", "variant", "metric")),
            Table(
                "intervention_cost",
                timing(
                    "run", "model", ignore=("median_step_s", "median_swap_s", "swap_pct_of_step")
                ),
            ),
            Table("published_final", Compare(keys=("model", "variant", "metric"))),
        ),
        reads=("tokenizer", "training", "models", "intervention"),
    ),
    Section(
        4,
        "memorization",
        "Memorization",
        figures=(
            Figure(
                "qq_plot",
                Compare(
                    keys=("model", "dataset", "window", "threshold", "sample", "theoretical"),
                    rtol=1e-9,
                    why="Poisson quantiles in floating point",
                ),
            ),
            Figure(
                "qq_partial",
                Compare(
                    keys=("model", "dataset", "window", "threshold", "sample", "theoretical"),
                    rtol=1e-9,
                    why="Poisson quantiles in floating point",
                ),
            ),
            Figure(
                "match_runs",
                Compare(
                    keys=("model", "dataset", "step"), rtol=1e-9, why="means in floating point"
                ),
            ),
            Figure(
                "position",
                Compare(
                    keys=("model", "dataset", "position"), rtol=1e-9, why="means in floating point"
                ),
            ),
            Figure(
                "size", Compare(keys=("model", "dataset"), rtol=1e-9, why="means in floating point")
            ),
            Figure(
                "duplicates",
                Compare(
                    keys=("model", "dataset", "step", "bin"),
                    rtol=1e-9,
                    why="means in floating point",
                ),
            ),
        ),
        tables=(
            Table(
                "memorized_counts",
                Compare(
                    keys=("model", "dataset", "step"), rtol=1e-9, why="means in floating point"
                ),
            ),
            Table(
                "poisson_tests",
                Compare(
                    keys=("model", "dataset", "threshold", "window"),
                    rtol=1e-6,
                    why="test statistics in floating point",
                ),
            ),
            Table(
                "persistence",
                Compare(
                    keys=("model", "dataset", "threshold", "earlier", "later"),
                    rtol=1e-9,
                    why="fractions in floating point",
                ),
            ),
            Table("memorized_sequences", Compare(keys=("model", "dataset", "seq"))),
            Table("partial_sequences", Compare(keys=("model", "dataset", "seq"))),
            Table(
                "bench",
                timing(
                    "model",
                    "dataset",
                    ignore=(
                        "threads",
                        "scan_tokens_per_s",
                        "scan_scores_tokens_per_s",
                        "generate_tokens_per_s",
                        "scan_over_generate",
                        "scan_scores_over_generate",
                    ),
                ),
            ),
            Table(
                "scan_speed",
                timing("model", "dataset", ignore=("scored", "seconds", "sequences_per_s")),
            ),
            Table(
                "duplicates",
                Compare(
                    keys=("model", "dataset", "step", "bin"),
                    rtol=1e-9,
                    why="means in floating point",
                ),
            ),
        ),
        optional_tables=(
            Table(
                "released_agreement",
                Compare(
                    keys=("model", "dataset", "step"), rtol=1e-9, why="fractions in floating point"
                ),
            ),
        ),
        reads=("tokenizer", "data", "training", "models"),
    ),
    Section(
        5,
        "term_frequencies",
        "Term frequencies",
        figures=(
            Figure("count_distribution", Compare(keys=("dataset", "step", "rank"))),
            Figure("accuracy_vs_frequency", trained("model", "dataset", "op", "k", "step", "bin")),
            Figure("accuracy_by_k", trained("model", "dataset", "op", "k", "step", "bin")),
            Figure("simple_accuracy", trained("model", "dataset", "op", "k", "step", "bin")),
        ),
        tables=(
            Table("frequency_gap", trained("model", "dataset", "set", "op", "k", "step")),
            Table("count_skew", Compare(keys=("dataset", "step"))),
            Table(
                "timings",
                timing(
                    "job", "dataset", "model", ignore=("seconds", "tokens_per_s", "projected_hours")
                ),
            ),
        ),
        reads=("tokenizer", "data", "training", "models", "analysis.term_frequencies"),
    ),
    Section(
        6,
        "training_trajectories",
        "Training trajectories",
        figures=(
            Figure("validation", trained("dataset", "model", "step")),
            Figure(
                "token_classes",
                Compare(
                    keys=("dataset", "model", "start_fraction", "class"),
                    atol=0.01,
                    why="a token whose p-value or flatness sits at its threshold flips "
                    "class when trained losses differ in the last digits",
                ),
            ),
            Figure("same_perplexity", trained("dataset", "subset", "model", "step")),
            Figure("hallucination", trained("dataset", "model", "step", "kind")),
            Figure(
                "icl",
                Compare(
                    keys=("dataset", "model", "step"),
                    rtol=1e-3,
                    atol=1e-3,
                    why="lm-eval log-likelihoods of trained weights; an option at a tie flips",
                ),
            ),
            Figure("published_icl", Compare(keys=("model", "dataset", "step"))),
        ),
        tables=(
            Table(
                "class_shares",
                Compare(
                    keys=("dataset", "model", "start_fraction", "class"),
                    atol=0.01,
                    why="a token at a threshold flips class when trained losses differ",
                ),
            ),
            Table(
                "overlap",
                Compare(
                    keys=("dataset", "subset"),
                    rtol=1e-3,
                    atol=1e-4,
                    why="spreads of trained losses, subsets defined by thresholds",
                ),
            ),
            Table("hallucination", trained("dataset", "model")),
            Table(
                "icl",
                Compare(
                    keys=("dataset",),
                    rtol=1e-3,
                    atol=1e-3,
                    why="rank correlations of lm-eval scores of trained weights",
                ),
            ),
            Table(
                "published",
                Compare(keys=("dataset",), rtol=1e-9, why="rank correlations in floating point"),
            ),
        ),
        reads=("tokenizer", "data", "training", "models", "analysis.training_trajectories"),
    ),
)


def get(stem: str) -> Section:
    """The section called ``stem``; an unknown stem lists the sections."""
    for s in SECTIONS:
        if s.stem == stem:
            return s
    raise UsageError(f"unknown section {stem!r}; sections: {', '.join(s.stem for s in SECTIONS)}")


def stems() -> list[str]:
    return [s.stem for s in SECTIONS]


# ------------------------------------------------------------------------------ notebooks


@dataclass
class Outputs:
    """What a notebook saves, by the names its section declares: ``out.figure(name, fig, data)``
    writes ``results/<suite>/<stem>/<name>.{png,pdf,data.csv}`` with provenance."""

    section: Section
    suite: Suite
    saved: list[tuple[str, str]] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return self.section.results_dir(self.suite.name)

    def figure(
        self,
        name: str,
        fig: plt.Figure,
        data: pd.DataFrame,
        inputs: dict[str, Any] | None = None,
        show: bool = True,
    ) -> None:
        """Save figure ``name`` (PNG + PDF + its data, :meth:`Section.figure_files`) and display it
        in a notebook. Returns nothing, so a notebook cell shows the figure and no file list."""
        files = self.section.figure_files(self.suite.name, name)
        save_figure(
            fig,
            files["png"],
            suite=self.suite,
            inputs=inputs,
            data=data,
            section=self.section.stem,
            show=show,
        )
        self.saved.append(("figure", name))

    def table(self, name: str, df: pd.DataFrame, inputs: dict[str, Any] | None = None) -> None:
        """Save table ``name`` (CSV + Markdown, :meth:`Section.table_files`) with provenance."""
        save_table(
            df,
            self.section.table_files(self.suite.name, name)["csv"],
            suite=self.suite,
            inputs=inputs,
            section=self.section.stem,
        )
        self.saved.append(("table", name))

    def missing(self) -> list[str]:
        """Declared outputs this notebook has not saved (yet)."""
        declared = [("figure", f.name) for f in self.section.figures] + [
            ("table", t.name) for t in self.section.tables
        ]
        return [f"{kind} {name}" for kind, name in declared if (kind, name) not in self.saved]


def outputs(stem: str, suite: Suite | str) -> Outputs:
    """The saver a section's notebook uses for every figure and table it writes."""
    return Outputs(get(stem), suite if isinstance(suite, Suite) else load_suite(suite))


__all__ = [
    "EXACT",
    "LOSS_RTOL",
    "SECTIONS",
    "Compare",
    "Figure",
    "Outputs",
    "Section",
    "Table",
    "get",
    "outputs",
    "stems",
]
