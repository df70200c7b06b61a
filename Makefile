# auton8n — every setup step lives here. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
DATA_DIR ?= data
TOOLCHAIN_DIR ?= $(DATA_DIR)/toolchain
PYTEST_ARGS ?=

export AUTON8N_TOOLCHAIN_DIR ?= $(abspath $(TOOLCHAIN_DIR))

.PHONY: help setup system-deps toolchain demo serve test check lint typecheck protos bench clean ops-check

help:
	@echo "make demo    set up, start a server, generate the example plugin, download it"
	@echo "make test    set up and run the whole test suite"
	@echo "make serve   run the server in the foreground (AUTON8N_* settings apply)"
	@echo "make check   lint + format check + type check"
	@echo "make protos  regenerate protos/auton8n/v1/*_pb2*.py"
	@echo "make bench   run the benchmarks (see BENCHMARKS.md)"

# System packages: bubblewrap (the sandbox), node/npm (the plugin toolchain).
system-deps:
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "please install:$$missing (e.g. sudo apt-get install$$missing)"; exit 1; fi; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $@

setup: system-deps $(STAMP)

# The shared npm toolchain every job links to (installed once per lockfile hash).
toolchain: setup
	$(PY) scripts/ensure_toolchain.py "$(AUTON8N_TOOLCHAIN_DIR)"

serve: toolchain
	$(VENV)/bin/auton8n serve --data-dir $(DATA_DIR)

demo: toolchain
	@bash scripts/demo.sh

test: toolchain
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks (loopback only, each step bounded; about 9 minutes on 2 cores): results in
# bench/results/ (issue 9: performance.json), tables in BENCHMARKS.md.
bench: toolchain
	timeout 600 $(PY) -m bench.pipeline_bench -n 3
	timeout 300 $(PY) -m bench.durability_bench
	timeout 60 $(PY) -m bench.prompt_sizes
	timeout 600 $(PY) -m bench.unary_bench
	timeout 300 $(PY) -m bench.watch_bench
	timeout 900 $(PY) -m bench.jobs_bench

check: setup
	$(VENV)/bin/ruff check server client tests scripts bench
	$(VENV)/bin/ruff format --check server client tests scripts bench
	$(VENV)/bin/mypy server client

lint: check

protos: setup
	$(PY) scripts/genprotos.py

# Dockerfile lint and k8s overlays rendered + validated (no Docker engine needed).
ops-check: setup
	$(VENV)/bin/hadolint Dockerfile
	for o in single ha; do $(VENV)/bin/kubectl kustomize k8s/overlays/$$o >/dev/null || exit 1; done
	$(PY) -m pytest tests/ops

clean:
	rm -rf $(VENV) $(DATA_DIR) plugin-out .pytest_cache .mypy_cache .ruff_cache
