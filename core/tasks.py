"""Queues, task names and routes: how the web app and the poller enqueue work by name.

Neither imports the code that runs a task; they send its name through a Celery client, so the
engine's code is loaded only by the engine. Engine tasks go to their account's shard queue
(`core.shards`): the sender names the account (`account_id=`) or the shard (`shard=`).
"""

from collections.abc import Iterable
from typing import Any, Protocol

from core.keys import TRIGGER_CHECK_FLAG
from core.shards import shard_of, shard_queue

EMAIL_QUEUE = "email"
DEFAULT_QUEUE = "default"  # anything unrouted: consumed by the mailer, never queued behind trades
ENGINE_WORKER_PREFIX = "engine"  # engine worker names: engine<index>@<host>

WAKE_UP = "engine.wake_up"  # new work of the account's shard: `core.wakeups`
CANCEL_ORDER = "engine.cancel_order"
CANCEL_NET_ORDER = "engine.cancel_net_order"  # a netting account's working order
CHECK_TRIGGERS = "engine.check_triggers"
SWEEP_STUCK_ORDERS = "engine.sweep_stuck_orders"
RESET_ACCOUNT = "engine.reset_account"
SNAPSHOT_EQUITY = "analytics.snapshot_equity"  # set-based, read-mostly: not the engine's queue
SEND_SIGN_IN_LINK = "mail.send_sign_in_link"
SWEEP_MAIL_OUTBOX = "mail.sweep_outbox"

ENGINE_TASK_PREFIX = "engine."
MAIL_ROUTES = {"mail.*": {"queue": EMAIL_QUEUE}}
TRIGGER_CHECK_FLAG_TTL_S = 10


class EngineRouter:
    """Celery router: an engine task goes to the queue of its account's shard, or of the shard it
    names (trigger checks and sweeps work shard by shard). An engine task naming neither is a bug:
    refused at the sender, never left to whichever worker reads the default queue."""

    def __init__(self, shards: int):
        self.shards = shards

    def __call__(self, name: str, args: Any, kwargs: Any, options: Any, *_: Any, **__: Any) -> dict[str, str] | None:
        if not name.startswith(ENGINE_TASK_PREFIX):
            return None
        kwargs = kwargs or {}
        if kwargs.get("account_id") is not None:
            return {"queue": shard_queue(shard_of(int(kwargs["account_id"]), self.shards))}
        if kwargs.get("shard") is not None:
            return {"queue": shard_queue(int(kwargs["shard"]))}
        raise ValueError(f"{name} needs account_id= or shard= to reach its engine")


class TaskSender(Protocol):
    def send_task(self, name: str, args: Any = ..., **options: Any) -> Any: ...


class FlagStore(Protocol):
    def pipeline(self, transaction: bool = ...) -> Any: ...

    def delete(self, *names: str) -> Any: ...


def request_trigger_check(flags: FlagStore, sender: TaskSender, asset: str, shards: Iterable[int]) -> int:
    """Enqueue a trigger check of `asset` for each of `shards` that has none pending (coalesces
    price moves); returns how many were enqueued."""
    shards = list(shards)
    if not shards:
        return 0
    with flags.pipeline(transaction=False) as pipe:
        for shard in shards:
            pipe.set(TRIGGER_CHECK_FLAG.format(asset=asset, shard=shard), 1, nx=True, ex=TRIGGER_CHECK_FLAG_TTL_S)
        pending = pipe.execute()
    enqueued = [shard for shard, flagged in zip(shards, pending, strict=True) if flagged]
    for shard in enqueued:
        sender.send_task(CHECK_TRIGGERS, args=[asset], kwargs={"shard": shard})
    return len(enqueued)


def clear_trigger_check(flags: FlagStore, asset: str, shard: int) -> None:
    """A trigger check starting: the next price move may schedule another."""
    flags.delete(TRIGGER_CHECK_FLAG.format(asset=asset, shard=shard))
