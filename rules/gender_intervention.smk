# Section 03, the gender intervention (pythia/data/pronouns.py, pythia/train/intervened_runs.py,
# pythia/train/intervention.py, pythia/evaluate/bias.py, pythia/evaluate/gender_intervention.py,
# pythia/analysis/gender_intervention.py, pythia/cli/gender_intervention.py). The suite's
# intervention.runs say which models continue from which point: one `gender_intervention_train`
# job per (variant, model) resumes the baseline's saved state and trains to the end on
# pronoun-swapped batches, into the run variant work/<suite>/models/<dataset>-<variant>/<model>/
# (not a new data build). One `gender_intervention_evaluate` job per (run, model) scores every
# window checkpoint: CrowS-Pairs gender and WinoBias through lm-eval (offline YAMLs written by
# `gender_intervention_tasks`), the she/he log-odds on held-out text, the validation loss (the
# suite's validation split, or the tokenized file of config `validation`) and the in-corpus cloze
# (LM quality). With local or hub checkpoints nothing is trained: the baselines'
# windows are evaluated and the published intervention numbers shown.


from pythia.analysis import gender_intervention as gender_iv

GENDER_IV_DATASET = SUITE_CFG.intervention.dataset
GENDER_IV_JOBS = gender_iv.jobs(SUITE_CFG, MODELS, TRAINED_CHECKPOINTS)
GENDER_IV_RUNS = [r for r, _ in GENDER_IV_JOBS]
GENDER_IV_MODELS = [m for _, m in GENDER_IV_JOBS]
GENDER_IV_TRAINED = [(r, m) for r, m in GENDER_IV_JOBS if r != GENDER_IV_DATASET]
GENDER_IV_WORK = f"{WORK}/gender_intervention"


rule gender_intervention_train:
    input:
        baseline=run_done(GENDER_IV_DATASET, "{model}"),
    output:
        done=f"{RUNS}/{GENDER_IV_DATASET}-{{variant}}/{{model}}/done.json",
    wildcard_constraints:
        variant="|".join(paths.VARIANTS),
    params:
        suite=SUITE,
        digest=job_digest(gender_iv.train_digest),
    log:
        f"{LOGS}/gender_intervention/train/{{variant}}/{{model}}.log",
    threads: TRAIN_THREADS
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia gender-intervention train --suite {params.suite} --model {wildcards.model}"
        " --variant {wildcards.variant} --resume --replace-stale --threads {threads} --no-progress &> {log}"


rule gender_intervention_tasks:
    input:
        test=rules.data_documents.output.test,
        train=rules.data_documents.output.train,
        tokenizer=rules.data_tokenizer.output.tokenizer,
    output:
        tasks=directory(f"{GENDER_IV_WORK}/tasks"),
    params:
        suite=SUITE,
        examples=SUITE_CFG.analysis.benchmarks_examples,
    log:
        f"{LOGS}/gender_intervention/tasks.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia gender-intervention tasks --suite {params.suite} --examples {params.examples} --out {output.tasks} &> {log}"


rule gender_intervention_evaluate:
    input:
        ckpt=checkpoint_inputs("{run}", "{model}"),
        tasks=rules.gender_intervention_tasks.output.tasks,
        validation=validation_inputs(),
        heldout=rules.data_tokenize.output.test_bin,
    output:
        measures=f"{GENDER_IV_WORK}/measures/{{run}}/{{model}}.csv",
    wildcard_constraints:
        run="|".join(sorted(set(GENDER_IV_RUNS), key=len, reverse=True)) or "none",
    params:
        suite=SUITE,
        catalogue=checkpoint_args() + validation_args(),
        digest=job_digest(gender_iv.eval_digest),
    log:
        f"{LOGS}/gender_intervention/evaluate/{{run}}/{{model}}.log",
    threads: TRAIN_THREADS
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia gender-intervention evaluate --suite {params.suite} --run {wildcards.run} --model {wildcards.model}"
        " --tasks {input.tasks} --out {output.measures} --threads {threads} {params.catalogue} --no-progress &> {log}"


rule gender_intervention_notebook:
    input:
        nb=notebook("gender_intervention"),
        measures=expand(f"{GENDER_IV_WORK}/measures/{{run}}/{{model}}.csv", zip, run=GENDER_IV_RUNS,
                        model=GENDER_IV_MODELS),
        runs=[run_done(r, m) for r, m in GENDER_IV_TRAINED],
    output:
        **section_outputs("gender_intervention"),
    params:
        **section_params("gender_intervention", runs=GENDER_IV_RUNS, models=GENDER_IV_MODELS),
    log:
        section_log("gender_intervention"),
    conda:
        "../envs/pythia.yaml"
    shell:
        PAPERMILL


register_targets("gender_intervention", [rules.gender_intervention_notebook.output.nb])
