"""Backpack's public streams on /backpack/ws, from the service's own data: `bookTicker` on each
quote, `depth` diffs from the poller's books, `markPrice`, `ticker` and `kline` once a second,
and `trade` for each fill of this venue's netting orders (the book the other side).

Every frame is built once per process and event (or second), then sent as the same text to every
socket that wants it (`SharedFrames`): 1,000 sockets cost one read and one encoding, not 1,000.
"""

import functools
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from app.backpack import market_data, shapes
from app.extensions import db, redis_client
from app.markets.service import asset_named
from core.assets import QUANTITY_DECIMALS
from core.book import BookStore
from core.marks import MarkStore
from core.net_events import PublicTrades

DEPTH_EVERY_S = 0.1  # the books the poller keeps are looked at this often for depth diffs
KINDS = ("bookTicker", "depth", "markPrice", "ticker", "kline", "trade")
EVERY_SECOND = ("markPrice", "ticker", "kline")


def micros() -> int:
    return int(time.time() * 1_000_000)


def encode(stream: str, data: dict) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


@functools.lru_cache(maxsize=1024)
def framed(text: str) -> bytes:
    """A text message as one unmasked WebSocket frame (RFC 6455 5.2, as a server sends it): a
    shared frame is framed once and written as these bytes to every socket."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


Built = TypeVar("Built")


class SharedFrames:
    """Public frames built once per process and key, kept for the latest KEPT keys."""

    KEPT = 1024

    def __init__(self) -> None:
        self.frames: OrderedDict[tuple, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple, build: Callable[[], Built]) -> Built:
        with self.lock:
            if key in self.frames:
                return self.frames[key]
        text = build()
        with self.lock:
            self.frames[key] = text
            while len(self.frames) > self.KEPT:
                self.frames.popitem(last=False)
        return text


shared = SharedFrames()


def wanted(streams: set[str], kind: str) -> list[str]:
    return sorted(name for name in streams if name.startswith(kind + "."))


def follows(streams: set[str], timer: Callable) -> bool:
    """Whether a socket with these subscriptions needs `timer` (`depth` or `every_second`) to run."""
    kinds = ("depth",) if timer is depth else EVERY_SECOND
    return any(name.split(".", 1)[0] in kinds for name in streams)


def every_second(streams: set[str], send: Callable[[str], None]) -> None:
    """Each subscribed `markPrice`, `ticker` and `kline` stream: this second's frame."""
    second = int(time.time())
    for kind in EVERY_SECOND:
        for name in wanted(streams, kind):
            rest = name.split(".", 1)[1]
            if kind == "kline":
                interval, _, symbol = rest.partition(".")
                for text in _kline_frames(interval, symbol, second):
                    send(text)
                continue
            build = _mark_frame if kind == "markPrice" else _ticker_frame
            text = shared.get((kind, rest, second), lambda build=build, rest=rest: build(rest))
            if text is not None:
                send(text)


def _mark_frame(symbol: str) -> str | None:
    mark = MarkStore(redis_client).read(symbol)
    if mark is None:
        return None
    frame = {
        "e": "markPrice",
        "E": micros(),
        "s": symbol,
        "p": str(mark.mark),
        "f": None if mark.funding_rate is None else str(mark.funding_rate),
        "i": None if mark.index is None else str(mark.index),
        "n": mark.next_funding_ms,
        "T": mark.time_us,
    }
    return encode(f"markPrice.{symbol}", {key: value for key, value in frame.items() if value is not None})


def _ticker_frame(symbol: str) -> str | None:
    asset = asset_named(symbol)
    try:
        data = market_data.stream_ticker(asset) if asset is not None and asset.perpetual else None
    finally:
        db.session.rollback()
    return None if data is None else encode(f"ticker.{symbol}", data)


# (interval, symbol) -> the kline data this process last built, to close it when the next one opens
_klines_built: dict[tuple[str, str], dict] = {}


def _kline_frames(interval: str, symbol: str, second: int) -> tuple[str, ...]:
    """This second's frames of the stream, the same for every socket of the process: the current
    kline, after the previous one as closed (`X`) if it was last built open."""
    return shared.get(("kline", interval, symbol, second), lambda: _built_kline_frames(interval, symbol, second))


def _built_kline_frames(interval: str, symbol: str, second: int) -> tuple[str, ...]:
    asset = asset_named(symbol)
    try:
        data = (
            market_data.stream_kline(asset, interval, second)
            if asset and interval in market_data.KLINE_INTERVALS
            else None
        )
    finally:
        db.session.rollback()
    if data is None:
        return ()
    stream = f"kline.{interval}.{symbol}"
    before = _klines_built.get((interval, symbol))
    _klines_built[(interval, symbol)] = data
    if before is None or before["t"] == data["t"] or before["X"]:
        return (encode(stream, data),)
    return encode(stream, {**before, "E": micros(), "X": True}), encode(stream, data)


# Backpack's aggregated depth streams, `depth.<window>.<symbol>`, by their window in seconds; the
# realtime `depth.<symbol>` is sent every DEPTH_EVERY_S here. Other windows Backpack refuses (4008).
DEPTH_WINDOWS_S = {"200ms": 0.2, "600ms": 0.6, "1000ms": 1.0}
DEPTH_WINDOW = re.compile(r"depth\.(\d+ms)\.")

# (window, symbol) -> the book (bids, asks as {price: quantity}, update id) the last depth frame
# of that stream brought this process's sockets up to
_books_sent: dict[tuple[str, str], tuple[dict, dict, int]] = {}


def depth_window(name: str) -> tuple[str, str]:
    """A depth stream's window ("" for realtime) and symbol (which may hold dots: AAPL.US_USDC_PERP)."""
    rest = name.split(".", 1)[1]
    window, _, symbol = rest.partition(".")
    return (window, symbol) if window in DEPTH_WINDOWS_S else ("", rest)


def depth(streams: set[str], send: Callable[[str], None]) -> None:
    """Each subscribed `depth.<symbol>` (and `depth.<window>.<symbol>`): Backpack's diff frame
    (levels changed since the book the stream's last frame left, a removed level at quantity 0;
    `U`..`u` the book updates it spans), built once per process and window. A client starts from
    `GET /api/v1/depth` and applies the frames past its `lastUpdateId`, as with Backpack."""
    for name in wanted(streams, "depth"):
        window, symbol = depth_window(name)
        turn = int(time.monotonic() / DEPTH_WINDOWS_S.get(window, DEPTH_EVERY_S))
        text = shared.get(("depth", window, symbol, turn), lambda n=name, w=window, s=symbol: _depth_frame(n, w, s))
        if text is not None:
            send(text)


def _depth_frame(name: str, window: str, symbol: str) -> str | None:
    asset = asset_named(symbol)
    book = BookStore(redis_client).read(asset.symbol, 10) if asset is not None else None
    if book is None:
        return None
    bids = {level.price: level.quantity for level in book.bids}
    asks = {level.price: level.quantity for level in book.asks}
    before = _books_sent.get((window, symbol))
    _books_sent[(window, symbol)] = (bids, asks, book.update_id)
    if before is None or before[2] == book.update_id:
        return None  # the first look sets the base; an unchanged book sends nothing

    def changed(now: dict, then: dict) -> list[list[str]]:
        prices = sorted({p for p in now if now[p] != then.get(p)} | {p for p in then if p not in now})
        return [[shapes.plain(p, asset.decimals), shapes.plain(now.get(p, 0), QUANTITY_DECIMALS)] for p in prices]

    now_us = micros()
    return encode(
        name,
        {
            "e": "depth",
            "E": now_us,
            "s": symbol,
            "a": changed(asks, before[1]),
            "b": changed(bids, before[0]),
            "U": before[2] + 1,
            "u": book.update_id,
            "T": now_us,
        },
    )


def book_ticker(streams: set[str], price: dict, send: Callable[[str], None]) -> None:
    """`bookTicker.<symbol>` (and the whole kind's stream) on each quote of the market."""
    asset = asset_named(price["asset"])
    if asset is None:
        return
    for stream in (name for name in ("bookTicker", f"bookTicker.{asset.market}") if name in streams):
        text = shared.get((stream, price["time"]), lambda stream=stream: _book_ticker_frame(stream, asset, price))
        send(text)


def _book_ticker_frame(stream: str, asset, price: dict) -> str:
    book = BookStore(redis_client).read(asset.symbol, 10)
    sizes = (book.asks[0].quantity, book.bids[0].quantity) if book is not None and book.asks and book.bids else (0, 0)
    return encode(
        stream,
        {
            "e": "bookTicker",
            "E": micros(),
            "s": asset.market,
            "a": shapes.plain(int(price["ask"]), asset.decimals),
            "A": shapes.plain(sizes[0], QUANTITY_DECIMALS),
            "b": shapes.plain(int(price["bid"]), asset.decimals),
            "B": shapes.plain(sizes[1], QUANTITY_DECIMALS),
            "u": int(price["time"]),
            "T": int(price["time"]),
        },
    )


def trades(streams: set[str], printed: PublicTrades, send: Callable[[str], None]) -> None:
    """`trade.<symbol>`: each fill of this venue's orders on the market, the book the other side."""
    stream = f"trade.{printed.symbol}"
    if stream not in streams:
        return
    asset = asset_named(printed.symbol)
    if asset is None:
        return
    for trade in printed.trades:
        send(shared.get(("trade", trade[0]), lambda trade=trade: _trade_frame(stream, asset, printed, trade)))


def _trade_frame(stream: str, asset, printed: PublicTrades, trade: tuple) -> str:
    fill_id, price, quantity, maker, moment = trade
    buying = printed.side == "buy"
    ours, book = str(printed.order_number), "0"  # the book's side has no order here
    return encode(
        stream,
        {
            "e": "trade",
            "E": micros(),
            "s": printed.symbol,
            "p": shapes.plain(price, asset.decimals),
            "q": shapes.plain(quantity, QUANTITY_DECIMALS),
            "b": ours if buying else book,
            "a": book if buying else ours,
            "t": fill_id,
            "T": int(moment.timestamp() * 1_000_000),
            "m": buying == maker,
        },
    )
