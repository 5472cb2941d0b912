# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
FEED ?= live
PYTEST_ARGS ?=

.PHONY: run test test-faults bench venv migrate clean-data

$(INSTALLED): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(INSTALLED)

venv: $(INSTALLED)

## Start web, engine, mailer, poller and Flower (FEED=sim for the offline simulator)
run: venv
	$(PY) devstack.py run --feed $(FEED)

## Run the test suite against real PostgreSQL, Redis and Celery workers
test: venv
	$(PY) devstack.py exec --database trading_test --redis-db 1 -- $(PY) -m pytest $(PYTEST_ARGS)

migrate: venv
	$(PY) devstack.py exec -- $(VENV)/bin/flask --app wsgi db upgrade

## Stop the embedded servers and delete their data
clean-data:
	-test -f .data/pg/postmaster.pid && kill -INT $$(head -1 .data/pg/postmaster.pid)
	-test -f .data/redis/redis.pid && kill $$(cat .data/redis/redis.pid)
	sleep 1
	rm -rf .data

## Only the outage tests (Redis and PostgreSQL restarts, feed loss); `make test` runs them too
test-faults: venv
	$(PY) devstack.py exec --database trading_test --redis-db 1 -- $(PY) -m pytest tests/test_faults.py $(PYTEST_ARGS)

## Benchmarks (see bench/README.md)
bench: venv
	$(PY) devstack.py exec --database trading_bench --redis-db 2 -- $(PY) -m bench
