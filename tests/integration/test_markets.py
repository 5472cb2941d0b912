"""Backpack's market catalog: `flask markets sync` from the simulator (which serves Backpack's
catalog shapes), `GET /api/v1/markets`, and the simulator's marks."""

import dataclasses
import json
import urllib.request
from decimal import Decimal

import pytest
import websocket

from app.extensions import db
from app.models import CatalogAsset, CatalogMarket
from poller.simulated_markets import LISTINGS
from tests.support.feed import LiveFeed
from tests.support.waiting import eventually


def rest_url(simulator) -> str:
    return simulator.url.replace("ws://", "http://")


def sync(app, url: str):
    return app.test_cli_runner().invoke(args=["markets", "sync", "--rest-url", url])


def test_sync_loads_every_market_and_asset_and_the_api_lists_them(app, app_ctx, client, simulator, set_price):
    result = sync(app, rest_url(simulator))
    assert result.exit_code == 0 and f"{len(LISTINGS)} markets" in result.output
    assert db.session.query(CatalogMarket).count() == len(LISTINGS) >= 20
    assert db.session.get(CatalogAsset, "SOL").backpack["displayName"] == "Solana"

    set_price("SOL", 178_420_000, 178_430_000)  # SOL's quotes are in 6 decimals, SOL_USDC's tick 0.01
    listed = {market["symbol"]: market for market in client.get("/api/v1/markets").json}
    assert len(listed) == len(LISTINGS)
    perp = listed["BTC_USDC_PERP"]
    assert perp["filters"]["price"]["tickSize"] == "0.1" and perp["filters"]["quantity"]["stepSize"] == "0.00001"
    assert (perp["priceDecimals"], perp["quantityDecimals"], perp["fundingInterval"]) == (1, 5, 3_600_000)
    assert perp["imfFunction"]["type"] == "sqrt" and perp["bid"] is None
    assert (listed["SOL_USDC"]["bid"], listed["SOL_USDC"]["ask"]) == (17842, 17843)
    assert listed["MATIC_USDC_PERP"]["orderBookState"] == "Closed"

    perps = client.get("/api/v1/markets?marketType=PERP").json
    assert perps and all(market["marketType"] == "PERP" for market in perps)
    assert [m["symbol"] for m in client.get("/api/v1/markets?symbol=AAPL.US_USDC_PERP").json] == ["AAPL.US_USDC_PERP"]
    for query in ("marketType=FUTURES", "symbol=%00", "symbol="):
        refused = client.get(f"/api/v1/markets?{query}")
        assert refused.status_code == 422 and refused.json["error"] == "validation", query


def test_a_resync_updates_in_place_and_a_bad_catalog_or_no_backpack_writes_nothing(app, app_ctx, simulator):
    assert sync(app, rest_url(simulator)).exit_code == 0
    zora = simulator.markets["ZORA_USDC_PERP"]
    zora.listing = dataclasses.replace(zora.listing, state="Open")
    assert sync(app, rest_url(simulator)).exit_code == 0
    db.session.expire_all()
    assert db.session.get(CatalogMarket, "ZORA_USDC_PERP").order_book_state == "Open"
    assert db.session.query(CatalogMarket).count() == len(LISTINGS)

    kpepe = simulator.markets["kPEPE_USDC_PERP"]
    kpepe.listing = dataclasses.replace(kpepe.listing, state="Open", tick="0")
    broken = sync(app, rest_url(simulator))
    assert broken.exit_code != 0 and "kPEPE_USDC_PERP" in broken.output and "catalog unchanged" in broken.output
    db.session.expire_all()
    assert db.session.get(CatalogMarket, "kPEPE_USDC_PERP").tick_size > 0

    unreachable = sync(app, "http://127.0.0.1:9")
    assert unreachable.exit_code == 0 and "unreachable" in unreachable.output
    assert db.session.query(CatalogMarket).count() == len(LISTINGS)


def test_the_simulator_publishes_each_perps_mark_every_second_and_serves_mark_prices(simulator):
    with urllib.request.urlopen(f"{rest_url(simulator)}/api/v1/markPrices?symbol=SOL_USDC_PERP", timeout=5) as reply:
        (mark,) = json.load(reply)
    assert mark["symbol"] == "SOL_USDC_PERP" and mark["nextFundingTimestamp"] % 3_600_000 == 0
    socket = websocket.create_connection(simulator.url, timeout=5)
    try:
        streams = ["markPrice.SOL_USDC_PERP", "markPrice.SOL_USDC"]  # spot markets publish no mark
        socket.send(json.dumps({"method": "SUBSCRIBE", "params": streams}))
        frames = [json.loads(socket.recv()) for _ in range(2)]
    finally:
        socket.close()
    assert [f["stream"] for f in frames] == ["markPrice.SOL_USDC_PERP"] * 2
    data = frames[0]["data"]
    assert data["e"] == "markPrice" and set(data) == {"E", "T", "e", "s", "p", "f", "i", "n"}
    assert data["n"] % 3_600_000 == 0 and data["n"] > data["E"] // 1000
    assert frames[1]["data"]["E"] - data["E"] >= 900_000  # once a second


@pytest.mark.parametrize("path", ["/api/v1/markets", "/api/v1/assets", "/api/v1/status"])
def test_the_simulator_serves_backpacks_public_catalog_endpoints(simulator, path):
    with urllib.request.urlopen(f"{rest_url(simulator)}{path}", timeout=5) as reply:
        assert reply.status == 200 and json.load(reply)


def test_the_poller_follows_what_markets_chooses_and_keeps_each_perps_mark(app, app_ctx, client, simulator):
    from app.extensions import redis_client
    from core.marks import Mark, MarkStore
    from poller.markets import followed_markets

    database = app.config["DATABASE_URL"]
    before_sync = followed_markets(database, "default")  # an empty catalog: the traded spot markets only
    assert (before_sync.priced, before_sync.marked) == (["SOL_USDC", "BTC_USDC", "ETH_USDC"], [])
    assert sync(app, rest_url(simulator)).exit_code == 0
    followed = followed_markets(database, "default")
    assert followed.priced == ["SOL_USDC", "BTC_USDC", "ETH_USDC", *followed.marked]  # perpetuals are traded too
    assert "SOL_USDC_PERP" in followed.marked and "MATIC_USDC_PERP" not in followed.marked
    assert followed_markets(database, "perp").priced == followed.marked
    assert followed_markets(database, "BTC_USDC").marked == []

    feed = LiveFeed(app, simulator, markets=followed.priced, marked=followed.marked).start()
    try:
        eventually(lambda: feed.poller.mark_frames >= 2 * len(followed.marked), timeout=10)
        listed = {market["symbol"]: market for market in client.get("/api/v1/markets").json}
        metrics = client.get("/metrics").get_data(as_text=True)
    finally:
        feed.stop()
    sol = listed["SOL_USDC_PERP"]
    assert 17_000 < sol["markPrice"] < 19_000 and 17_000 < sol["indexPrice"] < 19_000  # 0.01 ticks
    assert sol["fundingRate"] in ("0.0000125", "-0.0000125") and sol["nextFundingTimestamp"] % 3_600_000 == 0
    assert listed["SOL_USDC"]["markPrice"] is None and listed["MATIC_USDC_PERP"]["markPrice"] is None
    assert 'paper_mark_age_seconds{market="SOL_USDC_PERP"}' in metrics

    old = Mark("SOL_USDC_PERP", Decimal("1.00"), None, None, None, time_us=1)
    redis_client.delete("mark:SOL_USDC_PERP")
    assert MarkStore(redis_client).write(old)
    assert client.get("/api/v1/markets?symbol=SOL_USDC_PERP").json[0]["markPrice"] is None  # stale: missing


@pytest.mark.usefixtures("engine_worker")
def test_a_perpetual_trades_through_the_hedging_api_against_its_own_book(app, app_ctx, client, simulator, make_user):
    from app.extensions import redis_client
    from app.models import Order
    from core.prices import PriceStore
    from poller.markets import followed_markets
    from tests.support.state import assert_ledger_balances

    assert sync(app, rest_url(simulator)).exit_code == 0
    followed = followed_markets(app.config["DATABASE_URL"], "BTC_USDC,BTC_USDC_PERP")
    assert followed.priced == ["BTC_USDC", "BTC_USDC_PERP"]
    _, headers = make_user()
    feed = LiveFeed(app, simulator, markets=followed.priced, marked=followed.marked).start()
    try:
        eventually(lambda: PriceStore(redis_client).read_fresh("BTC_USDC_PERP", 5))
        preview = client.get("/api/v1/trade/preview?asset=BTC_USDC_PERP&type=long&margin=100000&leverage=10")
        assert preview.status_code == 200, preview.json
        body = {"asset": "BTC_USDC_PERP", "type": "long", "margin": 100_000, "leverage": 10, "slippage": 500}
        by_symbol = {key: value for key, value in body.items() if key != "asset"} | {"symbol": "BTC_USDC_PERP"}
        opened = client.post("/api/v1/trade/create", json=by_symbol, headers=headers)
        assert opened.status_code == 200 and opened.json["status"] == "open", opened.json
        assert opened.json["decimals"] == 1  # BTC_USDC_PERP's tick is 0.1
        assert 1_000_000 < opened.json["openPrice"] < 1_400_000  # about 118,320.1 in tenths
        closed = client.post("/api/v1/trade/close", json={"orderId": opened.json["orderId"]}, headers=headers)
        assert closed.status_code == 200 and closed.json["status"] == "closed", closed.json
    finally:
        feed.stop()
    assert db.session.get(Order, opened.json["orderId"]).asset == "BTC_USDC_PERP"
    assert_ledger_balances(app)
    for asset in ("NOPE_USDC_PERP", "MATIC_USDC_PERP", "x" * 65):  # unknown, closed, absurd
        refused = client.post("/api/v1/trade/create", json={**body, "asset": asset}, headers=headers)
        assert refused.status_code == 422 and "asset" in refused.json["errors"]["json"], refused.json
    both = client.post("/api/v1/trade/create", json={**body, "symbol": "BTC_USDC_PERP"}, headers=headers)
    assert both.status_code == 422 and "symbol" in both.json["errors"]["json"]
    assert db.session.query(Order).count() == 1  # nothing written by the refused ones
