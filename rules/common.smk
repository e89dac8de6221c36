# Shared settings and helpers of the workflow. No lambdas in rules: functions live here.

import json
from pathlib import Path

from pythia.config import load_suite, register_suite_file
from pythia.data.released import is_released
from pythia.runs import Source, open_catalogue

REPO = Path(workflow.basedir)

# A suite given as a YAML path is found by name from then on (in this process and in jobs).
if config["suite"].endswith((".yaml", ".yml")):
    SUITE_CFG = register_suite_file(config["suite"])
else:
    SUITE_CFG = load_suite(config["suite"])

SUITE = SUITE_CFG.name
DATASETS = list(config["datasets"])
MODELS = list(config["models"]) or list(SUITE_CFG.models)
for _m in MODELS:
    SUITE_CFG.model(_m)  # an unknown model fails here with the suite's model list
SECTIONS = list(config["sections"])
TRAIN_THREADS = config["train_threads"]

RESULTS = f"results/{SUITE}"
LOGS = f"logs/{SUITE}"
WORK = f"work/{SUITE}"
MODEL_PATTERN = "|".join(m.replace(".", r"\.") for m in MODELS)
# Datasets the suite trains on released pre-shuffled files (data.pretokenized): no order to build.
RELEASED_DATASETS = [d for d in ("standard", "deduped") if is_released(SUITE_CFG, d)]

# Where the analysis sections get checkpoints (config `checkpoints`, or the checkpoints_source /
# checkpoints_path shorthands); an unknown source, a missing local directory, a step that is not
# a checkpoint step or a model Pythia never released (hub) fails here, before any job runs.
CHECKPOINTS = {
    "source": config["checkpoints_source"] or config["checkpoints"]["source"],
    "path": config["checkpoints_path"] or config["checkpoints"]["path"],
    "steps": [int(s) for s in config["checkpoints"]["steps"]],  # --config gives strings
}
CATALOGUE = open_catalogue(SUITE_CFG, CHECKPOINTS["source"], CHECKPOINTS["path"] or None, CHECKPOINTS["steps"] or None)
for _m in MODELS:
    CATALOGUE.check_model(_m)
TRAINED_CHECKPOINTS = CATALOGUE.source is Source.trained
# Checkpoint steps the sections analyse (trained runs write all of them).
ANALYSIS_STEPS = CATALOGUE.selected



def notebook(stem):
    """The source notebook ``notebooks/<stem>.ipynb`` of a section."""
    return str(REPO / "notebooks" / f"{stem}.ipynb")


# The one papermill pattern every section notebook uses: parameters from the config (each
# notebook's rule sets params.suite and params.nb_params, a JSON object of the notebook's
# other parameters), the executed notebook kept under results/<suite>/notebooks/,
# everything it prints in the log.
PAPERMILL = (
    "papermill {input.nb} {output.nb} --kernel python3 --log-output"
    " -p suite {params.suite} -p project_dir $PWD -y {params.nb_params:q} &> {log}"
)


def checkpoint_inputs(dataset, model):
    """Inputs that must exist before a section reads the checkpoints of ``model`` on ``dataset``:
    the run's done.json when the checkpoints are trained here, nothing otherwise (local and hub
    checkpoints exist already). In a section's ``input:``, e.g.
    ``runs=[f for d in DATASETS for m in MODELS for f in checkpoint_inputs(d, m)]``."""
    if TRAINED_CHECKPOINTS:
        return [f"{WORK}/models/{dataset}/{model}/done.json"]
    return []


def checkpoint_args():
    """The catalogue options of a section's command (pythia.runs.add_arguments), from the config."""
    path = f" --checkpoints-path {CHECKPOINTS['path']}" if CHECKPOINTS["path"] else ""
    steps = " ".join(str(s) for s in ANALYSIS_STEPS)
    return f"--checkpoints-source {CATALOGUE.source.value}{path} --steps {steps}"


def nb_params(**values):
    """A notebook's extra papermill parameters as a JSON object (valid YAML for ``-y``)."""
    return json.dumps(values, sort_keys=True)


def all_targets():
    """Every final output of the sections named in the config."""
    targets = []
    if "suite" in SECTIONS:
        targets += [f"{RESULTS}/notebooks/00_suite.ipynb"]
    if "data" in SECTIONS:
        targets += DATA_TARGETS
    if "training" in SECTIONS and TRAINED_CHECKPOINTS:  # local / hub checkpoints: nothing to train
        targets += TRAIN_DONE + [f"{RESULTS}/notebooks/01_training.ipynb"]
    return targets
