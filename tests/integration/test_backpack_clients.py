"""Backpack paper mode driven by a real client library, changed only in its URLs: ccxt's
`backpack` exchange against a live gunicorn server, a bot's life from markets to fills."""

import json
import time
from decimal import ROUND_UP, Decimal

import ccxt  # tests/clients/requirements.txt, installed by `make venv`
import pytest

from app.extensions import redis_client
from core.book import BookStore
from tests.support.trading import PERP

pytestmark = pytest.mark.usefixtures("engine_worker")


@pytest.fixture
def paper_key(perpetuals, live_server, client, make_user):  # the catalog before the server starts
    quote, mark = perpetuals
    quote(1_183_200, 1_183_210)
    mark(1_183_205)
    book = {"bids": [[1_183_200, 10**8]], "asks": [[1_183_210, 3_000_000], [1_183_220, 10**8]], "u": 1, "time": 1}
    BookStore(redis_client).write(PERP, json.dumps(book))
    _, headers = make_user()
    account = client.post("/api/v1/accounts", json={"name": "ccxt", "mode": "netting"}, headers=headers).json
    key = client.post("/api/v1/api-keys", json={"accountId": account["id"], "label": "ccxt"}, headers=headers).json
    return live_server, key


def websocket_to(url: str):
    import websocket  # websocket-client

    return websocket.create_connection(url.replace("http://", "ws://") + "/backpack/ws", timeout=10)


def subscribe_signed(socket, seed: str, public: str, streams: list[str], request_id: int) -> dict:
    """A signed SUBSCRIBE as Backpack's clients send it; its answer."""
    from core import signing

    timestamp = str(int(time.time() * 1000))
    signature = signing.sign(seed, signing.signed_text("subscribe", {}, int(timestamp), 5000))
    frame = {"method": "SUBSCRIBE", "params": streams, "signature": [public, signature, timestamp, "5000"]}
    socket.send(json.dumps({**frame, "id": request_id}))
    return json.loads(socket.recv())


def this_minutes_candle():
    """The perpetual's candle of the current minute (118,300 open, 118,320.5 close), committed;
    returns its minute."""
    from datetime import UTC, datetime

    from app.extensions import db
    from app.models import Candle

    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    db.session.add(
        Candle(asset=PERP, bucket=minute, open=1_183_000, high=1_184_000, low=1_182_000, close=1_183_205, ticks=5)
    )
    db.session.commit()
    return minute


def frames_until(socket, last) -> list[dict]:
    """Frames received up to the first that `last(frame)` accepts."""
    frames = [json.loads(socket.recv())]
    while not last(frames[-1]):
        frames.append(json.loads(socket.recv()))
    return frames


def backpack_pro(url: str, key: dict):
    """ccxt.pro's backpack exchange: its REST and socket URLs are the only change."""
    import ccxt.pro

    exchange = ccxt.pro.backpack({"apiKey": key["publicKey"], "secret": key["seed"]})
    socket = url.replace("http://", "ws://") + "/backpack/ws"
    rest = {"public": f"{url}/backpack", "private": f"{url}/backpack"}
    exchange.urls["api"] = {**rest, "ws": {"public": socket, "private": socket}}
    return exchange


def backpack(url: str, key: dict):
    exchange = ccxt.backpack({"apiKey": key["publicKey"], "secret": key["seed"]})
    exchange.urls["api"] = {"public": f"{url}/backpack", "private": f"{url}/backpack"}  # the only change
    return exchange


def test_ccxt_trades_paper_by_changing_only_its_urls(paper_key):
    url, key = paper_key
    exchange = backpack(url, key)
    markets = exchange.load_markets()
    symbol = "BTC/USDC:USDC"
    assert markets[symbol]["id"] == PERP and markets[symbol]["swap"]
    assert exchange.fetch_balance()["USDC"]["free"] == 5000.0

    bought = exchange.create_order(symbol, "market", "buy", 0.05)
    assert bought["status"] == "closed" and bought["filled"] == 0.05
    positions = exchange.fetch_positions([symbol])
    assert [(p["symbol"], float(p["contracts"]), p["side"]) for p in positions] == [(symbol, 0.05, "long")]

    resting = exchange.create_order(symbol, "limit", "sell", 0.01, 119_000)
    assert resting["status"] == "open"
    assert [o["id"] for o in exchange.fetch_open_orders(symbol)] == [resting["id"]]
    exchange.cancel_order(resting["id"], symbol)
    assert exchange.fetch_open_orders(symbol) == []
    trades = exchange.fetch_my_trades(symbol)
    assert sorted((t["price"], t["amount"]) for t in trades) == [(118_321.0, 0.03), (118_322.0, 0.02)]
    assert {t["order"] for t in trades} == {bought["id"]}

    with pytest.raises(ccxt.BaseError):
        exchange.create_order(symbol, "market", "buy", 100)  # far beyond the account's margin
    stranger = backpack(url, {"publicKey": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", "seed": key["seed"]})
    with pytest.raises(ccxt.AuthenticationError, match="paper-trading venue"):
        stranger.fetch_balance()


def test_bpx_py_trades_paper_by_changing_only_its_url(paper_key):
    from bpx.account import Account  # tests/clients/requirements.txt

    url, key = paper_key
    account = Account(key["publicKey"], key["seed"])
    account.BPX_API_URL = f"{url}/backpack/"  # the only change
    assert account.get_balances()["USDC"]["available"] == "5000"
    bought = account.execute_order(PERP, "Bid", "Market", quantity="0.02", reduce_only=False)
    assert (bought["status"], bought["executedQuantity"]) == ("Filled", "0.02"), bought
    assert [(p["symbol"], p["netQuantity"]) for p in account.get_open_positions()] == [(PERP, "0.02")]
    resting = account.execute_order(PERP, "Ask", "Limit", time_in_force="GTC", quantity="0.01", price="119000")
    assert account.get_open_order(PERP, order_id=resting["id"])["status"] == "New"
    assert account.cancel_order(PERP, order_id=resting["id"])["status"] == "Cancelled"
    assert account.get_open_orders(symbol=PERP) == []
    assert {fill["orderId"] for fill in account.get_fill_history(symbol=PERP)} == {bought["id"]}


def test_backpack_exchange_sdk_trades_paper_by_changing_only_its_url(paper_key):
    from backpack_exchange_sdk.authenticated import AuthenticationClient  # tests/clients/requirements.txt

    url, key = paper_key
    client = AuthenticationClient(key["publicKey"], key["seed"], base_url=f"{url}/backpack/")  # the only change
    assert client.get_balances()["USDC"]["available"] == "5000"
    bought = client.execute_order("Market", "Bid", PERP, quantity="0.02")  # it always sends postOnly=false
    assert (bought["status"], bought["executedQuantity"]) == ("Filled", "0.02"), bought
    resting = client.execute_order("Limit", "Ask", PERP, price="119000", quantity="0.01")
    assert [order["id"] for order in client.get_open_orders(symbol=PERP)] == [resting["id"]]
    assert client.cancel_open_order(PERP, orderId=resting["id"])["status"] == "Cancelled"
    history = client.get_order_history(symbol=PERP)
    assert {(order["id"], order["status"]) for order in history} == {
        (bought["id"], "Filled"),
        (resting["id"], "Cancelled"),
    }


def test_the_private_streams_tell_a_bot_of_its_orders_and_positions(paper_key):

    import websocket  # websocket-client

    url, key = paper_key
    socket = websocket.create_connection(url.replace("http://", "ws://") + "/backpack/ws", timeout=10)
    try:

        def subscribe(streams: list[str], public: str, request_id: int) -> dict:
            return subscribe_signed(socket, key["seed"], public, streams, request_id)

        socket.send(json.dumps({"method": "SUBSCRIBE", "params": [f"markPrice.{PERP}"], "id": 0}))
        assert json.loads(socket.recv()) == {"id": 0, "result": None}
        marked = json.loads(socket.recv())  # a public stream needs no signature
        assert (marked["stream"], marked["data"]["e"], marked["data"]["p"]) == (
            f"markPrice.{PERP}",
            "markPrice",
            "118320.5",
        )
        socket.send(json.dumps({"method": "UNSUBSCRIBE", "params": [f"markPrice.{PERP}"], "id": 1}))
        while json.loads(socket.recv()).get("id") != 1:
            pass  # a mark frame sent before the unsubscribe landed
        stranger = subscribe(["account.orderUpdate"], "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", 1)
        assert stranger["error"]["code"] == 4001 and "paper-trading venue" in stranger["error"]["message"]
        socket.send(json.dumps({"method": "LISTEN", "params": []}))
        assert json.loads(socket.recv())["error"]["code"] == 4006  # Backpack's code for a bad request
        streams = ["account.orderUpdate", f"account.positionUpdate.{PERP}", "account.rfqUpdate"]
        assert subscribe(streams, key["publicKey"], 2) == {"id": 2, "result": None}

        bought = backpack(url, key).create_order("BTC/USDC:USDC", "market", "buy", 0.05)
        frames = []
        while not any(f["data"].get("e") == "positionOpened" for f in frames):
            frames.append(json.loads(socket.recv()))
        events = [(f["stream"], f["data"]["e"]) for f in frames]
        assert events == [
            ("account.orderUpdate", "orderAccepted"),
            ("account.orderUpdate", "orderFill"),
            ("account.orderUpdate", "orderFill"),
            (f"account.positionUpdate.{PERP}", "positionOpened"),
        ]
        fills = [f["data"] for f in frames if f["data"]["e"] == "orderFill"]
        assert [(f["i"], f["l"], f["L"], f["X"], f["O"], f["m"]) for f in fills] == [
            (bought["id"], "0.03", "118321", "PartiallyFilled", "USER", False),
            (bought["id"], "0.02", "118322", "Filled", "USER", False),
        ]
        assert fills[-1]["z"] == "0.05" and fills[-1]["o"] == "MARKET" and isinstance(fills[-1]["E"], int)
        assert frames[-1]["data"]["q"] == "0.05" and frames[-1]["data"]["s"] == PERP

        socket.send(json.dumps({"method": "UNSUBSCRIBE", "params": [f"account.positionUpdate.{PERP}"], "id": 3}))
        assert json.loads(socket.recv()) == {"id": 3, "result": None}
        assert subscribe(["account.positionUpdate"], key["publicKey"], 4) == {"id": 4, "result": None}
        snapshot = json.loads(socket.recv())  # the open positions, without an event name, as Backpack sends them
        assert snapshot["stream"] == "account.positionUpdate" and "e" not in snapshot["data"]
        assert (snapshot["data"]["s"], snapshot["data"]["q"]) == (PERP, "0.05")
    finally:
        socket.close()


def test_ccxt_pro_watches_its_orders_and_positions(paper_key):
    import asyncio

    url, key = paper_key
    symbol = "BTC/USDC:USDC"

    async def life() -> tuple[list, list, dict]:
        exchange = backpack_pro(url, key)
        try:
            await exchange.load_markets()
            watching = asyncio.create_task(exchange.watch_orders(symbol))
            await asyncio.sleep(1)  # subscribed (with account.rfqUpdate, which stays silent)
            order = await exchange.create_order(symbol, "market", "buy", 0.05)
            seen = await asyncio.wait_for(watching, 10)
            # the snapshot on subscribe has no event name (as Backpack's): ccxt waits for the next change
            watching = asyncio.create_task(exchange.watch_positions([symbol]))
            await asyncio.sleep(1)
            await exchange.create_order(symbol, "market", "buy", 0.01)
            positions = await asyncio.wait_for(watching, 10)
            return seen, positions, order
        finally:
            await exchange.close()

    seen, positions, order = asyncio.run(life())
    assert order["id"] in {o["id"] for o in seen}
    assert [(p["symbol"], float(p["contracts"])) for p in positions] == [(symbol, 0.06)]


def test_the_depth_stream_sends_what_changed_in_the_book(paper_key):
    url, _ = paper_key
    socket = websocket_to(url)
    try:
        streams = [f"depth.{PERP}", f"depth.200ms.{PERP}"]  # realtime, and Backpack's 200 ms aggregate
        socket.send(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}))
        assert json.loads(socket.recv()) == {"id": 1, "result": None}
        time.sleep(0.5)  # each stream has looked at the book once: it is the base
        book = {"bids": [[1_183_190, 10**8]], "asks": [[1_183_210, 5_000_000], [1_183_220, 10**8]], "u": 7, "time": 2}
        BookStore(redis_client).write(PERP, json.dumps(book))
        frames = {frame["stream"]: frame["data"] for frame in (json.loads(socket.recv()) for _ in streams)}
        assert set(frames) == set(streams)
        for data in frames.values():
            assert data["e"] == "depth" and data["s"] == PERP
            assert (data["U"], data["u"]) == (2, 7)
            assert data["a"] == [["118321", "0.05"]]  # the ask's size changed
            assert data["b"] == [["118319", "1"], ["118320", "0"]]  # a bid level came, the old one went
        socket.send(json.dumps({"method": "SUBSCRIBE", "params": [f"depth.300ms.{PERP}"], "id": 2}))
        assert json.loads(socket.recv())["error"]["code"] == 4008  # a window Backpack does not aggregate
    finally:
        socket.close()


def test_a_liquidation_reaches_the_bot_as_backpack_sends_it(app, perpetuals, paper_key):
    from core.shards import shard_of
    from workers.triggers import check_triggers

    url, key = paper_key
    quote, mark = perpetuals
    exchange = backpack(url, key)
    exchange.privatePatchApiV1Account({"leverageLimit": "20"})
    deep = {"bids": [[1_183_200, 10**9]], "asks": [[1_183_210, 10**9]], "u": 2, "time": 2}
    BookStore(redis_client).write(PERP, json.dumps(deep))
    socket = websocket_to(url)
    try:
        streams = ["account.orderUpdate", "account.positionUpdate"]
        assert subscribe_signed(socket, key["seed"], key["publicKey"], streams, 1) == {"id": 1, "result": None}
        exchange.create_order("BTC/USDC:USDC", "market", "buy", 0.5)  # 59,160.5 USD on 5,000: 11.8x
        frames_until(socket, lambda frame: frame["data"].get("e") == "positionOpened")
        (position,) = exchange.fetch_positions()
        level = int(Decimal(str(position["liquidationPrice"])) * 10)  # in tenths, as the book keeps prices

        quote(level, level + 10)  # the market falls to the estimated liquidation price, the mark with it
        mark(level)
        BookStore(redis_client).write(
            PERP, json.dumps({"bids": [[level, 10**9]], "asks": [[level + 10, 10**9]], "u": 3, "time": 3})
        )
        assert check_triggers(PERP, shard_of(key["accountId"], app.config["ENGINE_SHARDS"])) >= 1
        frames = frames_until(socket, lambda frame: frame["data"].get("e") == "positionClosed")
    finally:
        socket.close()
    fills = [f["data"] for f in frames if f["data"].get("e") == "orderFill"]
    assert [(f["S"], f["o"], f["q"], f["X"], f["O"]) for f in fills] == [
        ("Ask", "MARKET", "0.5", "Filled", "LIQUIDATION_AUTOCLOSE"),  # Backpack's origin of a liquidation
    ]
    assert Decimal(fills[0]["n"]) == (Decimal(level) / 10 * Decimal("0.5") / 100).quantize(Decimal("0.01"), ROUND_UP)
    assert exchange.fetch_positions() == []
    trades = exchange.fetch_my_trades("BTC/USDC:USDC")
    assert [(t["side"], t["amount"]) for t in trades][-1] == ("sell", 0.5)


def test_public_trade_ticker_and_kline_streams(paper_key):
    """The venue's own fills as `trade` frames, the 24-hour `ticker` and the minute's `kline`."""
    url, key = paper_key
    minute = this_minutes_candle()
    socket = websocket_to(url)
    try:
        streams = [f"trade.{PERP}", f"ticker.{PERP}", f"kline.1m.{PERP}"]
        socket.send(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}))
        assert json.loads(socket.recv()) == {"id": 1, "result": None}
        bought = backpack(url, key).create_order("BTC/USDC:USDC", "market", "buy", 0.05)
        frames = frames_until(socket, lambda frame: frame["data"]["e"] == "trade" and frame["data"]["q"] == "0.02")
        seen = {frame["data"]["e"]: frame["data"] for frame in frames}
        while not {"ticker", "kline"} <= set(seen):
            frame = json.loads(socket.recv())
            seen.setdefault(frame["data"]["e"], frame["data"])
    finally:
        socket.close()
    trades = [f["data"] for f in frames if f["stream"] == f"trade.{PERP}"]
    assert [(t["p"], t["q"], t["b"], t["a"], t["m"]) for t in trades] == [
        ("118321", "0.03", bought["id"], "0", False),  # the bot bought from the book: the book was the maker
        ("118322", "0.02", bought["id"], "0", False),
    ]
    assert trades[0]["t"] < trades[1]["t"] and trades[0]["T"] <= trades[0]["E"]
    ticker = seen["ticker"]
    assert (ticker["s"], ticker["o"], ticker["h"], ticker["l"]) == (PERP, "118300", "118400", "118200")
    kline = seen["kline"]
    assert (kline["s"], kline["t"], kline["X"]) == (PERP, minute.replace(tzinfo=None).isoformat(), False)
    assert (kline["o"], kline["c"], kline["h"], kline["l"]) == ("118300", "118320.5", "118400", "118200")


def test_ccxt_pro_watches_the_public_ticker_trades_and_candles(paper_key):
    import asyncio

    url, key = paper_key
    this_minutes_candle()
    symbol = "BTC/USDC:USDC"

    async def watch() -> tuple[dict, list, list]:
        exchange = backpack_pro(url, key)
        try:
            await exchange.load_markets()
            ticker = await asyncio.wait_for(exchange.watch_ticker(symbol), 10)
            candles = await asyncio.wait_for(exchange.watch_ohlcv(symbol, "1m"), 10)
            watching = asyncio.create_task(exchange.watch_trades(symbol))
            await asyncio.sleep(1)
            await exchange.create_order(symbol, "market", "buy", 0.05)
            trades = await asyncio.wait_for(watching, 10)
            return ticker, candles, trades
        finally:
            await exchange.close()

    ticker, candles, trades = asyncio.run(watch())
    assert (ticker["symbol"], ticker["open"], ticker["high"], ticker["low"]) == (symbol, 118300.0, 118400.0, 118200.0)
    assert candles[-1][1:5] == [118300.0, 118400.0, 118200.0, 118320.5]  # open, high, low, close
    assert {(t["side"], t["price"], t["amount"]) for t in trades} <= {("buy", 118321.0, 0.03), ("buy", 118322.0, 0.02)}
    assert trades  # the bot's own market buy, seen as the market's trades


def test_ccxt_reads_the_venues_market_data(paper_key):
    """What a bot reads before it trades: the book, ticker, candles, public trades, funding rates."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal as D

    from app.extensions import db
    from app.models import Candle, FundingRate

    url, key = paper_key
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    for back, close in ((2, 1_182_000), (1, 1_183_000)):
        db.session.add(
            Candle(
                asset=PERP,
                bucket=minute - timedelta(minutes=back),
                open=close - 100,
                high=close + 100,
                low=close - 200,
                close=close,
                ticks=3,
            )
        )
    db.session.add(FundingRate(market=PERP, boundary=minute.replace(minute=0), rate=D("0.0000125"), mark=D(118_000)))
    db.session.commit()
    exchange = backpack(url, key)
    symbol = "BTC/USDC:USDC"
    exchange.load_markets()
    exchange.create_order(symbol, "market", "buy", 0.05)

    book = exchange.fetch_order_book(symbol, 5)
    assert book["bids"][0] == [118_320.0, 1.0] and book["asks"][0][0] == 118_321.0
    assert abs(book["timestamp"] / 1000 - time.time()) < 60  # Backpack's microseconds read as a time
    ticker = exchange.fetch_ticker(symbol)
    assert (ticker["open"], ticker["close"], ticker["baseVolume"]) == (118_190.0, 118_300.0, 0.05)
    candles = exchange.fetch_ohlcv(symbol, "1m", limit=5)
    assert [c[1:5] for c in candles[-2:]] == [
        [118_190.0, 118_210.0, 118_180.0, 118_200.0],
        [118_290.0, 118_310.0, 118_280.0, 118_300.0],
    ]
    assert candles[-1][0] == int((minute - timedelta(minutes=1)).timestamp() * 1000)
    trades = exchange.fetch_trades(symbol)
    # ccxt orders the trades of one millisecond by their ids as strings ("100" before "99"): unordered
    assert sorted((t["side"], t["price"], t["amount"]) for t in trades) == [
        ("buy", 118_321.0, 0.03),
        ("buy", 118_322.0, 0.02),
    ]
    (rate,) = exchange.fetch_funding_rate_history(symbol)
    assert (rate["fundingRate"], rate["timestamp"]) == (0.0000125, int(minute.replace(minute=0).timestamp() * 1000))
