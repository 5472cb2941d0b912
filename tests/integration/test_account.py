"""Account analytics: activities (JSON pages and CSV), equity snapshots, portfolio history, reset."""

import csv
import io
import threading
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest

from app.account.service import snapshot_round
from app.extensions import db
from app.models import EquitySnapshot, LedgerEntry, Order, utcnow
from core.money import format_units
from tests.support.feed import request_trigger_checks
from tests.support.state import assert_ledger_balances
from tests.support.trading import BTC_ASK, BTC_BID, open_trade
from tests.support.waiting import wait_for_status

pytestmark = pytest.mark.usefixtures("engine_worker")
ETH_BID, ETH_ASK = 3_000_000_000, 3_000_500_000


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def all_activity_pages(client, headers, limit=3, **params) -> list[dict]:
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/activities", query_string=query, headers=headers).json
        pages += page["activities"]
        cursor = page.get("nextCursor")
        if not cursor:
            return pages


def test_activities_are_the_ledger_newest_first_and_their_csv_is_the_same(client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    order = open_trade(client, headers, margin=10_000).json
    closed = client.post("/api/v1/trade/close", json={"orderId": order["orderId"]}, headers=headers).json
    activities = all_activity_pages(client, headers, limit=2)
    assert [a["type"] for a in activities] == ["close", "open", "deposit"]
    assert activities[0] == {
        "id": activities[0]["id"],
        "type": "close",
        "usd": 10_000 + closed["pnl"],
        "lockedMargin": -10_000,
        "orderId": order["orderId"],
        "time": activities[0]["time"],
    }
    assert activities[2]["usd"] == 500_000 and activities[2]["orderId"] is None
    assert [a["type"] for a in all_activity_pages(client, headers, type="open")] == ["open"]

    for asked in (
        {"query_string": {"format": "csv"}, "headers": headers},
        {"headers": {**headers, "Accept": "text/csv"}},
    ):
        response = client.get("/api/v1/activities", **asked)  # each read whole before the next request
        assert response.is_streamed
        rows = csv_rows(response)
        assert [r["id"] for r in rows] == [a["id"] for a in activities]
        for row, item in zip(rows, activities, strict=True):
            assert row["type"] == item["type"] and row["order_id"] == (item["orderId"] or "")
            assert Decimal(row["usd"]) * 100 == item["usd"]
            assert Decimal(row["locked_margin"]) * 100 == item["lockedMargin"]
    assert rows[-1]["usd"] == "5000.00"


def test_trades_csv_parsed_back_equals_the_json(client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    set_price("ETH", ETH_BID, ETH_ASK)
    first = open_trade(client, headers, margin=10_000, stopLoss=900_000_000).json
    open_trade(client, headers, asset="ETH", type="short", margin=5_000, leverage=3)
    client.post("/api/v1/trade/close", json={"orderId": first["orderId"]}, headers=headers)
    listed = client.get("/api/v1/trades", headers=headers).json
    rows = csv_rows(client.get("/api/v1/trades?format=csv", headers=headers))
    assert [r["order_id"] for r in rows] == [o["orderId"] for o in listed]
    for row, order in zip(rows, listed, strict=True):
        price = order["decimals"]
        assert row["asset"] == order["asset"] and row["type"] == order["type"] and row["status"] == order["status"]
        assert row["margin"] == format_units(order["margin"], 2)
        assert row["quantity"] == format_units(order["quantity"], 8)
        assert row["open_price"] == format_units(order["openPrice"], price)
        assert row["pnl"] == ("" if order["pnl"] is None else format_units(order["pnl"], 2))
        assert row["stop_loss"] == ("" if order["stopLoss"] is None else format_units(order["stopLoss"], price))
    only_open = csv_rows(client.get("/api/v1/trades?format=csv&status=open", headers=headers))
    assert [r["asset"] for r in only_open] == ["ETH"]


def test_paging_never_skips_or_repeats_while_new_entries_arrive(client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    for _ in range(4):
        open_trade(client, headers, margin=1_000)
    seen, cursor, before = [], None, {a["id"] for a in all_activity_pages(client, headers, limit=100)}
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/activities", query_string=query, headers=headers).json
        seen += [a["id"] for a in page["activities"]]
        open_trade(client, headers, margin=1_000)  # a new entry lands between every two pages
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert len(seen) == len(set(seen)) and set(seen) == before  # every older entry once, nothing twice


def snapshots(app, account_id):
    with app.app_context():
        rows = db.session.execute(
            db.select(EquitySnapshot).where(EquitySnapshot.account_id == account_id).order_by(EquitySnapshot.taken_at)
        ).scalars()
        return [(s.cash, s.locked_margin, s.unrealized_pnl) for s in rows]


def test_snapshot_round_arithmetic_matches_hand_computed_accounts(app, client, make_user, set_price):
    set_price("BTC", BTC_BID, BTC_ASK)
    set_price("ETH", ETH_BID, ETH_ASK)
    long_id, longs = make_user()
    short_id, shorts = make_user()
    idle_id, _ = make_user()
    liquidated_id, liquidated = make_user()
    long = open_trade(client, longs, margin=100_000, leverage=10).json  # 1000.00 x 10 at the ask
    short = open_trade(client, shorts, asset="ETH", type="short", margin=20_000, leverage=5).json
    doomed = open_trade(client, liquidated, margin=10_000, leverage=100).json
    with app.app_context():
        first = snapshot_round()
    assert first == 4  # everyone has entries since the (absent) previous round; idle only its deposit

    set_price("BTC", 1_010_000_000, 1_010_100_000)  # +1%: the long gains
    set_price("ETH", 3_060_000_000, 3_060_500_000)  # +2%: the short loses
    with app.app_context():
        assert snapshot_round() == 3  # the idle account has nothing new: no point
    long_pnl = (1_010_000_000 - BTC_ASK) * long["quantity"] // 10**10
    short_pnl = -((3_060_500_000 - ETH_BID) * short["quantity"] // 10**12)  # ETH: 6 price decimals; toward zero
    assert snapshots(app, long_id)[-1] == (400_000, 100_000, long_pnl)
    assert snapshots(app, short_id)[-1] == (480_000, 20_000, short_pnl)
    # by hand: 1000.00 x 10 / 100010.0000 = 0.09999000 BTC; x (101000.0000 - 100010.0000) = 98.99 USD
    assert long["quantity"] == 9_999_000 and long_pnl == 9_899
    # 200.00 x 5 / 3000.000000 = 0.33333333 ETH; x (3000.000000 - 3060.500000) = -20.1666... -> -20.16 USD
    assert short["quantity"] == 33_333_333 and short_pnl == -2_016
    assert len(snapshots(app, idle_id)) == 1

    set_price("BTC", 950_000_000, 950_100_000)  # -5%: the 100x long is liquidated, the 10x one is not
    request_trigger_checks(app, "BTC")
    wait_for_status(app, doomed["orderId"], "closed")
    with app.app_context():
        snapshot_round()
    credited = wait_for_status(app, doomed["orderId"], "closed").pnl + 10_000
    assert snapshots(app, liquidated_id)[-1] == (490_000 + credited, 0, 0)
    loss = -((BTC_ASK - 950_000_000) * long["quantity"] // 10**10)  # truncated toward zero: -500.94 USD
    assert snapshots(app, long_id)[-1] == (400_000, 100_000, loss) and loss == -50_094


def add_snapshot(account_id: int, taken_at, cash: int, locked: int = 0, unrealized: int = 0) -> None:
    """A snapshot as a round writes it (in the caller's app context and transaction)."""
    db.session.add(
        EquitySnapshot(
            account_id=account_id, taken_at=taken_at, cash=cash, locked_margin=locked, unrealized_pnl=unrealized
        )
    )


def test_old_minute_snapshots_are_compacted_to_hourly(app, make_user):
    account_id, _ = make_user()
    now = utcnow().replace(minute=30, second=0, microsecond=0)
    old = now - timedelta(days=3)
    with app.app_context():
        for minute in range(0, 30, 10):  # 3 points in one old hour, 2 in a recent one
            add_snapshot(account_id, old + timedelta(minutes=minute), cash=minute)
        for minute in (1, 2):
            add_snapshot(account_id, now - timedelta(minutes=minute), cash=minute)
        db.session.commit()
        snapshot_round(now)
    assert [cash for cash, _, _ in snapshots(app, account_id)][:3] == [20, 2, 1]  # the old hour's last, then all


def test_portfolio_history_bins_snapshots_and_ends_with_a_live_point(app, client, make_user, set_price):
    account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    now = utcnow()
    # half past an hour already gone: the points below fall in two hours whatever the clock says
    anchor = now.replace(minute=30, second=0, microsecond=0) - timedelta(hours=1 if now.minute < 30 else 0)
    with app.app_context():
        for minutes_ago, cash in ((125, 1), (70, 2), (65, 3)):
            add_snapshot(account_id, anchor - timedelta(minutes=minutes_ago), cash=cash, locked=10, unrealized=5)
        db.session.commit()
    history = client.get("/api/v1/portfolio/history?period=1D&timeframe=1h", headers=headers).json
    points = history["points"]
    assert [p["cash"] for p in points[:-1]][-2:] == [1, 3]  # the last snapshot of each hour
    assert points[-2]["equity"] == 3 + 10 + 5
    assert points[-1]["cash"] == 500_000 and points[-1]["equity"] == 500_000  # live: no open position
    assert client.get("/api/v1/portfolio/history?period=2D", headers=headers).status_code == 422


def test_reset_closes_everything_through_the_engine_and_restores_the_starting_balance(
    app, client, make_user, set_price
):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    set_price("ETH", ETH_BID, ETH_ASK)
    open_trade(client, headers, margin=100_000)
    open_trade(client, headers, asset="ETH", type="short", margin=50_000)
    set_price("BTC", 990_000_000, 990_100_000)  # the long is losing
    keyed = {**headers, "Idempotency-Key": "reset-1"}
    done = client.post("/api/v1/account/reset", headers=keyed)
    assert done.status_code == 200, done.json
    assert done.json["status"] == "done" and done.json["closedPositions"] == 2
    assert done.json["balance"]["USD"]["balance"] == 500_000 and done.json["balance"]["lockedMargin"]["balance"] == 0
    again = client.post("/api/v1/account/reset", headers=keyed)
    assert again.json["resetId"] == done.json["resetId"] and again.json["closedPositions"] == 2
    closed = client.get("/api/v1/trades?status=closed", headers=headers).json
    assert {o["closeReason"] for o in closed} == {"reset"} and len(closed) == 2
    kinds = [a["type"] for a in all_activity_pages(client, headers, limit=50)]
    assert kinds.count("reset") == 1 and kinds[0] == "reset"  # one entry, however often the key is sent
    history = client.get("/api/v1/portfolio/history?period=1D&timeframe=1m", headers=headers).json
    assert len(history["resets"]) == 1 and history["points"][-2]["equity"] == 500_000  # the jump is a point
    assert_ledger_balances(app)
    result = app.test_cli_runner().invoke(args=["ledger-check"])
    assert result.exit_code == 0


def test_reset_without_a_fresh_price_changes_nothing(client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    open_trade(client, headers, margin=10_000)
    set_price("BTC", BTC_BID, BTC_ASK, age_s=60)
    refused = client.post("/api/v1/account/reset", headers=headers)
    assert refused.status_code == 503 and refused.json["error"] == "price_unavailable"
    assert client.get("/api/v1/trades?status=open", headers=headers).json[0]["status"] == "open"


def test_reset_during_twenty_concurrent_trades_leaves_every_order_terminal_once(app, make_user, set_price):
    account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    answers, threads = [], []

    def trade():
        answers.append(open_trade(app.test_client(), headers, margin=20_000, leverage=2).status_code)

    def reset():
        answers.append(app.test_client().post("/api/v1/account/reset", headers=headers).status_code)

    threads = [threading.Thread(target=trade) for _ in range(20)]
    threads.insert(10, threading.Thread(target=reset))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert Counter(answers)[200] == 21, answers  # 20 opens (the balance covers them) and the reset
    with app.app_context():
        orders = db.session.execute(db.select(Order).where(Order.account_id == account_id)).scalars().all()
        entries = Counter(
            (e.order_id, e.kind) for e in db.session.execute(db.select(LedgerEntry)).scalars() if e.order_id
        )
        for order in orders:
            assert order.status in ("open", "closed")
            assert entries[(order.id, "open")] == 1
            assert entries[(order.id, "close")] == (1 if order.status == "closed" else 0)
            assert order.status == "open" or order.close_reason == "reset"
        resets = db.session.execute(
            db.select(db.func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "reset")
        ).scalar_one()
    assert resets == 1 and len(orders) == 20
    assert_ledger_balances(app)


def test_a_reset_left_pending_by_a_lost_message_is_swept(app, make_user, set_price):
    from app.models import AccountReset

    account_id, _ = make_user()
    with app.app_context():
        reset_id = uuid.uuid4()
        db.session.add(AccountReset(id=reset_id, account_id=account_id, status="pending"))
        db.session.commit()
    from tests.support.waiting import eventually

    def swept():
        with app.app_context():
            return db.session.get(AccountReset, reset_id).status == "done"

    eventually(swept, timeout=30, interval=0.5)
