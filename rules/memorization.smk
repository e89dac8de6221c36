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


from pythia.analysis import memorization

MEMORIZATION = config["memorization"]
MEMORIZATION_SCAN = f"{WORK}/memorization/{{dataset}}/{{model}}/scan.json"
MEMORIZATION_DUPLICATES = f"{WORK}/memorization/{{dataset}}/{{model}}/duplicates.parquet"
MEMORIZATION_DTYPE = " --dtype bfloat16" if MEMORIZATION["device"] == "cuda" else ""


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


rule memorization_notebook:
    input:
        nb=notebook("memorization"),
        scans=expand(MEMORIZATION_SCAN, dataset=DATASETS, model=MODELS),
        duplicates=expand(MEMORIZATION_DUPLICATES, dataset=DATASETS, model=MODELS),
        bench=rules.memorization_bench.output.bench,
    output:
        **section_outputs("memorization"),
    params:
        **section_params(
            "memorization",
            datasets=DATASETS,
            models=MODELS,
            windows=MEMORIZATION["windows"],
        ),
    log:
        section_log("memorization"),
    conda:
        "../envs/pythia.yaml"
    shell:
        PAPERMILL


register_targets("memorization", [rules.memorization_notebook.output.nb])
