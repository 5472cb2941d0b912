"""Funding of perpetual positions on the real engine: each position open at a boundary pays or
receives once, at that boundary's rate and mark, also when settled late or after a kill."""

from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from app.extensions import db, redis_client
from app.models import FundingPayment, FundingSettled, LedgerEntry, Order
from core import funding
from core.enums import Side
from core.marks import Mark, MarkStore
from core.prices import now_micros
from core.shards import shard_of
from tests.support.funding import record_boundary, settle
from tests.support.processes import EngineFleet
from tests.support.state import assert_ledger_balances
from tests.support.trading import PERP, open_perpetual
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("engine_worker")


def payments(order_id) -> list[FundingPayment]:
    db.session.rollback()
    return list(db.session.scalars(select(FundingPayment).where(FundingPayment.order_id == order_id)))


def wait_for_payments(order_id, count: int) -> list[FundingPayment]:
    eventually(lambda: len(payments(order_id)) >= count, timeout=30)
    return payments(order_id)


def test_each_position_open_at_the_boundary_pays_or_receives_once(app, client, make_user, perpetuals):
    long_user, long_headers = make_user()
    _, long = open_perpetual(client, make_user, perpetuals, "long", leverage=10, user=(long_user, long_headers))
    short_user, short = open_perpetual(client, make_user, perpetuals, "short", leverage=10)
    boundary = record_boundary("0.0001", "118320.5")

    settle(app, long_user, short_user)
    [paid] = wait_for_payments(long["orderId"], 1)
    [received] = wait_for_payments(short["orderId"], 1)
    figures = (Decimal("0.0001"), Decimal("118320.5"))
    long_quantity = db.session.get(Order, long["orderId"]).quantity
    short_quantity = db.session.get(Order, short["orderId"]).quantity
    assert paid.amount == funding.payment(Side.LONG, long_quantity, *figures) < 0
    assert received.amount == funding.payment(Side.SHORT, short_quantity, *figures) > 0
    assert (paid.rate, paid.mark, paid.boundary.timestamp() * 1000) == (*figures, boundary)
    shown = client.get(f"/api/v1/trade/{long['orderId']}", headers=long_headers).json
    assert shown["cumulativeFunding"] == paid.amount
    entries = db.session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "funding")).all()
    assert sorted((e.usd_delta, e.locked_delta) for e in entries) == sorted([(paid.amount, 0), (received.amount, 0)])

    activities = client.get("/api/v1/activities?type=funding", headers=long_headers).json["activities"]
    assert [(a["type"], a["usd"], a["orderId"]) for a in activities] == [("funding", paid.amount, long["orderId"])]

    settle(app, long_user, short_user)  # again: nothing more
    record_boundary("0.0001", "118320.5", after_us=boundary * 1000)  # the next boundary pays again
    settle(app, long_user, short_user)
    assert len(wait_for_payments(long["orderId"], 2)) == 2
    assert len(payments(short["orderId"])) == 2 or len(wait_for_payments(short["orderId"], 2)) == 2
    assert_ledger_balances(app)


def test_the_poller_records_boundaries_from_the_feed_and_the_engine_settles_them(app, client, make_user, perpetuals):
    """End to end: the simulator's markPrice frames (funding every 2 s) through the poller into
    Redis, the engine's sweep (sent by beat) settling them."""
    from poller.simulator import Simulator
    from tests.support.feed import LiveFeed

    simulator = Simulator(interval_s=0.05, funding_interval_s=2).start()
    feed = LiveFeed(app, simulator, markets=[PERP], marked=[PERP], funding_intervals_ms={PERP: 2000})
    try:
        feed.start()
        _, opened = open_perpetual(client, make_user, perpetuals, "long", leverage=10)
        paid = wait_for_payments(opened["orderId"], 2)  # beat's sweeps, every 5 s, at most
    finally:
        feed.stop()
        simulator.stop()
    assert len(paid) >= 2 and {p.boundary.timestamp() % 2 for p in paid} == {0}  # on the interval's boundaries
    assert {p.rate for p in paid} == {Decimal("0.0000125")}  # the simulator's rate while its mark is above its index
    assert_ledger_balances(app)


def test_a_position_closed_before_the_boundary_pays_nothing(app, client, make_user, perpetuals):
    user = make_user()
    _, closed = open_perpetual(client, make_user, perpetuals, "long", leverage=10, user=user)
    _, kept = open_perpetual(client, make_user, perpetuals, "long", leverage=10, user=user)
    response = client.post("/api/v1/trade/close", json={"orderId": closed["orderId"]}, headers=user[1])
    assert response.status_code == 200 and response.json["status"] == "closed", response.json
    record_boundary("0.0002", "118320.5")

    settle(app, user[0])
    wait_for_payments(kept["orderId"], 1)
    assert payments(closed["orderId"]) == []
    assert_ledger_balances(app)


def test_boundaries_settled_late_use_their_own_rate_and_mark_in_order(app, client, make_user, perpetuals):
    """The engine settles nothing between the boundaries (its sweeps come later): each is paid
    at the figures recorded when it passed, not at the latest."""
    account_id, headers = make_user()
    _, opened = open_perpetual(client, make_user, perpetuals, "short", leverage=5, user=(account_id, headers))
    first = record_boundary("0.0001", "118000")
    second = record_boundary("-0.0003", "119000.5", after_us=first * 1000)

    settle(app, account_id)
    paid = sorted(wait_for_payments(opened["orderId"], 2), key=lambda p: p.boundary)
    assert [p.boundary.timestamp() * 1000 for p in paid] == [first, second]
    assert [(p.rate, p.mark) for p in paid] == [
        (Decimal("0.0001"), Decimal("118000")),
        (Decimal("-0.0003"), Decimal("119000.5")),
    ]
    assert paid[0].amount > 0 > paid[1].amount  # a short receives a positive rate and pays a negative one
    shown = client.get(f"/api/v1/trade/{opened['orderId']}", headers=headers).json
    assert shown["cumulativeFunding"] == paid[0].amount + paid[1].amount
    assert_ledger_balances(app)


def test_funding_beyond_free_usd_comes_out_of_the_positions_margin(app, client, make_user, perpetuals):
    account_id, headers = make_user()
    _, opened = open_perpetual(client, make_user, perpetuals, "long", leverage=2, user=(account_id, headers))
    rest = client.get("/api/v1/balance/usd", headers=headers).json["balance"]
    body = {"symbol": PERP, "type": "long", "margin": rest, "leverage": 1}  # free USD all in margin
    assert client.post("/api/v1/trade/create", json=body, headers=headers).json["status"] == "open"
    before = db.session.get(Order, opened["orderId"])
    margin, liquidation = before.margin, before.liquidation_price
    record_boundary("0.01", "118320")

    settle(app, account_id)
    [paid] = wait_for_payments(opened["orderId"], 1)
    db.session.rollback()
    after = db.session.get(Order, opened["orderId"])
    assert paid.amount < 0 and after.margin == margin + paid.amount
    assert after.liquidation_price > liquidation  # a long's level moves up, nearer the price
    entry = db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.order_id == before.id, LedgerEntry.kind == "funding")
    ).one()
    assert (entry.usd_delta, entry.locked_delta) == (0, paid.amount)
    assert_ledger_balances(app)


def test_an_engine_killed_mid_round_settles_each_position_exactly_once(
    app, client, make_user, perpetuals, engine_worker
):
    users = []
    while len(users) < 3:  # three accounts of one shard, so one engine settles them in order
        user = make_user()
        if not users or shard_of(user[0], app.config["ENGINE_SHARDS"]) == shard_of(
            users[0][0], app.config["ENGINE_SHARDS"]
        ):
            users.append(user)
    users.sort()
    orders = [open_perpetual(client, make_user, perpetuals, "long", 10, user=user)[1]["orderId"] for user in users]

    engine_worker.kill()  # engines that settle one position per transaction
    fleet = EngineFleet(2, env={"FUNDING_BATCH": "1"}).start()
    try:
        with db.engine.connect() as blocker:  # the last account's balance stays locked: its batch waits
            blocker.execute(text("SELECT 1 FROM balances WHERE account_id = :id FOR UPDATE"), {"id": users[-1][0]})
            record_boundary("0.0001", "118320")
            settle(app, users[0][0])
            eventually(lambda: sum(len(payments(order)) for order in orders) == 2, timeout=30)
            fleet.kill()  # mid-round: two accounts paid and committed, the third's transaction open
            blocker.rollback()
        assert sum(len(payments(order)) for order in orders) == 2
        fleet = EngineFleet(2, env={"FUNDING_BATCH": "1"}).start()
        settle(app, users[0][0])
        eventually(lambda: db.session.scalar(select(func.count()).select_from(FundingSettled)) > 0, timeout=30)
    finally:
        fleet.kill()
        engine_worker.revive()
    paid = Counter(str(p.order_id) for order in orders for p in payments(order))
    assert paid == Counter(orders)  # each position once
    assert_ledger_balances(app)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(min_value=1_700_000_000_000_000, max_value=1_900_000_000_000_000),
    st.integers(min_value=1, max_value=3 * 3_600_000_000),
    st.sampled_from([1000, 10_000, 60_000, 3_600_000, 28_800_000]),
)
def test_redis_records_the_boundaries_core_funding_names(app_ctx, previous_us, gap_us, interval_ms):
    """The mark script's arithmetic (Lua, in Redis) agrees with `core.funding.boundary_crossed`."""
    redis_client.delete(f"mark:{PERP}", f"funding:{PERP}")
    store = MarkStore(redis_client, {PERP: interval_ms})
    store.write(Mark(PERP, Decimal("100.5"), None, Decimal("0.0001"), None, previous_us))
    store.write(Mark(PERP, Decimal("101"), None, Decimal("0.0002"), None, previous_us + gap_us))
    expected = funding.boundary_crossed(previous_us, previous_us + gap_us, interval_ms)
    recorded = store.funding_rounds([PERP]).get(PERP, {})
    assert recorded == ({expected: (Decimal("0.0001"), Decimal("100.5"))} if expected is not None else {})


def test_the_markets_listing_counts_down_to_the_services_own_boundary_under_funding_interval_s(app, client, perpetuals):
    _, mark = perpetuals
    mark(1_183_201)
    listed = {m["symbol"]: m for m in client.get("/api/v1/markets?marketType=PERP").json}
    backpacks = listed[PERP]["nextFundingTimestamp"]  # the simulator's: its hour
    app.config["FUNDING_INTERVAL_S"] = 7
    try:
        listed = {m["symbol"]: m for m in client.get("/api/v1/markets?marketType=PERP").json}
    finally:
        app.config["FUNDING_INTERVAL_S"] = None
    ours = listed[PERP]["nextFundingTimestamp"]
    assert ours % 7000 == 0 and 0 < ours - now_micros() // 1000 <= 7000 + 1000 and ours != backpacks
