# Section 00, the suite: the Pythia paper's Table 1 for the configured suite, computed from the
# suite's configuration by notebooks/00_suite.ipynb (pythia/analysis/suite.py), and the duplication
# profile of its training data from the data card (where the suite builds its data: a suite trained
# on released files has no card without the downloaded Pile).

SUITE_CARD = {} if RELEASED_DATASETS else {"card": f"{DATA}/card.json"}


rule suite_notebook:
    input:
        nb=notebook("suite"),
        **SUITE_CARD,
    output:
        **section_outputs("suite"),
    params:
        **section_params("suite"),
    log:
        section_log("suite"),
    conda:
        "../envs/pythia.yaml"
    shell:
        PAPERMILL


register_targets("suite", [rules.suite_notebook.output.nb])
