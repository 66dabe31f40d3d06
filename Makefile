# `make repro` and `make test` do all their own set-up: a virtual environment with the
# pinned packages from pyproject.toml (safe to run again: it reinstalls only when
# pyproject.toml changes).
PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed

.PHONY: setup repro test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# The stage commands call `python`, so the venv goes first on PATH.
repro: setup
	PATH="$(BIN):$$PATH" $(BIN)/dvc repro

test: setup
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -q

bench: setup
	PATH="$(BIN):$$PATH" $(BIN)/python benchmarks/pretrain_cost.py

clean:
	rm -rf data models checkpoints metrics exports reports dvclive
