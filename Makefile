# network: `make run` serves a demo network; `make test` runs every check CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 2
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/flask: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

.PHONY: install
install: $(BIN)/flask ## Create .venv and install the network with its dev tools

.PHONY: run
run: install ## Migrate the SQLite database, seed a demo, run the scheduler and serve on 127.0.0.1:5000
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/flask --app wsgi demo seed
	@if $(BIN)/flask --app wsgi scheduler --help >/dev/null 2>&1; then \
	  echo "starting the scheduler beside the server"; \
	  $(BIN)/flask --app wsgi scheduler run & \
	fi; \
	trap 'kill 0' EXIT; \
	$(BIN)/gunicorn --bind $(HOST):$(PORT) --workers $(WORKERS) --access-logfile - wsgi:app

.PHONY: lint
lint: install ## ruff (lint and format check) and mypy
	$(BIN)/ruff check network tests migrations bench wsgi.py
	$(BIN)/ruff format --check network tests migrations bench wsgi.py
	$(BIN)/mypy network

.PHONY: fmt
fmt: install ## Format and auto-fix with ruff
	$(BIN)/ruff format network tests migrations bench wsgi.py
	$(BIN)/ruff check --fix network tests migrations bench wsgi.py

.PHONY: test-sqlite
test-sqlite: install ## The test suite on SQLite
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-postgres
test-postgres: install ## The test suite on PostgreSQL (TEST_POSTGRES_URL)
	TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) $(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test
test: lint test-sqlite test-postgres ## Everything CI runs: lint, then the suite on SQLite and on PostgreSQL
