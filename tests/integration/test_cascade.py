"""A liquidation cascade: one tick crosses a thousand positions over a hundred accounts; the engine
closes them in bounded batches, each exactly once, all at the quote that crossed them."""

import uuid
from collections import Counter

import pytest

from app.extensions import db
from app.models import Balance, LedgerEntry, Order, utcnow
from tests.support.feed import request_trigger_checks
from tests.support.state import assert_ledger_balances
from tests.support.trading import BTC_ASK, BTC_BID
from tests.support.waiting import eventually
from workers import levels

pytestmark = pytest.mark.usefixtures("engine_worker")
ACCOUNTS, PER_ACCOUNT, MARGIN = 100, 10, 1_000


def open_positions(app, account_ids: list[int]) -> list[uuid.UUID]:
    """Open long positions as the engine would have: rows, ledger entries and balances together.
    A third have a stop-loss and a third a take-profit above the tick below (kept open by it)."""
    ids = []
    with app.app_context():
        for account_id in account_ids:
            for n in range(PER_ACCOUNT):
                order = Order(
                    id=uuid.uuid4(),
                    account_id=account_id,
                    asset="BTC",
                    side="long",
                    status="open",
                    margin=MARGIN,
                    leverage=100,
                    slippage_bps=100,
                    quantity=100_000,
                    open_price=BTC_ASK,
                    liquidation_price=991_000_000,
                    stop_loss=995_000_000 if n % 3 == 1 else None,
                    opened_at=utcnow(),
                )
                db.session.add(order)
                db.session.flush()  # the order row before its ledger entry (no ORM relationship orders them)
                db.session.add(
                    LedgerEntry(
                        account_id=account_id, order_id=order.id, kind="open", usd_delta=-MARGIN, locked_delta=MARGIN
                    )
                )
                ids.append(order.id)
            balance = db.session.get(Balance, account_id)
            balance.usd -= MARGIN * PER_ACCOUNT
            balance.locked_margin += MARGIN * PER_ACCOUNT
        db.session.commit()
        levels.recompute(range(app.config["ENGINE_SHARDS"]), ["BTC"])  # their trigger levels, as a sweep sets them
    return ids


def test_one_tick_closes_every_crossed_position_once_at_its_price(app, make_user, set_price):
    set_price("BTC", BTC_BID, BTC_ASK)
    ids = open_positions(app, [make_user()[0] for _ in range(ACCOUNTS)])
    set_price("BTC", 990_000_000, 990_100_000)  # below every liquidation price and stop-loss
    request_trigger_checks(app, "BTC")

    def all_closed():
        with app.app_context():
            return (
                db.session.execute(
                    db.select(db.func.count()).select_from(Order).where(Order.status == "open")
                ).scalar_one()
                == 0
            )

    eventually(all_closed, timeout=60, interval=0.2)
    with app.app_context():
        orders = db.session.execute(db.select(Order).where(Order.id.in_(ids))).scalars().all()
        closes = Counter(
            e.order_id for e in db.session.execute(db.select(LedgerEntry).where(LedgerEntry.kind == "close")).scalars()
        )
    assert len(orders) == ACCOUNTS * PER_ACCOUNT and set(closes.values()) == {1}
    assert {o.close_price for o in orders} == {990_000_000}  # the bid of the tick that crossed them
    reasons = Counter(o.close_reason for o in orders)
    assert reasons == {"liquidation": ACCOUNTS * PER_ACCOUNT}  # liquidation first when both are crossed
    assert_ledger_balances(app)


def test_one_check_covers_every_shard_of_its_engine_at_a_price(app, make_user, set_price):
    """A move asks each of the 16 shards for a check; the first check an engine runs closes the
    crossed positions of all its shards, and its siblings at the same price return without a query."""
    from sqlalchemy import event

    from workers.triggers import check_triggers

    set_price("BTC", BTC_BID, BTC_ASK)
    accounts = [make_user()[0] for _ in range(20)]
    open_positions(app, accounts)
    set_price("BTC", 990_000_000, 990_100_000)
    statements = []

    def count(*_):
        statements.append(1)

    with app.app_context():  # this process owns every shard (no ENGINE_SHARD_SET): one engine
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            closed = check_triggers("BTC", 0)
            queries = len(statements)
            assert [check_triggers("BTC", shard) for shard in range(16)] == [0] * 16
            assert len(statements) == queries
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    assert closed == len(accounts) * PER_ACCOUNT
    assert_ledger_balances(app)
