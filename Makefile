# Two commands on a fresh machine: `make run` and `make test`. `make help` lists the rest.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
FEED ?= live
ENGINES ?= 1
PYTEST_ARGS ?=
SUITES ?=
STACK_TEST := $(PY) devstack.py exec --database trading_test --redis-db 1 --

.PHONY: help run test test-unit test-faults lint format bench venv migrate clean-data chromium screenshots

## List the targets
help:
	@awk '/^## /{doc=substr($$0, 4); next} /^[a-z-]+:/{if (doc) printf "  make %-12s %s\n", substr($$1, 1, length($$1)-1), doc; doc=""}' $(MAKEFILE_LIST)

$(INSTALLED): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(INSTALLED)

## Create the virtualenv and install the requirements
venv: $(INSTALLED)

## Start and supervise web, engine, beat, mailer, poller and Flower (FEED=sim: the offline simulator; ENGINES=2: two engine processes)
run: venv
	$(PY) devstack.py run --feed $(FEED) --engines $(ENGINES)

## Run every test against real PostgreSQL, Redis, Celery workers and a headless Chromium
test: venv chromium
	$(STACK_TEST) $(PY) -m pytest $(PYTEST_ARGS)

## Install Debian's Chromium for the browser tests when it is missing (as root)
chromium:
	tests/ensure-chromium

## Drive the terminal in Chromium and write docs/terminal.png and docs/terminal-mobile.png
screenshots: venv chromium
	WRITE_DOCS_SCREENSHOTS=1 $(STACK_TEST) $(PY) -m pytest tests/integration/test_terminal.py $(PYTEST_ARGS)

## Run the pure tests (rules, parsing, schemas, config): no server, seconds
test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

## Only the outage tests (Redis and PostgreSQL restarts, feed loss); `make test` runs them too
test-faults: venv
	$(STACK_TEST) $(PY) -m pytest tests/integration/test_faults.py $(PYTEST_ARGS)

## ruff (lint and format check), import-linter contracts, mypy on the core
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

## Apply ruff's formatting and safe fixes
format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Apply the database migrations
migrate: venv
	$(PY) devstack.py exec -- $(VENV)/bin/flask --app wsgi db upgrade

## Stop the embedded servers and delete their data
clean-data:
	-test -f .data/pg/postmaster.pid && kill -INT $$(head -1 .data/pg/postmaster.pid)
	-test -f .data/redis/redis.pid && kill $$(cat .data/redis/redis.pid)
	sleep 1
	rm -rf .data

$(VENV)/.bench-installed: $(INSTALLED) bench/requirements.txt
	$(PY) -m pip install --quiet -r bench/requirements.txt
	touch $@

## Benchmarks (see bench/README.md); SUITES="open_loop drain" runs only those
bench: venv $(VENV)/.bench-installed
	$(PY) devstack.py exec --database trading_bench --redis-db 2 -- $(PY) -m bench $(SUITES)
