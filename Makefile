# CRM Workbench — `make help` lists the targets.
# Everything runs in a local virtual environment (.venv) that the targets create or reuse.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= data/synthetic
USERS  ?= 100000
SEED   ?= 42
PYTEST_ARGS ?=
LOCK   := requirements/lock.txt
# the locker `make lock` uses (pinned, so that a re-lock is reproducible too)
UV_VERSION ?= 0.13.10
# the installer itself (pinned: the same pip resolves and verifies the lock every time)
PIP_VERSION ?= 26.3
LOCK_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install lock data prepare reports test test-fast lint format lab bench clean-reports

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python crm_helpers/envlock.py check
	$(BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@$(BIN)/python crm_helpers/envlock.py verify
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

install: $(STAMP) ## Create or update .venv with exactly the lock (requirements/lock.txt) + the package (editable)

lock: ## Re-resolve requirements/lock.txt from pyproject.toml with uv (current pins kept where they fit; LOCK_ARGS=--upgrade moves all)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --generate-hashes \
		--python-version 3.11 --custom-compile-command "make lock" --quiet \
		--output-file $(LOCK) $(LOCK_ARGS)
	$(BIN)/python crm_helpers/envlock.py stamp "uv $(UV_VERSION)"
	@echo "$(LOCK) re-resolved: review 'git diff $(LOCK)', run 'make install test', commit it"

$(DATA)/ground_truth.json: | $(STAMP)
	$(BIN)/crm generate --users $(USERS) --seed $(SEED) --out $(DATA)

data: $(DATA)/ground_truth.json ## Generate the embedded synthetic CRM data set (once; seeded)

prepare: $(STAMP) data ## Build the prepared event store of the data (.cache/; reused while fresh)
	$(BIN)/crm prepare --data $(DATA)

reports: $(STAMP) data ## Build every report on the embedded default data into reports/ (the event store once, first)
	$(BIN)/crm run-all --data $(DATA)

# --no-loadscope-reorder: hand the work units out in tests/conftest.py's order (heaviest first),
# not xdist's default (most tests first), so that the two workers finish together
test: $(STAMP) ## Run every test (unit, DuckDB+Spark agreement, notebooks, nbval, browser)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: $(STAMP) ## Run the tests without Spark, notebooks or the browser
	$(BIN)/python -m pytest -n 2 -m "not spark and not slow and not browser" $(PYTEST_ARGS)

lint: $(STAMP) ## Lint and format-check (ruff), and check the import contract (lint-imports)
	$(BIN)/ruff check crm_helpers tests benchmarks notebooks
	$(BIN)/ruff format --check crm_helpers tests benchmarks notebooks
	$(BIN)/lint-imports --no-cache

format: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff check --fix crm_helpers tests benchmarks notebooks
	$(BIN)/ruff format crm_helpers tests benchmarks notebooks

lab: $(STAMP) ## Open JupyterLab on notebooks/
	$(BIN)/jupyter lab --notebook-dir=notebooks

bench: $(STAMP) data ## Run the benchmarks (prints tables; takes minutes)
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_engines.py --reports
	$(BIN)/python benchmarks/bench_funnel.py --spark
	$(BIN)/python benchmarks/bench_store.py
	$(BIN)/python benchmarks/bench_trend.py --data $(DATA)
	$(BIN)/python benchmarks/bench_journeys.py
	$(BIN)/python benchmarks/bench_segments.py --data $(DATA)
	$(BIN)/python benchmarks/bench_lookalike.py --features-data $(DATA)

clean-reports: ## Remove rendered reports (never touches data/)
	find reports -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
