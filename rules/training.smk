# Training: one job per (dataset, model) of the configured suite, `pythia train` on the
# pre-shuffled data (batch s at step s). Outputs under work/<suite>/models/<dataset>/<model>/:
# step{N}/ checkpoints (Hugging Face dirs), state/step{N}/, train_log.jsonl, run.json, and
# done.json (written last: final loss, validation loss, weight and log hashes) which is
# the rule's output. `--resume` makes a rerun after a crash or a kill continue from the
# latest saved state instead of starting over (a finished run only rewrites done.json).
#
# On a CPU machine a job uses `threads` torch threads. Where the profile gives the rule GPUs
# (profiles/slurm: set-resources train: gpu: N), the job runs N data-parallel ranks with
# torchrun through the DeepSpeed engine (ZeRO stage from the suite, bf16/fp16 per model).

TRAIN_DONE = expand(
    "work/{suite}/models/{dataset}/{model}/done.json", suite=SUITE, dataset=DATASETS, model=MODELS
)


rule train:
    wildcard_constraints:
        suite=SUITE,
        dataset="standard|deduped",
        model=MODEL_PATTERN,
    input:
        sequences="work/{suite}/data/{dataset}/sequences.bin",
        tokenizer="work/{suite}/data/tokenizer/tokenizer.json",
        validation="work/{suite}/data/validation_text_document.bin",
    output:
        done="work/{suite}/models/{dataset}/{model}/done.json",
    log:
        "logs/{suite}/train/{dataset}/{model}.log",
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
        " --suite {wildcards.suite} --model {wildcards.model} --dataset {wildcards.dataset}"
        " --resume --device cuda --deepspeed --no-progress;"
        " else"
        " pythia train --suite {wildcards.suite} --model {wildcards.model} --dataset {wildcards.dataset}"
        " --resume --threads {threads} --no-progress;"
        " fi ) &> {log}"
