# Every target sets itself up on a fresh machine: a virtual environment for the project (.venv)
# and one for the SAM CLI and checkov (.tools), which pin their own versions of shared packages.
SHELL := /bin/bash
# The first of python3.13 and python3 that is a Python 3.13 (any 3.13.x); under pyenv, .python-version picks it.
ifndef PYTHON
PYTHON := $(shell for p in python3.13 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && { command -v $$p; break; }; done)
endif
NEED_PYTHON = @test -n "$(PYTHON)" || { echo "Python 3.13 (any 3.13.x) is needed: neither python3.13 nor python3 is one" >&2; exit 1; }
VENV := .venv
TOOLS := .tools
PY := $(VENV)/bin/python
# uv makes both environments: on a fresh clone, 31 s against 668 s for venv and pip (.venv and .tools, 2 cores).
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
UV_FLAGS := --quiet
# uv installs without bytecode: a module is compiled when first imported, and its bytecode written then. That needs
# Python to write bytecode, which PYTHONDONTWRITEBYTECODE (set on these machines) forbids: every process would
# compile boto3, moto and pydantic again, each pytest worker rewrite the tests and plugins again, each container
# the layer again. What the tests' many processes import at the same moment is compiled at install instead (they
# each compiled it, 57 s of CPU), but for what no test imports (no make test read their bytecode): mypy (the lint's
# one process), pip, cfn-lint with what it needs (moto brings it for CloudFormation), and the rest of what the
# packages bring, moto's Step Functions among them: a fifth of what there is to compile. .tools is left to its two
# processes, the lint's.
UV_INSTALL := $(UV) pip install $(UV_FLAGS)
UNTESTED_PACKAGES := mypy mypyc pip cfnlint sympy mpmath networkx graphql hypothesis_graphql rich pygments markdown_it \
	docker antlr4 pyparsing regex jsonpath_ng joserfc cffi pycparser py_partiql_parser moto/stepfunctions
space := $(subst ,, )
UNTESTED := /($(subst $(space),|,$(strip $(UNTESTED_PACKAGES))))/
unexport PYTHONDONTWRITEBYTECODE

.PHONY: dev test lint lint-code lint-types lint-template unit integration e2e fuzz bench build openapi docs clean

# uv's package alone, in a folder (a virtual environment of its own took 8 s to make, this 2).
$(UV): requirements-setup.txt
	$(NEED_PYTHON)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --upgrade \
		--target $(UV_HOME) -r requirements-setup.txt
	touch $@

# --seed: pip in each environment too, for whoever installs something by hand.
$(VENV)/.installed: pyproject.toml layers/relay/requirements.txt requirements-runtime.txt requirements-dev.txt | $(UV)
	$(NEED_PYTHON)
	@echo "Setting up $(VENV) with the project's dependencies (first run only)..."
	$(UV) venv $(UV_FLAGS) --seed --allow-existing --python $(PYTHON) $(VENV)
	$(UV_INSTALL) --python $(PY) -r layers/relay/requirements.txt -r requirements-runtime.txt -r requirements-dev.txt
	@# The project itself (setuptools builds it in an environment of its own: seconds of waiting) beside the compiling.
	$(UV_INSTALL) --python $(PY) --no-deps -e . & project=$$!; \
	$(PY) -m compileall -q -j 0 -x '$(UNTESTED)' $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
		&& wait $$project
	touch $@

# The browser test drives Debian's Chromium (Playwright's own browser download cannot be used): installed with apt
# when missing, which needs root (CI runs as root); elsewhere install the `chromium` package yourself.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's chromium for the browser test (first run only)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "The browser test needs Chromium at $(CHROMIUM): sudo apt-get install chromium" >&2; exit 1; fi

$(TOOLS)/.installed: requirements-tools.txt | $(UV)
	$(NEED_PYTHON)
	@echo "Setting up $(TOOLS) with the SAM CLI and checkov (first run only)..."
	$(UV) venv $(UV_FLAGS) --seed --allow-existing --python $(PYTHON) $(TOOLS)
	$(UV_INSTALL) --python $(TOOLS)/bin/python -r requirements-tools.txt
	touch $@

## make dev: the whole system on this machine: moto for AWS, a built-in echo bot and receiver. Ctrl-C stops it.
dev: $(VENV)/.installed
	@$(PY) -m devstack

## make test: every test (unit, integration, e2e) and, beside them, the lint
# The two installs the tests need come first, at once (mostly waiting on the registries). Then the tests run, and the
# lint (with the SAM CLI's install) runs beside them in the background, at the lowest priority: its CPU fills the
# tests' waits without slowing them (run first, it held the tests back a minute and a half; beside them at the same
# priority, 46 s). Its output follows the tests'; either failing fails make test.
test:
	@$(MAKE) --no-print-directory -j2 --output-sync=target $(VENV)/.installed $(CHROMIUM)
	@lint_log=$$(mktemp); \
	nice -n 19 $(MAKE) --no-print-directory -j3 --output-sync=target lint >$$lint_log 2>&1 & linting=$$!; \
	echo "$(PY) -m pytest -n 3 --dist loadgroup  (make lint runs beside it; its output follows)"; \
	$(PY) -m pytest -n 3 --dist loadgroup; tested=$$?; \
	wait $$linting; linted=$$?; \
	cat $$lint_log; rm -f $$lint_log; \
	if [ $$linted != 0 ]; then echo "make lint failed (above)" >&2; fi; \
	[ $$tested = 0 ] && [ $$linted = 0 ]

## make lint: ruff, mypy, and on the template cfn-lint (with SAM's transform) and checkov
lint: lint-code lint-types lint-template

lint-code: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lint-types: $(VENV)/.installed
	$(VENV)/bin/mypy
	@# tests/conftest.py shares the module name `conftest` with tests/e2e/conftest.py: checked in a run of its own.
	$(VENV)/bin/mypy tests/conftest.py tests/harness.py tests/iam_policy.py tests/doc_examples.py

# cfn-lint as `sam validate --lint` runs it (the SAM CLI's own, in the region it would be given), without the SAM
# CLI's start-up: 10 s of CPU against 15. checkov: every finding fixed, or skipped in the template with its reason.
lint-template: $(TOOLS)/.installed
	$(TOOLS)/bin/cfn-lint template.yaml --regions us-east-1
	$(TOOLS)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

integration: $(VENV)/.installed
	$(PY) -m pytest tests/integration

e2e: $(VENV)/.installed $(CHROMIUM)
	$(PY) -m pytest tests/e2e

## make fuzz: a longer fuzzing of the local stack from openapi.yaml (make test runs 8 examples per case)
fuzz: $(VENV)/.installed
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} $(PY) -m pytest -q tests/e2e/test_fuzz.py

## make bench: figures for the note (cold start per function; delivery batch ratio; a client's rate across
## containers; AWS calls per message, poll and function's policy; the local stack; the stream beside the webhook;
## a healthy client beside troubled neighbours)
bench: $(VENV)/.installed
	$(PY) benchmarks/cold_start.py
	$(PY) benchmarks/layer_bytecode.py
	$(PY) benchmarks/delivery_batch.py
	$(PY) benchmarks/rate_limit.py
	$(PY) -m pytest -q -s tests/integration/test_aws_calls.py
	$(PY) -m pytest -q --iam-summary tests/integration
	$(PY) benchmarks/dev_start.py
	$(PY) benchmarks/local_stack.py
	$(PY) benchmarks/stream.py
	$(PY) benchmarks/isolation.py
	REPLY_LATENCY_RUNS=10 $(PY) -m pytest -q -s tests/e2e/test_replies_over_http.py -k latency

## make openapi: regenerate openapi.yaml from the models (a test fails while the committed file is stale)
openapi: $(VENV)/.installed
	$(PY) tools/openapi.py > openapi.yaml

## make docs: rewrite the tables in README.md and docs/ that come from template.yaml (a test fails while they are stale)
docs: $(VENV)/.installed
	$(PY) -m tools.docs

## make build: what `sam build` makes for Lambda (python3.13, arm64); also sets up .venv, for relay-clients
build: $(TOOLS)/.installed $(VENV)/.installed
	SAM_CLI_TELEMETRY=0 PATH="$(abspath $(TOOLS))/bin:$$PATH" sam build

clean:
	rm -rf $(VENV) $(TOOLS) $(UV_HOME) .aws-sam
