# Two commands on a fresh machine: `make run` and `make test`. `make help` lists the rest.
# Any CPython 3.11 to 3.14. `python3` is pyenv's pick from .python-version where pyenv is installed,
# else the system's; PYTHON=python3.14 chooses another for a new .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
FEED ?= live
ENGINES ?= 1
PYTEST_ARGS ?=
SUITES ?=
STACK_TEST := $(PY) devstack.py exec --database trading_test --redis-db 1 --

.PHONY: help run test test-unit test-faults lint format bench venv migrate clean-data chromium screenshots lock check-python

## List the targets
help:
	@awk '/^## /{doc=substr($$0, 4); next} /^[a-z-]+:/{if (doc) printf "  make %-12s %s\n", substr($$1, 1, length($$1)-1), doc; doc=""}' $(MAKEFILE_LIST)

$(INSTALLED): requirements.txt requirements-dev.txt tests/clients/requirements.txt
	test -x $(PY) || $(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 14), "needs CPython 3.11 to 3.14"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import sys; print(f"make: using Python {sys.version.split()[0]} in $(VENV) ({sys.base_prefix})")'
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --require-hashes --no-deps -r tests/clients/requirements.txt
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

## Re-lock requirements*.txt (every version, with hashes, for every platform and Python 3.11+) from requirements*.in
lock: venv
	$(VENV)/bin/uv pip compile requirements.in --universal --python-version 3.11 --generate-hashes -q -o requirements.txt
	$(VENV)/bin/uv pip compile requirements-dev.in --universal --python-version 3.11 --generate-hashes -q -o requirements-dev.txt
	$(VENV)/bin/uv pip compile tests/clients/requirements.in --no-deps --universal --python-version 3.11 --generate-hashes -q -o tests/clients/requirements.txt

## Check on the package index that every locked requirement has a wheel for CPython 3.11-3.14 on Linux x86_64 and macOS arm64
check-python: venv
	$(PY) -m scripts.check_python requirements.txt requirements-dev.txt tests/clients/requirements.txt

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
