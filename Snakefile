# The Pythia compendium workflow: raw text -> data -> models -> every figure.
#   make reproduce                                   the micro suite on this machine
#   snakemake --cores all --profile slurm --config suite=pythia    the real sizes on a cluster
# This file is an index: configuration, validation, rule files, and the final targets.

import os

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, "config/schema.yaml")


include: "rules/common.smk"


wildcard_constraints:
    suite=SUITE,
    dataset="|".join(DATASETS),
    model=MODEL_PATTERN,


include: "rules/suite.smk"
include: "rules/data.smk"
include: "rules/training.smk"


rule all:
    input:
        all_targets(),
    default_target: True
