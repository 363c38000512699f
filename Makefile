# Two commands take a fresh clone to results: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test clean-install

$(STAMP): pyproject.toml constraints/torch.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints/torch.txt --editable ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/anomalib-fastflow demo

test: setup
	$(BIN)/python -m pytest

# Release check: the built wheel, installed without extras into a fresh venv, used as a pip user would.
clean-install: setup
	bash .ci/clean_install
