# Section 05, term frequencies (pythia/evaluate/term_frequencies.py counts and evaluates,
# pythia/analysis/term_frequencies.py makes the tables and figures): operand counts in the
# training data seen up to each checkpoint, and few-shot arithmetic accuracy against them.
#   term_frequencies_counts    one pass over a dataset's pre-shuffled training order (ours or
#                              Pythia's released files), counts per step range [range x number];
#                              resumable: finished ranges are kept beside the output. On built
#                              data through the n-gram index (work/<suite>/cache/ngram): only
#                              the rows holding a digit are decoded, the same counts; not on
#                              the released files (an index of 300B tokens needs ~3 TB)
#   term_frequencies_evaluate  the arithmetic prompts as lm-eval generate_until tasks on every
#                              evaluated checkpoint of one (dataset, model), cached per checkpoint
#   term_frequencies_notebook  figures and tables (nothing there needs a checkpoint)
# Which checkpoints, k and operands: the suite's analysis.term_frequencies (paper defaults).


from pythia.evaluate import term_frequencies


TERM_FREQUENCIES_DIR = f"{WORK}/term_frequencies"


rule term_frequencies_counts:
    input:
        order=f"{DATA}/{{dataset}}/order.json",  # the built order, or the checked released file
        tokenizer=rules.data_tokenizer.output.tokenizer,
    output:
        counts=f"{TERM_FREQUENCIES_DIR}/counts/{{dataset}}.npz",
        info=f"{TERM_FREQUENCIES_DIR}/counts/{{dataset}}.json",
    params:
        suite=SUITE,
        digest=job_digest(term_frequencies.counts_digest),
        steps=" ".join(str(s) for s in ANALYSIS_STEPS),
        index=lambda w: "" if w.dataset in RELEASED_DATASETS else "--index",
    log:
        f"{LOGS}/term_frequencies/counts/{{dataset}}.log",
    threads: TRAIN_THREADS
    resources:
        mem_mb=4000,
        runtime=600,
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia term-frequencies count --suite {params.suite} --dataset {wildcards.dataset}"
        " --out {output.counts} --workers {threads} --steps {params.steps} {params.index}"
        " --no-progress &> {log}"


rule term_frequencies_evaluate:
    input:
        ckpt=checkpoint_inputs("{dataset}", "{model}"),
    output:
        results=f"{TERM_FREQUENCIES_DIR}/eval/{{dataset}}/{{model}}.parquet",
        info=f"{TERM_FREQUENCIES_DIR}/eval/{{dataset}}/{{model}}.json",
    params:
        suite=SUITE,
        digest=job_digest(term_frequencies.evaluation_digest),
        catalogue=checkpoint_args(),
    log:
        f"{LOGS}/term_frequencies/eval/{{dataset}}/{{model}}.log",
    threads: 1
    priority: larger_first
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=240,
    conda:
        "../envs/pythia.yaml"
    shell:
        "( if [ {resources.gpu} -gt 0 ]; then DEV='--device cuda --dtype bfloat16'; else DEV='--device cpu'; fi;"
        " OMP_NUM_THREADS={threads} pythia term-frequencies evaluate --suite {params.suite}"
        " --dataset {wildcards.dataset} --model {wildcards.model} --out {output.results} $DEV"
        " {params.catalogue} --no-progress ) &> {log}"


rule term_frequencies_notebook:
    input:
        nb=notebook("term_frequencies"),
        counts=expand(f"{TERM_FREQUENCIES_DIR}/counts/{{dataset}}.npz", dataset=DATASETS),
        results=expand(f"{TERM_FREQUENCIES_DIR}/eval/{{dataset}}/{{model}}.parquet", dataset=DATASETS, model=MODELS),
    output:
        **section_outputs("term_frequencies"),
    params:
        **section_params("term_frequencies", datasets=DATASETS, models=MODELS),
    log:
        section_log("term_frequencies"),
    conda:
        "../envs/pythia.yaml"
    shell:
        PAPERMILL


register_targets("term_frequencies", [rules.term_frequencies_notebook.output.nb])
