# ehrchain — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO_DIR ?= .demo
DEMO_PORT ?= 8000
LINT_PATHS := src tests benchmarks scripts

.PHONY: setup demo test lint typecheck unit clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) scripts/fetch_fhir_examples.py
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/ehrchain demo --data-dir $(DEMO_DIR) --port $(DEMO_PORT)

lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest -m "not slow and not integration"

test: lint typecheck
	bash scripts/ensure_chromium.sh
	$(VENV)/bin/pytest

bench: setup
	$(VENV)/bin/ehrchain bench --data-dir .bench --json BENCHMARKS.json

clean:
	rm -rf $(VENV) .demo .bench .pytest_cache .mypy_cache .ruff_cache
