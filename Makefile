# Everything installs into one project virtualenv (.venv); system packages come from
# deploy/local/install-deps. `make test` and `make demo` need nothing else.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# shared and the node-agent run in NVIDIA's Triton image (Python 3.10): tested there too.
PYTHON310 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10) $(wildcard /usr/bin/python3.10))
VENV := .venv
PY := $(VENV)/bin/python
VENV310 := .venv310
PY310 := $(VENV310)/bin/python
PACKAGES := shared 'services/am[kerberos]' 'services/node-agent[kerberos]' 'services/gateway-sync[kerberos]' services/authz
PYPROJECTS := $(addsuffix /pyproject.toml,shared services/am services/node-agent services/gateway-sync services/authz)

.PHONY: install system test test-fast demo demo-down bench stack-up stack-down clean

install: system $(VENV)/.installed $(VENV310)/.installed

system:
	@deploy/local/install-deps
	@deploy/local/hadoop/minicluster fetch
	@tests/authz/oracle/build
	@deploy/knox/build

$(VENV)/.installed: $(PYPROJECTS) tests/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(addprefix -e ,$(PACKAGES)) -r tests/requirements.txt
	@touch $@

$(VENV310)/.installed: shared/pyproject.toml services/node-agent/pyproject.toml tests/requirements.txt
	@test -n "$(PYTHON310)" || { echo "python3.10 not found: it is needed to test shared and the node-agent on Triton's Python"; exit 1; }
	@test -x $(PY310) || $(PYTHON310) -m venv $(VENV310)
	$(PY310) -m pip install -q --upgrade pip
	$(PY310) -m pip install -q -e shared -e 'services/node-agent[kerberos]' pytest pytest-timeout hypothesis httpx anyio numpy "tritonclient[http,grpc]"
	@touch $@

# The whole suite against the real components; pytest's exit 5 (nothing collected) fails.
test: install
	$(PY) -m pytest tests --durations=15
	$(PY310) -m pytest tests/shared tests/node_agent -m "not integration"

# Unit tests only: no servers.
test-fast: install
	$(PY) -m pytest tests -m "not integration"

# KERBEROS=1: the same on the Kerberized stack (a KDC, secure YARN/HDFS, SASL ZooKeeper), with Knox (SPNEGO).
demo: install
	@deploy/local/demo up $(if $(filter 1 yes true,$(KERBEROS)),--kerberos)

demo-down:
	@deploy/local/demo down

bench: install
	@# exit 77: the bench cannot run on this machine (bench/gpu without a GPU): said, and skipped
	@# every bench runs even after a miss; the target fails at the end, naming the misses
	@missed=""; for b in bench/*/run; do echo "== $$b"; $$b; rc=$$?; \
	  [ $$rc -eq 0 ] || [ $$rc -eq 77 ] || missed="$$missed $$b"; done; \
	  [ -z "$$missed" ] || { echo "benchmarks that missed a target:$$missed"; exit 1; }

stack-up: install
	@deploy/local/stack up

stack-down:
	@deploy/local/stack down

clean: stack-down
	rm -rf $(VENV) $(VENV310) deploy/local/run
