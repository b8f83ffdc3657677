# The two commands the README starts with: `make demo` and `make test`.
# Both create .venv and install llmft with its extras on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.llmft-installed
PYTEST_ARGS ?=

.PHONY: install demo test test-unit test-integration test-e2e test-backends bench clean

install: $(STAMP)

# torch first, pinned: the CPU build of 2.13.0 is what a looser pin would replace with a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[train,serve,dev]'
	touch $@

demo: install
	$(BIN)/python -m llmft.demo

test: install
	$(BIN)/python -m pytest tests/unit tests/integration tests/e2e $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: install
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

# Postgres + MLflow server tier alone (also part of `make test`, under tests/integration); no Ray.
test-backends: install
	$(BIN)/python -m pytest tests/integration/test_backends_postgres.py tests/integration/test_backends_mlflow.py $(PYTEST_ARGS)

bench: install
	for b in benchmarks/*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf .llmft mlruns
