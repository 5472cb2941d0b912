"""Full HTTP -> Celery -> PostgreSQL flow with a real engine worker process."""

import threading
import uuid
from datetime import timedelta

import pytest

from app.extensions import db, redis_client
from app.models import Balance, LedgerEntry, Order, utcnow
from core.shards import shard_of
from tests.support.feed import request_trigger_checks
from tests.support.state import assert_ledger_balances, statements_reading
from tests.support.trading import BTC_ASK, BTC_BID, open_trade, user_on_engine
from tests.support.trading import usd_balance as balance
from tests.support.waiting import eventually, wait_for_status

pytestmark = pytest.mark.usefixtures("engine_worker")


def test_open_and_close_long_settles_pnl_through_the_ledger(app, client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    opened = open_trade(client, headers)
    assert opened.status_code == 200, opened.json
    order = opened.json
    assert order["status"] == "open"
    assert order["openPrice"] == BTC_ASK  # a long opens at the ask
    assert order["quantity"] == 100_000 * 10 * 10**10 // BTC_ASK
    assert order["quantityDecimals"] == 8 and order["decimals"] == 4
    assert balance(client, headers) == 500_000 - 100_000

    set_price("BTC", 1_010_000_000, 1_010_100_000)
    expected_pnl = (1_010_000_000 - BTC_ASK) * order["quantity"] // 10**10
    shown = client.get(f"/api/v1/trade/{order['orderId']}", headers=headers).json
    assert shown["unrealizedPnl"] == expected_pnl
    closed = client.post("/api/v1/trade/close", json={"orderId": order["orderId"]}, headers=headers)
    assert closed.status_code == 200, closed.json
    result = closed.json
    assert result["status"] == "closed" and result["closeReason"] == "user"
    assert result["closePrice"] == 1_010_000_000  # and closes at the bid
    assert result["pnl"] == expected_pnl > 0
    assert balance(client, headers) == 500_000 + expected_pnl
    everything = client.get("/api/v1/balance", headers=headers).json
    assert everything["lockedMargin"] == {"balance": 0, "decimals": 2}
    assert everything["BTC"] == {"balance": 0, "decimals": 4}
    assert_ledger_balances(app)


def test_a_trade_answers_from_the_engines_event_with_the_order_as_committed(app, client, make_user, set_price):
    """The waiting request answers from the state the engine published with its commit, without
    reading the row again; the answer is the row as a later read shows it."""
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    with statements_reading(app, "orders") as order_reads:
        opened = open_trade(client, headers, stopLoss=900_000_000, takeProfit=1_100_000_000)
        working = open_trade(client, headers, margin=10_000, orderType="limit", limitPrice=500_000_000)
    assert (opened.status_code, working.status_code) == (200, 200)
    assert order_reads == []  # a create inserts its order, then answers from the event
    closed = client.post("/api/v1/trade/close", json={"orderId": opened.json["orderId"]}, headers=headers)
    assert closed.status_code == 200 and closed.json["status"] == "closed"
    for answer in (working.json, closed.json):
        assert client.get(f"/api/v1/trade/{answer['orderId']}", headers=headers).json == answer
    shown = client.get(f"/api/v1/trade/{opened.json['orderId']}", headers=headers).json
    assert opened.json.keys() == shown.keys()
    for field in ("openPrice", "quantity", "liquidationPrice", "stopLoss", "takeProfit", "fills", "fillModel"):
        assert opened.json[field] == closed.json[field], field  # the open's answer is the row as it stays


def test_short_opens_at_bid_and_loses_when_price_rises(client, make_user, set_price):
    _, headers = make_user()
    set_price("ETH", 3_000_000_000, 3_000_500_000)
    order = open_trade(client, headers, asset="ETH", type="short", margin=10_000, leverage=5).json
    assert order["openPrice"] == 3_000_000_000
    set_price("ETH", 3_030_000_000, 3_030_000_000)
    closed = client.post("/api/v1/trade/close", json={"orderId": order["orderId"]}, headers=headers).json
    assert closed["closePrice"] == 3_030_000_000
    assert closed["pnl"] < 0
    assert balance(client, headers) == 500_000 + closed["pnl"]


def test_close_twice_is_409_and_other_users_order_is_404(client, make_user, set_price):
    _, alice = make_user()
    _, bob = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    order_id = open_trade(client, alice).json["orderId"]
    assert client.get(f"/api/v1/trade/{order_id}", headers=bob).status_code == 404
    stolen = client.post("/api/v1/trade/close", json={"orderId": order_id}, headers=bob)
    assert stolen.status_code == 404 and stolen.json["error"] == "not_found"
    assert client.post("/api/v1/trade/close", json={"orderId": order_id}, headers=alice).status_code == 200
    again = client.post("/api/v1/trade/close", json={"orderId": order_id}, headers=alice)
    assert again.status_code == 409 and again.json["error"] == "already_closed"
    assert client.get("/api/v1/trade/not-a-uuid", headers=alice).json["error"] == "not_found"


def test_insufficient_balance_is_400_and_changes_nothing(app, client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    response = open_trade(client, headers, margin=500_001)
    assert response.status_code == 400 and response.json["error"] == "insufficient_balance"
    assert balance(client, headers) == 500_000
    assert_ledger_balances(app)


def test_slippage_beyond_bound_is_409(client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    # the client saw 99000.0000; the ask is ~1.02% higher and only 1% is allowed
    response = open_trade(client, headers, price=990_000_000, slippage=100)
    assert response.status_code == 409 and response.json["error"] == "slippage_exceeded"
    assert open_trade(client, headers, price=990_000_000, slippage=200).status_code == 200


def test_stale_or_missing_price_is_503(client, make_user, set_price):
    _, headers = make_user()
    missing = open_trade(client, headers, asset="SOL")
    assert missing.status_code == 503 and missing.json["error"] == "price_unavailable"
    set_price("SOL", 178_000_000, 178_010_000, age_s=30)
    stale = open_trade(client, headers, asset="SOL")
    assert stale.status_code == 503 and stale.json["error"] == "price_unavailable"
    assert balance(client, headers) == 500_000


def test_same_idempotency_key_gives_one_order(app, client, make_user, set_price):
    _account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    keyed = {**headers, "Idempotency-Key": "retry-me-1"}
    first = open_trade(client, keyed)
    second = open_trade(client, keyed)
    assert first.status_code == second.status_code == 200
    assert first.json["orderId"] == second.json["orderId"]
    mismatch = open_trade(client, keyed, margin=20_000)
    assert mismatch.status_code == 422 and mismatch.json["error"] == "idempotency_mismatch"
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(Order)).scalar_one() == 1
    assert balance(client, headers) == 400_000


def test_fifty_concurrent_opens_with_balance_for_ten(app, make_user, set_price):
    account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    results = []

    def attempt():
        response = open_trade(app.test_client(), headers, margin=50_000)
        results.append((response.status_code, response.json))

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(status for status, _ in results)
    assert statuses.count(200) == 10, statuses
    assert statuses.count(400) == 40
    assert all(body["error"] == "insufficient_balance" for status, body in results if status == 400)
    with app.app_context():
        row = db.session.get(Balance, account_id)
        assert row.usd == 0 and row.locked_margin == 500_000
    assert_ledger_balances(app)


def test_validation_errors_are_422_json(client, make_user):
    _, headers = make_user()
    cases = [
        {"asset": "DOGE", "type": "long", "margin": 1000, "leverage": 1},
        {"asset": "BTC", "type": "long", "margin": 1000, "leverage": 101},
        {"asset": "BTC", "type": "long", "margin": -5, "leverage": 1},
        {"asset": "BTC", "type": "long", "margin": 100.5, "leverage": 1},
        {"asset": "BTC", "type": "long", "margin": "1000", "leverage": 1},
        {"asset": "BTC", "type": "long", "margin": True, "leverage": 1},
        {"asset": "BTC", "type": "sideways", "margin": 1000, "leverage": 1},
        {"asset": "BTC", "type": "long", "margin": 1000, "leverage": 1, "stopLoss": 200, "takeProfit": 100},
        {"asset": "BTC", "type": "long", "margin": 1000, "leverage": 1, "slippage": 0},
    ]
    for body in cases:
        response = client.post("/api/v1/trade/create", json=body, headers=headers)
        assert response.status_code == 422, body
        assert response.json["error"] == "validation" and response.json["code"] == 422
    json_headers = {**headers, "Content-Type": "application/json"}
    broken = client.post("/api/v1/trade/create", data="{not json", headers=json_headers)
    assert broken.status_code == 400 and broken.json["error"] == "validation"
    assert client.get("/api/v1/trades?status=bogus", headers=headers).status_code == 422


def test_trades_list_newest_first_and_filtered(client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    ids = [open_trade(client, headers, margin=10_000).json["orderId"] for _ in range(3)]
    client.post("/api/v1/trade/close", json={"orderId": ids[0]}, headers=headers)
    listed = client.get("/api/v1/trades", headers=headers)
    assert [o["orderId"] for o in listed.json] == ids[::-1]
    assert listed.headers["X-Total-Count"] == "3"
    second_page = client.get("/api/v1/trades?page=2&page_size=2", headers=headers).json
    assert [o["orderId"] for o in second_page] == ids[:1]
    open_ids = [o["orderId"] for o in client.get("/api/v1/trades?status=open", headers=headers).json]
    assert open_ids == ids[:0:-1]
    closed = client.get("/api/v1/trades?status=closed", headers=headers).json
    assert [o["orderId"] for o in closed] == [ids[0]]


def test_price_moves_trigger_liquidation_stop_loss_and_take_profit(app, client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    doomed = open_trade(client, headers, margin=10_000, leverage=100).json
    stopped = open_trade(client, headers, margin=10_000, leverage=2, stopLoss=990_000_000).json
    lucky = open_trade(client, headers, type="short", margin=10_000, leverage=2, takeProfit=999_000_000).json
    untouched = open_trade(client, headers, margin=10_000, leverage=1).json
    assert doomed["liquidationPrice"] > 990_000_000  # 100x: a 0.9% drop liquidates

    set_price("BTC", 985_000_000, 985_100_000)
    request_trigger_checks(app, "BTC")
    for order, reason in ((doomed, "liquidation"), (stopped, "stop_loss"), (lucky, "take_profit")):
        closed = wait_for_status(app, order["orderId"], "closed")
        assert closed.close_reason == reason
        assert closed.close_price == (985_000_000 if order["type"] == "long" else 985_100_000)
    assert client.get(f"/api/v1/trade/{untouched['orderId']}", headers=headers).json["status"] == "open"
    assert_ledger_balances(app)


def test_sweep_executes_orders_whose_message_was_lost(app, make_user, make_order, set_price):
    """An order committed as pending but never enqueued (API crashed in between) is executed by
    the beat process's sweep once it is older than PENDING_SWEEP_AFTER_S."""
    account_id, _ = make_user()
    order_id = make_order(account_id)

    def refresh_price_until_open():
        set_price("BTC", BTC_BID, BTC_ASK)
        with app.app_context():
            order = db.session.get(Order, order_id)
            return order if order.status == "open" else None

    assert eventually(refresh_price_until_open, timeout=30, interval=0.5).open_price == BTC_ASK
    assert_ledger_balances(app)


def test_ledger_is_append_only(app, make_user):
    make_user()
    with app.app_context():
        with pytest.raises(Exception, match="append-only"):
            db.session.execute(db.update(LedgerEntry).values(usd_delta=1))
            db.session.flush()
        db.session.rollback()


def test_close_with_a_stale_price_is_503_and_the_position_stays_open(app, client, make_user, set_price):
    _, headers = make_user()
    set_price("ETH", 3_000_000_000, 3_000_500_000)
    order_id = open_trade(client, headers, asset="ETH", margin=10_000).json["orderId"]
    set_price("ETH", 3_000_000_000, 3_000_500_000, age_s=60)
    refused = client.post("/api/v1/trade/close", json={"orderId": order_id}, headers=headers)
    assert refused.status_code == 503 and refused.json["error"] == "price_unavailable"
    assert client.get(f"/api/v1/trade/{order_id}", headers=headers).json["status"] == "open"
    with app.app_context():  # not asked for either: nothing closes it once the price is back
        assert db.session.get(Order, uuid.UUID(order_id)).close_requested_at is None


def test_engine_slower_than_trade_wait_gives_202_then_the_order_executes(app, client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    app.config["TRADE_WAIT_S"] = 0
    try:
        accepted = open_trade(client, headers)
    finally:
        app.config["TRADE_WAIT_S"] = 15
    assert accepted.status_code == 202
    assert accepted.json == {"orderId": accepted.json["orderId"], "status": "pending"}
    assert wait_for_status(app, accepted.json["orderId"], "open").open_price == BTC_ASK
    polled = client.get(accepted.headers["Location"], headers=headers)  # where the outcome shows
    assert polled.status_code == 200 and polled.json["orderId"] == accepted.json["orderId"]


def test_close_slower_than_trade_wait_gives_202_then_closes(app, client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    order_id = open_trade(client, headers).json["orderId"]
    app.config["TRADE_WAIT_S"] = 0
    try:
        accepted = client.post("/api/v1/trade/close", json={"orderId": order_id}, headers=headers)
    finally:
        app.config["TRADE_WAIT_S"] = 15
    assert accepted.status_code == 202 and accepted.json == {"orderId": order_id, "status": "closing"}
    assert wait_for_status(app, order_id, "closed").close_reason == "user"


def test_stops_on_the_wrong_side_of_the_fill_are_rejected_by_the_engine(client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    long_stop_above_fill = open_trade(client, headers, stopLoss=BTC_ASK + 1)
    short_take_above_fill = open_trade(client, headers, type="short", takeProfit=BTC_BID + 1)
    for response in (long_stop_above_fill, short_take_above_fill):
        assert response.status_code == 422 and response.json["error"] == "validation"
    assert balance(client, headers) == 500_000


@pytest.mark.parametrize("status", ["pending", "rejected"])
def test_closing_an_order_that_is_not_open_is_409_not_open(client, make_user, make_order, status):
    account_id, headers = make_user()
    order_id = make_order(account_id, status=status)
    response = client.post("/api/v1/trade/close", json={"orderId": str(order_id)}, headers=headers)
    assert response.status_code == 409 and response.json["error"] == "not_open"


def test_overlong_idempotency_key_is_422(client, make_user):
    _, headers = make_user()
    response = open_trade(client, {**headers, "Idempotency-Key": "k" * 256})
    assert response.status_code == 422 and response.json["error"] == "validation"


def test_duplicate_deliveries_of_engine_tasks_change_nothing(app, client, make_user, set_price):
    from workers.tasks import wake_up

    account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    order_id = open_trade(client, headers, margin=10_000).json["orderId"]
    for _ in range(3):
        wake_up.delay(account_id=account_id)
    closed = client.post("/api/v1/trade/close", json={"orderId": order_id}, headers=headers).json
    for _ in range(6):
        wake_up.delay(account_id=account_id)
    # one engine takes the account's shard queue in order, so once a cancel sent after them ran, so
    # did the duplicates (a later trade is no barrier: a duplicate's wake-up can execute it early)
    working = open_trade(client, headers, margin=10_000, orderType="limit", limitPrice=BTC_BID // 2).json
    barrier = client.post("/api/v1/trade/cancel", json={"orderId": working["orderId"]}, headers=headers)
    assert barrier.status_code == 200 and barrier.json["status"] == "cancelled"
    with app.app_context():
        kinds = (
            db.session.execute(db.select(LedgerEntry.kind).where(LedgerEntry.order_id == uuid.UUID(order_id)))
            .scalars()
            .all()
        )
    assert sorted(kinds) == ["close", "open"]
    assert balance(client, headers) == 500_000 + closed["pnl"]
    assert_ledger_balances(app)


@pytest.mark.parametrize("side, reference", [("long", BTC_ASK), ("short", BTC_BID)])
def test_without_a_client_price_the_top_of_book_at_acceptance_is_the_reference(
    client, make_user, set_price, side, reference
):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    order = open_trade(client, headers, type=side, margin=10_000).json
    assert order["requestedPrice"] == reference and order["slippage"] == 100
    sent = open_trade(client, headers, type=side, margin=10_000, price=reference + 7).json
    assert sent["requestedPrice"] == reference + 7  # the client's own price wins


def test_an_order_the_engine_reaches_too_late_expires_instead_of_filling(app, client, make_user, make_order, set_price):
    """After an engine outage, the sweep finds orders older than ORDER_MAX_DELAY_S: they end
    rejected `expired`, never filled minutes late at a price the client never saw."""
    account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    stale_id = make_order(account_id, created_at=utcnow() - timedelta(seconds=app.config["ORDER_MAX_DELAY_S"] + 5))
    fresh_id = make_order(account_id, created_at=utcnow() - timedelta(seconds=3))

    def swept():
        set_price("BTC", BTC_BID, BTC_ASK)
        with app.app_context():
            stale, fresh = db.session.get(Order, stale_id), db.session.get(Order, fresh_id)
            return (stale, fresh) if stale.status != "pending" and fresh.status != "pending" else None

    stale, fresh = eventually(swept, timeout=30, interval=0.5)
    assert (stale.status, stale.reject_reason) == ("rejected", "expired")
    assert fresh.status == "open"  # within the bound: executed as usual
    assert balance(client, headers) == 500_000 - fresh.margin
    assert_ledger_balances(app)


def test_one_wake_up_runs_the_shards_whole_backlog_in_batches(app, make_user, make_order, set_price, engine_worker):
    from core.wakeups import claim_wake_up
    from workers.tasks import run_wake_up

    account_id, _ = user_on_engine(make_user, app, 0)
    engine_worker.engines[0].stop()  # a wake-up some earlier test left queued must not take these orders
    set_price("BTC", BTC_BID, BTC_ASK)
    ids = [make_order(account_id, margin=1_000) for _ in range(5)]
    batch = app.config["ENGINE_ORDER_BATCH"]
    app.config["ENGINE_ORDER_BATCH"] = 2
    try:
        with app.app_context():  # this process owns every shard: it runs the wake-up as an engine would
            shard = shard_of(account_id, app.config["ENGINE_SHARDS"])
            claim_wake_up(redis_client, shard)
            assert run_wake_up(shard) == 5  # three batches of at most 2
            assert claim_wake_up(redis_client, shard)  # the wake-up's flag was cleared: the next order sends one
            assert {db.session.get(Order, i).status for i in ids} == {"open"}
            for order_id in ids[:3]:  # close requests ride the same batches
                db.session.get(Order, order_id).close_requested_at = utcnow()
            db.session.commit()
            assert run_wake_up(shard) == 3
            assert [db.session.get(Order, i).close_reason for i in ids] == ["user"] * 3 + [None] * 2
    finally:
        app.config["ENGINE_ORDER_BATCH"] = batch
        engine_worker.engines[0].start()
    assert_ledger_balances(app)


def accept_order(make_order, account_id: int, shards: int, arrivals: list, claims: list) -> None:
    """An order accepted as the API accepts one: committed, then its shard's wake-up claimed
    (the claim, True when it would send a task of its own, goes to `claims`)."""
    from core.wakeups import claim_wake_up

    arrivals.append(make_order(account_id, margin=1_000))
    claims.append(claim_wake_up(redis_client, shard_of(account_id, shards)))


def test_work_committed_while_a_wake_up_runs_sends_no_task_and_is_executed_by_it(
    app, make_user, make_order, set_price, engine_worker, monkeypatch
):
    import workers.tasks as engine
    from core.wakeups import claim_wake_up

    shards = app.config["ENGINE_SHARDS"]
    account_id, _ = user_on_engine(make_user, app, 0)
    while True:  # a second account on another shard of the same engine
        other_id, _ = user_on_engine(make_user, app, 0)
        if shard_of(other_id, shards) != shard_of(account_id, shards):
            break
    engine_worker.engines[0].stop()  # a wake-up some earlier test left queued must not take these orders
    set_price("BTC", BTC_BID, BTC_ASK)
    first = make_order(account_id, margin=1_000)
    arrivals, claims = [], []
    run_batch = engine.execute_batch

    def batch_with_an_arrival(size):
        taken = run_batch(size)
        if not arrivals:  # accepted while the first batch ran
            accept_order(make_order, other_id, shards, arrivals, claims)
        return taken

    monkeypatch.setattr(engine, "execute_batch", batch_with_an_arrival)
    try:
        with app.app_context():  # this process owns every shard: it runs the wake-up as an engine would
            claim_wake_up(redis_client, shard_of(account_id, shards))
            assert engine.run_wake_up(shard_of(account_id, shards)) == 2
            assert claims == [False]  # the running wake-up held the flag: no task of its own
            assert {db.session.get(Order, i).status for i in (first, *arrivals)} == {"open"}
            # both flags were let go: the next order of either shard sends its own wake-up
            assert claim_wake_up(redis_client, shard_of(account_id, shards))
            assert claim_wake_up(redis_client, shard_of(other_id, shards))
    finally:
        engine_worker.engines[0].start()
    assert_ledger_balances(app)


def test_work_committed_while_a_wake_up_lingers_after_a_short_read_is_executed_by_it(
    app, make_user, make_order, set_price, engine_worker, monkeypatch
):
    from core import wakeups
    from core.wakeups import claim_wake_up
    from workers.tasks import run_wake_up

    shards = app.config["ENGINE_SHARDS"]
    account_id, _ = user_on_engine(make_user, app, 0)
    engine_worker.engines[0].stop()  # a wake-up some earlier test left queued must not take these orders
    set_price("BTC", BTC_BID, BTC_ASK)
    first = make_order(account_id, margin=1_000)
    arrivals, claims = [], []
    take = wakeups.take_claims

    def an_arrival_while_lingering(flags, held):
        if not arrivals:  # accepted after the first batch came back short
            accept_order(make_order, account_id, shards, arrivals, claims)
        return take(flags, held)

    monkeypatch.setattr(wakeups, "take_claims", an_arrival_while_lingering)
    try:
        with app.app_context():
            claim_wake_up(redis_client, shard_of(account_id, shards))
            assert run_wake_up(shard_of(account_id, shards)) == 2
            assert claims == [False]  # the lingering wake-up still held the flag: no task of its own
            assert {db.session.get(Order, i).status for i in (first, *arrivals)} == {"open"}
            assert claim_wake_up(redis_client, shard_of(account_id, shards))  # let go once nothing came
    finally:
        engine_worker.engines[0].start()
    assert_ledger_balances(app)


def test_a_wake_up_past_its_lingering_time_lets_go_at_its_next_short_read(
    app, make_user, make_order, set_price, engine_worker, monkeypatch
):
    """So a steady trickle of orders cannot keep one wake-up running, ahead of the trigger checks
    and cancels queued on its shards."""
    from core import wakeups
    from core.wakeups import claim_wake_up
    from workers.tasks import run_wake_up

    account_id, _ = user_on_engine(make_user, app, 0)
    shard = shard_of(account_id, app.config["ENGINE_SHARDS"])
    engine_worker.engines[0].stop()
    set_price("BTC", BTC_BID, BTC_ASK)
    make_order(account_id, margin=1_000)
    lingered = []
    monkeypatch.setattr(wakeups, "LINGER_WITHIN_S", 0)
    monkeypatch.setattr(wakeups, "take_claims", lambda flags, held: lingered.append(held))
    try:
        with app.app_context():
            claim_wake_up(redis_client, shard)
            assert run_wake_up(shard) == 1
            assert lingered == []
            assert claim_wake_up(redis_client, shard)  # let go at once
    finally:
        engine_worker.engines[0].start()


def test_a_trade_request_listens_for_the_engine_before_it_commits(app, client, make_user, set_price, monkeypatch):
    """A wake-up already running executes work the moment it is committed: a request that began
    listening only after its commit would miss its own event and wait for the recheck."""
    import psycopg

    from app.hub import Hub

    account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    committed_at_listen = []
    listen = Hub.listen

    def spying_listen(self, *args, **kwargs):
        with psycopg.connect(app.config["DATABASE_URL"]) as other:  # sees only what is committed
            committed_at_listen.append(
                other.execute(
                    "SELECT count(*), count(close_requested_at) FROM orders WHERE account_id = %s", (account_id,)
                ).fetchone()
            )
        return listen(self, *args, **kwargs)

    monkeypatch.setattr(Hub, "listen", spying_listen)
    order = open_trade(client, headers, margin=10_000).json
    assert client.post("/api/v1/trade/close", json={"orderId": order["orderId"]}, headers=headers).status_code == 200
    assert committed_at_listen == [(0, 0), (1, 0)]  # neither the order nor its close request yet


def test_an_account_past_its_trade_rate_limit_gets_429_and_nothing_is_enqueued(app, app_ctx, make_user, set_price):
    from app import create_app
    from config import Config

    limited = create_app(Config.from_env(TRADE_RATE_LIMIT="2/minute")).test_client()
    (account_id, headers), (_, other) = make_user(), make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    assert open_trade(limited, headers, leverage=0).status_code == 422  # refused, but counted
    assert limited.post("/api/v1/trade/cancel", json={"orderId": str(uuid.uuid4())}, headers=headers).status_code == 404
    refused = open_trade(limited, headers)
    assert refused.status_code == 429 and refused.json["error"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    assert db.session.query(Order).filter_by(account_id=account_id).count() == 0
    assert open_trade(limited, other).status_code == 200  # another account has its own budget
