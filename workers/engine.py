"""Engine tasks: short transactions around the pure rules in `core.rules`.

A new order or close request wakes the engine (coalesced: `core.tasks.claim_wake_up`), and the
wake-up executes every pending order and close request of the process's shards in batches. Each
transaction locks its orders together with their owners' balance rows and re-checks their state
first, so a redelivered or duplicated task changes nothing. A task's `account_id` (or `shard`)
only routes it to its shard's queue. This process is the one writer of the accounts of its shards
(ENGINE_SHARD_SET): batches, trigger checks and sweeps stay within them.
"""

import functools
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import redis
from celery import shared_task
from flask import current_app
from sqlalchemy import BigInteger, Integer, and_, cast, literal, or_, select, union_all
from sqlalchemy.exc import InterfaceError, OperationalError

from app.balances.service import post_entry
from app.extensions import db, redis_client
from app.models import AccountReset, Balance, EquitySnapshot, Order, order_state, utcnow
from core import rules
from core.assets import ASSETS
from core.book import Book, BookStore, expected_fill, fee, notional
from core.enums import CloseReason, FillModel, LedgerKind, OrderStatus, OrderType, RejectReason, ResetStatus, Side
from core.keys import ACCOUNT_EVENTS_CHANNEL
from core.prices import PriceStore, Quote
from core.shards import HASH_BITS, HASH_MULTIPLIER, shard_of
from core.tasks import (
    CANCEL_ORDER,
    CHECK_TRIGGERS,
    CLOSE_ORDER,
    EXECUTE_ORDER,
    RESET_ACCOUNT,
    SWEEP_STUCK_ORDERS,
    clear_trigger_check,
    hold_wake_ups,
    release_wake_ups,
    take_claims,
)
from workers.writes import commit_in_one_round_trip

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
LINGER_POLL_S = 0.002
# A wake-up lingers only within its first second: past it, it lets go at its next short read, so
# a steady trickle of orders cannot hold up the trigger checks and cancels queued behind it.
LINGER_WITHIN_S = 1.0
MAX_QUANTITY = 2**63 - 1


def publish_order_events(*events: dict) -> None:
    """Tell the accounts' listeners (the request waiting on each order, their order streams) that
    the orders changed: after the commit, never before, in one round trip for a whole batch.

    Callers build the events before committing: reading an order after the commit would reload
    the expired row, one more database round trip per trade.
    """
    with redis_client.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.publish(ACCOUNT_EVENTS_CHANNEL.format(user_id=event["userId"]), json.dumps(event))
        pipe.execute()


def order_event(order: Order, order_id, error: str | None = None) -> dict:
    event = {"userId": order.user_id, "orderId": str(order_id), "status": str(order.status)}
    if error:
        event["error"] = str(error)
    return event


def account_shard(account_id_column):
    """`core.shards.shard_of` in SQL, so a query can keep to this process's shards."""
    hashed = cast(account_id_column, BigInteger) * HASH_MULTIPLIER % (1 << HASH_BITS)
    return (hashed * current_app.config["ENGINE_SHARDS"]).op(">>")(literal(HASH_BITS, Integer))


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


@dataclass(frozen=True)
class Priced:
    price: int
    fills: list[dict]
    model: FillModel


def _book(asset: str) -> Book | None:
    return BookStore(redis_client).read(asset, current_app.config["PRICE_MAX_AGE_S"])


def _price(
    quantity: int, buying: bool, book: Book | None, quote: Quote, limit: int | None = None, forced: bool = False
) -> Priced | None:
    """What `quantity` fills at: the book walked level by level (within `limit`, if any), or the top
    of book for any size when there is no fresh depth book. None: the book cannot fill it (a forced
    close takes the rest at the worst visible level instead)."""
    fill = expected_fill(book, quote.bid, quote.ask, quantity, buying, limit, forced)
    if fill is None:
        return None
    execution, model = fill
    return Priced(execution.price, [{"price": f.price, "quantity": f.quantity} for f in execution.fills], model)


def _taker_fee(price: int, quantity: int, asset: str) -> int:
    return fee(notional(price, quantity, ASSETS[asset].decimals), current_app.config["TAKER_FEE_BPS"])


def _open(balance: Balance, order: Order, priced: Priced, quantity: int, open_fee: int, reserve: bool) -> None:
    decimals = ASSETS[order.asset].decimals
    order.status = OrderStatus.OPEN
    order.open_price, order.quantity = priced.price, quantity
    order.fills, order.fill_model, order.open_fee = priced.fills, priced.model, open_fee
    order.liquidation_price = rules.liquidation_price(
        order.side, priced.price, quantity, order.margin, current_app.config["LIQUIDATION_RATIO"], decimals
    )
    order.opened_at = utcnow()
    if reserve:
        post_entry(balance, LedgerKind.OPEN, -order.margin, order.margin, order)
    if open_fee:
        post_entry(balance, LedgerKind.FEE, -open_fee, 0, order)
    log.info(
        "opened order %s: %s %s x%d margin %d at %d (%s)",
        order.id,
        order.asset,
        order.side,
        order.leverage,
        order.margin,
        priced.price,
        priced.model,
    )


def _fill(balance: Balance, order: Order, quote: Quote, book: Book | None) -> None:
    """A market order: its quantity from the reference price, filled against the book now."""
    decimals = ASSETS[order.asset].decimals
    buying = order.side == Side.LONG
    reference = order.requested_price or rules.open_fill(order.side, quote.bid, quote.ask)
    qty = rules.quantity(order.margin, order.leverage, reference, decimals)
    # The account's own limit first: it holds whatever the price does, so it is the useful answer.
    if balance.usd < order.margin:
        _reject(order, RejectReason.INSUFFICIENT_BALANCE)
    elif not 0 < qty <= MAX_QUANTITY:
        _reject(order, RejectReason.INVALID_QUANTITY)
    elif (priced := _price(qty, buying, book, quote)) is None:
        _reject(order, RejectReason.INSUFFICIENT_LIQUIDITY)
    elif not rules.slippage_ok(order.side, reference, priced.price, order.slippage_bps):
        _reject(order, RejectReason.SLIPPAGE_EXCEEDED)
    elif not rules.stops_valid(order.side, priced.price, order.stop_loss, order.take_profit):
        _reject(order, RejectReason.INVALID_STOPS)
    elif balance.usd < order.margin + (open_fee := _taker_fee(priced.price, qty, order.asset)):
        _reject(order, RejectReason.INSUFFICIENT_BALANCE)
    else:
        _open(balance, order, priced, qty, open_fee, reserve=True)


def _trigger_price(order: Order) -> int:
    """A working order's own price: a limit's limit, a stop's stop."""
    return order.limit_price if order.order_type == OrderType.LIMIT else order.stop_price


def _place(balance: Balance, order: Order, quote: Quote | None, book: Book | None) -> None:
    """A limit or stop order: its quantity from its own price, its margin reserved, then working
    (or filled at once when the book already crosses it)."""
    qty = rules.quantity(order.margin, order.leverage, _trigger_price(order), ASSETS[order.asset].decimals)
    if balance.usd < order.margin:
        _reject(order, RejectReason.INSUFFICIENT_BALANCE)
    elif not 0 < qty <= MAX_QUANTITY:
        _reject(order, RejectReason.INVALID_QUANTITY)
    else:
        order.status, order.quantity = OrderStatus.WORKING, qty
        post_entry(balance, LedgerKind.OPEN, -order.margin, order.margin, order)
        if quote is not None:
            _fill_working(balance, order, quote, book)


def _fill_working(balance: Balance, order: Order, quote: Quote, book: Book | None) -> bool:
    """Fill a working order the book has crossed: a limit all at once and never worse than its
    limit, a stop as a market order. True when it filled; otherwise it keeps working."""
    if not rules.reached(order.order_type, order.side, _trigger_price(order), quote.bid, quote.ask):
        return False
    buying = order.side == Side.LONG
    limit = order.limit_price if order.order_type == OrderType.LIMIT else None
    priced = _price(order.quantity, buying, book, quote, limit=limit)
    if priced is None:
        return False
    if not rules.stops_valid(order.side, priced.price, order.stop_loss, order.take_profit):
        _release(balance, order, OrderStatus.REJECTED, RejectReason.INVALID_STOPS)
        return True
    open_fee = min(_taker_fee(priced.price, order.quantity, order.asset), balance.usd)  # never below zero
    _open(balance, order, priced, order.quantity, open_fee, reserve=False)
    return True


def _release(balance: Balance, order: Order, status: OrderStatus, reason: RejectReason | None = None) -> None:
    """End a working order without a fill: its reserved margin back to free USD."""
    order.status, order.reject_reason, order.closed_at = status, reason, utcnow()
    post_entry(balance, LedgerKind.RELEASE, order.margin, -order.margin, order)


def _settle(balance: Balance, order: Order, quote: Quote, book: Book | None, reason: CloseReason) -> bool:
    """Close at the book; False when a user's close cannot fill (engine-triggered closes always do)."""
    buying = order.side == Side.SHORT  # a short buys back; a long sells
    priced = _price(order.quantity, buying, book, quote, forced=reason != CloseReason.USER)
    if priced is None:
        return False
    profit = rules.pnl(order.side, order.open_price, priced.price, order.quantity, ASSETS[order.asset].decimals)
    credit = rules.settlement(order.margin, profit)
    close_fee = min(_taker_fee(priced.price, order.quantity, order.asset), credit)  # never below zero
    order.status = OrderStatus.CLOSED
    order.close_price, order.pnl, order.close_fee = priced.price, credit - order.margin, close_fee
    order.close_reason = reason
    order.closed_at = utcnow()
    post_entry(balance, LedgerKind.CLOSE, credit, -order.margin, order)
    if close_fee:
        post_entry(balance, LedgerKind.FEE, -close_fee, 0, order)
    log.info("closed order %s (%s) at %d: pnl %d", order.id, reason, priced.price, order.pnl)
    return True


def execute_pending(shard: int) -> tuple[int, dict[str, str]]:
    """A wake-up of `shard`: execute every pending order and requested close of this process's
    shards, oldest first, in batches of up to ENGINE_ORDER_BATCH, each one transaction (group
    commit: one WAL flush per batch). While it runs it holds the shards' wake-up flags
    (`core.tasks.hold_wake_ups`): work committed meanwhile sends no task, its next read takes it.
    Once a read comes back short it lingers (`_claimed_while_lingering`), then lets the flags go,
    and reads once more if a claim was refused meanwhile, so nothing committed before the release
    is left behind. Returns how many ran, and why each close that could not fill did not, by
    order id (as its event says)."""
    shards = current_app.config["ENGINE_SHARD_SET"]
    size, executed, failed = current_app.config["ENGINE_ORDER_BATCH"], 0, {}
    held = hold_wake_ups(redis_client, shards, woken=shard)
    linger_until = time.monotonic() + LINGER_WITHIN_S
    while True:
        read, events = _execute_batch(size)
        executed += len(events)
        failed.update((event["orderId"], event["error"]) for event in events if "error" in event)
        if read == size:
            continue
        if held and time.monotonic() < linger_until and _claimed_while_lingering(held):
            continue
        if held:
            claimed_meanwhile = release_wake_ups(redis_client, held)
            held = []
            if claimed_meanwhile:  # read once more: work committed before the release
                continue
            return executed, failed
        if not read:
            return executed, failed
        held = hold_wake_ups(redis_client, shards)  # work committed around the release: hold again


def _claimed_while_lingering(held: list[int]) -> bool:
    """After a short read, keep the flags ENGINE_LINGER_MS longer, looking every LINGER_POLL_S
    for a claim refused meanwhile: True as soon as one is (its work is committed: read it). At a
    steady trickle of orders the next one lands within milliseconds; taken here it costs a Redis
    call, where a wake-up of its own costs a Celery task in the web and in the engine."""
    deadline = time.monotonic() + current_app.config["ENGINE_LINGER_MS"] / 1000
    while time.monotonic() < deadline:
        time.sleep(LINGER_POLL_S)
        if take_claims(redis_client, held):
            return True
    return False


@functools.lru_cache(maxsize=8)
def _batch_statement(shard_set: frozenset[int], shards: int, size: int):
    """The batch's statement, built once per process: building it, and deriving its cache key on
    every execution, cost a third of a one-order wake-up's CPU. `shards` is ENGINE_SHARDS, which
    `account_shard` reads."""
    own = account_shard(Order.user_id).in_(sorted(shard_set))
    opens = select(Order.id, Order.created_at.label("requested_at")).where(Order.status == OrderStatus.PENDING, own)
    closes = select(Order.id, Order.close_requested_at.label("requested_at")).where(
        Order.status == OrderStatus.OPEN, Order.close_requested_at.is_not(None), own
    )
    oldest = union_all(opens, closes).order_by("requested_at").limit(size).subquery()
    return (
        select(Order, Balance)
        .join(Balance, Balance.user_id == Order.user_id)
        .where(Order.id.in_(select(oldest.c.id)))
        .order_by(Order.user_id, Order.created_at, Order.id)  # an account's orders in their own order
        .with_for_update(of=[Order, Balance])
        .execution_options(populate_existing=True)
    )


def _execute_batch(size: int) -> tuple[int, list[dict]]:
    """Lock up to `size` of the oldest pending orders and close requests of this process's shards
    with their balances (one statement), in one fixed order (account, then order), execute them
    and commit them together. Returns how many it took, and the events it published."""
    config = current_app.config
    statement = _batch_statement(config["ENGINE_SHARD_SET"], config["ENGINE_SHARDS"], size)
    rows = db.session.execute(statement).all()
    if not rows:
        db.session.rollback()
        return 0, []
    quotes: dict = {}
    events = []
    for order, balance in rows:
        if order.asset not in quotes:
            quote = _fresh_quote(order.asset)
            quotes[order.asset] = (quote, _book(order.asset) if quote else None)
        if order.status == OrderStatus.PENDING:
            _execute_pending(balance, order, *quotes[order.asset])
            error = None
        elif order.status == OrderStatus.OPEN and order.close_requested_at is not None:
            error = _close_requested(balance, order, *quotes[order.asset])
        else:
            continue
        events.append({**order_event(order, order.id, error), "order": order_state(order)})
    commit_in_one_round_trip(db.session)
    publish_order_events(*events)
    return len(rows), events


def _execute_pending(balance: Balance, order: Order, quote: Quote | None, book: Book | None) -> None:
    """Fill a market order now, place a limit or stop order, or reject it."""
    if utcnow() - order.created_at > timedelta(seconds=current_app.config["ORDER_MAX_DELAY_S"]):
        _reject(order, RejectReason.EXPIRED)  # an engine outage must not fill it late at today's price
    elif order.order_type != OrderType.MARKET:
        _place(balance, order, quote, book)
    elif quote is None:
        _reject(order, RejectReason.PRICE_UNAVAILABLE)
    else:
        _fill(balance, order, quote, book)


def _close_requested(balance: Balance, order: Order, quote: Quote | None, book: Book | None) -> RejectReason | None:
    """Close a position its owner asked to close, at the book; why it could not, if it could not."""
    if quote is None:
        error = RejectReason.PRICE_UNAVAILABLE
    elif not _settle(balance, order, quote, book, CloseReason.USER):  # it changed nothing
        error = RejectReason.INSUFFICIENT_LIQUIDITY
    else:
        return None
    order.close_requested_at = None  # the requester is told it failed; nothing retries it
    return error


def cancel_working(order_id, expired: bool = False) -> str | None:
    """Cancel a working order (or expire it past its expiresAt): its margin back, once."""
    balance, order = _lock_order(order_id)
    if order is None or order.status != OrderStatus.WORKING:
        user_id = order.user_id if order is not None else None
        db.session.rollback()
        if user_id is not None and not expired:
            publish_order_events({"userId": user_id, "orderId": str(order_id), "error": "not_working"})
        return "not_working"
    if expired:
        _release(balance, order, OrderStatus.REJECTED, RejectReason.EXPIRED)
    else:
        _release(balance, order, OrderStatus.CANCELLED)
    _commit_and_publish(order, order_id)
    return None


def crossed_order_ids(asset: str, quote: Quote, shards: list[int]) -> list[uuid.UUID]:
    """Open orders on `asset` in `shards` whose liquidation, stop-loss or take-profit the quote has crossed.

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
        select(Order.id).where(
            Order.status == OrderStatus.OPEN,
            Order.asset == asset,
            or_(long_crossed, short_crossed),
            account_shard(Order.user_id).in_(shards),
        )
    )
    return list(rows.scalars())


def _trigger_reason(order: Order | None, quote: Quote) -> CloseReason | None:
    if order is None or order.status != OrderStatus.OPEN:
        return None
    position = rules.Position(order.side, order.liquidation_price, order.stop_loss, order.take_profit)
    return rules.close_trigger(position, quote.bid, quote.ask)


def crossed_working_ids(asset: str, quote: Quote, shards: list[int]) -> list[uuid.UUID]:
    """Working limit and stop orders on `asset` that the quote reaches (partial index on working orders)."""
    long, short = Order.side == Side.LONG, Order.side == Side.SHORT
    limit, stop = Order.order_type == OrderType.LIMIT, Order.order_type == OrderType.STOP
    reached = or_(
        and_(limit, long, Order.limit_price >= quote.ask),
        and_(limit, short, Order.limit_price <= quote.bid),
        and_(stop, long, Order.stop_price <= quote.ask),
        and_(stop, short, Order.stop_price >= quote.bid),
    )
    rows = db.session.execute(
        select(Order.id).where(
            Order.status == OrderStatus.WORKING, Order.asset == asset, reached, account_shard(Order.user_id).in_(shards)
        )
    )
    return list(rows.scalars())


# (asset, shard) -> the price (quote time, book update) this process last checked that shard at
_checked_at: dict[tuple[str, int], tuple] = {}


def close_crossed_positions(asset: str, shard: int) -> int:
    """Close every position the latest price has crossed, in bounded batches (one transaction
    each), all at the quote that crossed them; then fill every working order it reached.

    A price move asks each shard for a check, but one check covers every shard of this process
    that has not been checked at this very price: the checks its siblings asked for then find
    their shard done and return at once (one query per move, however many shards it owns)."""
    quote = _fresh_quote(asset)
    if quote is None:
        return 0
    book = _book(asset)
    price = (quote.time_us, quote.update_id, book.update_id if book else None)
    owned = sorted({shard, *current_app.config["ENGINE_SHARD_SET"]})
    shards = [s for s in owned if _checked_at.get((asset, s)) != price]
    if shard not in shards:
        return 0
    crossed = crossed_order_ids(asset, quote, shards)
    size = current_app.config["ENGINE_CASCADE_BATCH"]
    batches = (crossed[i : i + size] for i in range(0, len(crossed), size))
    changed = sum(_close_batch(batch, quote, book) for batch in batches)
    for order_id in crossed_working_ids(asset, quote, shards):
        balance, order = _lock_order(order_id)
        if order is None or order.status != OrderStatus.WORKING or not _fill_working(balance, order, quote, book):
            db.session.rollback()  # cancelled meanwhile, or the book within its limit is too thin: keeps working
            continue
        changed += _commit_and_publish(order, order_id)
    _checked_at.update(((asset, s), price) for s in shards)
    return changed


def _close_batch(order_ids: list[uuid.UUID], quote: Quote, book: Book | None) -> int:
    """Lock a batch of crossed positions with their balances in one statement, in one fixed order
    (account, then order: two engines or a retry can never wait on each other in a cycle), close
    each that is still crossed, and commit them together: one WAL flush for the batch."""
    rows = db.session.execute(
        select(Order, Balance)
        .join(Balance, Balance.user_id == Order.user_id)
        .where(Order.id.in_(order_ids))
        .order_by(Order.user_id, Order.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    events = []
    for order, balance in rows:
        reason = _trigger_reason(order, quote)
        if reason is not None:  # else closed meanwhile, or no longer crossed once locked
            _settle(balance, order, quote, book, reason)
            events.append(order_event(order, order.id))
    commit_in_one_round_trip(db.session)
    publish_order_events(*events)
    return len(events)


def _commit_and_publish(order: Order, order_id, error: str | None = None) -> int:
    """Commit, then tell the account's listeners (the event is built first: no reload after the commit)."""
    event = order_event(order, order_id, error)
    commit_in_one_round_trip(db.session)
    publish_order_events(event)
    return 1


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
    orders = (
        db.session.execute(
            select(Order)
            .where(Order.user_id == user_id, Order.status.in_([OrderStatus.OPEN, OrderStatus.WORKING]))
            .order_by(Order.id)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    positions = [order for order in orders if order.status == OrderStatus.OPEN]
    quotes = {asset: _fresh_quote(asset) for asset in {order.asset for order in positions}}
    reset.done_at = utcnow()
    if None in quotes.values():
        reset.status = ResetStatus.FAILED
        commit_in_one_round_trip(db.session)
        publish_order_events(
            {
                "userId": user_id,
                "resetId": str(reset_id),
                "status": str(ResetStatus.FAILED),
                "error": str(RejectReason.PRICE_UNAVAILABLE),
            }
        )
        return ResetStatus.FAILED
    events = []
    for order in orders:
        if order.status == OrderStatus.WORKING:
            _release(balance, order, OrderStatus.CANCELLED)
        else:
            _settle(balance, order, quotes[order.asset], _book(order.asset), CloseReason.RESET)
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
    commit_in_one_round_trip(db.session)
    publish_order_events(*events, {"userId": user_id, "resetId": str(reset_id), "status": str(ResetStatus.DONE)})
    log.info("reset account %d: %d positions closed", user_id, len(positions))
    return ResetStatus.DONE


def _ids_in_shard(model, shard: int, *where) -> list[tuple]:
    query = select(model.id, model.user_id).where(*where, account_shard(model.user_id) == shard)
    return [tuple(row) for row in db.session.execute(query.limit(SWEEP_BATCH))]


def stuck_work(shard: int, older_than: timedelta) -> dict[str, list[tuple]]:
    """Accepted work of a shard with no result yet, as (id, account) pairs: pending opens,
    requested closes and resets older than the bound, and working orders past their expiry."""
    cutoff = utcnow() - older_than
    return {
        "opens": _ids_in_shard(Order, shard, Order.status == OrderStatus.PENDING, Order.created_at < cutoff),
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


@shared_task(name=EXECUTE_ORDER, **RETRY_ON_OUTAGE)
def execute_order(order_id: str, account_id: int) -> int:
    """The wake-up sent for a new order (or re-sent by the sweep): runs it and whatever else is
    pending in this process's shards. Returns how many ran (shown in Flower)."""
    executed, _ = execute_pending(shard_of(account_id, current_app.config["ENGINE_SHARDS"]))
    return executed


@shared_task(name=CLOSE_ORDER, **RETRY_ON_OUTAGE)
def close_order(order_id: str, account_id: int) -> str | None:
    """The wake-up sent for a close request. Returns why this close failed, if this task ran it
    and it did (shown in Flower); the waiting request was told by the order's event."""
    _, failed = execute_pending(shard_of(account_id, current_app.config["ENGINE_SHARDS"]))
    return failed.get(order_id)


@shared_task(name=CANCEL_ORDER, **RETRY_ON_OUTAGE)
def cancel_order(order_id: str, expired: bool = False, account_id: int | None = None) -> str | None:
    return cancel_working(uuid.UUID(order_id), expired=expired)


@shared_task(name=RESET_ACCOUNT, **RETRY_ON_OUTAGE)
def reset_account_task(reset_id: str, account_id: int | None = None) -> str | None:
    return reset_account(uuid.UUID(reset_id))


@shared_task(name=CHECK_TRIGGERS)
def check_triggers(asset: str, shard: int) -> int:
    """Runs after price moves; clearing the flag first lets the next move schedule another check."""
    clear_trigger_check(redis_client, asset, shard)
    return close_crossed_positions(asset, shard)


@shared_task(name=SWEEP_STUCK_ORDERS)
def sweep_stuck_orders(shard: int) -> dict:
    """Re-enqueue the shard's accepted work that never got a result (lost message, crash before
    enqueue), and expire its working orders past their expiresAt."""
    work = stuck_work(shard, timedelta(seconds=current_app.config["PENDING_SWEEP_AFTER_S"]))
    db.session.rollback()
    for order_id, account_id in work["expired"]:
        cancel_order.delay(str(order_id), expired=True, account_id=account_id)
    if stuck := work["opens"] + work["closes"]:  # one wake-up runs the shard's whole backlog
        order_id, account_id = stuck[0]
        execute_order.delay(str(order_id), account_id=account_id)
    for reset_id, account_id in work["resets"]:
        reset_account_task.delay(str(reset_id), account_id=account_id)
    counts = {kind: len(ids) for kind, ids in work.items()}
    if counts["opens"] or counts["closes"] or counts["resets"]:
        log.warning("sweep of shard %d re-enqueued %s", shard, counts)
    return counts
