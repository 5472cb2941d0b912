"""Netting accounts on the engine: short transactions around `core.netting`'s decisions.

Every transaction locks the accounts' balance rows with the orders it changes (balances first,
in account order, as every engine transaction does), then the accounts' positions, and writes
fills, ledger entries and positions with the orders in one commit (`workers.writes`). A netting
account's state for a decision is its cash, its positions valued at their marks and the notional
of its working orders (`AccountState`).
"""

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from app.extensions import db, redis_client
from app.markets.service import netting_spec, price_decimals
from app.models import Account as AccountRow
from app.models import Balance, Fill, LedgerEntry, NetOrder, Position, utcnow
from core import cross_margin, netting
from core.book import notional
from core.cross_margin import Holding
from core.enums import LedgerKind, NetOrderStatus, NetOrderType, TimeInForce, TradeSide, TriggerBy
from core.marks import MarkStore
from core.net_events import FillState, NetOrderChanged, NetOrderState, PositionState
from core.netting import Costs, Outcome, Trade
from core.triggers import Levels
from workers import levels
from workers.execution import commit_and_publish
from workers.sequences import FILL_IDS, ORDER_NUMBERS

log = logging.getLogger(__name__)

WORKING = (NetOrderStatus.NEW, NetOrderStatus.PARTIALLY_FILLED)
CANCELLABLE = (*WORKING, NetOrderStatus.TRIGGER_PENDING)
ENDED = frozenset({NetOrderStatus.FILLED, NetOrderStatus.CANCELLED, NetOrderStatus.EXPIRED, NetOrderStatus.REJECTED})


def costs() -> Costs:
    config = current_app.config
    return Costs(config["NETTING_TAKER_FEE_BPS"], config["NETTING_MAKER_FEE_BPS"], config["MAX_WORKING_ORDERS"])


def marks(symbols: set[str]) -> dict[str, int]:
    """Each market's latest mark in its price units (stale or not: a position is valued at the
    last mark Backpack published rather than not at all)."""
    found = MarkStore(redis_client).read_many(sorted(symbols))
    units = {}
    for symbol, mark in found.items():
        spec = netting_spec(symbol)
        if spec is not None:
            units[symbol] = mark.units(spec.decimals)
    return units


@dataclass
class AccountState:
    """A netting account inside one transaction: its locked balance, positions and working orders."""

    balance: Balance
    leverage_limit: int
    positions: dict[str, Position] = field(default_factory=dict)
    working: list[NetOrder] = field(default_factory=list)
    new_fills: dict[uuid.UUID, list[Fill]] = field(default_factory=dict)  # by order, until its event carries them

    def position(self, symbol: str) -> Position:
        if symbol not in self.positions:
            row = Position(account_id=self.balance.account_id, symbol=symbol, quantity=0, cost=Decimal(0))
            row.realized_pnl, row.updated_at = 0, utcnow()
            db.session.add(row)
            self.positions[symbol] = row
        return self.positions[symbol]

    def view(self, prices: dict[str, int], *extra: str) -> cross_margin.Account:
        """The account as `core.netting` decides on it (a market of `extra` included even if flat)."""
        holdings = {}
        for symbol in {*self.positions, *(o.symbol for o in self.working), *extra}:
            spec = netting_spec(symbol)
            if spec is None:
                continue
            row = self.positions.get(symbol)
            held = cross_margin.Position(row.quantity, int(row.cost)) if row is not None else cross_margin.Position()
            entry = held.entry_price()
            mark = prices.get(symbol) or (int(entry) if entry is not None else 0)
            working = sum(
                spec.notional(o.price or 0, (o.quantity or 0) - o.executed_quantity)
                for o in self.working
                if o.symbol == symbol and not o.reduce_only
            )
            holdings[symbol] = Holding(spec, held, mark, working)
        return cross_margin.Account(self.balance.usd, self.leverage_limit, holdings)


def load_states(balances: dict[int, Balance]) -> dict[int, AccountState]:
    """The accounts' leverage limits, positions (locked) and working orders, their balances
    already locked by the caller."""
    ids = sorted(balances)
    limits = dict(
        db.session.execute(select(AccountRow.id, AccountRow.leverage_limit).where(AccountRow.id.in_(ids))).all()
    )
    states = {account_id: AccountState(balances[account_id], limits[account_id]) for account_id in ids}
    positions = select(Position).where(Position.account_id.in_(ids)).order_by(Position.account_id, Position.symbol)
    for row in db.session.scalars(positions.with_for_update().execution_options(populate_existing=True)):
        states[row.account_id].positions[row.symbol] = row
    working = select(NetOrder).where(NetOrder.account_id.in_(ids), NetOrder.status.in_(WORKING))
    for order in db.session.scalars(working.execution_options(populate_existing=True)):
        states[order.account_id].working.append(order)
    return states


def post(balance: Balance, kind: LedgerKind, usd_delta: int, order: NetOrder | None) -> None:
    """Change the cash and append its ledger entry, in the caller's transaction."""
    if not usd_delta:
        return
    balance.usd += usd_delta
    db.session.add(
        LedgerEntry(
            account_id=balance.account_id,
            net_order_id=order.id if order is not None else None,
            kind=kind,
            usd_delta=usd_delta,
            locked_delta=0,
            created_at=utcnow(),
        )
    )


def record_trades(state: AccountState, order: NetOrder, trades: tuple[Trade, ...], fee_kind: LedgerKind) -> None:
    """The fills of `order`, its executed figures, and their fees and realized PnL in the ledger."""
    now, decimals = utcnow(), price_decimals(order.symbol)
    for trade in trades:
        fill = Fill(
            id=FILL_IDS.take(),
            order_id=order.id,
            account_id=order.account_id,
            symbol=order.symbol,
            side=order.side,
            price=trade.price,
            quantity=trade.quantity,
            fee=trade.fee,
            realized_pnl=trade.realized,
            maker=trade.maker,
            liquidation=order.liquidation,
            created_at=now,
        )
        db.session.add(fill)
        state.new_fills.setdefault(order.id, []).append(fill)
        order.executed_quantity += trade.quantity
        order.executed_quote += notional(trade.price, trade.quantity, decimals)
        order.fee += trade.fee
    post(state.balance, LedgerKind.REALIZED_PNL, sum(t.realized for t in trades), order)
    post(state.balance, fee_kind, -sum(t.fee for t in trades), order)


def apply(state: AccountState, order: NetOrder, outcome: Outcome) -> None:
    """Write what `core.netting` decided for `order`: its fills, its status, the position."""
    now = utcnow()
    if outcome.status == NetOrderStatus.REJECTED:
        order.status, order.reject_reason, order.ended_at = NetOrderStatus.REJECTED, outcome.reason, now
        return
    if outcome.quantity is not None:
        order.quantity = outcome.quantity
    record_trades(state, order, outcome.trades, LedgerKind.FEE)
    if outcome.position is not None and outcome.trades:
        row = state.position(order.symbol)
        if row.quantity == 0:
            row.opened_at, row.realized_pnl = now, 0
        row.quantity, row.cost = outcome.position.quantity, Decimal(outcome.position.cost)
        row.realized_pnl += sum(trade.realized for trade in outcome.trades)
        row.updated_at = now
    order.status = outcome.status
    if outcome.trades and (order.take_profit is not None or order.stop_loss is not None):
        attach_closes(order)
    if outcome.trades and order.related_order_id is not None:
        cancel_siblings(order)
    if outcome.status in ENDED:
        order.ended_at = now
        if order in state.working:
            state.working.remove(order)
    elif order not in state.working:
        state.working.append(order)


def attach_closes(parent: NetOrder) -> None:
    """The parent's take-profit and stop-loss as reduce-only market orders waiting for their
    trigger (at the mark), for what the parent has filled so far."""
    children = db.session.scalars(
        select(NetOrder).where(NetOrder.related_order_id == parent.id).with_for_update()
    ).all()
    if children:
        for child in children:
            if child.status == NetOrderStatus.TRIGGER_PENDING:
                child.quantity = parent.executed_quantity
        return
    closing = TradeSide.SELL if parent.side == TradeSide.BUY else TradeSide.BUY
    for trigger_price, above in netting.attached_closes(TradeSide(parent.side), parent.take_profit, parent.stop_loss):
        db.session.add(
            engine_order(
                parent.account_id,
                parent.symbol,
                closing,
                parent.executed_quantity,
                NetOrderStatus.TRIGGER_PENDING,
                TimeInForce.GTC,
                liquidation=False,
                trigger_price=trigger_price,
                trigger_by=TriggerBy.MARK,
                trigger_above=above,
                related_order_id=parent.id,
                created_at=utcnow(),
            )
        )


def engine_order(
    account_id: int,
    symbol: str,
    side: TradeSide,
    quantity: int,
    status: NetOrderStatus,
    time_in_force: TimeInForce,
    **columns,
) -> NetOrder:
    """An order the engine opens itself (an attached take-profit or stop-loss, a liquidation's or
    a reset's close): a reduce-only market order numbered from the engine's block, nothing
    executed yet; `columns` the rest (liquidation, trigger, times)."""
    return NetOrder(
        id=uuid.uuid4(),
        number=ORDER_NUMBERS.take(),
        account_id=account_id,
        symbol=symbol,
        side=side,
        order_type=NetOrderType.MARKET,
        status=status,
        quantity=quantity,
        time_in_force=time_in_force,
        post_only=False,
        reduce_only=True,
        executed_quantity=0,
        executed_quote=0,
        fee=0,
        **columns,
    )


def cancel_siblings(order: NetOrder) -> None:
    """One attached close fired: the other is cancelled (one cancels the other)."""
    siblings = db.session.scalars(
        select(NetOrder)
        .where(
            NetOrder.related_order_id == order.related_order_id,
            NetOrder.id != order.id,
            NetOrder.status == NetOrderStatus.TRIGGER_PENDING,
        )
        .with_for_update()
    ).all()
    for sibling in siblings:
        sibling.status, sibling.ended_at = NetOrderStatus.CANCELLED, utcnow()


def reestimate(state: AccountState, prices: dict[str, int]) -> None:
    """Each open position's estimated liquidation price, as the account stands now: the level
    the mark is compared with (`workers.levels`)."""
    view = state.view(prices)
    for symbol, row in state.positions.items():
        estimate = view.estimated_liquidation_price(symbol) if row.quantity else None
        if row.liquidation_price != estimate:
            row.liquidation_price = estimate


def changed(order: NetOrder, balance: Balance, state: AccountState | None = None) -> NetOrderChanged:
    """The order's event: as committed, with the fills made since its last event and, given the
    account's state, its position on the order's market."""
    fills = state.new_fills.pop(order.id, []) if state is not None else []
    position = state.positions.get(order.symbol) if state is not None else None
    return NetOrderChanged(
        order.account_id,
        NetOrderState.of(order),
        balance.usd,
        tuple(FillState.of(fill) for fill in fills),
        None if position is None else PositionState.of(position),
    )


def commit(states: dict[int, AccountState], prices: dict[str, int], events: list) -> int:
    """Renew the accounts' estimated liquidation prices, commit and publish, then tighten the
    trigger levels their working orders and positions hold. Returns how many events it sent."""
    for state in states.values():
        reestimate(state, prices)
    tightened = added(states.values())
    sent = commit_and_publish(*events)
    levels.track(tightened)
    return sent


def added(states: Iterable[AccountState]) -> dict[tuple[str, int], Levels]:
    """The trigger levels the accounts' working orders and positions hold, by market and shard:
    taken before the commit, which leaves the rows unloaded."""
    return levels.added_netting(
        [order for state in states for order in state.working],
        [row for state in states for row in state.positions.values()],
    )
