"""Entry point of the Celery processes (`celery -A celery_app worker|beat|flower`), as in Flask's
Celery guide: the app factory configures Celery; importing `workers` registers its tasks.

Queues and routes are named in `core.tasks`: `engine` (one worker, concurrency 1, so trades
execute one at a time), `email`, and `default` for anything unrouted.
"""

import gc
import logging

from celery.signals import after_setup_logger, worker_init, worker_process_init

import workers.analytics  # importing the worker modules registers their shared tasks
import workers.mail
import workers.tasks  # noqa: F401
from app import create_app
from core import logs

flask_app = create_app()
celery = flask_app.extensions["celery"]


@after_setup_logger.connect
def _log_lines(logger=None, **_):
    """Lines in LOG_FORMAT with the id of the request that enqueued the task. Price moves schedule
    a trigger check many times a second: Celery's received/succeeded line for each would drown the
    engine's own log of what it traded (failures still log as errors)."""
    for handler in logger.handlers if logger is not None else ():
        logs.use_format(handler, flask_app.config["LOG_FORMAT"])
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


@worker_init.connect
@worker_process_init.connect
def _freeze_loaded_objects(**_):
    """As in the web workers (gunicorn.conf.py): full collections skip what the app loaded, so they
    no longer pause a task for tens of milliseconds. In the worker's main process too: it receives
    every task for the pool, and a full collection there held each delivery for 100 ms."""
    gc.freeze()
