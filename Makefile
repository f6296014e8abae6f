# Two commands do all the set-up: `make demo` and `make test` (see README.md).
SHELL := /bin/bash

# The newest Python 3.11+ on the PATH (pyenv shims for missing versions fail the check and are skipped).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PGHOST ?= 127.0.0.1
PGPORT ?= 5432

.PHONY: install test demo dev bench local-trino postgres system-packages metrics status clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: report_pipeline needs Python 3.11 or newer on the PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# Debian packages the tests use: promtool (package prometheus) checks and unit-tests the alert rules.
system-packages:
	@command -v promtool >/dev/null && exit 0; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	echo "installing Debian's prometheus package (for promtool)"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
		|| { echo "error: could not install promtool; run: apt-get install prometheus" >&2; exit 1; }

# Use the PostgreSQL server on $(PGHOST):$(PGPORT); start the local cluster if it is installed but stopped.
postgres:
	@if pg_isready -q -h $(PGHOST) -p $(PGPORT) 2>/dev/null; then exit 0; fi; \
	if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] && [ -n "$$(ls /etc/postgresql)" ]; then \
		echo "starting PostgreSQL $$(ls /etc/postgresql | tail -n1)"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | tail -n1) main start || true; \
		for i in $$(seq 30); do pg_isready -q -h $(PGHOST) -p $(PGPORT) && exit 0; sleep 1; done; \
	fi; \
	echo "error: no PostgreSQL server answers on $(PGHOST):$(PGPORT) and none could be started." >&2; \
	echo "       Install one (apt-get install postgresql) or set PGHOST/PGPORT to a running server." >&2; \
	exit 1

test: install system-packages postgres
	$(BIN)/pytest --durations=15

demo: install
	$(BIN)/report-pipeline demo

dev: install postgres
	$(BIN)/report-pipeline dev

bench: install
	$(BIN)/python -m report_pipeline_tests.benchmarks

# The metrics endpoint and the status view read the ledger named by REPORT_PIPELINE_LEDGER_URL.
metrics: install
	$(BIN)/report-pipeline metrics

status: install
	$(BIN)/report-pipeline status

local-trino: install
	$(BIN)/report-pipeline local-trino

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
