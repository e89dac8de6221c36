# The suite table: the Pythia paper's Table 1 for the configured suite.


rule suite_table:
    output:
        table=f"{RESULTS}/suite/suite_table.csv",
    params:
        suite=SUITE,
    log:
        f"{LOGS}/suite/suite_table.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia suite {params.suite} --csv {output.table} &> {log}"


rule notebook_suite:
    input:
        nb=notebook("00_suite"),
        table=rules.suite_table.output.table,
    output:
        nb=f"{RESULTS}/notebooks/00_suite.ipynb",
        figure=report(
            f"{RESULTS}/suite/suite_table.png",
            caption="../report/suite_table.rst",
            category="Suite",
        ),
        params_figure=report(
            f"{RESULTS}/suite/parameters.png",
            caption="../report/parameters.rst",
            category="Suite",
        ),
    params:
        suite=SUITE,
        nb_params=nb_params(),
    log:
        f"{LOGS}/notebooks/00_suite.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        PAPERMILL
