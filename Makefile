# The README's two commands: `make demo` (set up and run the demo) and `make test` (run the tests).
# `make lint` also checks the layers (import-linter contracts in pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Meltano is a tool, not a library of ours: it lives in its own virtualenv (like pipx would do).
MELTANO_VENV := .venv-meltano
MELTANO_SPEC := meltano>=4.4.1,<4.5
RUN_PATH := PATH="$(CURDIR)/$(BIN):$(CURDIR)/$(MELTANO_VENV)/bin:$$PATH"

.PHONY: setup demo test lint format bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

$(MELTANO_VENV)/bin/meltano:
	$(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet "$(MELTANO_SPEC)"

.meltano/.installed: meltano.yml pyproject.toml | $(MELTANO_VENV)/bin/meltano
	$(RUN_PATH) meltano install
	touch $@

setup: $(VENV)/.installed .meltano/.installed

demo: setup
	$(RUN_PATH) $(BIN)/python -m ifs_looker.demo

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(RUN_PATH) $(BIN)/python -m pytest

bench: setup
	$(RUN_PATH) $(BIN)/python benchmarks/bench_sandbox.py
