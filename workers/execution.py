"""Executing work on the engine: short transactions around the pure decisions of `core.execution`.

Each transaction locks its orders together with their owners' balance rows and re-checks their
state first, so a redelivered or duplicated task changes nothing; it commits its writes in one
round trip (`workers.writes`) and then publishes its typed events (`core.events`).
"""

import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import exists, func, select, union_all

from app.balances.service import post_entry
from app.extensions import db, redis_client
from app.markets.service import lot_of, price_decimals
from app.models import Balance, NetOrder, Order, utcnow
from app.prices.service import fresh_quote, market_at
from core import execution, rules
from core.book import fee, notional
from core.enums import CloseReason, LedgerKind, NetOrderStatus, OrderStatus, OrderType, RejectReason, Side
from core.events import AccountEvent, BalanceState, OrderChanged, OrderState, RequestFailed, dumps
from core.execution import Account, Costs, Decision, Fill, Market, Reject, Rest, Terms
from core.keys import ACCOUNT_EVENTS_CHANNEL, TRADES_CHANNEL
from core.net_events import NetOrderChanged, PublicTrades
from workers import levels
from workers.queries import among
from workers.shards import account_shard
from workers.writes import commit_in_one_round_trip

log = logging.getLogger(__name__)


def publish(*events: AccountEvent) -> None:
    """Tell the accounts' listeners (the request waiting on each order, their streams) what
    changed: after the commit, never before, in one round trip for a whole batch. Events are
    built before the commit: reading a row after it would reload it, a round trip per trade."""
    with redis_client.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.publish(ACCOUNT_EVENTS_CHANNEL.format(account_id=event.account_id), dumps(event))
            if isinstance(event, NetOrderChanged) and event.fills:  # also the market's public trades
                pipe.publish(TRADES_CHANNEL.format(symbol=event.order.symbol), PublicTrades.of(event).dumps())
        pipe.execute()


def changed(order: Order, balance: Balance) -> OrderChanged:
    return OrderChanged(order.account_id, OrderState.of(order), BalanceState(balance.usd, balance.locked_margin))


def commit_and_publish(*events: AccountEvent) -> int:
    commit_in_one_round_trip(db.session)
    publish(*events)
    return len(events)


def lock_with_balance(model, row_id):
    """Lock a row of `model` (an order, a reset) and its owner's balance row in one round trip.

    Only the engine (one task at a time) locks balance rows; the API locks nothing but single
    order rows, so no two transactions can wait on each other in a cycle.
    """
    row = db.session.execute(
        select(Balance, model)
        .join(model, model.account_id == Balance.account_id)
        .where(model.id == row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    return (row[0], row[1]) if row else (None, None)


def market_now(asset: str) -> Market | None:
    """The market at the fresh quote; None without one."""
    quote = fresh_quote(asset)
    return None if quote is None else market_at(quote)


def costs() -> Costs:
    return Costs.of(current_app.config)


def terms_of(order: Order) -> Terms:
    return Terms(
        OrderType(order.order_type),
        Side(order.side),
        order.margin,
        order.leverage,
        price_decimals(order.asset),
        order.requested_price,
        order.slippage_bps,
        order.limit_price,
        order.stop_price,
        order.stop_loss,
        order.take_profit,
        order.expires_at,
        order.quantity,
        **lot_of(order.asset),
    )


def apply(balance: Balance, order: Order, decision: Decision, reserved: bool) -> None:
    """Write a decision: open the position, place it working, or reject (or end) it. `reserved`:
    the order's margin is already locked (a working order)."""
    if isinstance(decision, Reject):
        if reserved:
            release(balance, order, OrderStatus.REJECTED, decision.reason)
        else:
            log.info("rejected order %s (%s %s): %s", order.id, order.asset, order.side, decision.reason)
            order.status, order.reject_reason, order.closed_at = OrderStatus.REJECTED, decision.reason, utcnow()
        return
    if not reserved:
        post_entry(balance, LedgerKind.OPEN, -order.margin, order.margin, order)
    if isinstance(decision, Rest):
        order.status, order.quantity = OrderStatus.WORKING, decision.quantity
        return
    _open(balance, order, decision)


def _open(balance: Balance, order: Order, fill: Fill) -> None:
    order.status = OrderStatus.OPEN
    order.open_price, order.quantity, order.liquidation_price = fill.price, fill.quantity, fill.liquidation_price
    order.fills = [{"price": level.price, "quantity": level.quantity} for level in fill.fills]
    order.fill_model, order.open_fee, order.opened_at = fill.model, fill.fee, utcnow()
    if fill.fee:
        post_entry(balance, LedgerKind.FEE, -fill.fee, 0, order)
    log.info(
        "opened order %s: %s %s x%d margin %d at %d (%s)",
        *(order.id, order.asset, order.side, order.leverage, order.margin, fill.price, fill.model),
    )


def release(balance: Balance, order: Order, status: OrderStatus, reason: RejectReason | None = None) -> None:
    """End a working order without a fill: its reserved margin back to free USD."""
    order.status, order.reject_reason, order.closed_at = status, reason, utcnow()
    post_entry(balance, LedgerKind.RELEASE, order.margin, -order.margin, order)


def settle(balance: Balance, order: Order, market: Market, reason: CloseReason) -> bool:
    """Close at the book; False when a user's close cannot fill (engine-triggered closes always do:
    a thin book fills the rest at its worst visible level)."""
    buying = order.side == Side.SHORT  # a short buys back; a long sells
    decimals = price_decimals(order.asset)
    found = market.fill(order.quantity, buying, forced=reason != CloseReason.USER)
    if found is None:
        return False
    profit = rules.pnl(order.side, order.open_price, found.price, order.quantity, decimals)
    credit = rules.settlement(order.margin, profit)
    close_fee = min(fee(notional(found.price, order.quantity, decimals), costs().taker_fee_bps), credit)
    order.status, order.close_reason, order.closed_at = OrderStatus.CLOSED, reason, utcnow()
    order.close_price, order.pnl, order.close_fee = found.price, credit - order.margin, close_fee
    post_entry(balance, LedgerKind.CLOSE, credit, -order.margin, order)
    if close_fee:
        post_entry(balance, LedgerKind.FEE, -close_fee, 0, order)
    log.info("closed order %s (%s) at %d: pnl %d", order.id, reason, found.price, order.pnl)
    return True


@functools.lru_cache(maxsize=8)
def _batch_statement(shard_set: frozenset[int], shards: int, size: int):
    """The batch's statement, built once per process: building it, and deriving its cache key on
    every execution, cost a third of a one-order wake-up's CPU. `shards` is ENGINE_SHARDS, which
    `account_shard` reads."""
    own = account_shard(Order.account_id).in_(sorted(shard_set))
    opens = select(Order.id, Order.created_at.label("requested_at")).where(Order.status == OrderStatus.PENDING, own)
    closes = select(Order.id, Order.close_requested_at.label("requested_at")).where(
        Order.status == OrderStatus.OPEN, Order.close_requested_at.is_not(None), own
    )
    oldest = union_all(opens, closes).order_by("requested_at").limit(size).subquery()
    netting_waiting = (
        exists()
        .where(NetOrder.status == NetOrderStatus.PENDING, account_shard(NetOrder.account_id).in_(sorted(shard_set)))
        .label("netting_waiting")
    )
    return (
        select(Order, Balance, netting_waiting)
        .join(Balance, Balance.account_id == Order.account_id)
        .where(among(Order.id, select(oldest.c.id)))
        .order_by(Order.account_id, Order.created_at, Order.id)  # an account's orders in their own order
        .with_for_update(of=[Order, Balance])
        .execution_options(populate_existing=True)
    )


def _working_counts(account_ids: set[int]) -> dict[int, int]:
    rows = db.session.execute(
        select(Order.account_id, func.count())
        .where(Order.status == OrderStatus.WORKING, Order.account_id.in_(account_ids))
        .group_by(Order.account_id)
    )
    return {account_id: count for account_id, count in rows}


@dataclass(frozen=True)
class Batch:
    """What a batch took, and whether netting orders of the same shards wait too (read in the
    batch's own statement: a wake-up busy with hedging work pays no round trip to ask)."""

    taken: int
    netting_waiting: bool


def execute_batch(size: int) -> Batch:
    """Lock up to `size` of the oldest pending orders and close requests of this process's shards
    with their balances (one statement), in one fixed order (account, then order), execute them
    and commit them together (one WAL flush), then publish their events."""
    config = current_app.config
    rows = db.session.execute(_batch_statement(config["ENGINE_SHARD_SET"], config["ENGINE_SHARDS"], size)).all()
    if not rows:
        db.session.rollback()
        return Batch(0, netting_waiting=True)  # not asked: the caller looks
    markets: dict[str, Market | None] = {}
    rules_now, now = costs(), utcnow()
    resting = {o.account_id for o, _, _ in rows if o.status == OrderStatus.PENDING and o.order_type != OrderType.MARKET}
    working = _working_counts(resting) if resting else {}
    events: list[AccountEvent] = []
    for order, balance, _ in rows:
        if order.asset not in markets:
            markets[order.asset] = market_now(order.asset)
        market = markets[order.asset]
        if order.status == OrderStatus.PENDING:
            _arrive(balance, order, market, working, rules_now, now)
            events.append(changed(order, balance))
        elif order.status == OrderStatus.OPEN and order.close_requested_at is not None:
            error = _close_requested(balance, order, market)
            failed = RequestFailed(order.account_id, str(order.id), error) if error else None
            events.append(failed or changed(order, balance))
    tightened = levels.added(order for order, _, _ in rows)
    commit_and_publish(*events)
    levels.track(tightened)
    return Batch(len(rows), netting_waiting=rows[0].netting_waiting)


def _arrive(
    balance: Balance, order: Order, market: Market | None, working: dict[int, int], rules_now: Costs, now: datetime
) -> None:
    """Fill a market order now, place a limit or stop order, or reject it: `core.execution.arrive`."""
    if now - order.created_at > timedelta(seconds=current_app.config["ORDER_MAX_DELAY_S"]):
        decision: Decision = Reject(RejectReason.EXPIRED)  # an engine outage must not fill it late
    else:
        account = Account(balance.usd, working.get(order.account_id, 0))
        decision = execution.arrive(terms_of(order), account, market, rules_now, now)
    apply(balance, order, decision, reserved=False)
    if isinstance(decision, Rest):
        working[order.account_id] = working.get(order.account_id, 0) + 1


def _close_requested(balance: Balance, order: Order, market: Market | None) -> RejectReason | None:
    """Close a position its owner asked to close, at the book; why it could not, if it could not."""
    if market is None:
        error = RejectReason.PRICE_UNAVAILABLE
    elif not settle(balance, order, market, CloseReason.USER):  # it changed nothing
        error = RejectReason.INSUFFICIENT_LIQUIDITY
    else:
        return None
    order.close_requested_at = None  # the requester is told it failed; nothing retries it
    return error


def cancel_working(order_id: uuid.UUID, expired: bool = False) -> str | None:
    """Cancel a working order (or expire it past its expiresAt): its margin back, once."""
    balance, order = lock_with_balance(Order, order_id)
    if order is None or order.status != OrderStatus.WORKING:
        account_id = order.account_id if order is not None else None
        db.session.rollback()
        if account_id is not None and not expired:
            publish(RequestFailed(account_id, str(order_id), "not_working"))
        return "not_working"
    if expired:
        release(balance, order, OrderStatus.REJECTED, RejectReason.EXPIRED)
    else:
        release(balance, order, OrderStatus.CANCELLED)
    commit_and_publish(changed(order, balance))
    return None
