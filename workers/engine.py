"""Engine tasks: each is one short transaction around the pure rules in `core.rules`.

Tasks take only an order id (or an asset), lock the order together with its owner's balance
row, and re-check the order's state first, so a redelivered or duplicated task is a no-op.
"""

import json
import logging
import uuid
from datetime import timedelta

import redis
from celery import shared_task
from flask import current_app
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import InterfaceError, OperationalError

from app.balances.service import post_entry
from app.extensions import db, redis_client
from app.models import AccountReset, Balance, EquitySnapshot, Order, utcnow
from core import rules
from core.assets import ASSETS
from core.enums import CloseReason, LedgerKind, OrderStatus, RejectReason, ResetStatus
from core.keys import ACCOUNT_EVENTS_CHANNEL, TRIGGER_CHECK_FLAG
from core.prices import PriceStore, Quote
from core.tasks import CHECK_TRIGGERS, CLOSE_ORDER, EXECUTE_ORDER, RESET_ACCOUNT, SWEEP_STUCK_ORDERS

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
MAX_QUANTITY = 2**63 - 1


def publish_order_event(event: dict) -> None:
    """Tell the account's listeners (the request waiting on the order, its order streams) that
    the order changed: after the commit, never before.

    Callers build the event before committing: reading the order after the commit would reload
    the expired row, one more database round trip per trade.
    """
    redis_client.publish(ACCOUNT_EVENTS_CHANNEL.format(user_id=event["userId"]), json.dumps(event))


def order_event(order: Order, order_id, error: str | None = None) -> dict:
    event = {"userId": order.user_id, "orderId": str(order_id), "status": str(order.status)}
    if error:
        event["error"] = str(error)
    return event


def _fresh_quote(asset: str) -> Quote | None:
    return PriceStore(redis_client).read_fresh(asset, current_app.config["PRICE_MAX_AGE_S"])


def _lock_with_balance(model, row_id):
    """Lock a row of `model` (an order, a reset) and its owner's balance row in one round trip.

    Only the engine (one task at a time) locks balance rows; the API locks nothing but single
    order rows, so no two transactions can wait on each other in a cycle.
    """
    row = db.session.execute(
        select(Balance, model)
        .join(model, model.user_id == Balance.user_id)
        .where(model.id == row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    return (row[0], row[1]) if row else (None, None)


def _lock_order(order_id) -> tuple[Balance, Order] | tuple[None, None]:
    return _lock_with_balance(Order, order_id)


def _reject(order: Order, reason: RejectReason) -> None:
    log.info("rejected order %s (%s %s): %s", order.id, order.asset, order.side, reason)
    order.status = OrderStatus.REJECTED
    order.reject_reason = reason
    order.closed_at = utcnow()


def _fill(balance: Balance, order: Order, quote: Quote) -> None:
    decimals = ASSETS[order.asset].decimals
    fill = rules.open_fill(order.side, quote.bid, quote.ask)
    qty = rules.quantity(order.margin, order.leverage, fill, decimals) if fill > 0 else 0
    # The account's own limit first: it holds whatever the price does, so it is the useful answer.
    if balance.usd < order.margin:
        _reject(order, RejectReason.INSUFFICIENT_BALANCE)
    elif not rules.slippage_ok(order.side, order.requested_price, fill, order.slippage_bps):
        _reject(order, RejectReason.SLIPPAGE_EXCEEDED)
    elif not rules.stops_valid(order.side, fill, order.stop_loss, order.take_profit):
        _reject(order, RejectReason.INVALID_STOPS)
    elif not 0 < qty <= MAX_QUANTITY:
        _reject(order, RejectReason.INVALID_QUANTITY)
    else:
        order.status = OrderStatus.OPEN
        order.open_price = fill
        order.quantity = qty
        order.liquidation_price = rules.liquidation_price(
            order.side, fill, qty, order.margin, current_app.config["LIQUIDATION_RATIO"], decimals
        )
        order.opened_at = utcnow()
        post_entry(balance, LedgerKind.OPEN, -order.margin, order.margin, order)
        log.info(
            "opened order %s: %s %s x%d margin %d at %d",
            order.id,
            order.asset,
            order.side,
            order.leverage,
            order.margin,
            fill,
        )


def _settle(balance: Balance, order: Order, quote: Quote, reason: CloseReason) -> None:
    closing = rules.close_at(
        order.side, order.open_price, order.quantity, order.margin, ASSETS[order.asset].decimals, quote.bid, quote.ask
    )
    order.status = OrderStatus.CLOSED
    order.close_price = closing.price
    order.pnl = closing.pnl
    order.close_reason = reason
    order.closed_at = utcnow()
    post_entry(balance, LedgerKind.CLOSE, closing.credit, -order.margin, order)
    log.info("closed order %s (%s) at %d: pnl %d", order.id, reason, closing.price, closing.pnl)


def open_position(order_id) -> None:
    """Fill a pending order at the current price, or reject it with a reason."""
    balance, order = _lock_order(order_id)
    if order is None or order.status != OrderStatus.PENDING:
        db.session.rollback()
        return
    quote = _fresh_quote(order.asset)
    if utcnow() - order.created_at > timedelta(seconds=current_app.config["ORDER_MAX_DELAY_S"]):
        _reject(order, RejectReason.EXPIRED)  # an engine outage must not fill it late at today's price
    elif quote is None:
        _reject(order, RejectReason.PRICE_UNAVAILABLE)
    else:
        _fill(balance, order, quote)
    event = order_event(order, order_id)
    db.session.commit()
    publish_order_event(event)


def close_position(order_id) -> RejectReason | None:
    """Close an open position at the current price; returns why it could not, if it could not."""
    balance, order = _lock_order(order_id)
    if order is None or order.status != OrderStatus.OPEN:
        db.session.rollback()
        return None
    quote = _fresh_quote(order.asset)
    if quote is None:
        order.close_requested_at = None  # the requester is told it failed; nothing retries it
        event = order_event(order, order_id, error=RejectReason.PRICE_UNAVAILABLE)
        db.session.commit()
        publish_order_event(event)
        return RejectReason.PRICE_UNAVAILABLE
    _settle(balance, order, quote, CloseReason.USER)
    event = order_event(order, order_id)
    db.session.commit()
    publish_order_event(event)
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
        select(Order.id).where(Order.status == OrderStatus.OPEN, Order.asset == asset, or_(long_crossed, short_crossed))
    )
    return list(rows.scalars())


def _trigger_reason(order: Order | None, quote: Quote) -> CloseReason | None:
    if order is None or order.status != OrderStatus.OPEN:
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
        event = order_event(order, order_id)
        db.session.commit()
        publish_order_event(event)
        closed += 1
    return closed


def reset_account(reset_id) -> ResetStatus | None:
    """Close every open position of the account at the book, then one `reset` ledger entry sets
    free USD back to the starting balance; the equity history gets a point at that moment.

    The same serialized path as a trade (the engine's queue, the balance row's lock), so it can
    never interleave with one. Without a fresh price for every position nothing changes: `failed`.
    """
    balance, reset = _lock_with_balance(AccountReset, reset_id)
    if reset is None or reset.status != ResetStatus.PENDING:
        db.session.rollback()
        return None
    user_id = balance.user_id
    positions = (
        db.session.execute(
            select(Order)
            .where(Order.user_id == user_id, Order.status == OrderStatus.OPEN)
            .order_by(Order.id)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    quotes = {asset: _fresh_quote(asset) for asset in {order.asset for order in positions}}
    reset.done_at = utcnow()
    if None in quotes.values():
        reset.status = ResetStatus.FAILED
        db.session.commit()
        publish_order_event(
            {
                "userId": user_id,
                "resetId": str(reset_id),
                "status": str(ResetStatus.FAILED),
                "error": str(RejectReason.PRICE_UNAVAILABLE),
            }
        )
        return ResetStatus.FAILED
    events = []
    for order in positions:
        _settle(balance, order, quotes[order.asset], CloseReason.RESET)
        events.append(order_event(order, order.id))
    post_entry(balance, LedgerKind.RESET, current_app.config["STARTING_BALANCE"] - balance.usd, 0)
    db.session.add(
        EquitySnapshot(
            user_id=user_id,
            taken_at=reset.done_at,
            cash=balance.usd,
            locked_margin=balance.locked_margin,
            unrealized_pnl=0,
        )
    )
    reset.status, reset.closed_positions = ResetStatus.DONE, len(positions)
    db.session.commit()
    for event in events:
        publish_order_event(event)
    publish_order_event({"userId": user_id, "resetId": str(reset_id), "status": str(ResetStatus.DONE)})
    log.info("reset account %d: %d positions closed", user_id, len(positions))
    return ResetStatus.DONE


def stuck_order_ids(older_than: timedelta) -> tuple[list, list]:
    """Accepted work with no result yet: pending opens and requested closes older than the bound."""
    cutoff = utcnow() - older_than
    pending = db.session.execute(
        select(Order.id).where(Order.status == OrderStatus.PENDING, Order.created_at < cutoff).limit(SWEEP_BATCH)
    ).scalars()
    closing = db.session.execute(
        select(Order.id).where(Order.status == OrderStatus.OPEN, Order.close_requested_at < cutoff).limit(SWEEP_BATCH)
    ).scalars()
    return list(pending), list(closing)


# A database or Redis outage mid-task: retry with backoff (the sweep is the backstop after that).
RETRY_ON_OUTAGE = dict(
    autoretry_for=(OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=20,
)


@shared_task(name=EXECUTE_ORDER, **RETRY_ON_OUTAGE)
def execute_order(order_id: str) -> None:
    open_position(uuid.UUID(order_id))


@shared_task(name=CLOSE_ORDER, **RETRY_ON_OUTAGE)
def close_order(order_id: str) -> str | None:
    """Returns why the close failed, if it did (shown in Flower); the waiting request was told."""
    return close_position(uuid.UUID(order_id))


@shared_task(name=RESET_ACCOUNT, **RETRY_ON_OUTAGE)
def reset_account_task(reset_id: str) -> str | None:
    return reset_account(uuid.UUID(reset_id))


@shared_task(name=CHECK_TRIGGERS)
def check_triggers(asset: str) -> int:
    """Runs after price moves; clearing the flag first lets the next move schedule another check."""
    redis_client.delete(TRIGGER_CHECK_FLAG.format(asset=asset))
    return close_crossed_positions(asset)


@shared_task(name=SWEEP_STUCK_ORDERS)
def sweep_stuck_orders() -> dict:
    """Re-enqueue accepted work that never got a result (lost message, crash before enqueue)."""
    older_than = timedelta(seconds=current_app.config["PENDING_SWEEP_AFTER_S"])
    pending, closing = stuck_order_ids(older_than)
    resets = list(
        db.session.execute(
            select(AccountReset.id)
            .where(AccountReset.status == ResetStatus.PENDING, AccountReset.created_at < utcnow() - older_than)
            .limit(SWEEP_BATCH)
        ).scalars()
    )
    db.session.rollback()
    for order_id in pending:
        execute_order.delay(str(order_id))
    for order_id in closing:
        close_order.delay(str(order_id))
    for reset_id in resets:
        reset_account_task.delay(str(reset_id))
    if pending or closing or resets:
        log.warning("sweep re-enqueued %d opens, %d closes, %d resets", len(pending), len(closing), len(resets))
    return {"opens": len(pending), "closes": len(closing), "resets": len(resets)}
