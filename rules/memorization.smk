# Section 04, memorization: one scan job per (dataset, model) runs `pythia memorization scan`
# (pythia/evaluate/memorization.py) over every selected checkpoint, each on every training
# sequence it has seen (exact greedy-memorization flags and leading match runs from one
# teacher-forced pass; fractional scores of every score_stride-th sequence); it writes
# work/<suite>/memorization/<dataset>/<model>/step<N>.parquet and, last, scan.json (the output).
# Blocks of scanned sequences are cached per checkpoint under work/<suite>/cache/memorization/.
# The same job then writes duplicates.parquet (--duplicates): each scanned sequence's duplicate
# count (its first k + l tokens as a window of the training rows, counted exactly), the final
# checkpoint's leading run and, for up to 1,000 rows per duplicate-count bin, its teacher-forced
# accuracy (one forward pass per row; micro: about 20 s more over the ten jobs).
# The notebook counts memorized sequences per window, tests them against a Poisson and shows
# memorization over training, position and size (pythia/analysis/memorization.py).
# With memorization.released set (a hub dataset id such as EleutherAI/pythia-memorized-evals, or a
# local folder/file in its shape), one job per (dataset, model) runs `pythia memorization released`
# (pythia/evaluate/memorization_released.py): the model's released memorized sequences, fetched
# (the hub: only its split) and checked against our training rows, into released.parquet; the
# notebook then writes the optional table released_agreement (our scan of the final checkpoint
# against the release, on the rows our scan covered). A model the release has no split for
# (14M, 31M) gets an empty set saying so. Unset (micro's default), none of this runs.


from pythia.analysis import memorization
from pythia.evaluate import memorization_released

MEMORIZATION = config["memorization"]
MEMORIZATION_SCAN = f"{WORK}/memorization/{{dataset}}/{{model}}/scan.json"
MEMORIZATION_DUPLICATES = f"{WORK}/memorization/{{dataset}}/{{model}}/duplicates.parquet"
MEMORIZATION_DTYPE = " --dtype bfloat16" if MEMORIZATION["device"] == "cuda" else ""
MEMORIZATION_RELEASED = MEMORIZATION.get("released", "")
MEMORIZATION_RELEASED_FILE = f"{WORK}/memorization/{{dataset}}/{{model}}/released.parquet"
# the optional table, declared only when its input is configured
MEMORIZATION_OUTPUTS = {
    **section_outputs("memorization"),
    **optional_outputs("memorization", ["released_agreement"] if MEMORIZATION_RELEASED else []),
}


rule memorization_scan:
    input:
        ckpt=checkpoint_inputs("{dataset}", "{model}"),
        order=f"{DATA}/{{dataset}}/order.json",
    output:
        scan=MEMORIZATION_SCAN,
        duplicates=MEMORIZATION_DUPLICATES,
    params:
        suite=SUITE,
        checkpoints=checkpoint_args(),
        options=(
            f"--prompt {MEMORIZATION['prompt']} --continuation {MEMORIZATION['continuation']}"
            f" --score-stride {MEMORIZATION['score_stride']} --data-stride {MEMORIZATION['data_stride']}"
            f" --device {MEMORIZATION['device']}{MEMORIZATION_DTYPE}"
        ),
        digest=job_digest(memorization.scan_digest),
    log:
        f"{LOGS}/memorization/{{dataset}}/{{model}}.log",
    threads: 1
    priority: larger_first
    resources:
        gpu=1 if MEMORIZATION["device"] == "cuda" else 0,
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia memorization scan --suite {params.suite} --dataset {wildcards.dataset} --model {wildcards.model}"
        " {params.checkpoints} {params.options} --threads {threads} --out {output.scan}"
        " --duplicates {output.duplicates} --no-progress &> {log}"


# The scan against model.generate on the same training sequences of the largest model's last
# checkpoint (pythia bench memorization): tokens/s of each, and identical flags and scores. One
# round (the ratio is a median over its batches); `pythia bench memorization` alone runs two.
rule memorization_bench:
    input:
        ckpt=checkpoint_inputs(DATASETS[0], MODELS[-1]),
        order=f"{DATA}/{DATASETS[0]}/order.json",
    output:
        bench=f"{WORK}/memorization/bench.json",
    params:
        suite=SUITE,
        checkpoints=checkpoint_args(),
        options=(
            f"--model {MODELS[-1]} --dataset {DATASETS[0]} --rows {MEMORIZATION['bench_rows']}"
            f" --prompt {MEMORIZATION['prompt']} --continuation {MEMORIZATION['continuation']}"
            f" --device {MEMORIZATION['device']} --rounds 1"
        ),
        digest=memorization.scan_digest(SUITE_CFG, DATASETS[0], MODELS[-1]),
    log:
        f"{LOGS}/memorization/bench.log",
    threads: 1
    # with the largest model's scans, not alone on one core after every scan has finished
    priority: len(MODELS) - 1
    resources:
        gpu=1 if MEMORIZATION["device"] == "cuda" else 0,
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia bench memorization --suite {params.suite} {params.options} {params.checkpoints}"
        " --threads {threads} --out {output.bench} &> {log}"


if MEMORIZATION_RELEASED:

    rule memorization_released:
        input:
            order=f"{DATA}/{{dataset}}/order.json",
            # a local source is an input: editing it reruns the job (a hub source is keyed by the
            # commit it resolves to, written into the file)
            local=[] if memorization_released.is_hub_id(MEMORIZATION_RELEASED) else [MEMORIZATION_RELEASED],
        output:
            released=MEMORIZATION_RELEASED_FILE,
        params:
            suite=SUITE,
            source=MEMORIZATION_RELEASED,
        log:
            f"{LOGS}/memorization/{{dataset}}/{{model}}.released.log",
        threads: 1
        conda:
            "../envs/pythia.yaml"
        shell:
            "pythia memorization released --suite {params.suite} --dataset {wildcards.dataset}"
            " --model {wildcards.model} --source {params.source:q} --allow-missing-split"
            " --out {output.released} &> {log}"


rule memorization_notebook:
    input:
        nb=notebook("memorization"),
        scans=expand(MEMORIZATION_SCAN, dataset=DATASETS, model=MODELS),
        duplicates=expand(MEMORIZATION_DUPLICATES, dataset=DATASETS, model=MODELS),
        bench=rules.memorization_bench.output.bench,
        released=expand(MEMORIZATION_RELEASED_FILE, dataset=DATASETS, model=MODELS)
        if MEMORIZATION_RELEASED
        else [],
    output:
        **MEMORIZATION_OUTPUTS,
    params:
        **section_params(
            "memorization",
            datasets=DATASETS,
            models=MODELS,
            windows=MEMORIZATION["windows"],
            # only when set: unset, the notebook's parameters (and so its rerun trigger) stay as they were
            **({"released": MEMORIZATION_RELEASED} if MEMORIZATION_RELEASED else {}),
        ),
    log:
        section_log("memorization"),
    conda:
        "../envs/pythia.yaml"
    shell:
        PAPERMILL


register_targets("memorization", [rules.memorization_notebook.output.nb])
