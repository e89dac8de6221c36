# Section 06, training trajectories (after Xia et al., "Training Trajectories of Language Models
# Across Scales"): per-token losses of held-out text at every checkpoint of every size, token
# classes and same-perplexity overlays, hallucination-like sequences, perplexity vs in-context
# accuracy. Heavy work is `pythia training-trajectories ...` (pythia/evaluate/training_trajectories.py),
# with scores and lm-eval results cached per checkpoint under work/<suite>/cache/; outputs under
# work/<suite>/training_trajectories/. Sizes: the suite's analysis.training_trajectories.
#
#   tasks     the multiple-choice in-context tasks as lm-eval YAML + JSONL (one job)
#   generate  contrastive decoding with the smallest and largest model, per dataset
#   evaluate  every analysed checkpoint of one (dataset, model): losses.npz + icl.csv (validation
#             text: the suite's split, or the tokenized file of config `validation`)


from functools import partial

from pythia.analysis import training_trajectories as trajectories_analysis

TRAJECTORIES_WORK = f"{WORK}/training_trajectories"
TRAJECTORIES_PAIR = [MODELS[0], MODELS[-1]]  # the contrast: smallest and largest configured model


rule training_trajectories_tasks:
    output:
        tasks=f"{TRAJECTORIES_WORK}/tasks/tasks.json",
    params:
        suite=SUITE,
        digest=trajectories_analysis.tasks_digest(SUITE_CFG),
    log:
        f"{LOGS}/training_trajectories/tasks.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia training-trajectories tasks --suite {params.suite} --out $(dirname {output.tasks}) &> {log}"


rule training_trajectories_generate:
    input:
        ckpt=[f for m in TRAJECTORIES_PAIR for f in checkpoint_inputs("{dataset}", m)],
        test=rules.data_tokenize.output.test_bin,
    output:
        hallucination=f"{TRAJECTORIES_WORK}/{{dataset}}/hallucination.npz",
    params:
        suite=SUITE,
        small=TRAJECTORIES_PAIR[0],
        large=TRAJECTORIES_PAIR[1],
        ckpt=checkpoint_args(),
        digest=job_digest(partial(trajectories_analysis.generate_digest, models=TRAJECTORIES_PAIR)),
    log:
        f"{LOGS}/training_trajectories/{{dataset}}/generate.log",
    threads: 1
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia training-trajectories generate --suite {params.suite} --dataset {wildcards.dataset}"
        " --small {params.small} --large {params.large} --out {output.hallucination} {params.ckpt}"
        " --threads {threads} &> {log}"


rule training_trajectories_evaluate:
    input:
        ckpt=checkpoint_inputs("{dataset}", "{model}"),
        validation=validation_inputs(),
        hallucination=rules.training_trajectories_generate.output.hallucination,
        tasks=rules.training_trajectories_tasks.output.tasks,
    output:
        losses=f"{TRAJECTORIES_WORK}/{{dataset}}/{{model}}/losses.npz",
        icl=f"{TRAJECTORIES_WORK}/{{dataset}}/{{model}}/icl.csv",
    params:
        suite=SUITE,
        ckpt=checkpoint_args() + validation_args(),
        digest=job_digest(trajectories_analysis.evaluate_digest),
    log:
        f"{LOGS}/training_trajectories/{{dataset}}/{{model}}.log",
    threads: 1
    priority: larger_first
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia training-trajectories evaluate --suite {params.suite} --dataset {wildcards.dataset}"
        " --model {wildcards.model} --hallucination {input.hallucination} --tasks $(dirname {input.tasks})"
        " --out-dir $(dirname {output.losses}) {params.ckpt} --threads {threads} --no-progress &> {log}"


rule training_trajectories_notebook:
    input:
        nb=notebook("training_trajectories"),
        losses=expand(rules.training_trajectories_evaluate.output.losses, dataset=DATASETS, model=MODELS),
        icl=expand(rules.training_trajectories_evaluate.output.icl, dataset=DATASETS, model=MODELS),
    output:
        **section_outputs("training_trajectories"),
    params:
        **section_params("training_trajectories", datasets=DATASETS, models=MODELS),
    log:
        section_log("training_trajectories"),
    conda:
        "../envs/pythia.yaml"
    shell:
        PAPERMILL


register_targets("training_trajectories", [rules.training_trajectories_notebook.output.nb])
