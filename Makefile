# Two commands set everything up on a machine with Python 3.11+ and make:
#   make run    the dashboard at http://127.0.0.1:8000, with a local Coalesce simulator
#   make test   the whole test suite (DATABASE_URL=postgres://... to run it on PostgreSQL)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV := .dev
SIMULATOR_PORT ?= 8001
SIMULATOR_TOKEN ?= sim-token

.PHONY: run test lint install clean-dev

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# Development secrets: generated once, kept out of git, reused by every later `make run`.
$(DEV)/secret_key: | $(STAMP)
	@mkdir -p $(DEV) && umask 077 && $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@

$(DEV)/credentials_keys: | $(STAMP)
	@mkdir -p $(DEV) && umask 077 && $(PY) -c 'from runs.encryption import generate_key; print(generate_key("dev1"))' > $@

run: $(STAMP) $(DEV)/secret_key $(DEV)/credentials_keys
	@SIMULATOR_PORT=$(SIMULATOR_PORT) SIMULATOR_TOKEN=$(SIMULATOR_TOKEN) PY=$(PY) DEV=$(DEV) scripts/dev-server

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Forget the local database, keys and admin password (asks no questions).
clean-dev:
	rm -rf $(DEV)
