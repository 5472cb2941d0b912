"""Funding rounds on the engine (`core.funding`): each shard settles every recorded boundary of
every perpetual, oldest first, for the positions of its own accounts, in short transactions.

The poller records each boundary's rate and mark in Redis as it happens (`core.marks`); the sweep
(every few seconds per shard) copies them into `funding_rates` and settles what its shard has not
settled yet. So an engine or beat that was down at a boundary catches up later, at that
boundary's figures.

Exactly once: a payment's primary key is (position, boundary), and each batch writes its payments
with their ledger entries and balances in one transaction, choosing only positions without a
payment for the boundary. A process killed mid-round leaves whole batches behind; the next sweep
finishes the round. `funding_settled` then records the shard's progress per market.
"""

import logging
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.dialects.postgresql import insert

from app.balances.service import post_entry
from app.extensions import db, redis_client
from app.markets.service import perpetual_symbols, price_decimals
from app.models import Balance, FundingPayment, FundingRate, FundingSettled, Order
from core import funding, rules
from core.enums import LedgerKind, OrderStatus, Side
from core.marks import MarkStore
from workers import levels
from workers.execution import changed, commit_and_publish
from workers.shards import account_shard

log = logging.getLogger(__name__)


def record_rates() -> int:
    """Copy the boundaries the poller recorded in Redis into `funding_rates` (every shard's sweep
    may; the first wins), then forget them in Redis. Returns how many it found."""
    store = MarkStore(redis_client)
    recorded = store.funding_rounds(perpetual_symbols())
    rows = [
        {"market": market, "boundary": _time(boundary), "rate": rate, "mark": mark}
        for market, rounds in recorded.items()
        for boundary, (rate, mark) in rounds.items()
    ]
    if rows:
        db.session.execute(insert(FundingRate).values(rows).on_conflict_do_nothing())
        db.session.commit()
        for market, rounds in recorded.items():
            store.forget_funding(market, list(rounds))
    return len(rows)


def settle_due(shard: int) -> int:
    """Settle every recorded boundary this shard has not settled, oldest first. Returns how many
    payments it made."""
    record_rates()
    settled = and_(FundingSettled.shard == shard, FundingSettled.market == FundingRate.market)
    due = (
        db.session.execute(
            select(FundingRate)
            .outerjoin(FundingSettled, settled)
            .where(or_(FundingSettled.boundary.is_(None), FundingRate.boundary > FundingSettled.boundary))
            .order_by(FundingRate.boundary, FundingRate.market)
        )
        .scalars()
        .all()
    )
    db.session.rollback()
    return sum(settle_round(shard, rate) for rate in due)


def _open_at(boundary: datetime, shard: int):
    """Positions of `shard` open at `boundary`: opened by then, and still open or closed after it."""
    return and_(
        account_shard(Order.user_id) == shard,
        Order.opened_at <= boundary,
        or_(Order.status == OrderStatus.OPEN, and_(Order.status == OrderStatus.CLOSED, Order.closed_at > boundary)),
    )


def settle_round(shard: int, rate: FundingRate) -> int:
    """One market's boundary for one shard: batches of FUNDING_BATCH unpaid positions, each locked
    with its account's balance and committed with its payments; then the shard's progress."""
    config = current_app.config
    paid, margins_changed = 0, False
    unpaid = ~exists().where(FundingPayment.order_id == Order.id, FundingPayment.boundary == rate.boundary)
    query = (
        select(Order, Balance)
        .join(Balance, Balance.user_id == Order.user_id)
        .where(Order.asset == rate.market, _open_at(rate.boundary, shard), unpaid)
        .order_by(Order.user_id, Order.id)
        .limit(config["FUNDING_BATCH"])
        .with_for_update(of=[Order, Balance])
        .execution_options(populate_existing=True)
    )
    while rows := db.session.execute(query).all():
        events = []
        for order, balance in rows:
            margins_changed |= _pay(balance, order, rate, config["LIQUIDATION_RATIO"])
            events.append(changed(order, balance))
        commit_and_publish(*events)
        paid += len(rows)
    db.session.execute(
        insert(FundingSettled)
        .values(shard=shard, market=rate.market, boundary=rate.boundary)
        .on_conflict_do_update(index_elements=["shard", "market"], set_={"boundary": rate.boundary})
    )
    db.session.commit()
    if margins_changed:
        levels.recompute([shard], [rate.market], check_crossed=True)
    if paid:
        log.info("funding of %s at %s: %d positions of shard %d", rate.market, rate.boundary, paid, shard)
    return paid


def _pay(balance: Balance, order: Order, rate: FundingRate, liquidation_ratio) -> bool:
    """One position's payment at the boundary; True when it took from the position's margin."""
    side, is_open = Side(order.side), order.status == OrderStatus.OPEN
    amount = funding.payment(side, order.quantity, rate.rate, rate.mark)
    taken = funding.split(amount, balance.usd, order.margin, is_open)
    db.session.add(
        FundingPayment(
            order_id=order.id,
            boundary=rate.boundary,
            user_id=order.user_id,
            market=rate.market,
            rate=rate.rate,
            mark=rate.mark,
            quantity=order.quantity if side == Side.LONG else -order.quantity,
            amount=taken.settled,
            waived=taken.waived,
        )
    )
    if taken.settled:
        post_entry(balance, LedgerKind.FUNDING, taken.usd, taken.margin, order)
    order.funding += taken.settled
    if not taken.margin:
        return False
    order.margin += taken.margin
    order.liquidation_price = rules.liquidation_price(
        side, order.open_price, order.quantity, order.margin, liquidation_ratio, price_decimals(order.asset)
    )
    return True


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(boundary_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=boundary_ms)
