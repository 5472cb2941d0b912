"""Funding boundaries as the poller records them, and sweeps that settle them now."""

from decimal import Decimal

from app.extensions import redis_client
from core.marks import Mark, MarkStore
from core.prices import now_micros
from core.shards import shard_of
from core.tasks import SWEEP_STUCK_ORDERS
from tests.support.trading import PERP

SECOND_MS = 1000


def record_boundary(rate: str, mark: str, after_us: int | None = None) -> int:
    """A mark event just before the next whole second carrying `rate` and `mark`, then one after
    it, as the poller writes them with a one-second funding interval. Returns the boundary (ms)."""
    store = MarkStore(redis_client, {PERP: SECOND_MS})
    boundary_us = ((after_us or now_micros()) // 1_000_000 + 1) * 1_000_000
    assert store.write(Mark(PERP, Decimal(mark), None, Decimal(rate), None, boundary_us - 1000))
    assert store.write(Mark(PERP, Decimal("118000"), None, Decimal("0.5"), None, boundary_us + 1000))
    return boundary_us // 1000


def settle(app, *account_ids: int) -> None:
    """Ask the users' shards' engines for a sweep now (beat sends one every few seconds anyway)."""
    celery = app.extensions["celery"]
    for shard in {shard_of(account_id, app.config["ENGINE_SHARDS"]) for account_id in account_ids}:
        celery.send_task(SWEEP_STUCK_ORDERS, kwargs={"shard": shard})
