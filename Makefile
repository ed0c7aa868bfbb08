# Two commands do everything on a fresh machine:
#   make demo   run the whole DVC pipeline on the built-in demo dataset (offline)
#   make test   run the test suite
SHELL := /bin/bash
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.emi-installed

.PHONY: setup demo test clean-data

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup
	PATH="$(BIN):$$PATH" dvc repro
	PATH="$(BIN):$$PATH" dvc metrics show

test: setup
	PATH="$(BIN):$$PATH" python -m pytest -q $(PYTEST_ARGS)

clean-data:
	rm -rf data eval .dvc/cache .dvc/tmp
