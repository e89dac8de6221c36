# Shared settings and helpers of the workflow. No lambdas in rules: functions live here.

import json
from pathlib import Path

from pythia.config import load_suite, register_suite_file

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
    if "training" in SECTIONS:
        targets += TRAIN_DONE + [f"{RESULTS}/notebooks/01_training.ipynb"]
    return targets
