# Section 01, training. One `train` job per (dataset, model) of the configured suite,
# `pythia train` on the pre-shuffled data (batch s at step s). Outputs under
# work/<suite>/models/<run>/<model>/ (pythia.paths.run_dir; the baseline run of a dataset is
# named after it): step{N}/ checkpoints (Hugging Face dirs), state/step{N}/, train_log.jsonl,
# run.json, and done.json (written last: final loss, validation loss, weight and log hashes),
# which is the rule's output. `--resume` makes a rerun after a crash or a kill continue from
# the latest saved state; `--replace-stale` starts over when the suite's settings for this run
# changed (params.digest is pythia.train.checkpoint.run_digest: model, training, data order).
#
# On a CPU machine a job uses `threads` torch threads. Where the profile gives the rule GPUs
# (profiles/slurm: set-resources train: gpu: N), the job runs N data-parallel ranks with
# torchrun through the DeepSpeed engine (ZeRO stage from the suite, bf16/fp16 per model).
# Sections that read checkpoints wait for them with checkpoint_inputs(run, model) (rules/common.smk).


rule train:
    input:
        order=f"{DATA}/{{dataset}}/order.json",  # the built order, or the checked released file
        tokenizer=rules.data_tokenizer.output.tokenizer,
        validation=rules.data_tokenize.output.validation_bin,
    output:
        done=f"{RUNS}/{{dataset}}/{{model}}/done.json",
    params:
        suite=SUITE,
        digest=job_digest(run_digest),
    log:
        f"{LOGS}/train/{{dataset}}/{{model}}.log",
    threads: TRAIN_THREADS
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/pythia.yaml"
    shell:
        "( if [ {resources.gpu} -gt 0 ]; then"
        " torchrun --standalone --nproc_per_node {resources.gpu} -m pythia.cli train"
        " --suite {params.suite} --model {wildcards.model} --dataset {wildcards.dataset}"
        " --resume --replace-stale --device cuda --deepspeed --no-progress;"
        " else"
        " pythia train --suite {params.suite} --model {wildcards.model} --dataset {wildcards.dataset}"
        " --resume --replace-stale --threads {threads} --no-progress;"
        " fi ) &> {log}"


# Seed runs (suite key seeds; rules/common.smk SEED_RUNS): the same `pythia train` with --seed N
# --vary both|data|weight into work/<suite>/models/<dataset>-[data-|weight-]seed<N>/<model>/, on the
# dataset's order built with data-order seed N (rule data_order_seed) or, for weight-seed runs, the
# baseline's order. params.digest adds the run's seeds to the baseline's digest.
rule train_seed:
    wildcard_constraints:
        seedrun=SEED_RUN_PATTERN,
    input:
        order=seed_run_order,
        tokenizer=rules.data_tokenizer.output.tokenizer,
        validation=rules.data_tokenize.output.validation_bin,
    output:
        done=f"{RUNS}/{{seedrun}}/{{model}}/done.json",
    params:
        suite=SUITE,
        run=seed_run_args,
        digest=job_digest(seed_run_digest),
    log:
        f"{LOGS}/train/{{seedrun}}/{{model}}.log",
    threads: TRAIN_THREADS
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/pythia.yaml"
    shell:
        "( if [ {resources.gpu} -gt 0 ]; then"
        " torchrun --standalone --nproc_per_node {resources.gpu} -m pythia.cli train"
        " --suite {params.suite} --model {wildcards.model} {params.run}"
        " --resume --replace-stale --device cuda --deepspeed --no-progress;"
        " else"
        " pythia train --suite {params.suite} --model {wildcards.model} {params.run}"
        " --resume --replace-stale --threads {threads} --no-progress;"
        " fi ) &> {log}"


# The training section's notebook: suite, data card and order, loss curves, LR schedule,
# throughput, and the proof that every logged batch hash equals the batch viewer's.
rule training_notebook:
    input:
        nb=notebook("training"),
        done=runs_done(),
        seed_runs=seed_runs_done(),
        card=rules.data_card.output.card,
        orders=expand(f"{DATA}/{{dataset}}/order.json", dataset=DATASETS),
    output:
        **section_outputs("training"),
        **optional_outputs("training", ["loss_seed_bands", "seed_spread"] if SEED_RUNS else []),
    params:
        **section_params("training", datasets=DATASETS, models=MODELS),
    log:
        section_log("training"),
    conda:
        "../envs/pythia.yaml"
    shell:
        PAPERMILL


# With local or hub checkpoints nothing is trained here, and there are no training logs to show.
register_targets("training", runs_done() + seed_runs_done() + [rules.training_notebook.output.nb] if TRAINED_CHECKPOINTS else [])
