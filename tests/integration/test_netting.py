"""Netting accounts (Backpack's model) through the API and a real engine process: one signed
position per market, fills against the book, working limits filled by the visible size, cross
margin, and the account's liquidation on the mark."""

import json

import pytest
from sqlalchemy import func, select

from app.extensions import db, redis_client
from app.models import Fill, LedgerEntry, NetOrder, Position
from core.book import BookStore
from core.shards import shard_of
from tests.support.state import assert_ledger_balances
from tests.support.trading import PERP
from workers.triggers import check_triggers

pytestmark = pytest.mark.usefixtures("engine_worker")
LOT = 1_000  # BTC_USDC_PERP's stepSize is 0.00001: its quantities have 5 decimals, 8 inside


@pytest.fixture
def book(perpetuals):
    """A fresh depth book for the perpetual (levels as (tenths, quantity in 8 decimals)), its top as
    the quote and the mark at the mid, each with a newer update id."""
    quote, mark = perpetuals
    updates = iter(range(1, 10**6))

    def set_(bids: list[tuple[int, int]], asks: list[tuple[int, int]], mark_at: int | None = None):
        quote(bids[0][0], asks[0][0])
        mark(mark_at if mark_at is not None else (bids[0][0] + asks[0][0]) // 2)
        BookStore(redis_client).write(PERP, json.dumps({"bids": bids, "asks": asks, "u": next(updates), "time": 1}))

    return set_


DEEP_BIDS = [(1_183_200, 10**8)]
DEEP_ASKS = [(1_183_210, 3_000_000), (1_183_220, 10**8)]


def netting_account(client, make_user, starting_balance: int = 1_000_000, user=None) -> tuple[int, dict, int]:
    main_id, headers = user or make_user()
    opened = client.post(
        "/api/v1/accounts",
        json={"name": "perps", "mode": "netting", "startingBalance": starting_balance},
        headers=headers,
    )
    assert opened.status_code == 201, opened.json
    return opened.json["id"], headers, main_id


def place(client, headers, account_id, **order):
    body = {"accountId": account_id, "symbol": PERP, "side": "buy", "orderType": "market", **order}
    return client.post("/api/v1/orders", json=body, headers=headers)


def fresh(order_id) -> NetOrder:
    """The order as committed now (the engine's trigger checks ran in this process)."""
    db.session.rollback()
    query = select(NetOrder).where(NetOrder.id == order_id).execution_options(populate_existing=True)
    return db.session.execute(query).scalar_one()


def positions(client, headers, account_id):
    response = client.get(f"/api/v1/positions?accountId={account_id}", headers=headers)
    assert response.status_code == 200, response.json
    return {p["symbol"]: p for p in response.json}


def test_a_market_order_walks_the_book_into_one_signed_position(app, client, make_user, book):
    account_id, headers, _ = netting_account(client, make_user)
    book(DEEP_BIDS, DEEP_ASKS)
    bought = place(client, headers, account_id, quantity=5_000)  # 0.05 BTC
    assert bought.status_code == 200, bought.json
    order = bought.json
    assert (order["status"], order["executedQuantity"], order["quantityDecimals"]) == ("filled", 5_000, 5)
    assert [(f["price"], f["quantity"], f["maker"]) for f in order["fills"]] == [
        (1_183_210, 3_000, False),
        (1_183_220, 2_000, False),
    ]
    # 5 bps of 3,549.63 and of 2,366.44, each rounded up
    assert [f["fee"] for f in order["fills"]] == [178, 119] and order["fee"] == 297

    sold = place(client, headers, account_id, side="sell", quantity=2_000)
    assert sold.status_code == 200 and sold.json["fills"][0]["price"] == 1_183_200
    position = positions(client, headers, account_id)[PERP]
    assert position["netQuantity"] == 3_000
    assert position["markPrice"] == 1_183_205
    assert position["estLiquidationPrice"] is None  # 0.03 BTC on 10,000 USD: no price liquidates it
    assert sold.json["fills"][0]["realizedPnl"] < 0  # sold below the average it bought at

    from app.account.service import snapshot_round

    snapshot_round()  # the equity history values the netting position at its mark, as the positions route
    history = client.get(f"/api/v1/portfolio/history?accountId={account_id}", headers=headers).json
    assert history["points"][-2]["unrealizedPnl"] == position["unrealizedPnl"] == history["points"][-1]["unrealizedPnl"]

    flipped = place(client, headers, account_id, side="sell", quantity=8_000)
    assert flipped.status_code == 200
    assert positions(client, headers, account_id)[PERP]["netQuantity"] == -5_000  # through zero: short
    kinds = db.session.scalars(select(LedgerEntry.kind).where(LedgerEntry.account_id == account_id)).all()
    assert {"deposit", "fee", "realized_pnl"} <= set(kinds)
    assert_ledger_balances(app)


def test_a_resting_limit_fills_by_the_visible_size_once_per_book_as_a_maker(app, client, make_user, book):
    account_id, headers, _ = netting_account(client, make_user)
    book(DEEP_BIDS, DEEP_ASKS)
    placed = place(client, headers, account_id, orderType="limit", price=1_183_000, quantity=5_000)
    assert placed.status_code == 200 and placed.json["status"] == "new"
    shard = shard_of(account_id, app.config["ENGINE_SHARDS"])

    book([(1_182_900, 10**8)], [(1_182_950, 2_000_000), (1_183_000, 1_000_000), (1_183_100, 10**8)])
    assert check_triggers(PERP, shard) == 1
    order = fresh(placed.json["id"])
    assert (order.status, order.executed_quantity) == ("partially_filled", 3_000_000)  # the 0.03 at or under
    assert check_triggers(PERP, shard) == 0  # the same book: nothing taken twice

    book([(1_182_900, 10**8)], [(1_182_990, 10**8)])
    assert check_triggers(PERP, shard) == 1
    order = fresh(placed.json["id"])
    assert (order.status, order.executed_quantity) == ("filled", 5_000_000)
    fills = db.session.scalars(select(Fill).where(Fill.order_id == order.id).order_by(Fill.id)).all()
    assert [(f.price, f.quantity, f.maker) for f in fills] == [
        (1_182_950, 2_000_000, True),
        (1_183_000, 1_000_000, True),
        (1_182_990, 2_000_000, True),
    ]
    assert fills[0].fee == 48  # 2 bps (maker) of 2,365.90, rounded up
    assert positions(client, headers, account_id)[PERP]["netQuantity"] == 5_000
    assert_ledger_balances(app)


def test_a_working_order_is_cancelled_through_the_engine(app, client, make_user, book):
    account_id, headers, _ = netting_account(client, make_user)
    book(DEEP_BIDS, DEEP_ASKS)
    placed = place(client, headers, account_id, orderType="limit", side="sell", price=1_190_000, quantity=1_000)
    assert placed.json["status"] == "new"
    cancelled = client.delete(f"/api/v1/orders/{placed.json['id']}?accountId={account_id}", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    again = client.delete(f"/api/v1/orders/{placed.json['id']}?accountId={account_id}", headers=headers)
    assert again.status_code == 409 and again.json["error"] == "not_working"
    listed = client.get(f"/api/v1/orders?accountId={account_id}&status=cancelled", headers=headers).json
    assert [o["id"] for o in listed] == [placed.json["id"]]


@pytest.mark.parametrize(
    "order, status, code",
    [
        ({"quantity": 5_000, "price": 1_183_000}, 422, "validation"),  # a market order takes no price
        # BNB_USDC_PERP: tickSize 0.05, stepSize 0.01, minQuantity 0.02
        ({"symbol": "BNB_USDC_PERP", "orderType": "limit", "quantity": 100, "price": 71_237}, 400, "invalid_price"),
        ({"symbol": "BNB_USDC_PERP", "orderType": "limit", "quantity": 1, "price": 71_235}, 400, "invalid_quantity"),
        ({"orderType": "limit", "quantity": 5_000}, 422, "validation"),  # a limit needs its price
        ({"quantity": 5_000, "quoteQuantity": 100}, 422, "validation"),
        ({"symbol": "BTC", "quantity": 5_000}, 422, "validation"),  # not a perpetual
        ({"symbol": "NOPE_USDC_PERP", "quantity": 5_000}, 422, "validation"),
        ({"quantity": 5_000, "reduceOnly": True}, 400, "reduce_only"),  # nothing to reduce
        ({"orderType": "limit", "price": 1_183_210, "quantity": 1_000, "postOnly": True}, 400, "post_only"),
        ({"quantity": 10**7}, 400, "insufficient_margin"),  # 100 BTC on 10,000 USD
        ({"quantity": 5_000, "timeInForce": "DAY"}, 422, "validation"),
        ({"quantity": 5_000, "clientId": 2**32}, 422, "validation"),
    ],
)
def test_bad_orders_get_a_clear_error_and_change_nothing(app, client, make_user, book, order, status, code):
    account_id, headers, _ = netting_account(client, make_user)
    book(DEEP_BIDS, DEEP_ASKS)
    refused = place(client, headers, account_id, **order)
    assert (refused.status_code, refused.json["error"]) == (status, code), refused.json
    assert positions(client, headers, account_id) == {}
    entries = db.session.scalar(select(func.count()).where(LedgerEntry.account_id == account_id))
    assert entries == 1  # the deposit alone
    assert db.session.scalar(select(func.count()).select_from(Fill).where(Fill.account_id == account_id)) == 0


def test_each_mode_has_its_own_routes_and_another_users_account_is_not_found(app, client, make_user, book):
    account_id, headers, main_id = netting_account(client, make_user)
    book(DEEP_BIDS, DEEP_ASKS)
    hedging = place(client, headers, main_id, quantity=5_000)
    assert (hedging.status_code, hedging.json["error"]) == (409, "wrong_account_mode")
    trade = {"accountId": account_id, "symbol": PERP, "type": "long", "margin": 10_000, "leverage": 2}
    netting_trade = client.post("/api/v1/trade/create", json=trade, headers=headers)
    assert (netting_trade.status_code, netting_trade.json["error"]) == (409, "wrong_account_mode")
    _, stranger = make_user()
    assert place(client, stranger, account_id, quantity=5_000).status_code == 404
    assert db.session.scalar(select(func.count()).select_from(NetOrder).where(NetOrder.account_id == account_id)) == 0


def test_the_account_is_liquidated_on_the_mark_with_a_fee_per_fill(app, client, make_user, book):
    account_id, headers, _ = netting_account(client, make_user, starting_balance=100_000)  # 1,000 USD
    client.patch(f"/api/v1/accounts/{account_id}", json={"leverageLimit": 20}, headers=headers)
    book(DEEP_BIDS, DEEP_ASKS)
    bought = place(client, headers, account_id, quantity=15_000)  # 0.15 BTC, about 17,750 USD: 17.7x
    assert bought.status_code == 200, bought.json
    resting = place(client, headers, account_id, orderType="limit", price=1_100_000, quantity=1_000)
    assert resting.json["status"] == "new"
    level = positions(client, headers, account_id)[PERP]["estLiquidationPrice"]
    shard = shard_of(account_id, app.config["ENGINE_SHARDS"])

    book([(level - 5_000, 10**8)], [(level - 4_990, 10**8)], mark_at=level + 50)  # the book spikes; the mark holds
    assert check_triggers(PERP, shard) == 0
    assert positions(client, headers, account_id)[PERP]["netQuantity"] == 15_000

    book([(level - 20, 10**7), (level - 100, 10**8)], [(level, 10**8)], mark_at=level)
    assert check_triggers(PERP, shard) >= 2  # the working order cancelled, the position closed
    assert positions(client, headers, account_id) == {}
    closes = db.session.scalars(select(NetOrder).where(NetOrder.account_id == account_id, NetOrder.liquidation)).all()
    assert len(closes) == 1 and closes[0].side == "sell" and closes[0].status == "filled"
    fills = db.session.scalars(select(Fill).where(Fill.order_id == closes[0].id).order_by(Fill.id)).all()
    assert [f.quantity for f in fills] == [10**7, 5 * 10**6] and all(f.liquidation for f in fills)
    assert fills[0].fee == ((level - 20) * 10**7 // 10**7 + 99) // 100  # 1 % of the notional, rounded up
    assert fresh(resting.json["id"]).status == "cancelled"
    shown = client.get(f"/api/v1/activities?accountId={account_id}&type=liquidation_fee", headers=headers).json
    assert [(a["type"], a["orderId"]) for a in shown["activities"]] == [("liquidation_fee", str(closes[0].id))]
    assert db.session.scalar(select(Position.quantity).where(Position.account_id == account_id)) == 0
    assert_ledger_balances(app)


def test_funding_pays_the_quantity_held_at_the_boundary_once_even_when_settled_late(app, client, make_user, book):
    from app.models import NetFundingPayment
    from core.prices import now_micros
    from tests.support.funding import record_boundary, settle
    from tests.support.waiting import eventually

    long_id, headers, _ = netting_account(client, make_user)
    flat_id, flat_headers, _ = netting_account(client, make_user)
    book(DEEP_BIDS, DEEP_ASKS)
    assert place(client, headers, long_id, quantity=5_000).status_code == 200
    assert place(client, flat_headers, flat_id, quantity=1_000).status_code == 200
    assert place(client, flat_headers, flat_id, side="sell", quantity=1_000).status_code == 200  # closed before
    before = now_micros()
    boundary_s = before // 1_000_000 + 1
    eventually(lambda: now_micros() > boundary_s * 1_000_000 + 50_000)
    assert place(client, headers, long_id, quantity=3_000).status_code == 200  # after the boundary: not counted

    redis_client.delete(f"mark:{PERP}")
    record_boundary("0.0001", "118320.5", after_us=before)  # recorded late, as an engine down at the boundary
    settle(app, long_id, flat_id)

    def paid(account_id):
        db.session.rollback()
        return db.session.scalars(select(NetFundingPayment).where(NetFundingPayment.account_id == account_id)).all()

    eventually(lambda: len(paid(long_id)) == 1, timeout=30)
    payment = paid(long_id)[0]
    assert payment.quantity == 5 * 10**6  # 0.05 BTC, as held at the boundary
    assert payment.amount == -60  # 0.0001 x 0.05 x 118,320.5 = 0.5916 USD, rounded against the trader
    settle(app, long_id, flat_id)
    assert len(paid(long_id)) == 1 and paid(flat_id) == []  # once; nothing for the position closed before
    assert positions(client, headers, long_id)[PERP]["cumulativeFunding"] == -60
    entries = db.session.scalars(
        select(LedgerEntry.usd_delta).where(LedgerEntry.account_id == long_id, LedgerEntry.kind == "funding")
    ).all()
    assert entries == [-60]
    assert_ledger_balances(app)


def test_a_reset_closes_the_positions_cancels_the_working_orders_and_restores_the_deposit(app, client, make_user, book):
    account_id, headers, _ = netting_account(client, make_user, starting_balance=2_000_000)
    book(DEEP_BIDS, DEEP_ASKS)
    assert place(client, headers, account_id, quantity=5_000).status_code == 200
    resting = place(client, headers, account_id, orderType="limit", price=1_100_000, quantity=1_000)
    reset = client.post("/api/v1/account/reset", headers={**headers, "X-Account-Id": str(account_id)})
    assert reset.status_code == 200, reset.json
    assert positions(client, headers, account_id) == {}
    assert fresh(resting.json["id"]).status == "cancelled"
    accounts = {a["id"]: a for a in client.get("/api/v1/accounts", headers=headers).json}
    assert accounts[account_id]["usd"] == 2_000_000
    assert_ledger_balances(app)


def test_a_trigger_order_waits_for_its_mark_then_executes(app, client, make_user, book):
    account_id, headers, _ = netting_account(client, make_user)
    book(DEEP_BIDS, DEEP_ASKS)
    stop = place(client, headers, account_id, side="sell", quantity=2_000, triggerPrice=1_180_000)
    assert stop.status_code == 200 and stop.json["status"] == "trigger_pending", stop.json
    assert stop.json["triggerBy"] == "mark"
    shard = shard_of(account_id, app.config["ENGINE_SHARDS"])
    book([(1_179_000, 10**8)], [(1_179_010, 10**8)], mark_at=1_180_100)  # the book falls; the mark not yet
    assert check_triggers(PERP, shard) == 0
    book([(1_179_000, 10**8)], [(1_179_010, 10**8)], mark_at=1_180_000)
    assert check_triggers(PERP, shard) == 1
    fired = fresh(stop.json["id"])
    assert (fired.status, fired.executed_quantity) == ("filled", 2 * 10**6) and fired.triggered_at is not None
    assert positions(client, headers, account_id)[PERP]["netQuantity"] == -2_000  # sold at the bid: short
    assert_ledger_balances(app)


def test_an_orders_take_profit_closes_the_position_and_cancels_its_stop_loss(app, client, make_user, book):
    account_id, headers, _ = netting_account(client, make_user)
    book(DEEP_BIDS, DEEP_ASKS)
    bought = place(client, headers, account_id, quantity=2_000, takeProfit=1_190_000, stopLoss=1_170_000)
    assert bought.status_code == 200 and bought.json["status"] == "filled", bought.json
    children = client.get(f"/api/v1/orders?accountId={account_id}&status=trigger_pending", headers=headers).json
    assert sorted((c["triggerPrice"], c["side"], c["quantity"], c["reduceOnly"]) for c in children) == [
        (1_170_000, "sell", 2_000, True),
        (1_190_000, "sell", 2_000, True),
    ]
    assert {c["relatedOrderId"] for c in children} == {bought.json["id"]}
    wrong = place(client, headers, account_id, quantity=2_000, takeProfit=1_170_000)  # below a buy's price
    assert (wrong.status_code, wrong.json["error"]) == (422, "validation")

    shard = shard_of(account_id, app.config["ENGINE_SHARDS"])
    book([(1_190_000, 10**8)], [(1_190_010, 10**8)], mark_at=1_190_005)
    assert check_triggers(PERP, shard) >= 1
    by_price = {c["triggerPrice"]: c["id"] for c in children}
    assert fresh(by_price[1_190_000]).status == "filled"
    assert fresh(by_price[1_170_000]).status == "cancelled"
    assert positions(client, headers, account_id) == {}
    assert_ledger_balances(app)


def test_the_sweep_reassesses_accounts_whose_other_markets_moved(app, client, make_user, book):
    """A position's estimated liquidation price assumes the account's other marks; once they move
    the sweep values the account again and liquidates it if it is past maintenance."""
    from decimal import Decimal

    from core.marks import Mark, MarkStore
    from core.prices import PriceStore, Quote, now_micros
    from workers.netting_liquidation import reassess

    sol = "SOL_USDC_PERP"

    def sol_at(cents: int) -> None:
        assert PriceStore(redis_client).write(Quote(sol, cents - 1, cents + 1, now_micros(), now_micros()))
        redis_client.delete(f"mark:{sol}")
        assert MarkStore(redis_client).write(Mark(sol, Decimal(cents).scaleb(-2), None, None, None, now_micros()))

    account_id, headers, _ = netting_account(client, make_user, starting_balance=200_000)  # 2,000 USD
    client.patch(f"/api/v1/accounts/{account_id}", json={"leverageLimit": 50}, headers=headers)
    book(DEEP_BIDS, DEEP_ASKS)
    sol_at(178_43)
    assert place(client, headers, account_id, quantity=15_000).status_code == 200  # 0.15 BTC, ~17,750 USD
    sol_order = {"symbol": sol, "quantity": 10_000}  # 100 SOL, ~17,843 USD
    assert place(client, headers, account_id, **sol_order).status_code == 200, "SOL"
    shard = shard_of(account_id, app.config["ENGINE_SHARDS"])
    assert reassess([shard]) == 0  # healthy: nothing to do

    sol_at(160_00)  # SOL falls 10 %: the account is past maintenance
    book(DEEP_BIDS, DEEP_ASKS)  # BTC's mark and book fresh again
    assert reassess([shard]) >= 2
    assert positions(client, headers, account_id) == {}
    liquidated = db.session.scalars(
        select(NetOrder.symbol).where(NetOrder.account_id == account_id, NetOrder.liquidation)
    ).all()
    assert sorted(liquidated) == [PERP, sol]
    assert_ledger_balances(app)
