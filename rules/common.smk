# Shared settings and helpers of the workflow. No lambdas in rules: functions live here.
# Paths come from pythia.paths, section outputs from pythia.sections (the same code the
# package and the notebooks use); docs/sections.md says how a section's rule file uses them.

import json
from pathlib import Path

from pythia import paths, sections
from pythia.config import load_suite, register_suite_file
from pythia.data.build import stage_digest
from pythia.data.released import is_released
from pythia.data.validation import source_files as validation_files
from pythia.runs import Source, open_catalogue, released_runs
from pythia.train.checkpoint import run_digest, seed_run_digest

# A suite given as a YAML path is found by name from then on (in this process and in jobs).
if config["suite"].endswith((".yaml", ".yml")):
    SUITE_CFG = register_suite_file(config["suite"])
else:
    SUITE_CFG = load_suite(config["suite"])

SUITE = SUITE_CFG.name
DATASETS = [paths.check_dataset(d) for d in config["datasets"]]
MODELS = list(config["models"]) or list(SUITE_CFG.models)
for _m in MODELS:
    SUITE_CFG.model(_m)  # an unknown model fails here with the suite's model list
SECTIONS = list(config["sections"])
for _s in SECTIONS:
    sections.get(_s)  # an unknown section fails here with the list of sections
TRAIN_THREADS = config["train_threads"]

REPO = Path(workflow.basedir)

WORK = str(paths.suite_dir(SUITE))
DATA = str(paths.data_dir(SUITE))
RUNS = str(paths.runs_dir(SUITE))
RESULTS = str(paths.results_dir(SUITE))
LOGS = str(paths.logs_dir(SUITE))
MODEL_PATTERN = "|".join(m.replace(".", r"\.") for m in MODELS)
DATASET_PATTERN = "|".join(paths.DATASETS)
# Datasets the suite trains on released pre-shuffled files (data.pretokenized): no order to build.
RELEASED_DATASETS = [d for d in paths.DATASETS if is_released(SUITE_CFG, d)]

# Where the analysis sections get checkpoints (config `checkpoints`, or the checkpoints_source /
# checkpoints_path shorthands); an unknown source, a missing local directory, a step that is not
# a checkpoint step or a model Pythia never released (hub) fails here, before any job runs.
CHECKPOINTS = {
    "source": config["checkpoints_source"] or config["checkpoints"]["source"],
    "path": config["checkpoints_path"] or config["checkpoints"]["path"],
    "steps": [int(s) for s in config["checkpoints"]["steps"]],  # --config gives strings
    "audit": config["checkpoints"].get("audit", "warn"),  # what the sections do with flagged ones
}
CATALOGUE = open_catalogue(SUITE_CFG, CHECKPOINTS["source"], CHECKPOINTS["path"] or None, CHECKPOINTS["steps"] or None)
for _m in MODELS:
    CATALOGUE.check_model(_m)
TRAINED_CHECKPOINTS = CATALOGUE.source is Source.trained
# Checkpoint steps the sections analyse (trained runs write all of them).
ANALYSIS_STEPS = CATALOGUE.selected

# The validation text of sections 03 and 06 (config `validation`): a tokenized file, or "" for the
# suite's own validation split (pythia/data/validation.py); a file of unknown format fails here.
VALIDATION = config["validation"]
VALIDATION_FILES = [str(f) for f in validation_files(VALIDATION)] if VALIDATION else []


def validation_inputs():
    """The validation text an evaluate job reads: the configured file (both halves of a .bin/.idx
    pair), else the suite's validation split."""
    return VALIDATION_FILES or [rules.data_tokenize.output.validation_bin]


def validation_args():
    """`` --validation FILE`` for the evaluate commands (pythia.cli.options.add_validation), or "":
    appended to their checkpoint options, so that without the key their params and shell command,
    and so their outputs, stay current."""
    return f" --validation {VALIDATION}" if VALIDATION else ""


# ------------------------------------------------------------------------------ digests
# Each rule's params carry the digest of the configuration it reads, so that editing the suite
# reruns exactly the jobs that depend on the edit (Snakemake's "params" rerun trigger).


def data_digest(stage):
    """The digest of the settings a data stage reads (for params of rules without wildcards)."""
    return stage_digest(SUITE_CFG, stage)


def order_digest(wildcards):
    """The data order of one dataset: documents, tokenizer, (dedup,) order settings."""
    return stage_digest(SUITE_CFG, "order", wildcards.dataset)


def job_digest(func):
    """A params function calling ``func(SUITE_CFG, **wildcards)`` for each job of a section's
    rules with wildcards: the digest of what one job reads (the function lives in
    pythia/analysis/<stem>.py), e.g. ``digest=job_digest(memorization.scan_digest)``."""

    def digest(wildcards):
        return func(SUITE_CFG, **dict(wildcards.items()))

    return digest


# ------------------------------------------------------------------------------ runs


def run_done(run, model):
    """``done.json`` of a finished run (what a job reading trained checkpoints depends on);
    ``run`` is a dataset, ``paths.run_name(dataset, variant)`` or a wildcard such as ``{dataset}``."""
    if not run.startswith("{"):
        paths.parse_run(run)  # an unknown run fails here, naming the datasets and variants
    return f"{RUNS}/{run}/{model}/done.json"


def checkpoint_inputs(run, model):
    """What a job reading the checkpoints of ``model`` in ``run`` waits for: the run's done.json
    when the checkpoints are trained here, nothing otherwise (local and hub checkpoints exist
    already). A list, to splice into the inputs, e.g.
    ``runs=[f for d in DATASETS for m in MODELS for f in checkpoint_inputs(d, m)]``."""
    return [run_done(run, model)] if TRAINED_CHECKPOINTS else []


def checkpoint_args():
    """The catalogue options of a section's command (pythia.cli.options.add_checkpoints), from the config."""
    path = f" --checkpoints-path {CHECKPOINTS['path']}" if CHECKPOINTS["path"] else ""
    steps = " ".join(str(s) for s in ANALYSIS_STEPS)
    audit = f" --audit {CHECKPOINTS['audit']}" if CHECKPOINTS["audit"] != "warn" else ""  # warn: the commands' default
    return f"--checkpoints-source {CATALOGUE.source.value}{path} --steps {steps}{audit}"


def runs_done(runs=None, models=None):
    """``done.json`` of every (run, model): by default the configured datasets' baseline runs."""
    return [run_done(r, m) for r in (runs or [paths.run_name(d) for d in DATASETS]) for m in (models or MODELS)]


# ------------------------------------------------------------------------------ seed runs
# The suite's `seeds` key (pythia.config.SeedsSpec): some models trained again on each configured
# dataset with other init and/or data-order seeds, as runs <dataset>-seed<N>, <dataset>-data-seed<N>,
# <dataset>-weight-seed<N> (pythia.paths.seed_run_name). Sections 01 and 02 draw their spread as
# bands; the other sections read the baseline runs only.
SEED_RUNS = [(r, m) for r, m in SUITE_CFG.seed_runs(DATASETS) if m in MODELS]
if CATALOGUE.source is Source.hub:  # PolyPythias: standard-seed<N> of 14M-410M, data-/weight-seed<N> of 160M
    SEED_RUNS = [(r, m) for r, m in SEED_RUNS if r in released_runs(m)]
SEED_RUN_PATTERN = f"({DATASET_PATTERN})-(seed|data-seed|weight-seed)[1-9][0-9]*"
for _run, _m in SEED_RUNS:  # a released dataset's order cannot be reshuffled here: say so before any job
    _dataset = paths.parse_run(_run)[0]
    if TRAINED_CHECKPOINTS and _dataset in RELEASED_DATASETS and SUITE_CFG.run_seeds(_run).data_seed != SUITE_CFG.data.seed:
        raise ValueError(
            f"seed run {_run} needs the {_dataset} data in another order, but suite {SUITE} trains on the released "
            f"pre-shuffled files (data.pretokenized); use seeds.vary: [weight], or download PolyPythias' reshuffled Pile"
        )


def seed_runs_done():
    """``done.json`` of every seed run of the configured datasets and models (none without ``seeds``)."""
    return [run_done(r, m) for r, m in SEED_RUNS]


def seed_run_args(wildcards):
    """``pythia train``'s options of the seed run ``wildcards.seedrun``: dataset, seed and what it varies."""
    dataset = paths.parse_run(wildcards.seedrun)[0]
    vary, seed = paths.parse_seed(wildcards.seedrun)
    return f"--dataset {dataset} --seed {seed} --vary {vary}"


def seed_run_eval_args(wildcards):
    """A section command's options for the seed run ``wildcards.seedrun``: ``--dataset D --run D-seed<N>``."""
    return f"--dataset {paths.parse_run(wildcards.seedrun)[0]} --run {wildcards.seedrun}"


def seed_run_order(wildcards):
    """The order a seed run trains on: its dataset's seeded order, or the baseline's (weight-seed runs)."""
    dataset = paths.parse_run(wildcards.seedrun)[0]
    data_seed = SUITE_CFG.run_seeds(wildcards.seedrun).data_seed
    if data_seed == SUITE_CFG.data.seed:
        return f"{DATA}/{dataset}/order.json"
    return f"{DATA}/{dataset}/seed{data_seed}/order.json"


def seed_order_digest(wildcards):
    """The seeded order of one dataset: the baseline order's settings and the seed."""
    return stage_digest(SUITE_CFG, "order", wildcards.dataset) + f"-seed{wildcards.seed}"


# ------------------------------------------------------------------------------ scheduling
# One-thread jobs per model run side by side; a job's time grows with its model's size. Started
# smallest first (Snakemake's order among equals), the largest ran last on one core while the other
# sat idle (section 06 on micro: 1.8 of 8.5 minutes). Largest first (longest-processing-time
# scheduling) keeps both busy until the end.
_SIZE_RANK = {m: i for i, m in enumerate(sorted(MODELS, key=lambda m: SUITE_CFG.total_params(SUITE_CFG.model(m))))}


def larger_first(wildcards):
    """A per-model rule's ``priority:``: the model's rank by parameter count (largest highest)."""
    return _SIZE_RANK[wildcards.model]


# ------------------------------------------------------------------------------ sections


def notebook(stem):
    """The source notebook ``notebooks/NN_<stem>.ipynb`` of a section."""
    return str(REPO / "notebooks" / f"{sections.get(stem).notebook}.ipynb")


def section_outputs(stem):
    """Every file a section's notebook writes, as named outputs (``output: **section_outputs(stem)``):
    ``nb`` the executed notebook; per figure ``<name>_png`` (in the report, caption
    ``report/<stem>/<name>.rst``), ``<name>_pdf``, ``<name>_data``; per table ``<name>_csv``, ``<name>_md``."""
    s = sections.get(stem)
    out = {"nb": str(s.executed_notebook(SUITE))}
    for f in s.figures:
        files = s.figure_files(SUITE, f.name)
        out[f"{f.name}_png"] = report(str(files["png"]), caption=f"../report/{stem}/{f.name}.rst",
                                      category=s.category, labels={"section": s.title, "figure": f.name})
        out[f"{f.name}_pdf"] = str(files["pdf"])
        out[f"{f.name}_data"] = str(files["data"])
    for t in s.tables:
        files = s.table_files(SUITE, t.name)
        out[f"{t.name}_csv"] = str(files["csv"])
        out[f"{t.name}_md"] = str(files["md"])
    return out


def optional_outputs(stem, names):
    """The files of a section's optional figures and tables called ``names`` (pythia.sections:
    ``optional_figures``, ``optional_tables``), named like :func:`section_outputs`'s, for a rule to
    add when their input is configured: ``output: **section_outputs(s), **optional_outputs(s, [...])``."""
    s = sections.get(stem)
    out = {}
    for f in s.optional_figures:
        if f.name in names:
            files = s.figure_files(SUITE, f.name)
            out[f"{f.name}_png"] = report(str(files["png"]), caption=f"../report/{stem}/{f.name}.rst",
                                          category=s.category, labels={"section": s.title, "figure": f.name})
            out[f"{f.name}_pdf"] = str(files["pdf"])
            out[f"{f.name}_data"] = str(files["data"])
    for t in s.optional_tables:
        if t.name in names:
            files = s.table_files(SUITE, t.name)
            out[f"{t.name}_csv"] = str(files["csv"])
            out[f"{t.name}_md"] = str(files["md"])
    return out


def section_params(stem, **values):
    """A notebook rule's params (``params: **section_params(stem, datasets=...)``): the suite, the
    notebook's other papermill parameters as JSON, and the digest of the config parts it reads."""
    return {
        "suite": SUITE,
        "nb_params": json.dumps(values, sort_keys=True),
        "digest": sections.get(stem).digest(SUITE_CFG),
    }


def section_log(stem):
    return f"{LOGS}/notebooks/{sections.get(stem).notebook}.log"


# The one papermill pattern every section notebook uses: parameters from the config, the
# executed notebook kept under results/<suite>/notebooks/, everything it prints in the log.
PAPERMILL = (
    "papermill {input.nb} {output.nb} --kernel python3 --log-output"
    " -p suite {params.suite} -p project_dir $PWD -y {params.nb_params:q} &> {log}"
)


# ------------------------------------------------------------------------------ targets
# Each section file (rules/<stem>.smk) calls register_targets(stem, [...]) with its final outputs.

SECTION_TARGETS = {}
# Final outputs of the rule files that are not a section (the checkpoint audit in rules/checkpoints.smk).
TOOL_TARGETS = []


def register_targets(stem, targets):
    sections.get(stem)
    SECTION_TARGETS.setdefault(stem, []).extend(targets)


def all_targets():
    """Every final output of the sections named in the config."""
    missing = [s for s in SECTIONS if s not in SECTION_TARGETS]
    if missing:
        raise ValueError(f"sections {missing} registered no targets: their rules/<stem>.smk must call register_targets")
    return [t for s in SECTIONS for t in SECTION_TARGETS[s]] + TOOL_TARGETS
