# Lifecycle: every entry point a user types. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install servers test lint format docs docs-serve train demo bench deploy up compose-up compose-down exporter

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# uv resolves and installs the ~200 packages in about a minute where pip took five on a fresh
# machine; the venv keeps pip for anyone who prefers it. --compile-bytecode: uv writes no .pyc
# by default, and where PYTHONDONTWRITEBYTECODE=1 (this machine and its CI) no process writes
# them either, so every `mlops` start compiled MLflow, Prefect and scikit-learn from source
# again: `mlops status` took 35 s instead of 8, and the test suite paid it in every child.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools

servers: install ## install the system servers the tests start (nginx, Prometheus, ...): apt-get as root, else say what is missing
	@$(BIN)/python -m tests.fixtures.system_servers

# xdist workers (TEST_WORKERS=0: one process). With `loadgroup`, a module whose tests share a
# module-scoped fixture stays on one worker and every other test is handed out on its own
# (tests/conftest.py marks them); `--no-loadscope-reorder` keeps conftest's heaviest-first order.
TEST_WORKERS ?= 2
PACKAGES := lifecycle serving reporting monitoring flows deployments ops tests

test: install servers docs ## build the docs (strict), then run the whole test suite (unit + integration against real servers)
	@# The project's own .pyc, which PYTHONDONTWRITEBYTECODE=1 would leave unwritten: the suite
	@# starts a few hundred `mlops`, uvicorn and worker processes, each importing this code.
	@$(BIN)/python -m compileall -q $(PACKAGES)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

lint: install ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The site's home page, alerts page and references are generated from the code at build time
# (docs/gen_ref.py, an mkdocs hook). Port 8800: 8000-8003 are the API and its replicas.
# NO_MKDOCS_2_WARNING: Material 9.7+ prints a boxed notice on every build that it reaches end of
# life on 2027-05-05 (Zensical is its successor); noted here once instead of in every test log.
DOCS_PORT ?= 8800
MKDOCS = NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

docs: install ## build the documentation site into site/ (strict: a broken link or anchor fails)
	$(MKDOCS) build --strict --site-dir site

docs-serve: install ## serve the documentation site on http://127.0.0.1:8800 (DOCS_PORT), rebuilt on change
	$(MKDOCS) serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

train: install ## one training run (reads MLOPS_TRIALS, MLOPS_DATA_SOURCE, ...)
	$(BIN)/mlops train

demo: install ## the whole loop once, locally and finitely (exits 0)
	$(BIN)/mlops demo

bench: install ## the benchmarks; each prints its ratio against a named peer
	$(BIN)/python bench/run.py

deploy: install ## apply the work pool, deployments and automations to PREFECT_API_URL
	$(BIN)/python -m deployments

up: install ## the local stack in the foreground: Prefect + worker, MLflow UI, MongoDB, API, nginx
	$(BIN)/mlops up

exporter: install ## serve registry/report metrics for Prometheus on :9108
	$(BIN)/mlops exporter --port 9108

# Docker Compose v2 plugin when present, else the standalone docker-compose (evaluated lazily).
COMPOSE_CLI = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE = $(COMPOSE_CLI) --env-file .env.cloud -f docker/docker-compose.yml -p lifecycle

compose-up: ## build the images and start the Docker Compose stack in the background (needs Docker + .env.cloud)
	@test -f .env.cloud || { echo "error: .env.cloud is missing: cp .env.cloud.example .env.cloud and set its secrets"; exit 1; }
	$(COMPOSE) up -d --build
	$(COMPOSE) ps

compose-down: ## stop the Docker Compose stack (named volumes, i.e. the data, are kept)
	$(COMPOSE) down
