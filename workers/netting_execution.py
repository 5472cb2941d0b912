"""Netting orders on the engine: pending orders in batches (with the hedging batch of the same
wake-up), cancels, and after a price move (`workers.triggers`) the liquidations it brings
(`workers.netting_liquidation`), the trigger orders it fires and the working limits the book
reaches."""

import functools
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, or_, select

from app.extensions import db, redis_client
from app.markets.service import asset_named
from app.models import Balance, NetOrder, utcnow
from app.prices.service import fresh_quote
from core import cross_margin, netting
from core.book import Level
from core.enums import NetOrderStatus, NetOrderType, NetRejectReason, TimeInForce, TradeSide, TriggerBy
from core.events import AccountEvent, RequestFailed
from core.execution import Market
from core.marks import MarkStore, price_units
from core.netting import Outcome
from core.prices import Quote
from workers import netting_liquidation
from workers.execution import commit_and_publish, market_now, publish
from workers.netting import (
    CANCELLABLE,
    WORKING,
    AccountState,
    apply,
    changed,
    commit,
    costs,
    load_states,
    marks,
    netting_spec,
)
from workers.queries import among
from workers.shards import account_shard


@functools.lru_cache(maxsize=8)
def _pending_statement(shard_set: frozenset[int], shards: int, size: int):
    """The oldest pending netting orders of these shards with their balances, locked (built once)."""
    oldest = (
        select(NetOrder.id)
        .where(NetOrder.status == NetOrderStatus.PENDING, account_shard(NetOrder.account_id).in_(sorted(shard_set)))
        .order_by(NetOrder.created_at)
        .limit(size)
    )
    return (
        select(NetOrder, Balance)
        .join(Balance, Balance.account_id == NetOrder.account_id)
        .where(among(NetOrder.id, oldest))
        .order_by(NetOrder.account_id, NetOrder.created_at, NetOrder.id)
        .with_for_update(of=[NetOrder, Balance])
        .execution_options(populate_existing=True)
    )


def execute_pending(size: int) -> int:
    """Execute up to `size` of the oldest pending netting orders of this process's shards, each
    account's in the order they came, and commit them together. Returns how many it took."""
    config = current_app.config
    rows = db.session.execute(_pending_statement(config["ENGINE_SHARD_SET"], config["ENGINE_SHARDS"], size)).all()
    if not rows:
        db.session.rollback()
        return 0
    states = load_states({balance.account_id: balance for _, balance in rows})
    prices = marks({order.symbol for order, _ in rows} | {s for st in states.values() for s in st.positions})
    markets: dict[str, Market | None] = {}
    events: list[AccountEvent] = []
    for order, balance in rows:
        if order.symbol not in markets:
            markets[order.symbol] = market_now(order.symbol)
        market = markets[order.symbol]
        levels = None if market is None else market.side_levels(order.side == TradeSide.BUY)
        arrive(states[order.account_id], order, levels, prices)
        events.append(changed(order, balance, states[order.account_id]))
    commit(states, prices, events)
    return len(rows)


def cancel(order_id: uuid.UUID) -> str | None:
    """Cancel a working netting order (or one waiting for its trigger), once; "not_working" if it
    filled or ended first."""
    row = db.session.execute(
        select(Balance, NetOrder)
        .join(NetOrder, NetOrder.account_id == Balance.account_id)
        .where(NetOrder.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None or row[1].status not in CANCELLABLE:
        db.session.rollback()
        if row is not None:
            publish(RequestFailed(row[1].account_id, str(order_id), "not_working"))
        return "not_working"
    balance, order = row
    order.status, order.ended_at = NetOrderStatus.CANCELLED, utcnow()
    commit_and_publish(changed(order, balance))
    return None


def on_price(asset: str, quote: Quote, market: Market, trigger: Quote | None, shards: list[int]) -> int:
    """After a price move: liquidate the accounts whose mark crossed a position's estimated
    liquidation price (and that the whole account confirms), then fill the working limits the
    book reaches. Returns how many orders changed."""
    count = 0
    if trigger is not None:
        count += netting_liquidation.liquidations(asset, trigger, shards)
    count += _triggered(asset, market, shards)
    count += _working(asset, quote, market, shards)
    return count


def _triggered(asset: str, market: Market, shards: list[int]) -> int:
    """Fire the trigger orders (and attached closes) on `asset` whose watched price reached them:
    each executes now as the order it carries."""
    watched = trigger_prices(asset)
    if not watched:
        return 0
    reached = or_(
        *(
            and_(
                NetOrder.trigger_by == kind,
                or_(
                    and_(NetOrder.trigger_above, NetOrder.trigger_price <= price),
                    and_(~NetOrder.trigger_above, NetOrder.trigger_price >= price),
                ),
            )
            for kind, price in watched.items()
        )
    )
    rows = _lock_orders(NetOrder.status == NetOrderStatus.TRIGGER_PENDING, NetOrder.symbol == asset, reached, shards)
    if not rows:
        return 0
    states = load_states({balance.account_id: balance for _, balance in rows})
    prices = marks({asset} | {s for state in states.values() for s in state.positions})
    events: list[AccountEvent] = []
    now = utcnow()
    for order, balance in rows:
        if order.status != NetOrderStatus.TRIGGER_PENDING:
            continue  # an attached close its sibling cancelled in this batch
        order.triggered_at = now
        execute(states[order.account_id], order, market.side_levels(order.side == TradeSide.BUY), prices)
        events.append(changed(order, balance, states[order.account_id]))
    commit(states, prices, events)
    return len(events)


def _working(asset: str, quote: Quote, market: Market, shards: list[int]) -> int:
    """Fill the working limits on `asset` the book reaches, each at most once per book (a paper
    order cannot take the same visible size twice)."""
    book_id = market.book.update_id if market.book is not None else quote.update_id
    reached = or_(
        and_(NetOrder.side == TradeSide.BUY, NetOrder.price >= quote.ask),
        and_(NetOrder.side == TradeSide.SELL, NetOrder.price <= quote.bid),
    )
    fresh = or_(NetOrder.book_update.is_(None), NetOrder.book_update != book_id)
    rows = _lock_orders(NetOrder.status.in_(WORKING), NetOrder.symbol == asset, reached, fresh, shards)
    if not rows:
        return 0
    states = load_states({balance.account_id: balance for _, balance in rows})
    prices = marks({asset} | {s for state in states.values() for s in state.positions})
    spec, rules_now, events = netting_spec(asset), costs(), []
    for order, balance in rows:
        state = states[order.account_id]
        order.book_update = book_id
        if spec is None:
            continue
        row = state.positions.get(asset)
        held = cross_margin.Position(row.quantity, int(row.cost)) if row is not None else cross_margin.Position()
        levels = market.side_levels(order.side == TradeSide.BUY)
        outcome = netting.on_book(terms_of(order), order.quantity or 0, held, spec, levels, rules_now)
        if outcome is not None:
            apply(state, order, outcome)
            events.append(changed(order, balance, state))
    commit(states, prices, events)
    return len(events)


def _lock_orders(*where) -> list:
    """Up to ENGINE_CASCADE_BATCH netting orders matching `where` (the last item: the shards),
    locked with their balances in one fixed order (account, then order); none: rolled back."""
    *conditions, shards = where
    query = (
        select(NetOrder, Balance)
        .join(Balance, Balance.account_id == NetOrder.account_id)
        .where(*conditions, account_shard(NetOrder.account_id).in_(shards))
        .order_by(NetOrder.account_id, NetOrder.created_at, NetOrder.id)
        .limit(current_app.config["ENGINE_CASCADE_BATCH"])
        .with_for_update(of=[NetOrder, Balance])
        .execution_options(populate_existing=True)
    )
    rows = db.session.execute(query).all()
    if not rows:
        db.session.rollback()
    return rows


def trigger_prices(symbol: str) -> dict[TriggerBy, int]:
    """What trigger orders on `symbol` watch, where fresh: its mark, its index, its book's mid."""
    asset = asset_named(symbol)
    if asset is None:
        return {}
    found: dict[TriggerBy, int] = {}
    mark = MarkStore(redis_client).read(asset.market)
    if mark is not None and mark.is_fresh(current_app.config["PRICE_MAX_AGE_S"]):
        found[TriggerBy.MARK] = mark.units(asset.decimals)
        if mark.index is not None:
            found[TriggerBy.INDEX] = price_units(mark.index, asset.decimals)
    quote = fresh_quote(symbol)
    if quote is not None:
        found[TriggerBy.LAST] = (quote.bid + quote.ask) // 2
    return found


def arrive(state: AccountState, order: NetOrder, levels: tuple[Level, ...] | None, prices: dict[str, int]) -> None:
    """A pending order: a trigger order waits for its price (`trigger_pending`); any other (or a
    trigger order that fired) goes to `core.netting.arrive` on the side of the book it takes."""
    if utcnow() - order.created_at > timedelta(seconds=current_app.config["ORDER_MAX_DELAY_S"]):
        apply(state, order, netting.rejected(NetRejectReason.EXPIRED))  # an outage must not fill it late
        return
    if order.trigger_price is not None and order.triggered_at is None:
        watched = trigger_prices(order.symbol).get(TriggerBy(order.trigger_by))
        if watched is None:
            apply(state, order, netting.rejected(NetRejectReason.PRICE_UNAVAILABLE))
            return
        order.trigger_above = order.trigger_price > watched
        if order.trigger_price != watched:
            order.status = NetOrderStatus.TRIGGER_PENDING
            return
        order.triggered_at = utcnow()
    execute(state, order, levels, prices)


def execute(state: AccountState, order: NetOrder, levels: tuple[Level, ...] | None, prices: dict[str, int]) -> None:
    """`core.netting.arrive`, written; an attached close that finds nothing left to reduce is cancelled."""
    terms = terms_of(order)
    working_count = len(state.working)
    outcome = netting.arrive(terms, state.view(prices, order.symbol), order.symbol, levels, costs(), working_count)
    if order.related_order_id is not None and outcome.reason == NetRejectReason.REDUCE_ONLY_NOT_REDUCING:
        outcome = Outcome(NetOrderStatus.CANCELLED)
    apply(state, order, outcome)


def terms_of(order: NetOrder) -> netting.Order:
    return netting.Order(
        TradeSide(order.side),
        NetOrderType(order.order_type),
        order.quantity,
        order.quote_quantity,
        order.price,
        TimeInForce(order.time_in_force),
        order.post_only,
        order.reduce_only,
        order.executed_quantity,
    )
