"""Queues, task names and routes: how the web app and the poller enqueue work by name.

Neither imports the code that runs a task; they send its name through a Celery client, so the
engine's code is loaded only by the engine.
"""

from typing import Any, Protocol

from core.keys import TRIGGER_CHECK_FLAG

ENGINE_QUEUE = "engine"  # one worker, concurrency 1: trades execute one at a time
EMAIL_QUEUE = "email"
DEFAULT_QUEUE = "default"  # anything unrouted: consumed by the mailer, never queued behind trades
ENGINE_WORKER_PREFIX = "engine@"

EXECUTE_ORDER = "engine.execute_order"
CLOSE_ORDER = "engine.close_order"
CANCEL_ORDER = "engine.cancel_order"
CHECK_TRIGGERS = "engine.check_triggers"
SWEEP_STUCK_ORDERS = "engine.sweep_stuck_orders"
RESET_ACCOUNT = "engine.reset_account"
SNAPSHOT_EQUITY = "analytics.snapshot_equity"  # set-based, read-mostly: not the engine's queue
SEND_SIGN_IN_LINK = "mail.send_sign_in_link"
SWEEP_MAIL_OUTBOX = "mail.sweep_outbox"

TASK_ROUTES = {"engine.*": {"queue": ENGINE_QUEUE}, "mail.*": {"queue": EMAIL_QUEUE}}
TRIGGER_CHECK_FLAG_TTL_S = 10


class TaskSender(Protocol):
    def send_task(self, name: str, args: Any = ..., **options: Any) -> Any: ...


class FlagStore(Protocol):
    def set(self, name: str, value: Any, ex: Any = ..., nx: bool = ...) -> Any: ...


def request_trigger_check(flags: FlagStore, sender: TaskSender, asset: str) -> bool:
    """Enqueue a trigger check for `asset` unless one is already pending (coalesces price moves)."""
    if flags.set(TRIGGER_CHECK_FLAG.format(asset=asset), 1, nx=True, ex=TRIGGER_CHECK_FLAG_TTL_S):
        sender.send_task(CHECK_TRIGGERS, args=[asset])
        return True
    return False
