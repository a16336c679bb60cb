# envmon — the two commands that matter: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean db-down help .pg-binaries

help:
	@echo "make run    — the service on the embedded PostgreSQL (sets everything up first)"
	@echo "make test   — the full test suite (sets everything up first)"
	@echo "make lint   — ruff + mypy --strict"
	@echo "make bench  — benchmarks, printing their figures"

setup: $(STAMP) .pg-binaries

# Reinstall only when the project's requirements change.
$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# System packages (Debian): the PostgreSQL server for the embedded database and
# the test harness; pango and a CJK font for the PDF report (WeasyPrint);
# Chromium to check the rendered report. Installed when missing and root.
SYSTEM_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk chromium

.pg-binaries:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
	    || { command -v pg_config >/dev/null 2>&1 && test -x "$$(pg_config --bindir)/initdb"; }; then \
	  missing_pg=; else missing_pg=postgresql; fi; \
	missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	missing="$$missing_pg $$missing"; \
	if [ -z "$$(echo $$missing)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	elif [ -n "$$missing_pg" ]; then \
	  echo "PostgreSQL server binaries (initdb, pg_ctl) not found."; \
	  echo "Install them, e.g. 'sudo apt-get install postgresql', or set PG_BINDIR."; \
	  exit 1; \
	else \
	  echo "note: missing Debian packages for the PDF report and its check:$$missing"; \
	  echo "      (sudo apt-get install$$missing)"; \
	fi

run: setup
	$(BIN)/envmon run

# ENVMON_TEST_TIMESCALE=auto|on|off picks the store (tests/conftest.py); PYTEST_ARGS adds options.
test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/envmon dashboards build --check   # generated Grafana files are up to date
	$(BIN)/envmon alerts grafana --check

bench: setup
	$(BIN)/python bench/run_all.py

db-down:
	$(BIN)/envmon db down

clean:
	-$(BIN)/envmon db down
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
