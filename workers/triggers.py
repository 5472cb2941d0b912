"""Trigger checks: after a price move, close the positions it crossed (liquidation, stop-loss,
take-profit) and fill or end the working orders it reached, in bounded batches, each one
transaction locking its orders with their balances in one fixed order (account, then order: two
engines or a retry never wait on each other in a cycle)."""

import uuid
from collections.abc import Callable
from datetime import datetime

from flask import current_app
from sqlalchemy import ColumnElement, and_, or_, select

from app.extensions import db
from app.models import Balance, Order, utcnow
from app.prices.service import fresh_quote, market_at, position_trigger
from core import execution, rules
from core.enums import OrderStatus, OrderType, Side
from core.events import AccountEvent
from core.execution import Account, Market
from core.prices import Quote
from workers import levels, netting_execution
from workers.execution import (
    apply,
    changed,
    commit_and_publish,
    costs,
    settle,
    terms_of,
)
from workers.shards import account_shard

_LONG, _SHORT = Order.side == Side.LONG, Order.side == Side.SHORT

# Per working order type: the SQL twin of its handler's `reached` in `core.execution.HANDLERS`,
# over the partial index on working orders: which of them a quote reaches.
CROSSING: dict[OrderType, Callable[[Quote], ColumnElement[bool]]] = {
    OrderType.LIMIT: lambda q: or_(and_(_LONG, Order.limit_price >= q.ask), and_(_SHORT, Order.limit_price <= q.bid)),
    OrderType.STOP: lambda q: or_(and_(_LONG, Order.stop_price <= q.ask), and_(_SHORT, Order.stop_price >= q.bid)),
}


def crossed_order_ids(asset: str, quote: Quote, shards: list[int]) -> list[uuid.UUID]:
    """Open orders on `asset` in `shards` whose liquidation, stop-loss or take-profit `quote` (the
    position trigger: a quote, or a perpetual's mark on both sides) has crossed.

    Each branch matches one partial index on (asset, side, <trigger price>) WHERE status = 'open'.
    """
    long_crossed = and_(
        _LONG, or_(Order.liquidation_price >= quote.bid, Order.stop_loss >= quote.bid, Order.take_profit <= quote.bid)
    )
    short_crossed = and_(
        _SHORT, or_(Order.liquidation_price <= quote.ask, Order.stop_loss <= quote.ask, Order.take_profit >= quote.ask)
    )
    rows = db.session.execute(
        select(Order.id).where(
            Order.status == OrderStatus.OPEN,
            Order.asset == asset,
            or_(long_crossed, short_crossed),
            account_shard(Order.account_id).in_(shards),
        )
    )
    return list(rows.scalars())


def reached_working_ids(asset: str, quote: Quote, market: Market, shards: list[int], now: datetime) -> list[uuid.UUID]:
    """Working orders on `asset` that the quote reaches and that would change now: fill, or end.
    Decided on rows read without a lock, so one that only keeps working (a limit the book holds,
    not yet within its limit) costs this read, never a lock and a rollback."""
    reached = or_(*(and_(Order.order_type == kind, crossing(quote)) for kind, crossing in CROSSING.items()))
    rows = db.session.execute(
        select(Order).where(
            Order.status == OrderStatus.WORKING,
            Order.asset == asset,
            reached,
            account_shard(Order.account_id).in_(shards),
        )
    ).scalars()
    rules_now = costs()
    return [
        order.id
        for order in rows
        if execution.on_price(terms_of(order), Account(None), market, rules_now, now) is not None
    ]


def check_triggers(asset: str, shard: int) -> int:
    """Close every position the latest price has crossed (a perpetual's: its mark) and fill or end
    every working order the quote reached, all against the book. Returns how many changed.

    A price move asks each shard for a check, but one check covers every shard of this process
    that has not been checked at this very price: the checks its siblings asked for then find
    their shard done and return at once (one query per move, however many shards it owns)."""
    quote = fresh_quote(asset)
    if quote is None:
        return 0
    market = market_at(quote)
    trigger = position_trigger(asset, quote)
    price = (quote.time_us, quote.update_id, market.book.update_id if market.book else None)
    price += (trigger.time_us if trigger is not None else None,)
    owned = sorted({shard, *current_app.config["ENGINE_SHARD_SET"]})
    shards = levels.unchecked(asset, owned, price)
    if shard not in shards:
        return 0
    size = current_app.config["ENGINE_CASCADE_BATCH"]
    crossed = crossed_order_ids(asset, trigger, shards) if trigger is not None else []
    changed_count = sum(_close_batch(crossed[i : i + size], trigger, market) for i in range(0, len(crossed), size))
    now = utcnow()
    reached = reached_working_ids(asset, quote, market, shards, now)
    changed_count += sum(_fill_batch(reached[i : i + size], market, now) for i in range(0, len(reached), size))
    changed_count += netting_execution.on_price(asset, quote, market, trigger, shards)
    levels.checked(asset, shards, price)
    levels.recompute(shards, [asset])  # what closed and ended no longer triggers
    return changed_count


def _lock_batch(order_ids: list[uuid.UUID]) -> list:
    return db.session.execute(
        select(Order, Balance)
        .join(Balance, Balance.account_id == Order.account_id)
        .where(Order.id.in_(order_ids))
        .order_by(Order.account_id, Order.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()


def _close_batch(order_ids: list[uuid.UUID], trigger: Quote, market: Market) -> int:
    """Close each position of the batch that `trigger` still crosses once locked (at the book), and
    commit them together."""
    events: list[AccountEvent] = []
    for order, balance in _lock_batch(order_ids):
        if order.status != OrderStatus.OPEN:
            continue  # closed meanwhile
        position = rules.Position(order.side, order.liquidation_price, order.stop_loss, order.take_profit)
        reason = rules.close_trigger(position, trigger.bid, trigger.ask)
        if reason is not None:  # else no longer crossed once locked
            settle(balance, order, market, reason)
            events.append(changed(order, balance))
    return commit_and_publish(*events)


def _fill_batch(order_ids: list[uuid.UUID], market: Market, now: datetime) -> int:
    """Fill or end each working order of the batch as `core.execution.on_price` decides once it is
    locked (cancelled meanwhile: skipped), and commit them together."""
    events: list[AccountEvent] = []
    rules_now = costs()
    for order, balance in _lock_batch(order_ids):
        if order.status != OrderStatus.WORKING:
            continue
        decision = execution.on_price(terms_of(order), Account(balance.usd), market, rules_now, now)
        if decision is not None:
            apply(balance, order, decision, reserved=True)
            events.append(changed(order, balance))
    return commit_and_publish(*events)  # the positions opened are tracked by the recompute that follows
