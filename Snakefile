# The Pythia compendium workflow: raw text -> data -> models -> every figure.
#   make reproduce                                   the micro suite on this machine
#   pythia workflow run --profile slurm --config suite=pythia    the real sizes on a cluster
# This file is an index: configuration, validation, rule files, and the final targets.
# Sections (pythia/sections.py, in the paper's order) each have rules/<stem>.smk, which
# registers its targets; docs/sections.md says how to add one.

import os
import sys

from snakemake.utils import min_version, validate

# jsonschema imports rfc3987_syntax when it is installed (the Jupyter stack pulls it in), which
# compiles 38 grammars at import: 4 s of every workflow start, for the "iri" format check that
# validate() never runs (it checks no formats). Without it jsonschema only lacks that check.
sys.modules.setdefault("rfc3987_syntax", None)

from pythia import sections
from pythia.workflow_config import typed_config

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# Nested --config values arrive as strings ('0', 'null'): typed as the schema says, then validated.
config.update(typed_config(config, os.path.join(workflow.basedir, "config", "schema.yaml")))
validate(config, "config/schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    dataset=DATASET_PATTERN,
    model=MODEL_PATTERN,


# Data of the suite, built for every section that trains or reads training data.
include: "rules/data.smk"


for _section in sections.SECTIONS:

    include: f"rules/{_section.stem}.smk"


# The checkpoint audit (not a section): results/<suite>/checkpoints/audit.csv and its grid.
include: "rules/checkpoints.smk"


# Jobs of seconds run where Snakemake runs (the login node under --profile slurm), never as
# cluster jobs, which pay 10-15 s each of start-up and status polling: the section notebooks,
# the evaluation task writers and the archive fetch (both may download: login nodes have the
# network that compute nodes often lack). tests/test_slurm.py checks that every *_notebook and
# *_tasks rule is listed.
localrules:
    all,
    data_fetch,
    benchmarks_tasks,
    gender_intervention_tasks,
    training_trajectories_tasks,
    suite_notebook,
    training_notebook,
    benchmarks_notebook,
    gender_intervention_notebook,
    memorization_notebook,
    term_frequencies_notebook,
    training_trajectories_notebook,


rule all:
    input:
        all_targets(),
    default_target: True
