"""Engine tasks: each is one short transaction around the pure rules in `workers.rules`.

Tasks take only an order id (or an asset), lock the order together with its owner's balance
row, and re-check the order's state first, so a redelivered or duplicated task is a no-op.
"""
import json
import logging
import uuid
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import InterfaceError, OperationalError

from app.assets.catalog import ASSETS
from app.balances.service import post_entry
from app.extensions import db, redis_client
from app.models import Balance, Order, utcnow
from app.prices.store import PriceStore, Quote
from celery_app import celery
from workers import rules

log = logging.getLogger(__name__)

ORDER_EVENTS_CHANNEL = "order-events:{order_id}"
TRIGGER_CHECK_FLAG = "engine:trigger-check-pending:{asset}"
TRIGGER_CHECK_FLAG_TTL_S = 10
SWEEP_BATCH = 500
MAX_QUANTITY = 2**63 - 1


def publish_order_event(order_id, error: str | None = None) -> None:
    """Wake up the API request waiting on this order (after the commit, never before).

    Callers pass the id they already hold: reading `order.id` after the commit would reload the
    expired row, one more database round trip per trade.
    """
    payload = {"orderId": str(order_id)}
    if error:
        payload["error"] = error
    redis_client.publish(ORDER_EVENTS_CHANNEL.format(order_id=order_id), json.dumps(payload))


def _fresh_quote(asset: str) -> Quote | None:
    return PriceStore(redis_client).read_fresh(asset, current_app.config["PRICE_MAX_AGE_S"])


def _lock_order(order_id) -> tuple[Balance, Order] | tuple[None, None]:
    """Lock the order and its owner's balance row in one round trip.

    Only the engine (one task at a time) locks balance rows; the API locks nothing but single
    order rows, so no two transactions can wait on each other in a cycle.
    """
    row = db.session.execute(
        select(Balance, Order)
        .join(Order, Order.user_id == Balance.user_id)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    return (row[0], row[1]) if row else (None, None)


def _reject(order: Order, reason: str) -> None:
    log.info("rejected order %s (%s %s): %s", order.id, order.asset, order.side, reason)
    order.status = "rejected"
    order.reject_reason = reason
    order.closed_at = utcnow()


def _fill(balance: Balance, order: Order, quote: Quote) -> None:
    decimals = ASSETS[order.asset].decimals
    fill = rules.open_fill(order.side, quote.bid, quote.ask)
    qty = rules.quantity(order.margin, order.leverage, fill, decimals) if fill > 0 else 0
    if not rules.slippage_ok(order.side, order.requested_price, fill, order.slippage_bps):
        _reject(order, "slippage_exceeded")
    elif not rules.stops_valid(order.side, fill, order.stop_loss, order.take_profit):
        _reject(order, "invalid_stops")
    elif not 0 < qty <= MAX_QUANTITY:
        _reject(order, "invalid_quantity")
    elif balance.usd < order.margin:
        _reject(order, "insufficient_balance")
    else:
        order.status = "open"
        order.open_price = fill
        order.quantity = qty
        order.liquidation_price = rules.liquidation_price(
            order.side, fill, qty, order.margin, current_app.config["LIQUIDATION_RATIO"], decimals
        )
        order.opened_at = utcnow()
        post_entry(balance, "open", -order.margin, order.margin, order)
        log.info("opened order %s: %s %s x%d margin %d at %d", order.id, order.asset, order.side,
                 order.leverage, order.margin, fill)


def _settle(balance: Balance, order: Order, quote: Quote, reason: str) -> None:
    closing = rules.close_at(order.side, order.open_price, order.quantity, order.margin,
                             ASSETS[order.asset].decimals, quote.bid, quote.ask)
    order.status = "closed"
    order.close_price = closing.price
    order.pnl = closing.pnl
    order.close_reason = reason
    order.closed_at = utcnow()
    post_entry(balance, "close", closing.credit, -order.margin, order)
    log.info("closed order %s (%s) at %d: pnl %d", order.id, reason, closing.price, closing.pnl)


def open_position(order_id) -> None:
    """Fill a pending order at the current price, or reject it with a reason."""
    balance, order = _lock_order(order_id)
    if order is None or order.status != "pending":
        db.session.rollback()
        return
    quote = _fresh_quote(order.asset)
    if quote is None:
        _reject(order, "price_unavailable")
    else:
        _fill(balance, order, quote)
    db.session.commit()
    publish_order_event(order_id)


def close_position(order_id) -> str | None:
    """Close an open position at the current price; returns an error string if it cannot."""
    balance, order = _lock_order(order_id)
    if order is None or order.status != "open":
        db.session.rollback()
        return None
    quote = _fresh_quote(order.asset)
    if quote is None:
        order.close_requested_at = None  # the requester is told it failed; nothing retries it
        db.session.commit()
        publish_order_event(order_id, error="price_unavailable")
        return "price_unavailable"
    _settle(balance, order, quote, "user")
    db.session.commit()
    publish_order_event(order_id)
    return None


def crossed_order_ids(asset: str, quote: Quote) -> list[uuid.UUID]:
    """Open orders on `asset` whose liquidation, stop-loss or take-profit the quote has crossed.

    Each branch matches one partial index on (asset, side, <trigger price>) WHERE status = 'open'.
    """
    long_crossed = and_(
        Order.side == rules.LONG,
        or_(Order.liquidation_price >= quote.bid, Order.stop_loss >= quote.bid, Order.take_profit <= quote.bid),
    )
    short_crossed = and_(
        Order.side == rules.SHORT,
        or_(Order.liquidation_price <= quote.ask, Order.stop_loss <= quote.ask, Order.take_profit >= quote.ask),
    )
    rows = db.session.execute(
        select(Order.id).where(Order.status == "open", Order.asset == asset, or_(long_crossed, short_crossed))
    )
    return list(rows.scalars())


def _trigger_reason(order: Order | None, quote: Quote) -> str | None:
    if order is None or order.status != "open":
        return None
    position = rules.Position(order.side, order.liquidation_price, order.stop_loss, order.take_profit)
    return rules.close_trigger(position, quote.bid, quote.ask)


def close_crossed_positions(asset: str) -> int:
    """Close every position the latest price has crossed, each in its own short transaction."""
    quote = _fresh_quote(asset)
    if quote is None:
        return 0
    closed = 0
    for order_id in crossed_order_ids(asset, quote):
        balance, order = _lock_order(order_id)
        reason = _trigger_reason(order, quote)
        if reason is None:  # closed meanwhile, or no longer crossed once locked
            db.session.rollback()
            continue
        _settle(balance, order, quote, reason)
        db.session.commit()
        publish_order_event(order_id)
        closed += 1
    return closed


def stuck_order_ids(older_than: timedelta) -> tuple[list, list]:
    """Accepted work with no result yet: pending opens and requested closes older than the bound."""
    cutoff = utcnow() - older_than
    pending = db.session.execute(
        select(Order.id).where(Order.status == "pending", Order.created_at < cutoff).limit(SWEEP_BATCH)
    ).scalars()
    closing = db.session.execute(
        select(Order.id)
        .where(Order.status == "open", Order.close_requested_at < cutoff)
        .limit(SWEEP_BATCH)
    ).scalars()
    return list(pending), list(closing)


# A database or Redis outage mid-task: retry with backoff (the sweep is the backstop after that).
RETRY_ON_OUTAGE = dict(
    autoretry_for=(OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=20,
)


@celery.task(name="engine.execute_order", **RETRY_ON_OUTAGE)
def execute_order(order_id: str) -> None:
    open_position(uuid.UUID(order_id))


@celery.task(name="engine.close_order", **RETRY_ON_OUTAGE)
def close_order(order_id: str) -> None:
    close_position(uuid.UUID(order_id))


@celery.task(name="engine.check_triggers")
def check_triggers(asset: str) -> int:
    """Runs after price moves; clearing the flag first lets the next move schedule another check."""
    redis_client.delete(TRIGGER_CHECK_FLAG.format(asset=asset))
    return close_crossed_positions(asset)


def request_trigger_check(client, asset: str, enqueue=None) -> bool:
    """Enqueue a trigger check for `asset` unless one is already pending (coalesces price moves)."""
    if client.set(TRIGGER_CHECK_FLAG.format(asset=asset), 1, nx=True, ex=TRIGGER_CHECK_FLAG_TTL_S):
        (enqueue or check_triggers.delay)(asset)
        return True
    return False


@celery.task(name="engine.sweep_stuck_orders")
def sweep_stuck_orders() -> dict:
    """Re-enqueue accepted work that never got a result (lost message, crash before enqueue)."""
    pending, closing = stuck_order_ids(timedelta(seconds=current_app.config["PENDING_SWEEP_AFTER_S"]))
    db.session.rollback()
    for order_id in pending:
        execute_order.delay(str(order_id))
    for order_id in closing:
        close_order.delay(str(order_id))
    if pending or closing:
        log.warning("sweep re-enqueued %d pending opens and %d closes", len(pending), len(closing))
    return {"opens": len(pending), "closes": len(closing)}
