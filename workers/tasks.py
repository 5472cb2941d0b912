"""The engine's Celery tasks and its sweep.

A new order or close request wakes the engine (`core.wakeups`: one task per batch, not per
order), and the wake-up executes every pending order and close request of the process's shards
in batches (`workers.execution.execute_batch`). A task's `account_id` (or `shard`) only routes it
to its shard's queue. This process is the one writer of the accounts of its shards
(ENGINE_SHARD_SET): batches, trigger checks and sweeps stay within them.
"""

import logging
import uuid
from datetime import timedelta

import redis
from celery import shared_task
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError

from app.extensions import db, redis_client
from app.models import AccountReset, NetOrder, Order, utcnow
from core import wakeups
from core.enums import NetOrderStatus, OrderStatus, ResetStatus
from core.shards import shard_of
from core.tasks import (
    CANCEL_NET_ORDER,
    CANCEL_ORDER,
    CHECK_TRIGGERS,
    RESET_ACCOUNT,
    SWEEP_STUCK_ORDERS,
    WAKE_UP,
    clear_trigger_check,
)
from workers import funding, levels, netting_execution, netting_liquidation, triggers
from workers.execution import cancel_working, execute_batch
from workers.reset import reset_account
from workers.shards import account_shard

log = logging.getLogger(__name__)

SWEEP_BATCH = 500


def run_wake_up(shard: int) -> int:
    """Execute every pending order and close request of this process's shards, `shard`'s wake-up
    holding their flags meanwhile (`core.wakeups.drain`). Returns how many it took."""
    config = current_app.config
    size, taken = config["ENGINE_ORDER_BATCH"], 0

    def read() -> int:
        """A batch of hedging work and one of netting orders: a full batch of either reads again."""
        nonlocal taken
        batch = execute_batch(size)
        nets = netting_execution.execute_pending(size) if batch.netting_waiting else 0
        taken += batch.taken + nets
        return max(batch.taken, nets)

    linger_s = config["ENGINE_LINGER_MS"] / 1000
    shards = config["ENGINE_SHARD_SET"]
    wakeups.run(wakeups.drain(redis_client, shards, shard, read, size, linger_s, wakeups.LINGER_WITHIN_S))
    return taken


def _ids_in_shard(model, shard: int, *where) -> list[tuple]:
    query = select(model.id, model.account_id).where(*where, account_shard(model.account_id) == shard)
    return [tuple(row) for row in db.session.execute(query.limit(SWEEP_BATCH))]


def stuck_work(shard: int, older_than: timedelta) -> dict[str, list[tuple]]:
    """Accepted work of a shard with no result yet, as (id, account) pairs: pending opens,
    requested closes and resets older than the bound, and working orders past their expiry."""
    cutoff = utcnow() - older_than
    return {
        "opens": _ids_in_shard(Order, shard, Order.status == OrderStatus.PENDING, Order.created_at < cutoff)
        + _ids_in_shard(NetOrder, shard, NetOrder.status == NetOrderStatus.PENDING, NetOrder.created_at < cutoff),
        "closes": _ids_in_shard(Order, shard, Order.status == OrderStatus.OPEN, Order.close_requested_at < cutoff),
        "resets": _ids_in_shard(
            AccountReset, shard, AccountReset.status == ResetStatus.PENDING, AccountReset.created_at < cutoff
        ),
        "expired": _ids_in_shard(Order, shard, Order.status == OrderStatus.WORKING, Order.expires_at < utcnow()),
    }


# A database or Redis outage mid-task: retry with backoff (the sweep is the backstop after that).
RETRY_ON_OUTAGE = dict(
    autoretry_for=(OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=20,
)


@shared_task(name=WAKE_UP, **RETRY_ON_OUTAGE)
def wake_up(account_id: int) -> int:
    """The wake-up sent for new work of the account's shard (or re-sent by the sweep): runs
    whatever is pending in this process's shards. Returns how many it took (shown in Flower)."""
    return run_wake_up(shard_of(account_id, current_app.config["ENGINE_SHARDS"]))


@shared_task(name=CANCEL_ORDER, **RETRY_ON_OUTAGE)
def cancel_order(order_id: str, expired: bool = False, account_id: int | None = None) -> str | None:
    return cancel_working(uuid.UUID(order_id), expired=expired)


@shared_task(name=CANCEL_NET_ORDER, **RETRY_ON_OUTAGE)
def cancel_net_order(order_id: str, account_id: int | None = None) -> str | None:
    return netting_execution.cancel(uuid.UUID(order_id))


@shared_task(name=RESET_ACCOUNT, **RETRY_ON_OUTAGE)
def reset_account_task(reset_id: str, account_id: int | None = None) -> str | None:
    return reset_account(uuid.UUID(reset_id))


@shared_task(name=CHECK_TRIGGERS)
def check_triggers(asset: str, shard: int) -> int:
    """Runs after price moves; clearing the flag first lets the next move schedule another check."""
    clear_trigger_check(redis_client, asset, shard)
    return triggers.check_triggers(asset, shard)


@shared_task(name=SWEEP_STUCK_ORDERS)
def sweep_stuck_orders(shard: int) -> dict:
    """Re-enqueue the shard's accepted work that never got a result (lost message, crash before
    enqueue), expire its working orders past their expiresAt, settle the funding boundaries it
    has not settled, and (now and then) recompute its trigger levels."""
    work = stuck_work(shard, timedelta(seconds=current_app.config["PENDING_SWEEP_AFTER_S"]))
    db.session.rollback()
    if levels.sweep(shard):
        netting_liquidation.reassess([shard])  # marks moved on other markets than a position's own
    for order_id, account_id in work["expired"]:
        cancel_order.delay(str(order_id), expired=True, account_id=account_id)
    if stuck := work["opens"] + work["closes"]:  # one wake-up runs the shard's whole backlog
        wake_up.delay(account_id=stuck[0][1])
    for reset_id, account_id in work["resets"]:
        reset_account_task.delay(str(reset_id), account_id=account_id)
    counts = {kind: len(ids) for kind, ids in work.items()} | {
        "funding": funding.settle_now_and_then(current_app.config["ENGINE_SHARD_SET"])
    }
    if counts["opens"] or counts["closes"] or counts["resets"]:
        log.warning("sweep of shard %d re-enqueued %s", shard, counts)
    return counts
