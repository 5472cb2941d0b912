"""The Celery app, configured from the same `Config` as the API.

Queues: `engine` takes every trade task and is consumed by exactly one worker with concurrency 1,
so trades execute one at a time; `email` keeps slow mail servers away from the API and the engine.
"""
import logging
from functools import cache

from celery import Celery, Task
from celery.signals import after_setup_logger, worker_process_init

from config import DATA_DIR, Config

ENGINE_QUEUE = "engine"
EMAIL_QUEUE = "email"
ENGINE_WORKER_PREFIX = "engine@"


@cache
def flask_app():
    from app import create_app

    return create_app()


class FlaskTask(Task):
    """Runs each task inside its own Flask app context, so tasks share the API's extensions.

    The context is also the task's session scope: popping it removes the SQLAlchemy session,
    rolling back whatever a failed task left uncommitted.
    """

    def __call__(self, *args, **kwargs):
        with flask_app().app_context():
            return self.run(*args, **kwargs)


def make_celery(config: Config) -> Celery:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    app = Celery("trading", task_cls=FlaskTask, include=["workers.engine", "workers.mail"])
    app.conf.update(
        broker_url=config.REDIS_URL,
        broker_connection_retry_on_startup=True,
        # Redelivers tasks of a killed worker once this many seconds passed without an ack.
        broker_transport_options={"visibility_timeout": config.BROKER_VISIBILITY_TIMEOUT_S},
        task_routes={"engine.*": {"queue": ENGINE_QUEUE}, "mail.*": {"queue": EMAIL_QUEUE}},
        task_default_queue=ENGINE_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_send_task_events=True,
        task_send_sent_event=True,
        beat_schedule={
            "sweep-stuck-orders": {"task": "engine.sweep_stuck_orders", "schedule": 5.0},
        },
        beat_schedule_filename=str(DATA_DIR / "celerybeat-schedule"),
    )
    return app


celery = make_celery(Config.from_env())


@after_setup_logger.connect
def _quiet_per_task_lines(**_):
    """Price moves schedule a trigger check many times a second: Celery's received/succeeded line
    for each would drown the engine's own log of what it traded (failures still log as errors)."""
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


@worker_process_init.connect
def _dispose_inherited_pools(**_):
    """A forked worker child must not reuse the parent's database connections."""
    from app.extensions import db

    with flask_app().app_context():
        db.engine.dispose(close=False)
