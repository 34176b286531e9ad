# Quick start: `make demo` and `make test` work on a fresh machine with only the system installed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NPM_DIR := tests/servers

.PHONY: install test-deps test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(NPM_DIR)/node_modules/.installed: $(NPM_DIR)/package-lock.json
	npm ci --prefix $(NPM_DIR) --no-audit --no-fund --loglevel=error
	touch $@

test-deps: install $(NPM_DIR)/node_modules/.installed

test: test-deps
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/batchai demo

bench: install
	$(PY) bench/api_throughput.py
	$(PY) bench/dispatch.py

clean:
	rm -rf $(VENV) $(NPM_DIR)/node_modules .pytest_cache
