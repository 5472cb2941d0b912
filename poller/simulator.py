"""A local Backpack-protocol simulator, for offline runs and tests (`python -m poller.simulator`).

Speaks the public WebSocket protocol of ../shared/backpack-protocol.md: SUBSCRIBE/UNSUBSCRIBE
with no acknowledgement, 4002/4006/4008 error frames, silence for unknown symbols, the
`{"data": ..., "stream": ...}` envelope with sorted keys, bookTicker and trade frames with a
per-market update id, protocol pings. Prices follow a seeded random walk or a replay file
(JSON lines of `{"s": market, "b": bid, "a": ask}`), and connections can be dropped on purpose.

Each market keeps an L2 book around its price: every tick sends a realtime `depth` delta (absolute
sizes, zero deletes, `U == u`) and a `bookTicker` of the same book with the same update id.
`skip_updates` injects a gap in a market's update ids, as a lost delta would.

Its markets are `poller.simulated_markets`: spot and perpetual, as Backpack lists them. A market
costs work only while someone subscribes to it; perpetuals send a `markPrice` frame every second
(mark, index, estimated funding rate, next funding time on the funding interval's boundary).

The same port answers Backpack's public REST where the service uses it: `GET /api/v1/markets`,
`/market`, `/assets`, `/markPrices`, `/depth` (both sides ascending, `lastUpdateId` a string,
`limit` one of the documented strings), `/klines` (seconds; `"YYYY-MM-DD HH:MM:SS"` strings,
deterministic candles), `/status`, `/ping` and `/time`.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import logging
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from poller.simulated_markets import LISTINGS, Listing, assets_json, mark_json, market_json

log = logging.getLogger(__name__)

STREAM_TYPES = {"bookTicker", "trade", "depth", "ticker", "markPrice", "kline"}
BOOK_LEVELS = 60  # a side
DEPTH_LIMITS = {"5", "10", "20", "50", "100", "500", "1000"}
DEPTH_WINDOWS = {"200ms", "600ms", "1000ms"}


@dataclass
class Market:
    symbol: str
    mid: Decimal
    tick: Decimal
    step: Decimal
    update_id: int = 0
    trade_id: int = 0
    bids: dict = field(default_factory=dict)  # price -> size, both Decimal
    asks: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)  # a price level keeps its size until it is touched
    gap: int = 0  # update ids to skip before the next frame (a lost delta)
    listing: Listing | None = None


def default_markets(listings: tuple[Listing, ...] = LISTINGS) -> dict[str, Market]:
    start = int(time.time() * 1000)  # ids keep increasing across simulator restarts
    return {
        listing.symbol: Market(
            listing.symbol,
            Decimal(listing.mid),
            Decimal(listing.tick),
            Decimal(listing.step),
            start,
            start,
            listing=listing,
        )
        for listing in listings
    }


def _quantize(value: Decimal, step: Decimal) -> str:
    return str(value.quantize(step, rounding=ROUND_DOWN))


async def _send(connection, text: str) -> None:
    """Send, ignoring a connection that closed meanwhile (as a server's fan-out would)."""
    with contextlib.suppress(ConnectionClosed):
        await connection.send(text)


def kline(market: Market, minute: int) -> dict:
    """A deterministic 1-minute candle of `market` starting at unix second `minute`."""
    base = market.mid * (1 + Decimal(str(round(math.sin(minute / 1800) * 0.01, 6))))
    prices = [base * (1 + Decimal(str(round(math.sin(minute / 60 + k) * 0.0005, 6)))) for k in range(4)]

    def when(seconds: int) -> str:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")

    return {
        "start": when(minute),
        "end": when(minute + 60),
        "open": _quantize(prices[0], market.tick),
        "high": _quantize(max(prices), market.tick),
        "low": _quantize(min(prices), market.tick),
        "close": _quantize(prices[3], market.tick),
        "volume": "1.00",
        "quoteVolume": _quantize(base, market.tick),
        "trades": str(minute % 50 + 1),
    }


def _json(connection, status: HTTPStatus, body):
    response = connection.respond(status, json.dumps(body))
    response.headers["Content-Type"] = "application/json"
    return response


def encode_text_frames(texts: list[str]) -> bytes:
    """Unmasked, uncompressed WebSocket text frames (RFC 6455 §5.2), as a server sends them."""
    encoded = bytearray()
    for text in texts:
        payload = text.encode()
        size = len(payload)
        if size < 126:
            encoded += bytes((0x81, size))
        elif size < 1 << 16:
            encoded += bytes((0x81, 126)) + size.to_bytes(2, "big")
        else:
            encoded += bytes((0x81, 127)) + size.to_bytes(8, "big")
        encoded += payload
    return bytes(encoded)


def frame(stream: str, data: dict) -> str:
    return json.dumps({"data": data, "stream": stream}, sort_keys=True, separators=(",", ":"))


class Simulator:
    """The server. `start()` runs it on a background thread; the controls are thread-safe."""

    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        seed=1,
        interval_s=0.1,
        ping_interval_s=60.0,
        replay: list[dict] | None = None,
        funding_interval_s: int = 3600,
        listings: tuple[Listing, ...] = LISTINGS,
    ):
        self.host, self.port = host, port
        self.funding_interval_s = funding_interval_s
        self.rng = random.Random(seed)
        self.interval_s = interval_s
        self.ping_interval_s = ping_interval_s
        self.markets = default_markets(listings)
        self.replay = itertools.cycle(replay) if replay else None
        self.connections: set = set()
        self.subscriptions: dict = {}
        self.silent = False  # keep sockets open but send nothing (a half-open connection)
        self.frames_sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Future | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # controls, callable from any thread
    def start(self) -> "Simulator":
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve()), daemon=True, name="simulator")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("simulator did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        if self._thread:
            self._thread.join(5)

    def drop_connections(self) -> None:
        """Abort every connection without a close frame, as a network failure would."""

        def abort():
            for connection in list(self.connections):
                connection.transport.abort()

        self._loop.call_soon_threadsafe(abort)

    def close_connections(self, code: int = 1001) -> None:
        """Send every client a Close frame, as Backpack does before a server shuts down."""

        def close():
            for connection in list(self.connections):
                self._spawn(connection.close(code, "server shutting down"))

        self._loop.call_soon_threadsafe(close)

    def set_quote(self, symbol: str, bid: str, ask: str) -> None:
        """Move a market's mid so the next frames quote around bid/ask."""
        market = self.markets[symbol]
        market.mid = (Decimal(bid) + Decimal(ask)) / 2

    def broadcast_raw(self, *texts: str) -> concurrent.futures.Future:
        """Send `texts` as they are, back to back, to every connection (malformed frames, bursts);
        the future is done once they are written."""

        async def send():
            for connection in list(self.connections):
                for text in texts:
                    await _send(connection, text)

        return asyncio.run_coroutine_threadsafe(send(), self._loop)

    def broadcast_encoded(self, frames: bytes) -> None:
        """Write WebSocket frames already encoded (`encode_text_frames`) straight to every
        connection's transport: the wire a server sends, without the library's cost per message
        (benches feeding thousands of frames a second)."""

        def write():
            for connection in list(self.connections):
                connection.transport.write(frames)

        self._loop.call_soon_threadsafe(write)

    def _spawn(self, coroutine) -> None:
        """Run `coroutine` on the loop, holding a reference until it is done (the loop keeps only weak ones)."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # protocol
    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        # Backpack closes a client that has not answered a ping in time (60 s / 120 s on the wire).
        async with serve(
            self._handle,
            self.host,
            self.port,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_interval_s * 2,
            close_timeout=self.ping_interval_s,
            compression=None,
            process_request=self._rest,
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            ticker = asyncio.create_task(self._tick())
            self._ready.set()
            await self._stop
            ticker.cancel()

    def _rest(self, connection, request):
        """Answer plain HTTP requests as Backpack's REST API; let WebSocket upgrades through."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        url = urlsplit(request.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if url.path == "/api/v1/klines":
            return self._klines(connection, query)
        if url.path == "/api/v1/depth":
            return self._depth(connection, query)
        if url.path in ("/api/v1/markets", "/api/v1/market", "/api/v1/assets", "/api/v1/markPrices"):
            return self._catalog(connection, url.path, parse_qs(url.query))
        if url.path == "/api/v1/status":
            return _json(connection, HTTPStatus.OK, {"status": "Ok", "message": None})
        if url.path in ("/api/v1/ping", "/api/v1/time"):
            text = "pong" if url.path.endswith("ping") else str(int(time.time() * 1000))
            return connection.respond(HTTPStatus.OK, text)
        return _json(connection, HTTPStatus.NOT_FOUND, {"code": "RESOURCE_NOT_FOUND", "message": "Not Found"})

    def _catalog(self, connection, path: str, query: dict[str, list[str]]):
        if path == "/api/v1/assets":
            return _json(connection, HTTPStatus.OK, assets_json())
        listed = [market.listing for market in self.markets.values() if market.listing is not None]
        if path == "/api/v1/market":
            found = [listing for listing in listed if [listing.symbol] == query.get("symbol")]
            if not found:
                error = {"code": "INVALID_CLIENT_REQUEST", "message": "Invalid market symbol"}
                return _json(connection, HTTPStatus.BAD_REQUEST, error)
            return _json(connection, HTTPStatus.OK, market_json(found[0]))
        if path == "/api/v1/markPrices":
            symbols = set(query.get("symbol", [])) or {listing.symbol for listing in listed}
            perps = [listing.symbol for listing in listed if listing.perp and listing.symbol in symbols]
            return _json(connection, HTTPStatus.OK, [self.mark(self.markets[symbol]) for symbol in sorted(perps)])
        types = set(query.get("marketType", [])) or {"SPOT", "PERP"}
        markets = [market_json(listing) for listing in listed]
        return _json(connection, HTTPStatus.OK, [market for market in markets if market["marketType"] in types])

    def next_funding_ms(self) -> int:
        interval_ms = self.funding_interval_s * 1000
        return (int(time.time() * 1000) // interval_ms + 1) * interval_ms

    def mark(self, market: Market) -> dict:
        """The perp's mark (its mid on the tick), an index a hair away and a small funding rate."""
        mark = market.mid.quantize(market.tick)
        index = (market.mid * Decimal("0.9998")).quantize(market.tick)
        rate = "0.0000125" if mark >= index else "-0.0000125"
        return mark_json(market.symbol, mark, index, rate, self.next_funding_ms())

    def _depth(self, connection, query: dict):
        market = self.markets.get(query.get("symbol", ""))
        if market is None:
            error = {"code": "INVALID_CLIENT_REQUEST", "message": "Invalid market symbol"}
            return _json(connection, HTTPStatus.BAD_REQUEST, error)
        limit = query.get("limit", "1000")
        if limit not in DEPTH_LIMITS:
            return connection.respond(HTTPStatus.BAD_REQUEST, "failed to parse parameter `limit`")
        if not market.bids:  # a market that never ticked yet: build its book now
            self._move_book(market)
        return _json(connection, HTTPStatus.OK, self.depth_snapshot(market, int(limit)))

    def _klines(self, connection, query: dict):
        market = self.markets.get(query.get("symbol", ""))
        if market is None:
            error = {"code": "INVALID_CLIENT_REQUEST", "message": "Invalid market symbol"}
            return _json(connection, HTTPStatus.BAD_REQUEST, error)
        if query.get("interval") != "1m" or not query.get("startTime", "").isdecimal():
            return connection.respond(HTTPStatus.BAD_REQUEST, "failed to parse parameter `startTime`")
        start = int(query["startTime"]) // 60 * 60
        end = int(query["endTime"]) if query.get("endTime", "").isdecimal() else int(time.time())
        return _json(connection, HTTPStatus.OK, [kline(market, minute) for minute in range(start, end, 60)][:1000])

    async def _handle(self, connection) -> None:
        self.connections.add(connection)
        self.subscriptions[connection] = set()
        try:
            async for message in connection:
                reply = self._control(connection, message)
                if reply:
                    await connection.send(reply)
        except Exception:
            pass
        finally:
            self.connections.discard(connection)
            self.subscriptions.pop(connection, None)

    def _control(self, connection, message) -> str | None:
        try:
            request = json.loads(message)
            method, params = request["method"], request.get("params", [])
            if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return json.dumps({"id": None, "error": {"code": 4002, "message": "Parse error"}})
        for stream in params:
            kind, _, rest = str(stream).partition(".")
            if kind not in STREAM_TYPES:
                return json.dumps({"id": None, "error": {"code": 4006, "message": "Invalid stream"}})
            window = rest.split(".", 1)[0]  # depth.<window>.<symbol>; a symbol may have dots (AAPL.US_USDC_PERP)
            if kind == "depth" and "." in rest and re.fullmatch(r"\d+ms", window) and window not in DEPTH_WINDOWS:
                return json.dumps({"id": None, "error": {"code": 4008, "message": "Invalid depth window"}})
        streams = self.subscriptions[connection]
        (streams.update if method == "SUBSCRIBE" else streams.difference_update)(params)
        return None  # Backpack acknowledges nothing

    def _moved_markets(self) -> list[Market]:
        """Markets whose price moves this tick: the next replayed row's, or all on a random walk."""
        if self.replay is not None:
            row = next(self.replay)
            market = self.markets[row["s"]]
            market.mid = (Decimal(str(row["b"])) + Decimal(str(row["a"]))) / 2
            return [market]
        for market in self.markets.values():
            market.mid *= Decimal(1) + Decimal(self.rng.gauss(0, 0.0005)).quantize(Decimal("0.0000001"))
        return list(self.markets.values())

    def skip_updates(self, symbol: str, count: int = 5) -> None:
        """The next frames of `symbol` jump `count` update ids: a client must resync its book."""
        self.markets[symbol].gap += count

    def _size(self, market: Market, price: Decimal) -> Decimal:
        if price not in market.sizes:
            market.sizes[price] = Decimal(str(round(self.rng.uniform(0.05, 3), 5))).quantize(market.step)
        return market.sizes[price]

    def _move_book(self, market: Market) -> tuple[list, list]:
        """Rebuild the book around the mid; returns the changed (price, size) levels of each side."""
        half_spread = market.tick * self.rng.randint(1, 3)
        best_bid = (market.mid - half_spread).quantize(market.tick, rounding=ROUND_DOWN)
        best_ask = max((market.mid + half_spread).quantize(market.tick, rounding=ROUND_CEILING), best_bid + market.tick)
        for _ in range(3):  # a few resting orders change size each tick
            side = self.rng.choice((-1, 1))
            price = (best_bid if side < 0 else best_ask) + side * market.tick * self.rng.randrange(BOOK_LEVELS)
            market.sizes[price] = Decimal(str(round(self.rng.uniform(0.05, 3), 5))).quantize(market.step)
        bids = {best_bid - k * market.tick: None for k in range(BOOK_LEVELS)}
        asks = {best_ask + k * market.tick: None for k in range(BOOK_LEVELS)}
        bids = {price: self._size(market, price) for price in bids if price > 0}
        asks = {price: self._size(market, price) for price in asks}
        changes = []
        for old, new in ((market.bids, bids), (market.asks, asks)):
            changes.append(
                [(p, new.get(p, Decimal(0))) for p in sorted(old.keys() | new.keys()) if old.get(p) != new.get(p)]
            )
        market.bids, market.asks = bids, asks
        if len(market.sizes) > 20 * BOOK_LEVELS:  # forget levels far from the price
            market.sizes = {p: q for p, q in market.sizes.items() if p in bids or p in asks}
        return changes[0], changes[1]

    def book_frames(self, market: Market) -> tuple[dict, dict]:
        """A `depth` delta and the `bookTicker` of the moved book, sharing one update id."""
        changed_bids, changed_asks = self._move_book(market)
        market.update_id += 1 + market.gap
        market.gap = 0
        now = time.time_ns() // 1000
        engine_time = now - self.rng.randint(200, 3000)

        def levels(changes):
            return [[_quantize(p, market.tick), _quantize(q, market.step)] for p, q in changes]

        depth = {
            "E": now,
            "T": engine_time,
            "U": market.update_id,
            "a": levels(changed_asks),
            "b": levels(changed_bids),
            "e": "depth",
            "s": market.symbol,
            "u": market.update_id,
        }
        best_bid, best_ask = max(market.bids), min(market.asks)
        ticker = {
            "A": _quantize(market.asks[best_ask], market.step),
            "B": _quantize(market.bids[best_bid], market.step),
            "E": now,
            "T": engine_time,
            "a": _quantize(best_ask, market.tick),
            "b": _quantize(best_bid, market.tick),
            "e": "bookTicker",
            "s": market.symbol,
            "u": market.update_id,
        }
        return depth, ticker

    def book_ticker(self, market: Market) -> dict:
        return self.book_frames(market)[1]

    def depth_snapshot(self, market: Market, limit: int) -> dict:
        """REST depth: both sides ascending (the best bid last), `lastUpdateId` as a string."""
        bids = sorted(market.bids.items())[-limit:]
        asks = sorted(market.asks.items())[:limit]

        def levels(side):
            return [[_quantize(p, market.tick), _quantize(q, market.step)] for p, q in side]

        return {
            "asks": levels(asks),
            "bids": levels(bids),
            "lastUpdateId": str(market.update_id),
            "timestamp": time.time_ns() // 1000,
        }

    def _trade(self, market: Market) -> dict:
        market.trade_id += 1
        now = time.time_ns() // 1000
        return {
            "E": now,
            "T": now // 1000 * 1000,
            "a": str(self.rng.randint(10**9, 10**10)),
            "b": str(self.rng.randint(10**9, 10**10)),
            "e": "trade",
            "m": self.rng.random() < 0.5,
            "p": _quantize(market.mid, market.tick),
            "q": _quantize(Decimal(self.rng.uniform(0.01, 2)), market.step),
            "s": market.symbol,
            "t": market.trade_id,
        }

    async def _tick(self) -> None:
        marked_at = 0.0
        while True:
            await asyncio.sleep(self.interval_s)
            if self.silent or not self.connections:
                continue
            subscribed = set().union(*self.subscriptions.values())
            if time.monotonic() - marked_at >= 1:  # Backpack sends every perp's mark once a second
                marked_at = time.monotonic()
                self._send_marks(subscribed)
            for market in self._moved_markets():
                streams = (f"depth.{market.symbol}", f"bookTicker.{market.symbol}", f"trade.{market.symbol}")
                if subscribed.isdisjoint(streams):
                    continue  # nobody listens: its book moves when someone asks for it
                depth, ticker = self.book_frames(market)
                frames = {
                    f"depth.{market.symbol}": frame(f"depth.{market.symbol}", depth),
                    f"bookTicker.{market.symbol}": frame(f"bookTicker.{market.symbol}", ticker),
                    f"trade.{market.symbol}": frame(f"trade.{market.symbol}", self._trade(market)),
                }
                for connection, streams in list(self.subscriptions.items()):
                    for stream in streams & frames.keys():
                        self.frames_sent += 1
                        self._spawn(_send(connection, frames[stream]))

    def _send_marks(self, subscribed: set[str]) -> None:
        for market in self.markets.values():
            stream = f"markPrice.{market.symbol}"
            if stream not in subscribed or market.listing is None or not market.listing.perp:
                continue
            mark = self.mark(market)
            now = time.time_ns() // 1000
            data = {"E": now, "T": now - 500, "e": "markPrice", "s": market.symbol, "p": mark["markPrice"]}
            data |= {"f": mark["fundingRate"], "i": mark["indexPrice"], "n": mark["nextFundingTimestamp"]}
            text = frame(stream, data)
            for connection, streams in list(self.subscriptions.items()):
                if stream in streams:
                    self.frames_sent += 1
                    self._spawn(_send(connection, text))


def main() -> None:
    parser = argparse.ArgumentParser(description="Local Backpack WebSocket simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between frames per market")
    parser.add_argument("--funding-interval", type=int, default=3600, help="seconds between funding boundaries")
    parser.add_argument("--replay", help="JSON-lines file of {s, b, a} quotes to play in a loop")
    parser.add_argument("--drop-every", type=float, default=0, help="drop all connections every N seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    replay = None
    if args.replay:
        with open(args.replay) as f:
            replay = [json.loads(line) for line in f if line.strip()]
    simulator = Simulator(
        args.host, args.port, args.seed, args.interval, replay=replay, funding_interval_s=args.funding_interval
    ).start()
    log.info("Backpack simulator on %s", simulator.url)
    try:
        while True:
            time.sleep(args.drop_every or 3600)
            if args.drop_every:
                log.info("dropping every connection")
                simulator.drop_connections()
    except KeyboardInterrupt:
        simulator.stop()


if __name__ == "__main__":
    main()
