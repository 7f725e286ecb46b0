# Everything installs into one project virtualenv (.venv); system packages come from
# deploy/local/install-deps. `make test` and `make demo` need nothing else.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PACKAGES := shared services/am services/node-agent services/gateway-sync services/authz
PYPROJECTS := $(addsuffix /pyproject.toml,$(PACKAGES))

.PHONY: install system test test-fast demo demo-down bench stack-up stack-down clean

install: system $(VENV)/.installed

system:
	@deploy/local/install-deps

$(VENV)/.installed: $(PYPROJECTS) tests/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(addprefix -e ,$(PACKAGES)) -r tests/requirements.txt
	@touch $@

# The whole suite against the real components; pytest's exit 5 (nothing collected) fails.
test: install
	$(PY) -m pytest tests

# Unit tests only: no servers.
test-fast: install
	$(PY) -m pytest tests -m "not integration"

demo: install
	@deploy/local/demo up

demo-down:
	@deploy/local/demo down

bench: install
	@for b in bench/*/run; do echo "== $$b"; $$b || exit 1; done

stack-up: install
	@deploy/local/stack up

stack-down:
	@deploy/local/stack down

clean: stack-down
	rm -rf $(VENV) deploy/local/run
