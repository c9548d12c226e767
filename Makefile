# Two commands: `make dev` (the Dagster UI with the demo fleet) and `make test` (the suite).
# Both create .venv when it is missing and reinstall when pyproject.toml changes.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DER_HOME ?= $(CURDIR)/.der
export GX_ANALYTICS_ENABLED := false
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: install dev test test-postgres bench ddl clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

dev: install
	$(BIN)/der dev --host 127.0.0.1 --port 3000

test: install
	$(BIN)/python -m pytest -q

bench: install
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

.PHONY: fuzz
FUZZ_CASES ?= 20000
fuzz: install  # mutated vendor payloads through the parsers and both fleet-day paths; prints its figures as JSON
	$(BIN)/python -m der_assets_tests.fuzz.run --cases $(FUZZ_CASES)

.PHONY: audit
audit: install  # pip-audit of .venv against PyPI's advisories (AUDIT_SERVICE=osv for OSV); exit 3 when unreachable
	$(BIN)/python tools/audit.py

ddl: install
	$(BIN)/der db ddl --dialect postgresql > sql/schema.postgresql.sql
	$(BIN)/der db ddl --dialect sqlite > sql/schema.sqlite.sql

clean:
	rm -rf $(VENV) .der .pytest_cache
