# Two commands set everything up on a fresh machine:
#   make run   - virtual environment, pinned dependencies, index, then the advisor
#   make test  - the same plus test-only dependencies (Chromium, llama.cpp server), then the tests
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TRANSFORMERS_OFFLINE := 1
export RAGAS_DO_NOT_TRACK := true
export GRADIO_ANALYTICS_ENABLED := False
export ANONYMIZED_TELEMETRY := False
export NO_PROXY := localhost,127.0.0.1
export no_proxy := localhost,127.0.0.1

.PHONY: run test test-fast lint install install-test system-test-deps index chat lock bench eval-smoke clean

run: install index
	$(BIN)/python app.py

chat: install index
	$(BIN)/advisor chat

index: install
	$(BIN)/advisor ingest

install: $(VENV)/.installed

# torch first, pinned to the CPU build on this machine's disk: anything else pulls CUDA (GBs).
$(VENV)/.installed: requirements/app.lock pyproject.toml
	@command -v $(PY) >/dev/null || { echo "Python 3.11 is required ($(PY) not found)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements/app.lock
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

install-test: $(VENV)/.installed-test system-test-deps

# llama-cpp-python compiles for ~5 minutes the first time; pip caches the wheel afterwards.
$(VENV)/.installed-test: $(VENV)/.installed requirements/test.lock
	$(PIP) install -q -r requirements/test.lock
	touch $@

# Debian's Chromium for the browser tests (Playwright cannot download its own here) and
# PostgreSQL for the shared-database and replica tests (they start their own on loopback).
system-test-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="chromium chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Missing: run 'sudo apt-get install $$missing' (the browser and PostgreSQL tests need them)"; exit 1; fi; \
	fi

test: install-test lint
	$(BIN)/python -m pytest

# The fast tier: no model load, no browser, no servers (a minute or so); `make test` runs everything.
test-fast: install-test lint
	$(BIN)/python -m pytest -m "not model and not browser and not llm_server and not chroma_server and not postgres and not replicas"

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install-test
	$(BIN)/python benchmarks/bench_spine.py
	$(BIN)/python benchmarks/bench_answer.py
	$(BIN)/python benchmarks/bench_ui.py
	$(BIN)/python benchmarks/bench_slack.py
	$(BIN)/python benchmarks/bench_llm.py
	$(BIN)/python benchmarks/bench_replicas.py
	$(BIN)/python benchmarks/bench_insights.py
	$(BIN)/python benchmarks/bench_encoder.py

# Re-resolve the pinned lock files (needs uv; pip's resolver backtracks for >15 min here).
lock:
	cd requirements && uv pip compile app.in --python-version 3.11 --find-links /opt/wheels --no-header --annotation-style line -o app.lock
	cd requirements && uv pip compile test.in --python-version 3.11 --find-links /opt/wheels --no-header --annotation-style line -o test.lock

clean:
	rm -rf $(VENV) data test-output .pytest_cache
