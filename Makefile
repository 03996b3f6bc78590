# The README's two commands: `make demo` (set up and run the demo) and `make test` (run the tests).
# `make lint` also checks the layers (import-linter contracts in pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Meltano is a tool, not a library of ours: it lives in its own virtualenv (like pipx would do).
MELTANO_VENV := .venv-meltano
MELTANO_SPEC := meltano>=4.4.1,<4.5
RUN_PATH := PATH="$(CURDIR)/$(BIN):$(CURDIR)/$(MELTANO_VENV)/bin:$$PATH"
# Bytecode compiled at install, as pip does by default and uv (Meltano's installer) does not:
# every `meltano run` starts three Python processes, and compiling their modules from
# source (e.g. where PYTHONDONTWRITEBYTECODE is set) costs seconds of CPU each time. (Some
# packages ship files that are not Python 3.11 source: those stay uncompiled.)
COMPILE = python -m compileall -q -j 0
# Local emulators of the cloud warehouses, for the tests (tests/emulators.py starts them).
# Each lives in a virtualenv of its own, made here (under .venv: ignored by git and ruff),
# as their pins conflict with each other and with the product's (bqemulator: duckdb 1.5.5,
# sqlglot<30.12; fakesnow: duckdb 2.x, sqlglot 30.22). bqemulator downloads DuckDB
# extensions when it starts: the packages of `spatial` and `avro` (same version as its
# duckdb) let it start offline.
BQEMULATOR_VENV := $(VENV)/emulators/bqemulator
BQEMULATOR_SPEC := "bqemulator==1.4.0" "duckdb==1.5.5" "duckdb-extension-spatial==1.5.5" \
	"duckdb-extension-avro==1.5.5" "numpy>=2,<3"
FAKESNOW_VENV := $(VENV)/emulators/fakesnow
# fakesnow's HTTP server needs snowflake-connector-python<5.
FAKESNOW_SPEC := "fakesnow[server]==0.12.1" "snowflake-connector-python<5"

.PHONY: setup emulators demo test lint format bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

$(MELTANO_VENV)/bin/meltano:
	$(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet "$(MELTANO_SPEC)"
	$(MELTANO_VENV)/bin/$(COMPILE) $(MELTANO_VENV)/lib > /dev/null || true

.meltano/.installed: meltano.yml pyproject.toml | $(MELTANO_VENV)/bin/meltano
	$(RUN_PATH) UV_COMPILE_BYTECODE=1 meltano install
	for venv in .meltano/extractors/*/venv .meltano/loaders/*/venv; do \
		$$venv/bin/$(COMPILE) $$venv/lib ifs_looker_core tap_ifscloud target_looker > /dev/null || true; \
	done
	touch $@

setup: $(VENV)/.installed .meltano/.installed

$(BQEMULATOR_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(BQEMULATOR_VENV)
	$(BQEMULATOR_VENV)/bin/python -m pip install --quiet $(BQEMULATOR_SPEC)
	touch $@

$(FAKESNOW_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(FAKESNOW_VENV)
	$(FAKESNOW_VENV)/bin/python -m pip install --quiet $(FAKESNOW_SPEC)
	touch $@

emulators: $(BQEMULATOR_VENV)/.installed $(FAKESNOW_VENV)/.installed

demo: setup
	$(RUN_PATH) $(BIN)/python -m ifs_looker.demo

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint emulators
	$(RUN_PATH) $(BIN)/python -m pytest

bench: setup
	$(RUN_PATH) $(BIN)/python benchmarks/bench_sandbox.py
