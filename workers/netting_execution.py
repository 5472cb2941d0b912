"""Netting work on the engine: pending orders in batches (with the hedging batch of the same
wake-up), cancels, and after a price move the working limits the book reaches and the accounts
whose mark crossed an estimated liquidation price (`workers.triggers`)."""

import functools
import logging
import uuid
from collections.abc import Iterable

from flask import current_app
from sqlalchemy import and_, or_, select

from app.extensions import db
from app.models import Balance, NetOrder, Position, utcnow
from core import netting
from core.enums import LedgerKind, NetOrderStatus, NetOrderType, TimeInForce, TradeSide
from core.events import AccountEvent, RequestFailed
from core.execution import Market
from core.prices import Quote
from core.triggers import Levels
from workers import levels
from workers import netting as state_of
from workers.execution import commit_and_publish, market_now, publish
from workers.netting import (
    CANCELLABLE,
    WORKING,
    AccountState,
    apply,
    changed,
    load_states,
    marks,
    netting_spec,
    reestimate,
)
from workers.sequences import ORDER_NUMBERS
from workers.shards import account_shard

log = logging.getLogger(__name__)


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
        .where(NetOrder.id.in_(oldest.scalar_subquery()))
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
        state_of.arrive(states[order.account_id], order, levels, prices)
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
        count += _liquidations(asset, trigger, shards)
    count += _triggered(asset, market, shards)
    count += _working(asset, quote, market, shards)
    return count


def _triggered(asset: str, market: Market, shards: list[int]) -> int:
    """Fire the trigger orders (and attached closes) on `asset` whose watched price reached them:
    each executes now as the order it carries."""
    watched = state_of.trigger_prices(asset)
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
        state_of.execute(states[order.account_id], order, market.side_levels(order.side == TradeSide.BUY), prices)
        events.append(changed(order, balance, states[order.account_id]))
    commit(states, prices, events)
    return len(events)


def _crossed_accounts(asset: str, trigger: Quote, shards: list[int]) -> list[int]:
    crossed = or_(
        and_(Position.quantity > 0, Position.liquidation_price >= trigger.bid),
        and_(Position.quantity < 0, Position.liquidation_price <= trigger.ask),
    )
    query = select(Position.account_id).where(
        Position.symbol == asset, Position.quantity != 0, crossed, account_shard(Position.account_id).in_(shards)
    )
    return sorted(set(db.session.scalars(query)))


def _lock_balances(account_ids: Iterable[int]) -> dict[int, Balance]:
    query = select(Balance).where(Balance.account_id.in_(sorted(account_ids))).order_by(Balance.account_id)
    rows = db.session.scalars(query.with_for_update().execution_options(populate_existing=True))
    return {balance.account_id: balance for balance in rows}


def _liquidations(asset: str, trigger: Quote, shards: list[int]) -> int:
    account_ids = _crossed_accounts(asset, trigger, shards)
    if not account_ids:
        return 0
    states = load_states(_lock_balances(account_ids))
    prices = marks({symbol for state in states.values() for symbol in state.positions})
    events: list[AccountEvent] = []
    for state in states.values():
        if state.view(prices).liquidatable():
            events.extend(liquidate(state))
    commit(states, prices, events)
    return len(events)


REASSESS_BATCH = 500


def reassess(shards: list[int]) -> int:
    """The backstop for an estimated liquidation price that went stale as marks moved on the
    account's other markets: every netting account of `shards` with a position, valued again at
    every mark, liquidated if past maintenance, its estimates (and trigger levels) renewed.
    Returns how many orders it changed."""
    query = select(Position.account_id).where(Position.quantity != 0, account_shard(Position.account_id).in_(shards))
    account_ids = sorted(set(db.session.scalars(query)))
    db.session.rollback()
    changed_count = 0
    for start in range(0, len(account_ids), REASSESS_BATCH):
        states = load_states(_lock_balances(account_ids[start : start + REASSESS_BATCH]))
        prices = marks({symbol for state in states.values() for symbol in state.positions})
        events: list[AccountEvent] = []
        for state in states.values():
            if state.view(prices).liquidatable():
                events.extend(liquidate(state))
        changed_count += commit(states, prices, events)
    return changed_count


def liquidate(state: AccountState) -> list:
    """Backpack's liquidation: every working order cancelled, every position closed against the
    book as an order of its own (`liquidation`: Backpack's LIQUIDATION_AUTOCLOSE), 1 % a fill;
    what the account then owes beyond its cash is covered (`insurance`), never left below zero."""
    return close_everything(state, liquidation=True)


def close_everything(state: AccountState, liquidation: bool) -> list:
    """Cancel the account's working orders and close its positions against the book, each close
    an order of its own: a liquidation's (1 % a fill) or a reset's (the taker fee)."""
    with db.session.no_autoflush:  # a new order and its fills go out together, parents first, at the commit
        return _close_everything(state, liquidation)


def _close_everything(state: AccountState, liquidation: bool) -> list:
    now, events = utcnow(), []
    fee_bps = netting.LIQUIDATION_FEE_BPS if liquidation else state_of.costs().taker_fee_bps
    for order in list(state.working):
        order.status, order.ended_at = NetOrderStatus.CANCELLED, now
        state.working.remove(order)
        events.append(changed(order, state.balance, state))
    for symbol, row in sorted(state.positions.items()):
        spec, market = netting_spec(symbol), market_now(symbol)
        if not row.quantity or spec is None or market is None:
            continue
        held = netting.Position(row.quantity, int(row.cost))
        trades, _ = netting.close_out(held, spec, market.side_levels(not held.long), fee_bps)
        if not trades:
            continue
        order = NetOrder(
            id=uuid.uuid4(),
            number=ORDER_NUMBERS.take(),
            account_id=state.balance.account_id,
            symbol=symbol,
            side=TradeSide.SELL if held.long else TradeSide.BUY,
            order_type=NetOrderType.MARKET,
            status=NetOrderStatus.FILLED,
            quantity=abs(row.quantity),
            time_in_force=TimeInForce.IOC,
            post_only=False,
            reduce_only=True,
            executed_quantity=0,
            executed_quote=0,
            fee=0,
            liquidation=liquidation,
            created_at=now,
            ended_at=now,
        )
        db.session.add(order)
        state_of.record_trades(state, order, trades, LedgerKind.LIQUIDATION_FEE if liquidation else LedgerKind.FEE)
        row.realized_pnl += sum(trade.realized for trade in trades)
        row.quantity, row.cost, row.updated_at = 0, 0, now
        events.append(changed(order, state.balance, state))
        log.info("closed account %d's %s (liquidation: %s)", state.balance.account_id, symbol, liquidation)
    if liquidation and state.balance.usd < 0 and not any(row.quantity for row in state.positions.values()):
        state_of.post(state.balance, LedgerKind.INSURANCE, -state.balance.usd, None)
    return events


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
    spec, rules_now, events = netting_spec(asset), state_of.costs(), []
    for order, balance in rows:
        state = states[order.account_id]
        order.book_update = book_id
        if spec is None:
            continue
        row = state.positions.get(asset)
        held = netting.Position(row.quantity, int(row.cost)) if row is not None else netting.Position()
        levels = market.side_levels(order.side == TradeSide.BUY)
        outcome = netting.on_book(state_of.terms_of(order), order.quantity or 0, held, spec, levels, rules_now)
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


def commit(states: dict[int, AccountState], prices: dict[str, int], events: list) -> int:
    """Renew the accounts' estimated liquidation prices, commit and publish, then tighten the
    trigger levels their working orders and positions hold. Returns how many events it sent."""
    for state in states.values():
        reestimate(state, prices)
    tightened = added(states.values())
    sent = commit_and_publish(*events)
    track(tightened)
    return sent


def added(states: Iterable[AccountState]) -> dict[tuple[str, int], Levels]:
    """The trigger levels the accounts' working orders and positions hold, by market and shard:
    taken before the commit, which leaves the rows unloaded."""
    return levels.added_netting(
        [order for state in states for order in state.working],
        [row for state in states for row in state.positions.values()],
    )


track = levels.track
