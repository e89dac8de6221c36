# The data of the configured suite: pinned archives -> documents (split, contamination guard)
# -> tokenizer -> tokenized splits -> deduplicated twin -> training order per dataset -> card.
# Each rule runs one stage of `pythia data build` (pythia/data/build.py documents the stages).
# Each rule's params.digest is the digest of the settings its stage reads (pythia.data.build.
# stage_digest), so editing those settings in the suite YAML reruns the stage and what follows.
# Final outputs the training rules consume:
#   work/<suite>/data/<dataset>/order.json (and sequences.bin, or a released file: rule data_released)
#   work/<suite>/data/tokenizer/tokenizer.json
#   work/<suite>/data/validation_text_document.bin
#   work/<suite>/data/card.json

DATA_LOGS = f"{LOGS}/data"
STANDARD_DATA = str(paths.dataset_dir(SUITE, paths.STANDARD))
DEDUPED_DATA = str(paths.dataset_dir(SUITE, paths.DEDUPED))


rule data_fetch:
    output:
        sources=f"{DATA}/sources.json",
    params:
        suite=SUITE,
        digest=data_digest("fetch"),
    log:
        f"{DATA_LOGS}/fetch.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia data build --suite {params.suite} --stage fetch --no-progress &> {log}"


rule data_documents:
    input:
        sources=rules.data_fetch.output.sources,
    output:
        train=f"{DATA}/documents/train.jsonl",
        validation=f"{DATA}/documents/validation.jsonl",
        test=f"{DATA}/documents/test.jsonl",
        manifest=f"{DATA}/documents/manifest.json",
    params:
        suite=SUITE,
        digest=data_digest("documents"),
    log:
        f"{DATA_LOGS}/documents.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia data build --suite {params.suite} --stage documents --no-progress &> {log}"


rule data_tokenizer:
    input:
        train=rules.data_documents.output.train,
    output:
        tokenizer=f"{DATA}/tokenizer/tokenizer.json",
        config=f"{DATA}/tokenizer/tokenizer_config.json",
    params:
        suite=SUITE,
        digest=data_digest("tokenizer"),
    log:
        f"{DATA_LOGS}/tokenizer.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia data build --suite {params.suite} --stage tokenizer --no-progress &> {log}"


rule data_tokenize:
    input:
        train=rules.data_documents.output.train,
        validation=rules.data_documents.output.validation,
        test=rules.data_documents.output.test,
        tokenizer=rules.data_tokenizer.output.tokenizer,
    output:
        train_bin=f"{STANDARD_DATA}/train_text_document.bin",
        train_idx=f"{STANDARD_DATA}/train_text_document.idx",
        validation_bin=f"{DATA}/validation_text_document.bin",
        validation_idx=f"{DATA}/validation_text_document.idx",
        test_bin=f"{DATA}/test_text_document.bin",
        test_idx=f"{DATA}/test_text_document.idx",
    params:
        suite=SUITE,
        digest=data_digest("tokenize"),
    log:
        f"{DATA_LOGS}/tokenize.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia data build --suite {params.suite} --stage tokenize --no-progress &> {log}"


rule data_dedup:
    input:
        train=rules.data_documents.output.train,
        train_bin=rules.data_tokenize.output.train_bin,
        train_idx=rules.data_tokenize.output.train_idx,
    output:
        train_bin=f"{DEDUPED_DATA}/train_text_document.bin",
        train_idx=f"{DEDUPED_DATA}/train_text_document.idx",
        report=f"{DEDUPED_DATA}/dedup.json",
    params:
        suite=SUITE,
        digest=data_digest("dedup"),
    log:
        f"{DATA_LOGS}/dedup.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia data build --suite {params.suite} --stage dedup --no-progress &> {log}"


# Datasets whose order is built here; the others are released pre-shuffled files (rule data_released).
BUILT_ORDER_PATTERN = "|".join(d for d in paths.DATASETS if d not in RELEASED_DATASETS) or "(?!)"
RELEASED_PATTERN = "|".join(RELEASED_DATASETS) or "(?!)"


rule data_order:
    # Both datasets are always buildable: the data card describes both, even when the
    # config trains only one.
    wildcard_constraints:
        dataset=BUILT_ORDER_PATTERN,
    input:
        train_bin=f"{DATA}/{{dataset}}/train_text_document.bin",
        train_idx=f"{DATA}/{{dataset}}/train_text_document.idx",
    output:
        sequences=f"{DATA}/{{dataset}}/sequences.bin",
        sequences_idx=f"{DATA}/{{dataset}}/sequences.idx",
        doc_idx=f"{DATA}/{{dataset}}/doc_idx.npy",
        sample_idx=f"{DATA}/{{dataset}}/sample_idx.npy",
        shuffle_idx=f"{DATA}/{{dataset}}/shuffle_idx.npy",
        order=f"{DATA}/{{dataset}}/order.json",
    params:
        suite=SUITE,
        digest=order_digest,
    log:
        f"{DATA_LOGS}/order_{{dataset}}.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia data build --suite {params.suite} --stage order --dataset {wildcards.dataset} --no-progress &> {log}"


# The order of a dataset with another data-order seed, for seed runs (suite key seeds): the same
# algorithm with RandomState(N) (pythia/data/order.py), in work/<suite>/data/<dataset>/seed<N>/.
rule data_order_seed:
    wildcard_constraints:
        dataset=BUILT_ORDER_PATTERN,
        seed=r"[1-9][0-9]*",
    input:
        train_bin=f"{DATA}/{{dataset}}/train_text_document.bin",
        train_idx=f"{DATA}/{{dataset}}/train_text_document.idx",
    output:
        sequences=f"{DATA}/{{dataset}}/seed{{seed}}/sequences.bin",
        sequences_idx=f"{DATA}/{{dataset}}/seed{{seed}}/sequences.idx",
        doc_idx=f"{DATA}/{{dataset}}/seed{{seed}}/doc_idx.npy",
        sample_idx=f"{DATA}/{{dataset}}/seed{{seed}}/sample_idx.npy",
        shuffle_idx=f"{DATA}/{{dataset}}/seed{{seed}}/shuffle_idx.npy",
        order=f"{DATA}/{{dataset}}/seed{{seed}}/order.json",
    params:
        suite=SUITE,
        digest=seed_order_digest,
    log:
        f"{DATA_LOGS}/order_{{dataset}}_seed{{seed}}.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia data build --suite {params.suite} --stage order --dataset {wildcards.dataset}"
        " --data-seed {wildcards.seed} --no-progress &> {log}"


rule data_released:
    # A dataset trained on released pre-shuffled files (the pythia suite: Pythia's Pile): check the
    # downloaded file against the suite (rows of seq_len + 1 tokens, every step covered) and record
    # it in order.json. Missing, it fails naming what to download and where to put it.
    wildcard_constraints:
        dataset=RELEASED_PATTERN,
    output:
        order=f"{DATA}/{{dataset}}/order.json",
    params:
        suite=SUITE,
        digest=order_digest,
    log:
        f"{DATA_LOGS}/order_{{dataset}}.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia data build --suite {params.suite} --stage order --dataset {wildcards.dataset} --no-progress &> {log}"


rule data_card:
    input:
        manifest=rules.data_documents.output.manifest,
        tokenizer=rules.data_tokenizer.output.tokenizer,
        validation=rules.data_tokenize.output.validation_bin,
        test=rules.data_tokenize.output.test_bin,
        dedup=rules.data_dedup.output.report,
        orders=expand(f"{DATA}/{{dataset}}/order.json", dataset=paths.DATASETS),
    output:
        markdown=f"{DATA}/card.md",
        table=f"{DATA}/card.csv",
        card=f"{DATA}/card.json",
    params:
        suite=SUITE,
        digest=data_digest("card"),
    log:
        f"{DATA_LOGS}/card.log",
    conda:
        "../envs/pythia.yaml"
    shell:
        "pythia data build --suite {params.suite} --stage card --no-progress &> {log}"

