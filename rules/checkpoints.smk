# The checkpoint audit (pythia/audit.py, `pythia checkpoints audit`): every checkpoint of the
# configured source (our trained runs by default; local or hub as configured) with the sha256 of
# its weight files, flagged duplicate, missing, step0 == step1, partial duplicate, written as
# results/<suite>/checkpoints/audit.csv and the grid of steps x runs (audit.png). The sections
# read the flags through the catalogue (config checkpoints.audit: warn, skip or off). Not a
# section: no notebook; its target joins the default ones through TOOL_TARGETS (rules/common.smk).

AUDIT_DIR = f"{RESULTS}/checkpoints"
AUDIT_PATH = f" --checkpoints-path {CHECKPOINTS['path']}" if CHECKPOINTS["path"] else ""


# The hub source asks the hub (refs and file metadata): where Snakemake runs, which has the network.
localrules:
    checkpoints_audit,


rule checkpoints_audit:
    input:
        runs=[f for d in DATASETS for m in MODELS for f in checkpoint_inputs(d, m)],
    output:
        csv=f"{AUDIT_DIR}/audit.csv",
        md=f"{AUDIT_DIR}/audit.md",
        png=report(f"{AUDIT_DIR}/audit.png", caption="../report/checkpoints/audit.rst",
                   category="Checkpoint audit", labels={"figure": "audit"}),
        pdf=f"{AUDIT_DIR}/audit.pdf",
        data=f"{AUDIT_DIR}/audit.data.csv",
    params:
        suite=SUITE,
        source=f"--checkpoints-source {CATALOGUE.source.value}{AUDIT_PATH}",
        models=" ".join(MODELS),
        datasets=" ".join(DATASETS),
        # what the flags depend on besides the checkpoints themselves (not the whole suite digest:
        # a description edit must not audit again)
        schedule=" ".join(str(s) for s in SUITE_CFG.checkpoint_steps()),
    log:
        f"{LOGS}/checkpoints_audit.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia checkpoints audit --suite {params.suite} {params.source} --models {params.models}"
        " --datasets {params.datasets} --out $(dirname {output.csv}) --no-progress &> {log}"


# A default target where the configured sections read checkpoints through the catalogue (all but
# suite and training): `make reproduce` writes the audit of the trained runs; a run of those two
# alone trains and audits nothing more.
if set(SECTIONS) - {"suite", "training"}:
    TOOL_TARGETS.append(rules.checkpoints_audit.output.csv)
