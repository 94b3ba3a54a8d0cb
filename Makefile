# network: `make run` serves a demo network; `make test` runs every check CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 2
# gevent workers: a worker's concurrent requests are greenlets, and its concurrent postbacks
# share one transaction (group commit).
WORKER_CLASS ?= gevent
# Threads per worker, for WORKER_CLASS=gthread (gevent workers ignore it).
THREADS ?= 8
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
PYTEST_ARGS ?=
# bench/ holds the speed scripts once they exist; lint whatever is there.
# bench's scripts have no .py suffix, so ruff checks them only when named.
BENCH_SCRIPTS := $(filter-out %.md %.py %__pycache__,$(wildcard bench/*))
LINT_PATHS := network tests migrations wsgi.py $(wildcard bench) $(BENCH_SCRIPTS)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(BIN)/flask: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

.PHONY: install
install: $(BIN)/flask ## Create .venv and install the network with its dev tools

.PHONY: run
run: install ## Migrate the SQLite database, seed a demo, run the scheduler and serve on 127.0.0.1:5000
	@export PUBLIC_BASE_URL="$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)}"; \
	set -e; \
	$(BIN)/flask --app wsgi db upgrade; \
	$(BIN)/flask --app wsgi demo seed; \
	export PROMETHEUS_MULTIPROC_DIR="$${PROMETHEUS_MULTIPROC_DIR:-instance/metrics}"; \
	mkdir -p "$$PROMETHEUS_MULTIPROC_DIR"; \
	set +e; \
	trap 'kill 0' EXIT; \
	if $(BIN)/flask --app wsgi scheduler --help >/dev/null 2>&1; then \
	  echo "starting the scheduler beside the server"; \
	  $(BIN)/flask --app wsgi scheduler run & \
	fi; \
	$(BIN)/gunicorn --config python:network.serving --bind $(HOST):$(PORT) --workers $(WORKERS) --worker-class $(WORKER_CLASS) --threads $(THREADS) --limit-request-line 8190 wsgi:app

.PHONY: lint
lint: install ## ruff (lint and format check) and mypy
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy network

.PHONY: fmt
fmt: install ## Format and auto-fix with ruff
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

.PHONY: migrations-check
migrations-check: install ## Only the migration checks (single head, upgrade == models, up/down/up), on SQLite
	$(BIN)/pytest tests/test_migrations.py $(PYTEST_ARGS)

.PHONY: test-sqlite
test-sqlite: install ## The test suite on SQLite (a fresh database per run)
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-postgres
test-postgres: install ## The test suite on PostgreSQL (TEST_POSTGRES_URL; a fresh database per run)
	TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) $(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test
test: lint test-sqlite test-postgres ## Everything CI runs: lint, then the suite (with the migration checks) on SQLite and PostgreSQL
