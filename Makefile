# Two commands do all the set-up: `make demo` and `make test` (see README.md).
SHELL := /bin/bash

# The newest Python 3.11+ on the PATH (pyenv shims for missing versions fail the check and are skipped).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The local PostgreSQL the tests, `make dev` and `make bench` use (defaults: report_pipeline/settings.py).
export PGHOST ?= 127.0.0.1
export PGPORT ?= 5432
export PGUSER ?= report_pipeline
export PGPASSWORD ?= report_pipeline

.PHONY: install lint test test-fast demo dev bench local-trino trino postgres system-packages metrics status clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: report_pipeline needs Python 3.11 or newer on the PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# Debian packages the tests use: promtool (package prometheus) checks and unit-tests the alert rules;
# pgbouncer runs as a private instance (report_pipeline/pgbouncer.py: `make dev`, tests, `make bench`),
# never as the package's system service (so nothing here starts it). /usr/sbin is not on every PATH.
system-packages:
	@missing=; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing="$$missing pgbouncer"; \
	[ -z "$$missing" ] && exit 0; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	echo "installing Debian's packages:$$missing"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
		|| { echo "error: could not install$$missing; run: apt-get install$$missing" >&2; exit 1; }

# A PostgreSQL server on $(PGHOST):$(PGPORT): used if one answers, else Debian's package is installed (as
# root or with sudo) and .ci/ensure-postgres starts the cluster and gives it the role $(PGUSER).
postgres:
	@if ! pg_isready -q -h $(PGHOST) -p $(PGPORT) 2>/dev/null && ! { command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; }; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo -n); \
		echo "installing PostgreSQL from Debian's archive"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
			|| { echo "error: could not install PostgreSQL (apt-get install postgresql as root or with sudo), or set PGHOST/PGPORT to a running server" >&2; exit 1; }; \
	fi
	@bash .ci/ensure-postgres

# Lint, format and types (configured in pyproject.toml); `make test` runs it before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint system-packages postgres
	$(BIN)/pytest --durations=15

# The fast tier: every test except those needing the Dagster webserver and daemon (marker `stack`)
# or the real Trino (`real_trino`), both set in report_pipeline_tests/conftest.py, and those that run
# report jobs end to end on Dagster (`slow`).
test-fast: install system-packages postgres
	$(BIN)/pytest -m "not stack and not real_trino and not slow" --durations=15

demo: install
	$(BIN)/report-pipeline demo

dev: install postgres system-packages
	$(BIN)/report-pipeline dev

bench: install postgres system-packages
	$(BIN)/python -m report_pipeline_tests.benchmarks

# The metrics endpoint and the status view read the ledger named by REPORT_PIPELINE_LEDGER_URL.
metrics: install
	$(BIN)/report-pipeline metrics

status: install
	$(BIN)/report-pipeline status

local-trino: install
	$(BIN)/report-pipeline local-trino

# A real Trino (fetched from Maven Central with its JVM on first use, cached in ~/.cache/report_pipeline).
trino: install postgres
	$(BIN)/report-pipeline trino-server

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info .trino-server
