# The two set-up commands are `make run` and `make test`; both build the environment from
# uv.lock first. Everything else here is a convenience for people working on the pipeline.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
# Bytecode is compiled once at install: with PYTHONDONTWRITEBYTECODE set (as on our CI
# machines) every stage process would otherwise recompile TensorFlow, MLflow and Airflow from
# source, about half of a register run's 30 s. The flags are part of the stamp, so changing
# them re-syncs an existing environment.
SYNC_FLAGS := --locked --compile-bytecode
STAMP := $(VENV)/.synced-$(shell (cat uv.lock pyproject.toml; echo '$(SYNC_FLAGS)') | sha1sum | cut -c1-12)

.PHONY: help install run test test-fast lint hooks ui data clean

help:
	@echo "make run    install from uv.lock, simulate default data if needed, dvc repro, summary"
	@echo "make test   install from uv.lock and run the test suite"
	@echo "make test-fast  the unit tier only (tests/unit, under 2 minutes)"
	@echo "make lint   ruff check, ruff format --check and mypy on pipelines/"
	@echo "make hooks  install the pre-commit hooks (the same checks, on each commit)"
	@echo "make ui     open the MLflow UI on the embedded store (http://127.0.0.1:5000)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): uv.lock pyproject.toml | $(UV)
	rm -f $(VENV)/.synced-*
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync $(SYNC_FLAGS) --python $(PYTHON)
	touch $@

install: $(STAMP)

data: install
	$(BIN)/python -m pipelines.simulate --if-empty

run: data
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/dvc push --quiet
	$(BIN)/python -m pipelines.summary

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n 2 --dist loadscope --no-loadscope-reorder --durations=15

test-fast: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

hooks: install
	$(BIN)/pre-commit install

ui: install
	umask 077 && $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf $(VENV) $(TOOLS)
