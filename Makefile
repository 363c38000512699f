# Two commands take a fresh clone to results: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo lint test clean-install

$(STAMP): pyproject.toml constraints/torch.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints/torch.txt --editable ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/anomalib-fastflow demo

# what CI checks: lint and format first (seconds), then the whole suite
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

# Release check: the built wheel, installed without extras into a fresh venv, used as a pip user would.
clean-install: setup
	bash .ci/clean_install
