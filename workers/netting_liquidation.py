"""Netting liquidations on the engine: the accounts whose mark crossed a position's estimated
liquidation price (after a price move) or that every mark now puts past maintenance (the shard's
sweep), each closed against the book as Backpack closes it."""

import logging
from collections.abc import Iterable

from sqlalchemy import and_, or_, select

from app.extensions import db
from app.models import Balance, Position, utcnow
from core import cross_margin, netting
from core.enums import LedgerKind, NetOrderStatus, TimeInForce, TradeSide
from core.events import AccountEvent
from core.prices import Quote
from workers import netting as state_of
from workers.execution import market_now
from workers.netting import AccountState, changed, commit, load_states, marks, netting_spec
from workers.shards import account_shard

log = logging.getLogger(__name__)


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


def liquidations(asset: str, trigger: Quote, shards: list[int]) -> int:
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
        held = cross_margin.Position(row.quantity, int(row.cost))
        trades, _ = netting.close_out(held, spec, market.side_levels(not held.long), fee_bps)
        if not trades:
            continue
        order = state_of.engine_order(
            state.balance.account_id,
            symbol,
            TradeSide.SELL if held.long else TradeSide.BUY,
            abs(row.quantity),
            NetOrderStatus.FILLED,
            TimeInForce.IOC,
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
