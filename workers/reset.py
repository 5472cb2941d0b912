"""Account resets, on the engine: the same serialized path as a trade (the shard's queue, the
balance row's lock), so a reset can never interleave with one."""

import logging
import uuid

from sqlalchemy import select

from app.balances.service import post_entry
from app.extensions import db
from app.models import Account, AccountReset, EquitySnapshot, Order, utcnow
from core.enums import CloseReason, LedgerKind, OrderStatus, RejectReason, ResetStatus
from core.events import AccountEvent, ResetEnded
from workers.execution import changed, commit_and_publish, lock_with_balance, market_now, release, settle
from workers.netting import load_states
from workers.netting_liquidation import close_everything

log = logging.getLogger(__name__)


def reset_account(reset_id: uuid.UUID) -> ResetStatus | None:
    """Close every open position of the account at the book and cancel its working orders, then
    one `reset` ledger entry sets free USD back to the account's starting balance; the equity history gets a
    point at that moment. Without a fresh price for every position nothing changes: `failed`."""
    balance, reset = lock_with_balance(AccountReset, reset_id)
    if reset is None or reset.status != ResetStatus.PENDING:
        db.session.rollback()
        return None
    account_id = balance.account_id
    orders = (
        db.session.execute(
            select(Order)
            .where(Order.account_id == account_id, Order.status.in_([OrderStatus.OPEN, OrderStatus.WORKING]))
            .order_by(Order.id)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    positions = [order for order in orders if order.status == OrderStatus.OPEN]
    netting = load_states({account_id: balance})[account_id]
    held = {symbol for symbol, row in netting.positions.items() if row.quantity}
    markets = {asset: market_now(asset) for asset in {order.asset for order in positions} | held}
    reset.done_at = utcnow()
    if None in markets.values():
        reset.status = ResetStatus.FAILED
        commit_and_publish(ResetEnded(account_id, str(reset_id), ResetStatus.FAILED, RejectReason.PRICE_UNAVAILABLE))
        return ResetStatus.FAILED
    for order in orders:
        if order.status == OrderStatus.WORKING:
            release(balance, order, OrderStatus.CANCELLED)
        else:
            settle(balance, order, markets[order.asset], CloseReason.RESET)
    starting = db.session.scalar(select(Account.starting_balance).where(Account.id == account_id))
    closes = close_everything(netting, liquidation=False)  # a netting account's working orders and positions
    post_entry(balance, LedgerKind.RESET, starting - balance.usd, 0)
    events: list[AccountEvent] = [changed(order, balance) for order in orders]  # with the balance after the reset
    db.session.add(
        EquitySnapshot(
            account_id=account_id,
            taken_at=reset.done_at,
            cash=balance.usd,
            locked_margin=balance.locked_margin,
            unrealized_pnl=0,
        )
    )
    reset.status, reset.closed_positions = ResetStatus.DONE, len(positions) + len(held)
    commit_and_publish(*events, *closes, ResetEnded(account_id, str(reset_id), ResetStatus.DONE))
    log.info("reset account %d: %d positions closed", account_id, len(positions))
    return ResetStatus.DONE
