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
        order="work/{suite}/data/{dataset}/order.json",  # the built order, or the checked released file
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


# The training section's notebook: suite, data card, loss curves, LR schedule, throughput,
# and the proof that every logged batch hash equals the batch viewer's.
TRAINING_RESULTS = f"{RESULTS}/training"


rule notebook_training:
    input:
        nb=notebook("01_training"),
        done=TRAIN_DONE,
        card=f"{WORK}/data/card.json",
    output:
        nb=f"{RESULTS}/notebooks/01_training.ipynb",
        loss_curves=report(f"{TRAINING_RESULTS}/loss_curves.png", caption="../report/loss_curves.rst", category="Training"),
        val_loss=report(f"{TRAINING_RESULTS}/val_loss.png", caption="../report/val_loss.rst", category="Training"),
        loss_vs_size=report(f"{TRAINING_RESULTS}/loss_vs_size.png", caption="../report/loss_vs_size.rst", category="Training"),
        lr_schedule=report(f"{TRAINING_RESULTS}/lr_schedule.png", caption="../report/lr_schedule.rst", category="Training"),
        throughput=report(f"{TRAINING_RESULTS}/throughput.png", caption="../report/throughput.rst", category="Training"),
        data_card=f"{TRAINING_RESULTS}/data_card.csv",
        final_losses=f"{TRAINING_RESULTS}/final_losses.csv",
        throughput_table=f"{TRAINING_RESULTS}/throughput.csv",
        batch_proof=f"{TRAINING_RESULTS}/batch_proof.csv",
    params:
        suite=SUITE,
        nb_params=nb_params(datasets=DATASETS, models=MODELS),
    log:
        f"{LOGS}/notebooks/01_training.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        PAPERMILL
