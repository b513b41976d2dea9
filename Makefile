# Every target sets itself up on a fresh machine: a virtual environment for the project (.venv)
# and one for the SAM CLI and checkov (.tools), which pin their own versions of shared packages.
SHELL := /bin/bash
export PYENV_VERSION ?= 3.13.0
PYTHON ?= $(shell command -v python3.13 || command -v python3)
VENV := .venv
TOOLS := .tools
PY := $(VENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: dev test lint unit integration e2e bench build clean

$(VENV)/.installed: pyproject.toml layers/relay/requirements.txt requirements-runtime.txt requirements-dev.txt
	@echo "Setting up $(VENV) with the project's dependencies (first run only; about a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -r layers/relay/requirements.txt -r requirements-runtime.txt -r requirements-dev.txt
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

$(TOOLS)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install $(PIP_FLAGS) -r requirements-tools.txt
	touch $@

## make dev: the whole system on this machine: moto for AWS, a built-in echo bot and receiver. Ctrl-C stops it.
dev: $(VENV)/.installed
	@$(PY) -m devstack

## make test: lint, then every test: unit (with the template's sam validate and checkov), integration, e2e
test: lint $(TOOLS)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

integration: $(VENV)/.installed
	$(PY) -m pytest tests/integration

e2e: $(VENV)/.installed
	$(PY) -m pytest tests/e2e

## make bench: figures for the note (cold start per function; AWS calls per message; the local stack)
bench: $(VENV)/.installed
	$(PY) benchmarks/cold_start.py
	$(PY) benchmarks/layer_bytecode.py
	$(PY) -m pytest -q -s tests/integration/test_aws_calls.py
	$(PY) benchmarks/dev_start.py
	$(PY) -m pytest -q -s tests/e2e/test_relay_over_http.py -k twenty

## make build: what `sam build` makes for Lambda (python3.13, arm64)
build: $(TOOLS)/.installed
	SAM_CLI_TELEMETRY=0 PATH="$(abspath $(TOOLS))/bin:$$PATH" sam build

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam
