# Quick start: `make demo` and `make test` work on a fresh machine with only the system installed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NPM_DIR := tests/servers

.PHONY: install requirements system-deps browser-deps test-deps typecheck test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[local,cli,azuremonitor,train,test]'
	touch $@

# The Functions app's requirements.txt, rendered from pyproject.toml (the one source of truth).
requirements:
	$(PYTHON) infra/requirements.py

# Open MPI for the MPI toolkits' launches (mpirun; mpi4py links against it); cloud-init to validate the
# VMs' user data; openssh-server for the boot test's nodes (tests/e2e/test_vm_boot.py starts one sshd per
# network namespace). Needs root or sudo.
system-deps:
	@command -v mpirun >/dev/null && command -v cloud-init >/dev/null && test -x /usr/sbin/sshd || { \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        openmpi-bin libopenmpi-dev cloud-init openssh-server >/dev/null; }

# Debian's Chromium for the web page's browser tests (Playwright drives it; no browser download).
browser-deps:
	@command -v chromium >/dev/null || { \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

$(NPM_DIR)/node_modules/.installed: $(NPM_DIR)/package-lock.json
	npm ci --prefix $(NPM_DIR) --no-audit --no-fund --loglevel=error
	touch $@

test-deps: system-deps browser-deps install $(NPM_DIR)/node_modules/.installed

# Types (mypy, strict, over the first-party code: [tool.mypy]) and which program may import what
# (lint-imports: [tool.importlinter]); about 25 s of CPU from cold, a second or two with its cache.
typecheck: install
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

test: test-deps typecheck
	$(PY) -m pytest -q

demo: system-deps install
	$(VENV)/bin/batchai demo

bench: system-deps install
	$(PY) bench/api_throughput.py
	$(PY) bench/launch.py
	$(PY) bench/chaos.py
	$(PY) bench/dispatch.py
	$(PY) bench/submissions.py
	$(PY) bench/scale.py
	$(PY) bench/sweep.py

clean:
	rm -rf $(VENV) $(NPM_DIR)/node_modules .pytest_cache .mypy_cache .import_linter_cache .grimp_cache
