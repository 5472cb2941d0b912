"""Dispatching work: Celery wired the way Flask's guide does it, and enqueueing by task name.

`celery_init_app` builds the Celery app from the Flask config and runs every task inside an
app context; the web process only ever sends task names (`core.tasks`), never imports a task.
"""

import contextlib
import logging

import redis
from celery import Celery, Task
from flask import Flask, current_app

from app.extensions import redis_client
from core.shards import shard_of
from core.tasks import WAKE_UP
from core.wakeups import claim_wake_up, clear_wake_up

log = logging.getLogger(__name__)


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        """Each task runs in its own app context, which is also its session scope: popping it
        removes the SQLAlchemy session, rolling back whatever a failed task left uncommitted."""

        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def celery() -> Celery:
    return current_app.extensions["celery"]


def enqueue(name: str, *args, argsrepr: str | None = None, **kwargs) -> bool:
    """Send task `name` (an engine task names its `account_id`: it routes the task to the account's
    shard); False (logged) when the broker is down, for callers whose sweep retries."""
    try:
        celery().send_task(name, args=list(args), kwargs=kwargs, argsrepr=argsrepr)
    except Exception:  # broker down: the caller's sweep picks the work up once it is back
        log.exception("could not enqueue %s%r; its sweep will retry", name, args)
        return False
    return True


def wake_engine(account_id: int) -> None:
    """Wake the account's engine for work just committed, unless a wake-up of the account's shard
    is already on its way or running: it executes this work too (`core.wakeups`: under load, one
    task per batch rather than per order)."""
    shard = shard_of(account_id, current_app.config["ENGINE_SHARDS"])
    try:
        if not claim_wake_up(redis_client, shard):
            return
    except redis.RedisError:
        log.warning("could not claim the wake-up of shard %d; sending one anyway", shard)
    if not enqueue(WAKE_UP, account_id=account_id):  # the sweep re-sends the wake-up
        with contextlib.suppress(redis.RedisError):  # else the flag expires after WAKE_FLAG_TTL_S
            clear_wake_up(redis_client, shard)
