# Two commands for a fresh machine (Python 3.11 + pip): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export ML_CONNECTOR_HOME ?= $(CURDIR)/.ml-connector
UI_PORT ?= 3000

.PHONY: install demo ui test lint format bench bench-detail chaos clean lock screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/ml-connector demo

ui: install
	$(BIN)/ml-connector demo --ui --ui-port $(UI_PORT)

# The suite runs on every core (pytest-xdist): each worker has its own sandbox and databases.
TEST_WORKERS ?= auto
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n $(TEST_WORKERS)

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The image's pinned dependencies (Dockerfile): `make lock` after editing pyproject.toml keeps the
# other pins; `make lock LOCK_FLAGS=--upgrade` moves everything to the newest allowed versions.
lock: install
	$(BIN)/uv pip compile pyproject.toml deploy/build-requirements.in --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --quiet $(LOCK_FLAGS) -o requirements.lock

# Retake the README's UI screenshots (needs chromium).
screenshots: install
	ML_CONNECTOR_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest ml_connector_pipelines_tests/browser -q

# Issue 13: every figure as a ratio to a reference of the same run; writes docs/performance.md and .json.
# BENCH_ARGS=--quick for the short variant (a few minutes). The per-system benchmarks print more detail.
bench: install
	$(BIN)/python -m ml_connector_pipelines.benchmarks.suite $(BENCH_ARGS)

bench-detail: install
	$(BIN)/python -m ml_connector_pipelines.benchmarks.infor_extract
	$(BIN)/python -m ml_connector_pipelines.benchmarks.push
	$(BIN)/python -m ml_connector_pipelines.benchmarks.cin7_push --per-minute 600

# Issue 16: every flow x every fault profile, kill -9, a race on Postgres, replays; prints the tables.
# Minutes, not part of `make test` (the test suite runs the short variant).
chaos: install
	$(BIN)/python -m ml_connector_pipelines.benchmarks.chaos

clean:
	rm -rf $(VENV) .dagster_home .ml-connector .pytest_cache .ruff_cache
