# signgate: every target creates the virtual environment it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The pins, with their hashes: what `make run` and `make test` install (the project with its
# embedded and test extras), and the same pins' runtime share, which the image installs.
LOCK         := requirements.lock
RUNTIME_LOCK := requirements-runtime.lock

.PHONY: run demo test test-unit test-contract test-component test-integration test-e2e lint lock schemas docs clean help bench

help:
	@echo "make run          start the whole system on the embedded stack (Ctrl-C stops it)"
	@echo "make test         run the whole test suite on the embedded stack"
	@echo "make test-unit | test-contract | test-component | test-integration | test-e2e"
	@echo "make demo         against a running \`make run\`: lock a signer out, unlock them, print the history;"
	@echo "                  over HTTP through the gateway, each request printed (DEMO_ARGS=--kafka: as Kafka commands)"
	@echo "make schemas      re-export the JSON Schemas of every message into contracts/"
	@echo "make docs         regenerate docs/: AsyncAPI (YAML, HTML), message catalogue, settings reference;"
	@echo "                  and .signgate/jwks.json, the grant keys of the make run stack, if it has made them"
	@echo "make lint         ruff check, ruff format --check and mypy (make test runs them too)"
	@echo "make lock         re-pin requirements.lock from pyproject.toml (LOCK_ARGS=--upgrade: newest releases)"
	@echo "make clean        remove the virtual environment and local data"

# Only pip is needed: the lock's pins, hash-checked, then the two local packages on top of them.
# A package the lock no longer names stays in the venv until `make clean`.
$(STAMP): $(LOCK) pyproject.toml contracts/pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e ./contracts -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m libs.devstack.runner

demo: $(STAMP)
	$(BIN)/python -m libs.tools.demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

# The checks tests/contract/test_lint.py makes (and .pre-commit-config.yaml), on their own.
lint: $(STAMP)
	$(BIN)/ruff check contracts libs services
	$(BIN)/ruff format --check contracts libs services
	$(BIN)/mypy contracts/signgate_contracts contracts/signgate_client libs services

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-contract: $(STAMP)
	$(BIN)/python -m pytest tests/contract

test-component: $(STAMP)
	$(BIN)/python -m pytest tests/component

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

test-e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

schemas: $(STAMP)
	$(BIN)/python -m signgate_contracts.schemas

# The JWKS is per deployment (its keys are), so it is not in docs/: the development stack's goes beside
# its secrets; a deployment prints its own with `python -m services.authentication.jwks`.
docs: $(STAMP)
	$(BIN)/python -m libs.tools.docs docs
	$(BIN)/python -m services.authentication.jwks --development --output .signgate/jwks.json

clean:
	rm -rf $(VENV) $(LOCK_VENV) .signgate .mypy_cache

# The lock is written by uv (kept in a venv of its own, never needed to install): Linux, macOS and
# Windows, CPython 3.11 and later. Pins already in the lock stay where pyproject.toml still admits
# them; LOCK_ARGS=--upgrade (or --upgrade-package NAME) moves them to the newest releases.
LOCK_VENV  := .venv-lock
UV         := $(LOCK_VENV)/bin/uv
UV_VERSION := 0.13.9
COMPILE    := $(UV) pip compile - --universal --python-version 3.11 --generate-hashes \
	--no-emit-package signgate --no-emit-package signgate-contracts --custom-compile-command "make lock"

$(UV):
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)

lock: $(UV)
	printf '%s\n' '-e ./contracts' '-e .[embedded,test]' | $(COMPILE) $(LOCK_ARGS) --output-file $(LOCK)
	printf '%s\n' '-e ./contracts' '-e .' | $(COMPILE) --constraint $(LOCK) --output-file $(RUNTIME_LOCK)

# make bench ARGS="--replicas 2" | ARGS=--quick: figures, not a test (nothing fails on a timing).
bench: $(STAMP)
	$(BIN)/python -m libs.tools.bench $(ARGS)

# The long forms (make test runs both short): 10,000 commands under SIGKILLs; 800 hostile
# records, the full 100-failure lockout cycle, 100 enumeration samples each. Figures are printed
# and kept in .signgate/chaos-report.jsonl.
.PHONY: chaos security
chaos: $(STAMP)
	SIGNGATE_CHAOS_SCALE=long $(BIN)/python -m pytest -s -p no:cacheprovider tests/chaos

security: $(STAMP)
	SIGNGATE_CHAOS_SCALE=long $(BIN)/python -m pytest -s -p no:cacheprovider tests/security
