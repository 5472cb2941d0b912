"""Backpack paper mode's REST API through signed requests as a bot sends them: Backpack's paths,
shapes, codes and error bodies, on a netting account found from its paper key."""

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.extensions import db, redis_client
from app.models import Candle, Fill, FundingRate, NetOrder
from core import signing
from core.book import BookStore
from tests.support.trading import PERP

pytestmark = pytest.mark.usefixtures("engine_worker")


@pytest.fixture
def bot(app, app_ctx, client, make_user, perpetuals):
    """A netting account with a generated paper key, and a fresh book for the perpetual."""
    quote, mark = perpetuals
    quote(1_183_200, 1_183_210)
    mark(1_183_205)
    book = {"bids": [[1_183_200, 10**8]], "asks": [[1_183_210, 3_000_000], [1_183_220, 10**8]], "u": 1, "time": 1}
    BookStore(redis_client).write(PERP, json.dumps(book))
    _, headers = make_user()
    account = client.post("/api/v1/accounts", json={"name": "bot", "mode": "netting"}, headers=headers).json
    key = client.post("/api/v1/api-keys", json={"accountId": account["id"], "label": "bot"}, headers=headers).json
    return Bot(client, key["seed"], key["publicKey"], account["id"])


class Bot:
    """Signs as Backpack's clients do: the instruction, the sorted parameters, the time and window."""

    def __init__(self, client, seed: str, public: str, account_id: int):
        self.client, self.seed, self.public, self.account_id = client, seed, public, account_id

    def headers(self, instruction: str, params, timestamp: int | None = None, window: int = 5000) -> dict:
        timestamp = timestamp or int(time.time() * 1000)
        text = signing.signed_text(instruction, params, timestamp, window)
        return {
            "X-API-Key": self.public,
            "X-Signature": signing.sign(self.seed, text),
            "X-Timestamp": str(timestamp),
            "X-Window": str(window),
        }

    def get(self, path: str, instruction: str, **params):
        return self.client.get(path, query_string=params, headers=self.headers(instruction, params))

    def send(self, method: str, path: str, instruction: str, body: dict):
        return self.client.open(path, method=method, json=body, headers=self.headers(instruction, body))


def test_a_bot_trades_through_backpacks_own_routes_and_shapes(app, bot):
    capital = bot.get("/backpack/api/v1/capital", "balanceQuery")
    assert capital.status_code == 200 and capital.json == {"USDC": {"available": "5000", "locked": "0", "staked": "0"}}

    body = {"symbol": PERP, "side": "Bid", "orderType": "Market", "quantity": "0.05", "clientId": 7}
    bought = bot.send("POST", "/backpack/api/v1/order", "orderExecute", body)
    assert bought.status_code == 200, bought.json
    order = bought.json
    assert (order["status"], order["side"], order["orderType"], order["clientId"]) == ("Filled", "Bid", "Market", 7)
    assert (order["quantity"], order["executedQuantity"], order["executedQuoteQuantity"]) == ("0.05", "0.05", "5916.07")
    assert order["id"].isdigit() and isinstance(order["createdAt"], int)

    limit = {
        "symbol": PERP,
        "side": "Ask",
        "orderType": "Limit",
        "quantity": "0.01",
        "price": "119000",
        "postOnly": True,
    }
    resting = bot.send("POST", "/backpack/api/v1/order", "orderExecute", limit).json
    assert (resting["status"], resting["price"], resting["postOnly"]) == ("New", "119000", True)
    listed = bot.get("/backpack/api/v1/orders", "orderQueryAll", symbol=PERP).json
    assert [o["id"] for o in listed] == [resting["id"]]
    found = bot.get("/backpack/api/v1/order", "orderQuery", symbol=PERP, orderId=resting["id"])
    assert found.status_code == 200 and found.json["id"] == resting["id"]
    cancelled = bot.send("DELETE", "/backpack/api/v1/order", "orderCancel", {"symbol": PERP, "orderId": resting["id"]})
    assert cancelled.status_code == 200 and cancelled.json["status"] == "Cancelled"
    gone = bot.get("/backpack/api/v1/order", "orderQuery", symbol=PERP, orderId=resting["id"])
    assert (gone.status_code, gone.json) == (404, {"code": "RESOURCE_NOT_FOUND", "message": "Order not found"})

    collateral = bot.get("/backpack/api/v1/capital/collateral", "collateralQuery").json
    assert collateral["collateral"][0]["symbol"] == "USDC" and collateral["netExposureFutures"] == "5916.03"
    assert collateral["imf"] == "0.1000" and collateral["mmf"] == "0.0125"  # 1/leverageLimit over the IMF's base
    positions = bot.get("/backpack/api/v1/position", "positionQuery").json
    assert [(p["symbol"], p["netQuantity"], p["markPrice"]) for p in positions] == [(PERP, "0.05", "118320.5")]
    assert positions[0]["imfFunction"]["type"] == "sqrt" and positions[0]["positionId"].isdigit()
    fills = bot.get("/backpack/wapi/v1/history/fills", "fillHistoryQueryAll", symbol=PERP, sortDirection="Asc").json
    assert [(f["orderId"], f["price"], f["quantity"], f["side"], f["isMaker"]) for f in fills] == [
        (order["id"], "118321", "0.03", "Bid", False),
        (order["id"], "118322", "0.02", "Bid", False),
    ]
    assert fills[0]["fee"] == "1.78" and fills[0]["feeSymbol"] == "USDC" and "T" in fills[0]["timestamp"]
    history = bot.get("/backpack/wapi/v1/history/orders", "orderHistoryQueryAll", limit="10").json
    assert [(o["id"], o["status"]) for o in history] == [(resting["id"], "Cancelled"), (order["id"], "Filled")]
    assert isinstance(history[0]["createdAt"], str)
    paging = bot.get("/backpack/wapi/v1/history/orders", "orderHistoryQueryAll", limit="1001")
    assert (paging.status_code, paging.json["code"]) == (400, "INVALID_CLIENT_REQUEST")
    assert bot.get("/backpack/wapi/v1/history/funding", "fundingHistoryQueryAll").json == []
    account = bot.get("/backpack/api/v1/account", "accountQuery").json
    assert (account["futuresTakerFee"], account["futuresMakerFee"], account["leverageLimit"]) == ("5", "2", "10")
    largest = bot.get("/backpack/api/v1/account/limits/order", "maxOrderQuantity", symbol=PERP, side="Bid").json
    assert largest["symbol"] == PERP and largest["price"] == "118321"  # at the ask
    # 10x on about 5,000 USD of equity at 118,321 (the pure rule's exactness: tests/unit/test_netting.py)
    assert Decimal("0.3") < Decimal(largest["maxOrderQuantity"]) < Decimal("0.5")
    reducing = bot.get(
        "/backpack/api/v1/account/limits/order", "maxOrderQuantity", symbol=PERP, side="Ask", reduceOnly="true"
    )
    assert (reducing.json["maxOrderQuantity"], reducing.json["reduceOnly"]) == ("0.05", True)
    assert bot.send("PATCH", "/backpack/api/v1/account", "accountUpdate", {"leverageLimit": "20"}).status_code == 200
    assert bot.get("/backpack/api/v1/account", "accountQuery").json["leverageLimit"] == "20"
    refused = bot.send("PATCH", "/backpack/api/v1/account", "accountUpdate", {"leverageLimit": "101"})
    assert (refused.status_code, refused.json["code"]) == (400, "INVALID_CLIENT_REQUEST")


def test_signing_failures_get_backpacks_codes_and_nothing_is_written(app, bot, client):
    body = {"symbol": PERP, "side": "Bid", "orderType": "Market", "quantity": "0.01"}
    headers = bot.headers("orderExecute", body)
    stranger = {**headers, "X-API-Key": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="}
    unknown = client.post("/backpack/api/v1/order", json=body, headers=stranger)
    assert unknown.status_code == 401 and unknown.json["code"] == "UNAUTHORIZED"
    assert (
        "paper-trading venue" in unknown.json["message"] and "never send a real Backpack key" in unknown.json["message"]
    )
    wrong_instruction = client.post("/backpack/api/v1/order", json=body, headers=bot.headers("orderCancel", body))
    assert (wrong_instruction.status_code, wrong_instruction.json["code"]) == (401, "INVALID_SIGNATURE")
    tampered = client.post("/backpack/api/v1/order", json={**body, "quantity": "1"}, headers=headers)
    assert (tampered.status_code, tampered.json["code"]) == (401, "INVALID_SIGNATURE")
    stale = bot.headers("orderExecute", body, timestamp=int(time.time() * 1000) - 6000)
    expired = client.post("/backpack/api/v1/order", json=body, headers=stale)
    assert (expired.status_code, expired.json) == (
        400,
        {"code": "INVALID_CLIENT_REQUEST", "message": "Request has expired"},
    )
    wide = client.post("/backpack/api/v1/order", json=body, headers=bot.headers("orderExecute", body, window=60001))
    assert wide.status_code == 400 and wide.json["code"] == "INVALID_CLIENT_REQUEST"
    missing = client.post("/backpack/api/v1/order", json=body)
    assert missing.status_code == 400 and missing.json["code"] == "INVALID_CLIENT_REQUEST"
    assert db.session.scalar(select(func.count()).select_from(NetOrder)) == 0

    first = client.post("/backpack/api/v1/order", json=body, headers=headers)
    assert first.status_code == 200, first.json
    replayed = client.post("/backpack/api/v1/order", json=body, headers=headers)
    assert (replayed.status_code, replayed.json["code"]) == (401, "INVALID_SIGNATURE")
    assert db.session.scalar(select(func.count()).select_from(NetOrder)) == 1


@pytest.mark.parametrize(
    "body, code",
    [
        ({"symbol": "NOPE_USDC_PERP", "side": "Bid", "orderType": "Market", "quantity": "0.01"}, "INVALID_SYMBOL"),
        ({"symbol": PERP, "side": "Buy", "orderType": "Market", "quantity": "0.01"}, "INVALID_CLIENT_REQUEST"),
        ({"symbol": PERP, "side": "Bid", "orderType": "Market", "quantity": "0.000001"}, "INVALID_QUANTITY"),
        ({"symbol": PERP, "side": "Bid", "orderType": "Limit", "quantity": "0.01", "price": "1.05"}, "INVALID_PRICE"),
        ({"symbol": PERP, "side": "Bid", "orderType": "Market", "quantity": "100"}, "INSUFFICIENT_MARGIN"),
        (
            {"symbol": PERP, "side": "Ask", "orderType": "Market", "quantity": "0.01", "reduceOnly": True},
            "INVALID_ORDER",
        ),
        (
            {"symbol": PERP, "side": "Bid", "orderType": "Market", "quantity": "0.01", "triggerQuantity": "1"},
            "INVALID_CLIENT_REQUEST",
        ),
    ],
)
def test_bad_orders_get_backpacks_error_body(app, bot, body, code):
    refused = bot.send("POST", "/backpack/api/v1/order", "orderExecute", body)
    assert 400 <= refused.status_code < 500 and refused.json["code"] == code, refused.json
    assert set(refused.json) == {"code", "message"}


def test_public_endpoints_and_what_is_not_simulated(app, bot, client):
    markets = client.get("/backpack/api/v1/markets").json
    perp = next(m for m in markets if m["symbol"] == PERP)
    assert perp["filters"]["price"]["tickSize"] == "0.1" and "priceDecimals" not in perp
    assert client.get("/backpack/api/v1/securities").json == []
    assert any(asset["symbol"] == "BTC" for asset in client.get("/backpack/api/v1/assets").json)
    depth = client.get(f"/backpack/api/v1/depth?symbol={PERP}").json
    assert depth["asks"][0] == ["118321", "0.03"] and depth["bids"][-1] == ["118320", "1"]
    assert abs(depth["timestamp"] - time.time() * 1_000_000) < 60_000_000  # microseconds
    deep = {"bids": [[1_183_200 - n, 10**8] for n in range(7)], "asks": [[1_183_210 + n, 10**8] for n in range(7)]}
    BookStore(redis_client).write(PERP, json.dumps({**deep, "u": 2, "time": 2}))
    five = client.get(f"/backpack/api/v1/depth?symbol={PERP}&limit=5").json
    assert [len(five["asks"]), len(five["bids"])] == [5, 5] and five["bids"][-1] == ["118320", "1"]  # the best five
    odd = client.get(f"/backpack/api/v1/depth?symbol={PERP}&limit=30")
    assert odd.status_code == 400 and "DepthLimit" in odd.get_data(as_text=True)  # plain text, as Backpack's
    marks = client.get(f"/backpack/api/v1/markPrices?symbol={PERP}").json
    assert [(m["symbol"], m["markPrice"]) for m in marks] == [(PERP, "118320.5")]
    assert client.get("/backpack/api/v1/ping").get_data(as_text=True) == "pong"
    lending = client.post("/backpack/api/v1/borrowLend", json={})
    assert (lending.status_code, lending.json["code"]) == (404, "NOT_IMPLEMENTED")
    assert "not simulated" in lending.json["message"]


def test_a_batch_answers_each_order_and_more_than_twenty_is_refused(app, bot):
    good = {"symbol": PERP, "side": "Bid", "orderType": "Limit", "quantity": "0.01", "price": "110000"}
    bad = {**good, "price": "110000.05"}
    answers = bot.send("POST", "/backpack/api/v1/orders", "orderExecute", [good, bad])
    assert answers.status_code == 200, answers.json
    assert [(a["operation"], a.get("status"), a.get("code")) for a in answers.json] == [
        ("Ok", "New", None),
        ("Err", None, "INVALID_PRICE"),
    ]
    too_many = bot.send("POST", "/backpack/api/v1/orders", "orderExecute", [good] * 21)
    assert (too_many.status_code, too_many.json["code"]) == (400, "INVALID_CLIENT_REQUEST")
    assert db.session.scalar(select(func.count()).select_from(NetOrder)) == 1


def test_an_account_past_its_request_budget_gets_backpacks_429(app, bot, monkeypatch):
    monkeypatch.setitem(app.config, "BACKPACK_RATE_LIMIT", "3/minute")
    answers = [bot.get("/backpack/api/v1/capital", "balanceQuery", n=str(n)).status_code for n in range(4)]
    assert answers == [200, 200, 200, 429]
    assert bot.get("/backpack/api/v1/capital", "balanceQuery", n="x").json["code"] == "TOO_MANY_REQUESTS"


def test_answers_match_backpacks_own_openapi_document(app, bot, client):
    """Each answer of a bot's session, against the response schema Backpack's OpenAPI document
    declares for its path and method (vendored: tests/clients/backpack)."""
    from openapi_schema_validator import OAS30Validator
    from referencing import Registry, Resource

    from tests.support.processes import ROOT

    spec = json.loads((ROOT / "tests/clients/backpack/openapi.json").read_text())
    registry = Registry().with_resource("spec", Resource.opaque(spec))

    def present(value):
        """Backpack sends an absent optional field as null (its own replies, quoted by ccxt, do),
        where its document only marks it optional: a null counts as absent, never as a value."""
        if isinstance(value, dict):
            return {k: present(v) for k, v in value.items() if v is not None}
        return [present(v) for v in value] if isinstance(value, list) else value

    def check(method: str, path: str, answer) -> None:
        assert answer.status_code == 200, (path, answer.json)
        content = spec["paths"][path][method]["responses"]["200"]["content"]
        schema = next(iter(content.values()))["schema"]
        schema = json.loads(json.dumps(schema).replace('"#/components', '"spec#/components'))
        errors = sorted(
            (
                error
                for error in OAS30Validator(schema, registry=registry).iter_errors(present(answer.json))
                # the document enumerates the asset symbols of its day; listings come and go (AAPL.US)
                if not (
                    error.validator == "enum"
                    and list(error.absolute_path)[-1:] in (["baseSymbol"], ["quoteSymbol"], ["symbol"])
                )
            ),
            key=str,
        )
        assert not errors, f"{method.upper()} {path}: " + "; ".join(
            f"{e.message} at {list(e.absolute_path)}" for e in errors
        )

    market = {"symbol": PERP, "side": "Bid", "orderType": "Market", "quantity": "0.02", "clientId": 1}
    limit = {"symbol": PERP, "side": "Ask", "orderType": "Limit", "quantity": "0.01", "price": "119000"}
    check("post", "/api/v1/order", bot.send("POST", "/backpack/api/v1/order", "orderExecute", market))
    resting = bot.send("POST", "/backpack/api/v1/order", "orderExecute", limit)
    check("post", "/api/v1/order", resting)
    order_id = resting.json["id"]
    check("get", "/api/v1/order", bot.get("/backpack/api/v1/order", "orderQuery", symbol=PERP, orderId=order_id))
    check("get", "/api/v1/orders", bot.get("/backpack/api/v1/orders", "orderQueryAll"))
    check("post", "/api/v1/orders", bot.send("POST", "/backpack/api/v1/orders", "orderExecute", [limit]))
    cancel = {"symbol": PERP, "orderId": order_id}
    check("delete", "/api/v1/order", bot.send("DELETE", "/backpack/api/v1/order", "orderCancel", cancel))
    check("delete", "/api/v1/orders", bot.send("DELETE", "/backpack/api/v1/orders", "orderCancelAll", {"symbol": PERP}))
    check("get", "/api/v1/capital", bot.get("/backpack/api/v1/capital", "balanceQuery"))
    check("get", "/api/v1/capital/collateral", bot.get("/backpack/api/v1/capital/collateral", "collateralQuery"))
    check("get", "/api/v1/account", bot.get("/backpack/api/v1/account", "accountQuery"))
    limits = bot.get("/backpack/api/v1/account/limits/order", "maxOrderQuantity", symbol=PERP, side="Bid")
    check("get", "/api/v1/account/limits/order", limits)
    check("get", "/api/v1/position", bot.get("/backpack/api/v1/position", "positionQuery"))
    check("get", "/wapi/v1/history/fills", bot.get("/backpack/wapi/v1/history/fills", "fillHistoryQueryAll"))
    check("get", "/wapi/v1/history/orders", bot.get("/backpack/wapi/v1/history/orders", "orderHistoryQueryAll"))
    check("get", "/wapi/v1/history/funding", bot.get("/backpack/wapi/v1/history/funding", "fundingHistoryQueryAll"))
    history = bot.get("/backpack/wapi/v1/history/position", "positionHistoryQueryAll")
    check("get", "/wapi/v1/history/position", history)
    assert [(p["symbol"], p["state"], p["netQuantity"]) for p in history.json] == [(PERP, "Open", "0.02")]
    check("get", "/api/v1/markets", client.get("/backpack/api/v1/markets"))
    check("get", "/api/v1/assets", client.get("/backpack/api/v1/assets"))
    check("get", "/api/v1/markPrices", client.get(f"/backpack/api/v1/markPrices?symbol={PERP}"))
    check("get", "/api/v1/depth", client.get(f"/backpack/api/v1/depth?symbol={PERP}"))
    db.session.add(
        Candle(asset=PERP, bucket=datetime.now(UTC) - timedelta(minutes=5), open=1, high=2, low=1, close=2, ticks=2)
    )
    db.session.add(
        FundingRate(market=PERP, boundary=datetime(2026, 12, 1, 1, tzinfo=UTC), rate=Decimal("0.0001"), mark=1)
    )
    db.session.commit()
    check("get", "/api/v1/ticker", client.get(f"/backpack/api/v1/ticker?symbol={PERP}"))
    check("get", "/api/v1/tickers", client.get("/backpack/api/v1/tickers"))
    start = int(time.time()) - 3600
    klines = client.get(f"/backpack/api/v1/klines?symbol={PERP}&interval=1h&startTime={start}")
    check("get", "/api/v1/klines", klines)
    assert klines.json
    check("get", "/api/v1/trades", client.get(f"/backpack/api/v1/trades?symbol={PERP}"))
    check("get", "/api/v1/trades/history", client.get(f"/backpack/api/v1/trades/history?symbol={PERP}"))
    check("get", "/api/v1/fundingRates", client.get(f"/backpack/api/v1/fundingRates?symbol={PERP}"))
    check("get", "/api/v1/openInterest", client.get("/backpack/api/v1/openInterest"))


def test_market_data_comes_from_the_venues_own_candles_and_fills(app, bot, client):
    """Tickers and klines from the candles (mid prices) with the volume of this venue's fills,
    those fills as anonymous public trades, the recorded funding rates, the open interest."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for minutes, (low, high, close) in {
        30: (1_179_000, 1_181_000, 1_180_000),
        20: (1_180_000, 1_186_000, 1_185_000),
    }.items():
        db.session.add(
            Candle(
                asset=PERP,
                bucket=now - timedelta(minutes=minutes),
                open=close - 500,
                high=high,
                low=low,
                close=close,
                ticks=3,
            )
        )
    db.session.add(Candle(asset=PERP, bucket=now - timedelta(days=2), open=1, high=1, low=1, close=1, ticks=1))
    boundaries = [datetime(2026, 12, 1, hour, tzinfo=UTC) for hour in (1, 2)]
    db.session.add_all(
        FundingRate(market=PERP, boundary=b, rate=Decimal(r), mark=Decimal(118_000))
        for b, r in zip(boundaries, ("0.0000125", "-0.00001"), strict=True)
    )
    db.session.commit()
    bought = bot.send(
        "POST",
        "/backpack/api/v1/order",
        "orderExecute",
        {"symbol": PERP, "side": "Bid", "orderType": "Market", "quantity": "0.05"},
    )
    assert bought.json["status"] == "Filled"

    ticker = client.get(f"/backpack/api/v1/ticker?symbol={PERP}").json
    assert ticker == {
        "symbol": PERP,
        "firstPrice": "117950",
        "lastPrice": "118500",
        "priceChange": "550",
        "priceChangePercent": "0.004663",
        "high": "118600",
        "low": "117900",
        "volume": "0.05",
        "quoteVolume": "5916.07",
        "trades": "2",  # 0.03 at 118321 and 0.02 at 118322
    }
    assert ticker in client.get("/backpack/api/v1/tickers").json
    week = client.get(f"/backpack/api/v1/ticker?symbol={PERP}&interval=1w").json
    assert (week["firstPrice"], week["low"]) == ("0.1", "0.1")  # the candle of two days ago (1 unit: 0.1)

    trades = client.get(f"/backpack/api/v1/trades?symbol={PERP}").json
    assert [(t["price"], t["quantity"], t["quoteQuantity"], t["isBuyerMaker"]) for t in trades] == [
        ("118321", "0.03", "3549.63", False),  # the buyer took the book: the seller was the maker
        ("118322", "0.02", "2366.44", False),
    ]
    assert trades[0]["id"] < trades[1]["id"] and isinstance(trades[0]["timestamp"], int)
    assert client.get(f"/backpack/api/v1/trades/history?symbol={PERP}&limit=1&offset=1").json == trades[:1]
    assert client.get(f"/backpack/api/v1/openInterest?symbol={PERP}").json[0]["openInterest"] == "0.05"
    rates = client.get(f"/backpack/api/v1/fundingRates?symbol={PERP}").json
    assert rates == [
        {"symbol": PERP, "intervalEndTimestamp": "2026-12-01T02:00:00", "fundingRate": "-0.00001"},
        {"symbol": PERP, "intervalEndTimestamp": "2026-12-01T01:00:00", "fundingRate": "0.0000125"},
    ]

    # the fills moved into an hour of their own, so klines show the volume where it fell
    hour = datetime(2026, 11, 30, 10, tzinfo=UTC)
    db.session.execute(update(Fill).values(created_at=hour + timedelta(minutes=4)))
    for minute, close in ((1, 1_180_000), (4, 1_182_000), (7, 1_181_000)):
        bucket = hour + timedelta(minutes=minute)
        db.session.add(
            Candle(asset=PERP, bucket=bucket, open=close, high=close + 10, low=close - 10, close=close, ticks=1)
        )
    db.session.commit()
    start = int(hour.timestamp())
    klines = client.get(
        f"/backpack/api/v1/klines?symbol={PERP}&interval=3m&startTime={start}&endTime={start + 600}"
    ).json
    assert [(k["start"], k["end"], k["open"], k["close"], k["volume"], k["trades"]) for k in klines] == [
        ("2026-11-30 10:00:00", "2026-11-30 10:03:00", "118000", "118000", "0", "0"),
        ("2026-11-30 10:03:00", "2026-11-30 10:06:00", "118200", "118200", "0.05", "2"),
        ("2026-11-30 10:06:00", "2026-11-30 10:09:00", "118100", "118100", "0", "0"),
    ]
    monthly = client.get(f"/backpack/api/v1/klines?symbol={PERP}&interval=1month&startTime={start - 86_400 * 40}").json
    assert monthly[0]["start"] == "2026-11-01 00:00:00" and monthly[0]["end"] == "2026-12-01 00:00:00"

    for path, code in (
        (f"/klines?symbol={PERP}&interval=1m", "INVALID_CLIENT_REQUEST"),  # startTime is required
        (f"/klines?symbol={PERP}&interval=2m&startTime=0", "INVALID_CLIENT_REQUEST"),
        (f"/klines?symbol={PERP}&interval=1m&startTime=0&priceType=Mark", "INVALID_CLIENT_REQUEST"),
        (f"/trades?symbol={PERP}&limit=5000", "INVALID_CLIENT_REQUEST"),
        ("/ticker?symbol=NOPE_USDC_PERP", "INVALID_SYMBOL"),
        (f"/ticker?symbol={PERP}&interval=1h", "INVALID_CLIENT_REQUEST"),
    ):
        answer = client.get(f"/backpack/api/v1{path}")
        assert (answer.status_code, answer.json["code"]) == (400, code), path


def test_a_kline_stream_closes_each_candle_before_it_sends_the_next(app, bot):
    from app.backpack import public_streams

    minute = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    for offset, close in ((0, 1_180_000), (1, 1_181_000)):
        bucket = minute + timedelta(minutes=offset)
        db.session.add(Candle(asset=PERP, bucket=bucket, open=close, high=close, low=close, close=close, ticks=1))
    db.session.commit()
    start = int(minute.timestamp())

    def frames(second: int) -> list[dict]:
        return [json.loads(text)["data"] for text in public_streams._kline_frames("1m", PERP, second)]

    first = frames(start + 30)
    assert [(f["t"], f["c"], f["X"]) for f in first] == [("2026-11-30T10:00:00", "118000", False)]
    assert [(f["t"], f["X"]) for f in frames(start + 31)] == [("2026-11-30T10:00:00", False)]  # the same, still open
    turned = frames(start + 61)
    assert frames(start + 61) == turned  # a second socket in the same second gets the same frames
    assert [(f["t"], f["T"], f["c"], f["X"]) for f in turned] == [
        ("2026-11-30T10:00:00", "2026-11-30T10:01:00", "118000", True),  # the previous candle, closed
        ("2026-11-30T10:01:00", "2026-11-30T10:02:00", "118100", False),
    ]
    assert frames(start + 62)[0]["X"] is False and len(frames(start + 63)) == 1
