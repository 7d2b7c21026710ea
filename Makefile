# Two commands do everything on a fresh machine:
#   make run   - Azurite, the local Functions host (durable engine), the Graph emulator and the demo portal
#   make test  - every test (unit, integration against Azurite + Graph emulator, e2e on the local host, browser)
# Both install what they need first (venv, pip, npm ci, Chromium) and are quick the second time.

# Python 3.13, as on Azure: python3.13 on PATH first (a pyenv shim counts only if it answers),
# then pyenv's own 3.13.
PYTHON ?= $(shell for c in python3.13 "$$(PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null)" \
	"$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 2>/dev/null | tail -1)"; do \
	[ -n "$$c" ] && "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { command -v "$$c"; exit 0; }; \
	done)
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .make-stamps
PYTEST_ARGS ?=

.PHONY: run test test-unit lint typecheck bench clean setup browser

setup: $(STAMPS)/venv $(STAMPS)/npm

$(STAMPS)/venv: requirements.txt requirements-dev.txt constraints.txt
	@mkdir -p $(STAMPS)
	@if [ -z "$(PYTHON)" ]; then \
		echo "Python 3.13 is required (the Azure Functions runtime this app targets)." >&2; \
		echo "Install it (e.g. 'pyenv install 3.13' or Debian's python3.13) so that python3.13 is on PATH." >&2; \
		exit 1; fi
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then \
		echo "$(VENV) is not Python 3.13: recreating it"; rm -rf $(VENV); fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium for the browser tests; Playwright must never download a browser of its own.
$(STAMPS)/chromium:
	@mkdir -p $(STAMPS)
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; \
	fi
	@touch $@

browser: $(STAMPS)/chromium

run: setup
	$(PY) -m devhost --clock virtual --demo

test: setup browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The fast loop: pure domain, orchestrator replays and services on in-memory fakes; no Azurite, no host.
test-unit: setup
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

typecheck: lint

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(STAMPS) $(VENV) node_modules .data test-artifacts
