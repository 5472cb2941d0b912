"""Queues, task names and routes: how the web app and the poller enqueue work by name.

Neither imports the code that runs a task; they send its name through a Celery client, so the
engine's code is loaded only by the engine. Engine tasks go to their account's shard queue
(`core.shards`): the sender names the account (`account_id=`) or the shard (`shard=`).
"""

from typing import Any, Protocol

from core.keys import ENGINE_WAKE_FLAG, TRIGGER_CHECK_FLAG
from core.shards import shard_of, shard_queue

EMAIL_QUEUE = "email"
DEFAULT_QUEUE = "default"  # anything unrouted: consumed by the mailer, never queued behind trades
ENGINE_WORKER_PREFIX = "engine"  # engine worker names: engine<index>@<host>

EXECUTE_ORDER = "engine.execute_order"
CLOSE_ORDER = "engine.close_order"
CANCEL_ORDER = "engine.cancel_order"
CHECK_TRIGGERS = "engine.check_triggers"
SWEEP_STUCK_ORDERS = "engine.sweep_stuck_orders"
RESET_ACCOUNT = "engine.reset_account"
SNAPSHOT_EQUITY = "analytics.snapshot_equity"  # set-based, read-mostly: not the engine's queue
SEND_SIGN_IN_LINK = "mail.send_sign_in_link"
SWEEP_MAIL_OUTBOX = "mail.sweep_outbox"

ENGINE_TASK_PREFIX = "engine."
MAIL_ROUTES = {"mail.*": {"queue": EMAIL_QUEUE}}
TRIGGER_CHECK_FLAG_TTL_S = 10
WAKE_FLAG_TTL_S = 2  # a lost wake-up delays its shard's orders this long, or until the sweep


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

    def set(self, name: str, value: Any, nx: bool = ..., ex: Any = ...) -> Any: ...

    def delete(self, *names: str) -> Any: ...


def request_trigger_check(flags: FlagStore, sender: TaskSender, asset: str, shards: int) -> int:
    """Enqueue a trigger check of `asset` for each shard that has none pending (coalesces price
    moves); returns how many were enqueued."""
    with flags.pipeline(transaction=False) as pipe:
        for shard in range(shards):
            pipe.set(TRIGGER_CHECK_FLAG.format(asset=asset, shard=shard), 1, nx=True, ex=TRIGGER_CHECK_FLAG_TTL_S)
        pending = pipe.execute()
    enqueued = [shard for shard, flagged in enumerate(pending) if flagged]
    for shard in enqueued:
        sender.send_task(CHECK_TRIGGERS, args=[asset], kwargs={"shard": shard})
    return len(enqueued)


def clear_trigger_check(flags: FlagStore, asset: str, shard: int) -> None:
    """A trigger check starting: the next price move may schedule another."""
    flags.delete(TRIGGER_CHECK_FLAG.format(asset=asset, shard=shard))


def claim_wake_up(flags: FlagStore, shard: int) -> bool:
    """True when the caller must send the shard's engine a wake-up task for the work it just
    committed; False when one is already on its way (the engine has not yet started the batch
    that clears the flag, so that batch reads the caller's work too)."""
    return bool(flags.set(ENGINE_WAKE_FLAG.format(shard=shard), 1, nx=True, ex=WAKE_FLAG_TTL_S))


def clear_wake_up(flags: FlagStore, shard: int) -> None:
    """The engine, as its wake-up for the shard starts and before it reads the shard's pending
    work: work committed after this claims a new wake-up, work committed before it is in the read
    (both, never neither). The sender, when the wake-up could not be sent: the shard's next order
    sends its own. Only the shard's own flag: another shard's flag stays with its queued wake-up,
    so there is never more than one queued per shard."""
    flags.delete(ENGINE_WAKE_FLAG.format(shard=shard))
