# Everything runs from a virtualenv in .venv with the exact versions of requirements.lock. Its bytecode is compiled
# at install: where PYTHONDONTWRITEBYTECODE is set, every process would otherwise recompile each module it imports.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint bench dev lock clean

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: install  ## generate demo data, ingest it and build the training set on the embedded defaults
	$(BIN)/mlplatform demo

test: install  ## the whole suite, on two workers (one test file per worker: module fixtures such as built Bentos are built once; the longest files first, as conftest orders them)
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: install  ## the inner loop: unit and in-process tests only (no real servers, CLIs or daemon: those are in e2e/)
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not e2e" --ignore=mlplatform_tests/e2e $(PYTEST_ARGS)

lint: install  ## ruff (lint and import order) and mypy, both configured in pyproject.toml
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install  ## benchmarks/ (ratios measured side by side in one run)
	$(BIN)/python benchmarks/bench_foundation.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_training_scale.py
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_loop.py

dev: install  ## the Dagster UI and daemon on 127.0.0.1:3000
	$(BIN)/mlplatform dev

lock: install  ## re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra test --extra lightgbm --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .mlplatform landing
