"""Execution against the book: fills that walk it, thin books, fees, limit and stop orders, cancel."""

import itertools
import json
import threading
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.dispatch import wake_engine
from app.extensions import db, redis_client
from app.models import LedgerEntry, Order, utcnow
from core.book import BookStore
from tests.support.feed import request_trigger_checks
from tests.support.processes import EngineFleet
from tests.support.state import assert_ledger_balances
from tests.support.trading import BTC_ASK, BTC_BID, open_trade
from tests.support.trading import usd_balance as balance
from tests.support.waiting import eventually, wait_for_status

pytestmark = pytest.mark.usefixtures("engine_worker")
Q = 10**8  # one BTC in quantity units


@pytest.fixture
def set_book(app, set_price):
    """A fresh depth book for BTC (best first), with its top as the quote, as the poller keeps them:
    each with a newer update id (an engine that checked the triggers at one quote and book update
    skips the same pair again, so a changed book under an unchanged id would go unseen)."""
    updates = itertools.count(1)

    def set_(bids: list[tuple[int, int]], asks: list[tuple[int, int]]):
        set_price("BTC", bids[0][0], asks[0][0])
        book = {"bids": bids, "asks": asks, "u": next(updates), "time": 1}
        with app.app_context():
            BookStore(redis_client).write("BTC", json.dumps(book))

    return set_


def order(app, order_id):
    with app.app_context():
        return db.session.get(Order, order_id)


def test_a_long_walks_the_asks_and_a_close_walks_the_bids(client, make_user, set_book):
    _, headers = make_user()
    # 1000.00 x 10 = 10000.00 USD at the reference ask 100010.0000: 0.09999000 BTC
    set_book(bids=[(BTC_BID, 5_000_000), (999_000_000, Q)], asks=[(BTC_ASK, 4_000_000), (1_000_200_000, Q)])
    opened = open_trade(client, headers, margin=100_000, leverage=10, slippage=10)
    assert opened.status_code == 200, opened.json
    body = opened.json
    assert body["quantity"] == 9_999_000 and body["fillModel"] == "depth"
    assert body["fills"] == [{"price": BTC_ASK, "quantity": 4_000_000}, {"price": 1_000_200_000, "quantity": 5_999_000}]
    vwap = -(-(BTC_ASK * 4_000_000 + 1_000_200_000 * 5_999_000) // 9_999_000)  # rounded up: against a buyer
    assert body["openPrice"] == body["avgPrice"] == vwap
    assert body["requestedPrice"] == BTC_ASK and body["slippageBps"] == (vwap - BTC_ASK) * 10_000 // BTC_ASK
    closed = client.post("/api/v1/trade/close", json={"orderId": body["orderId"]}, headers=headers).json
    sold = (BTC_BID * 5_000_000 + 999_000_000 * 4_999_000) // 9_999_000  # rounded down: against a seller
    assert closed["closePrice"] == sold and closed["fees"] == 0 and closed["netPnl"] == closed["pnl"]


def test_a_short_walks_the_bids_rounded_down(client, make_user, set_book):
    _, headers = make_user()
    set_book(bids=[(BTC_BID, 2_000_000), (999_500_000, Q)], asks=[(BTC_ASK, Q)])
    body = open_trade(client, headers, type="short", margin=100_000, leverage=10).json
    assert body["quantity"] == 10_000_000  # from the reference bid 100000.0000: 0.1 BTC
    assert body["openPrice"] == (BTC_BID * 2_000_000 + 999_500_000 * 8_000_000) // 10_000_000  # against a seller
    assert body["slippageBps"] == (BTC_BID - body["openPrice"]) * 10_000 // BTC_BID > 0


def test_without_a_depth_book_fills_use_the_top_of_book(client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    body = open_trade(client, headers).json
    assert body["fillModel"] == "top_of_book" and body["openPrice"] == BTC_ASK
    assert body["fills"] == [{"price": BTC_ASK, "quantity": body["quantity"]}]


def test_a_book_too_thin_refuses_the_open_and_the_users_close_but_not_a_liquidation(
    app, client, make_user, set_book, set_price
):
    _, headers = make_user()
    set_book(bids=[(BTC_BID, 1_000)], asks=[(BTC_ASK, 1_000)])
    refused = open_trade(client, headers, margin=100_000)
    assert refused.status_code == 409 and refused.json["error"] == "insufficient_liquidity"
    set_price("BTC", BTC_BID, BTC_ASK)  # no depth book left? the set_book above stays: use plenty
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])
    position = open_trade(client, headers, margin=10_000, leverage=100).json
    set_book(bids=[(BTC_BID, 1_000), (999_000_000, 1_000)], asks=[(BTC_ASK, Q)])
    stuck = client.post("/api/v1/trade/close", json={"orderId": position["orderId"]}, headers=headers)
    assert stuck.status_code == 409 and stuck.json["error"] == "insufficient_liquidity"
    assert order(app, position["orderId"]).status == "open"
    set_book(bids=[(990_000_000, 1_000), (980_000_000, 1_000)], asks=[(990_100_000, Q)])  # -1%: liquidated
    request_trigger_checks(app)
    closed = eventually(lambda: (o := order(app, position["orderId"])).status == "closed" and o, timeout=15)
    rest = position["quantity"] - 1_000
    assert closed.close_reason == "liquidation"
    assert closed.close_price == (990_000_000 * 1_000 + 980_000_000 * rest) // position["quantity"]  # rest at worst
    assert_ledger_balances(app)


@pytest.fixture
def engine_with_fees(engine_worker):
    """The engine restarted with TAKER_FEE_BPS=10 and MAKER_FEE_BPS=2 for one test, then as it was."""
    engine_worker.stop()
    worker = EngineFleet(2, env={"TAKER_FEE_BPS": "10", "MAKER_FEE_BPS": "2"}).start()
    yield
    worker.stop()
    engine_worker.start()


@pytest.mark.usefixtures("engine_with_fees")
def test_fees_are_ledger_entries_of_their_own_and_money_is_conserved(app, client, make_user, set_price):
    account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    body = open_trade(client, headers, margin=100_000, leverage=10).json  # notional ~10000.00 USD
    open_fee = -(-(BTC_ASK * body["quantity"] // 10**10) * 10 // 10_000)
    assert body["fees"] == open_fee == 1_000  # 10 bps of 9999.99..: 10.00 USD, rounded up
    assert balance(client, headers) == 500_000 - 100_000 - open_fee
    closed = client.post("/api/v1/trade/close", json={"orderId": body["orderId"]}, headers=headers).json
    close_fee = closed["fees"] - open_fee
    assert close_fee > 0 and closed["netPnl"] == closed["pnl"] - open_fee - close_fee
    assert balance(client, headers) == 500_000 + closed["netPnl"]  # every cent accounted for
    with app.app_context():
        fees = (
            db.session.execute(
                db.select(LedgerEntry.usd_delta).where(LedgerEntry.account_id == account_id, LedgerEntry.kind == "fee")
            )
            .scalars()
            .all()
        )
    assert sorted(fees) == sorted([-open_fee, -close_fee])

    limit = open_trade(client, headers, margin=100_000, leverage=10, orderType="limit", limitPrice=BTC_BID - 10_000_000)
    assert limit.json["status"] == "working", limit.json
    set_price("BTC", BTC_BID - 20_000_000, BTC_BID - 10_000_000)  # the book comes down to the rested limit
    request_trigger_checks(app, "BTC")
    filled = wait_for_status(app, limit.json["orderId"], "open")
    notional = filled.open_price * filled.quantity // 10**10
    assert filled.open_fee == -(-notional * 2 // 10_000) > 0  # the maker fee: 2 bps, not the taker's 10
    assert_ledger_balances(app)


def test_a_limit_order_works_with_its_margin_reserved_and_fills_no_worse_than_its_limit(
    app, client, make_user, set_book
):
    _, headers = make_user()
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])
    limit = 990_000_000
    placed = open_trade(client, headers, margin=10_000, orderType="limit", limitPrice=limit)
    assert placed.status_code == 200 and placed.json["status"] == "working"
    assert placed.json["quantity"] == 10_000 * 10 * 10**10 // limit  # from the limit price
    assert balance(client, headers) == 490_000  # reserved at placement
    set_book(bids=[(989_000_000, Q)], asks=[(991_000_000, Q)])  # not yet: stays working
    request_trigger_checks(app)
    set_book(bids=[(985_000_000, Q)], asks=[(986_000_000, 1_000), (989_000_000, Q)])  # crossed
    request_trigger_checks(app)
    filled = eventually(lambda: (o := order(app, placed.json["orderId"])).status == "open" and o, timeout=15)
    assert filled.open_price <= limit and filled.fill_model == "depth"
    assert balance(client, headers) == 490_000  # the margin was already reserved
    assert_ledger_balances(app)


def test_a_marketable_limit_fills_at_once_at_the_book(client, make_user, set_book):
    _, headers = make_user()
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])
    body = open_trade(client, headers, margin=10_000, orderType="limit", limitPrice=BTC_ASK + 50_000).json
    assert body["status"] == "open" and body["openPrice"] == BTC_ASK  # the book, not the limit


def test_a_limit_too_big_for_the_book_within_it_keeps_working(app, client, make_user, set_book):
    _, headers = make_user()
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, 1_000), (BTC_ASK + 1_000_000, Q)])
    body = open_trade(client, headers, margin=10_000, orderType="limit", limitPrice=BTC_ASK).json
    assert body["status"] == "working"  # all or nothing: 1000 units at the limit are not enough


def test_a_stop_order_becomes_a_market_order_when_reached(app, client, make_user, set_book):
    _, headers = make_user()
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])
    body = open_trade(client, headers, margin=10_000, orderType="stop", stopPrice=1_010_000_000).json
    assert body["status"] == "working"
    set_book(bids=[(1_011_000_000, Q)], asks=[(1_011_100_000, Q)])
    request_trigger_checks(app)
    filled = eventually(lambda: (o := order(app, body["orderId"])).status == "open" and o, timeout=15)
    assert filled.open_price == 1_011_100_000


def test_cancel_returns_the_margin_once_and_only_a_working_order_cancels(app, client, make_user, set_book):
    _, headers = make_user()
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])
    body = open_trade(client, headers, margin=10_000, orderType="limit", limitPrice=900_000_000).json
    cancelled = client.post("/api/v1/trade/cancel", json={"orderId": body["orderId"]}, headers=headers)
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    again = client.post("/api/v1/trade/cancel", json={"orderId": body["orderId"]}, headers=headers)
    assert again.status_code == 409 and again.json["error"] == "not_working"
    assert balance(client, headers) == 500_000
    assert_ledger_balances(app)


def test_cancel_racing_a_fill_exactly_one_wins(app, client, make_user, set_book):
    for _ in range(3):
        _, headers = make_user()
        set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])
        body = open_trade(client, headers, margin=10_000, orderType="limit", limitPrice=995_000_000).json
        set_book(bids=[(994_000_000, Q)], asks=[(994_500_000, Q)])  # crossed now
        answers = []

        def cancel(order_id=body["orderId"], headers=headers, answers=answers):
            answers.append(
                app.test_client().post("/api/v1/trade/cancel", json={"orderId": order_id}, headers=headers).json
            )

        canceller = threading.Thread(target=cancel)
        canceller.start()
        request_trigger_checks(app)
        canceller.join(30)
        final = eventually(lambda b=body: (o := order(app, b["orderId"])).status in ("open", "cancelled") and o)
        won_cancel = answers[0].get("status") == "cancelled"
        assert (final.status == "cancelled") == won_cancel
        assert won_cancel or answers[0]["error"] == "not_working"
        assert balance(client, headers) == (500_000 if won_cancel else 490_000)
    assert_ledger_balances(app)


def test_a_working_order_past_its_expires_at_ends_expired_with_its_margin_back(app, client, make_user, set_book):
    _, headers = make_user()
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])
    expires = (utcnow() + timedelta(seconds=2)).isoformat()
    body = open_trade(client, headers, margin=10_000, orderType="limit", limitPrice=900_000_000, expiresAt=expires).json
    assert body["status"] == "working" and body["expiresAt"]
    ended = eventually(lambda: (o := order(app, body["orderId"])).status != "working" and o, timeout=30, interval=0.5)
    assert (ended.status, ended.reject_reason) == ("rejected", "expired")
    assert balance(client, headers) == 500_000
    assert_ledger_balances(app)


@pytest.mark.parametrize(
    "extra",
    [
        {"orderType": "limit"},
        {"orderType": "stop", "limitPrice": 5},
        {"limitPrice": 5},
        {"expiresAt": "2030-01-01T00:00:00Z"},
        {"orderType": "limit", "limitPrice": 5, "expiresAt": "tomorrow"},
    ],
)
def test_order_type_fields_are_validated(client, make_user, extra):
    _, headers = make_user()
    response = open_trade(client, headers, **extra)
    assert response.status_code == 422 and response.json["error"] == "validation"


def test_the_preview_of_a_limit_or_stop_is_at_its_own_price_until_the_book_reaches_it(client, make_user, set_book):
    from core import rules

    _, headers = make_user()
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])

    def preview(**query):
        query = {"asset": "BTC", "type": "long", "margin": 100_000, "leverage": 10, **query}
        return client.get("/api/v1/trade/preview", query_string=query, headers=headers)

    resting = preview(orderType="limit", limitPrice=990_000_000).json
    assert resting["working"] and resting["price"] == 990_000_000
    assert resting["quantity"] == rules.quantity(100_000, 10, 990_000_000, 4)  # from its limit, as the engine does
    marketable = preview(orderType="limit", limitPrice=1_010_000_000).json
    assert not marketable["working"] and marketable["price"] == BTC_ASK  # fills now, at the book
    stop = preview(orderType="stop", stopPrice=1_010_000_000).json
    assert stop["working"] and stop["price"] == 1_010_000_000
    market = preview().json
    assert not market["working"] and market["price"] == BTC_ASK
    assert preview(orderType="limit").status_code == 422
    assert preview(stopPrice=990_000_000).status_code == 422


def test_an_expires_at_already_past_is_refused_and_a_past_order_is_never_filled(
    app, client, make_user, make_order, set_book
):
    """Defect 1: a marketable limit whose expiresAt had passed was filled at placement."""
    account_id, headers = make_user()
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])
    past = (utcnow() - timedelta(seconds=1)).isoformat()
    refused = open_trade(client, headers, margin=10_000, orderType="limit", limitPrice=BTC_ASK + 50_000, expiresAt=past)
    assert refused.status_code == 422 and refused.json["error"] == "validation"
    accepted_late = make_order(  # accepted just before its expiry, reached by the engine just after
        account_id,
        order_type="limit",
        limit_price=BTC_ASK + 50_000,
        expires_at=utcnow() - timedelta(milliseconds=1),
        requested_price=BTC_ASK,
    )
    with app.app_context():
        wake_engine(account_id)
    ended = eventually(lambda: (o := order(app, accepted_late)).status != "pending" and o, timeout=20)
    assert (ended.status, ended.reject_reason, ended.open_price) == ("rejected", "expired", None)
    assert balance(client, headers) == 500_000
    assert_ledger_balances(app)


def test_a_marketable_limit_priced_far_from_the_book_opens_no_more_than_margin_times_leverage(
    client, make_user, set_book
):
    """Defect 2: a limit short at a tenth of the bid opened about ten times the notional asked for."""
    _, headers = make_user()
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])
    body = open_trade(
        client, headers, type="short", margin=1_000, leverage=100, orderType="limit", limitPrice=BTC_BID // 10
    )
    assert body.status_code == 200 and body.json["status"] == "open", body.json
    assert body.json["openPrice"] == BTC_BID
    assert body.json["openPrice"] * body.json["quantity"] // 10**10 <= 1_000 * 100  # notional at the fill, USD units


def test_a_reached_order_the_book_can_never_fill_ends_instead_of_working(app, client, make_user, set_book):
    """Defect 3: such orders stayed working, and every price move locked, walked and rolled back each."""
    _, headers = make_user()
    set_book(bids=[(BTC_BID, 1_000)], asks=[(BTC_ASK, 1_000)])
    stop = open_trade(client, headers, margin=100_000, leverage=100, orderType="stop", stopPrice=100)
    assert stop.status_code == 409 and stop.json["error"] == "insufficient_liquidity"
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])
    limit = open_trade(client, headers, margin=100_000, leverage=100, orderType="limit", limitPrice=BTC_BID).json
    assert limit["status"] == "working"
    set_book(
        bids=[(BTC_BID - 20_000, 1_000)], asks=[(BTC_BID - 10_000, 1_000)]
    )  # reached: the whole side is 1000 units
    request_trigger_checks(app)
    ended = eventually(lambda: (o := order(app, limit["orderId"])).status != "working" and o, timeout=15)
    assert (ended.status, ended.reject_reason) == ("rejected", "insufficient_liquidity")
    assert balance(client, headers) == 500_000  # the reserved margin came back
    assert_ledger_balances(app)


@pytest.fixture
def engine_with_a_cap_of_two(engine_worker):
    engine_worker.stop()
    worker = EngineFleet(2, env={"MAX_WORKING_ORDERS": "2"}).start()
    yield
    worker.stop()
    engine_worker.start()


@pytest.mark.usefixtures("engine_with_a_cap_of_two")
def test_an_account_has_at_most_max_working_orders(client, make_user, set_book):
    _, headers = make_user()
    set_book(bids=[(BTC_BID, Q)], asks=[(BTC_ASK, Q)])

    def place():
        return open_trade(client, headers, margin=1_000, orderType="limit", limitPrice=900_000_000)

    assert [place().json["status"] for _ in range(2)] == ["working", "working"]
    third = place()
    assert third.status_code == 409 and third.json["error"] == "too_many_working_orders"
    assert open_trade(client, headers, margin=1_000).json["status"] == "open"  # market orders still trade
    assert balance(client, headers) == 500_000 - 3 * 1_000


books = st.lists(st.tuples(st.integers(1, 3_000_000), st.integers(1, 2 * Q)), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bids=books,
    asks=books,
    side=st.sampled_from(["long", "short"]),
    order_type=st.sampled_from(["market", "limit", "stop"]),
    margin=st.integers(100, 200_000),
    leverage=st.integers(1, 100),
    offset=st.integers(-3_000_000, 3_000_000),
)
def test_the_preview_shows_what_the_engine_then_does(
    client, make_user, set_book, bids, asks, side, order_type, margin, leverage, offset
):
    """The preview and the engine decide through the same `core.execution`: fed the same book and
    order, the preview's price, quantity and working state are what the engine then does."""
    _, headers = make_user()
    set_book(
        bids=sorted({(BTC_BID - d, size) for d, size in bids}, reverse=True),
        asks=sorted({(BTC_ASK + d, size) for d, size in asks}),
    )
    price = {"limit": {"limitPrice": BTC_BID + offset}, "stop": {"stopPrice": BTC_ASK + offset}}.get(order_type, {})
    query = {"asset": "BTC", "type": side, "margin": margin, "leverage": leverage, "orderType": order_type, **price}
    shown = client.get("/api/v1/trade/preview", query_string=query, headers=headers)
    done = open_trade(client, headers, type=side, margin=margin, leverage=leverage, orderType=order_type, **price)
    if shown.status_code != 200:
        assert (done.status_code, done.json["error"]) == (shown.status_code, shown.json["error"])
        return
    assert done.status_code == 200, done.json
    preview, placed = shown.json, done.json
    assert placed["status"] == ("working" if preview["working"] else "open")
    assert placed["quantity"] == preview["quantity"]
    if not preview["working"]:
        assert (placed["openPrice"], placed["liquidationPrice"]) == (preview["price"], preview["liquidationPrice"])
