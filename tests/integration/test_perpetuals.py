"""Perpetuals as Backpack applies them: positions liquidate and stop on the mark, never on a
last-trade spike; the close still fills against the book."""

from decimal import Decimal

import pytest

from app.extensions import db, redis_client
from app.models import Order
from core.marks import Mark
from core.prices import now_micros
from core.shards import shard_of
from tests.support.state import assert_ledger_balances
from tests.support.trading import PERP, open_perpetual
from workers.triggers import check_triggers

pytestmark = pytest.mark.usefixtures("engine_worker")


def test_a_spike_with_a_calm_mark_liquidates_nothing_and_a_mark_through_the_level_does(
    app, client, make_user, perpetuals
):
    quote, mark = perpetuals
    account_id, opened = open_perpetual(client, make_user, perpetuals, "long", leverage=100)
    liquidation = opened["liquidationPrice"]
    shard = shard_of(account_id, app.config["ENGINE_SHARDS"])

    quote(liquidation - 5_000, liquidation - 4_998)  # the last price spikes through the level
    mark(1_183_150)  # the mark stays calm
    assert check_triggers(PERP, shard) == 0
    mark(liquidation - 10, age_s=60)  # a stale mark through the level: no mark at all
    assert check_triggers(PERP, shard) == 0
    assert db.session.get(Order, opened["orderId"]).status == "open"

    mark(liquidation - 10)  # the mark itself crosses
    assert check_triggers(PERP, shard) == 1
    closed = db.session.get(Order, opened["orderId"])
    db.session.refresh(closed)
    assert (closed.status, closed.close_reason) == ("closed", "liquidation")
    assert closed.close_price == liquidation - 5_000  # filled against the book, at its bid
    assert_ledger_balances(app)


def test_the_poller_asks_for_a_check_when_a_mark_crosses_a_positions_level(app, client, make_user, perpetuals):
    from poller.wiring import check_mark_crossings
    from tests.support.feed import RecordingSender
    from tests.support.waiting import eventually

    account_id, opened = open_perpetual(client, make_user, perpetuals, "short", leverage=50)
    liquidation = opened["liquidationPrice"]
    sender = RecordingSender()

    def mark_at(tenths: int) -> Mark:
        return Mark(PERP, Decimal(tenths).scaleb(-1), None, None, None, now_micros())

    assert check_mark_crossings(redis_client, sender, mark_at(1_183_300)) == 0  # calm: no check
    shard = shard_of(account_id, app.config["ENGINE_SHARDS"])
    eventually(lambda: check_mark_crossings(redis_client, sender, mark_at(liquidation + 10)) >= 1)
    assert ("engine.check_triggers", PERP, shard) in [(name, asset, s) for name, asset, s in sender.sent]


def test_a_perpetual_position_is_valued_at_the_mark(app, client, make_user, perpetuals):
    quote, mark = perpetuals
    account_id, headers = make_user()
    _, opened = open_perpetual(client, make_user, perpetuals, "long", leverage=10, user=(account_id, headers))
    quote(1_100_000, 1_100_002)  # the book falls away
    mark(1_200_000)  # the mark rises
    shown = client.get(f"/api/v1/trade/{opened['orderId']}", headers=headers).json
    order = db.session.get(Order, opened["orderId"])
    assert shown["markPrice"] == 1_200_000
    assert shown["unrealizedPnl"] == (1_200_000 - order.open_price) * order.quantity // 10**7 > 0  # cents
    equity = client.get("/api/v1/portfolio/history", headers=headers).json
    assert equity["points"][-1]["unrealizedPnl"] == shown["unrealizedPnl"]

    mark(1_200_000, age_s=60)  # a stale mark: no valuation, as a stale quote
    assert client.get(f"/api/v1/trade/{opened['orderId']}", headers=headers).json["markPrice"] is None


def test_orders_off_the_markets_filters_or_on_a_market_not_open_are_refused_with_nothing_written(
    app, client, make_user, perpetuals
):
    from sqlalchemy import func, select

    from app.markets.service import store_catalog
    from core.prices import PriceStore, Quote
    from poller.simulated_markets import LISTINGS, assets_json, market_json

    _, headers = make_user()
    PriceStore(redis_client).write(Quote("BNB_USDC_PERP", 71_230, 71_240, now_micros(), now_micros()))

    def create(**body):
        return client.post("/api/v1/trade/create", json={"type": "long", "leverage": 1, **body}, headers=headers)

    off_tick = create(symbol="BNB_USDC_PERP", margin=10_000, orderType="limit", limitPrice=71_233)  # tick 0.05
    assert (off_tick.status_code, off_tick.json["error"]) == (400, "invalid_price")
    assert "tickSize 0.05" in off_tick.json["message"]
    stop_off_tick = create(symbol="BNB_USDC_PERP", margin=10_000, stopLoss=70_001)
    assert stop_off_tick.json["error"] == "invalid_price" and "stopLoss" in stop_off_tick.json["message"]
    tiny = create(symbol="BNB_USDC_PERP", margin=100)  # 1 USD buys 0.0014 BNB: under its minQuantity 0.02
    assert (tiny.status_code, tiny.json["error"]) == (400, "invalid_quantity")
    assert "minQuantity 0.02" in tiny.json["message"]

    quote, _ = perpetuals
    quote(1_183_200, 1_183_210)
    assert create(symbol=PERP, margin=10_000).status_code == 200  # the market's state is read, and remembered
    placed = db.session.scalar(select(func.count()).select_from(Order))
    listed = [market_json(listing) for listing in LISTINGS]  # the next catalog sync sees the market closed
    store_catalog([{**m, "orderBookState": "Closed"} if m["symbol"] == PERP else m for m in listed], assets_json())
    closed = create(symbol=PERP, margin=10_000)
    assert (closed.status_code, closed.json["error"]) == (400, "market_not_open")
    assert db.session.scalar(select(func.count()).select_from(Order)) == placed

    on_tick = create(symbol="BNB_USDC_PERP", margin=10_000, orderType="limit", limitPrice=70_000)
    assert on_tick.status_code == 200 and on_tick.json["status"] == "working", on_tick.json
    assert on_tick.json["quantity"] % 1_000_000 == 0  # on the 0.01 step
