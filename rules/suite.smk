# Section 00, the suite: the Pythia paper's Table 1 for the configured suite, computed from the
# suite's configuration by notebooks/00_suite.ipynb (pythia/analysis/suite.py).


rule suite_notebook:
    input:
        nb=notebook("suite"),
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
