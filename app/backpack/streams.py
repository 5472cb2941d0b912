"""Backpack's WebSocket at /backpack/ws, served by the web processes: Backpack's SUBSCRIBE /
UNSUBSCRIBE frames, the public `bookTicker.<symbol>` streams, and with a signature the private
`account.orderUpdate[.<symbol>]` and `account.positionUpdate[.<symbol>]` of the key's netting
account, fed from the process's hub (the same Redis events as the SSE streams).

An order's event (`core.events.NetOrderChanged`) becomes Backpack's frames: `orderAccepted` (or
`triggerPlaced`) the first time the socket hears of it, an `orderFill` per fill it has not sent,
then `orderCancelled` / `orderExpired`; each changed position a `positionOpened` / `Adjusted` /
`Closed`. A subscription the service does not simulate but clients send by default
(`account.rfqUpdate`) is accepted and stays silent.
"""

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from simple_websocket import ConnectionClosed
from sqlalchemy import select

from app.backpack import shapes
from app.backpack.errors import Code
from app.extensions import db, redis_client
from app.hub import CLOSED, Event, process_hub
from app.markets.service import asset_named
from app.models import ApiKey, Fill, NetOrder
from app.netting import service as netting
from core import signing
from core.assets import QUANTITY_DECIMALS
from core.book import BookStore
from core.enums import NetOrderStatus
from core.events import NetOrderChanged
from core.marks import MarkStore
from core.signing import SigningError

log = logging.getLogger(__name__)

CLIENT = "client"  # an Event of this kind carries a frame the client sent
MARKS_EVERY_S = 1.0  # Backpack sends each markPrice stream once a second
DEPTH_EVERY_S = 0.1  # the books the poller keeps are looked at this often for depth diffs
SILENT = ("account.rfqUpdate",)
PRIVATE = ("account.orderUpdate", "account.positionUpdate")


def _micros() -> int:
    return int(time.time() * 1_000_000)


@dataclass
class Connection:
    """One socket: its subscriptions, its account once a signed subscribe named one, and what it
    has told the client about each order and position."""

    ws: object
    streams: set[str] = field(default_factory=set)
    account_id: int | None = None
    fills_sent: dict[str, int] = field(default_factory=dict)  # order id -> last fill id sent
    positions: dict[str, int] = field(default_factory=dict)  # symbol -> quantity the client knows

    def send(self, streams: list[str], data: dict) -> None:
        for stream in streams:
            self.ws.send(_encode(stream, data))

    def wants(self, kind: str, symbol: str) -> list[str]:
        """The streams this socket subscribed that carry `kind` for `symbol` (the market's, the whole kind's)."""
        return [name for name in (kind, f"{kind}.{symbol}") if name in self.streams]


def serve(ws) -> None:
    """A socket's life: one loop waits on a single queue, where the hub puts the streams' events
    and a reader (a greenlet under gevent) puts the client's frames, so an event is sent the
    moment it arrives; marks go out once a second."""
    connection = Connection(ws)
    current = {"listener": process_hub().listen(prices=True)}

    def read() -> None:
        try:
            while True:
                message = ws.receive()  # first: the listener may change while it waits
                current["listener"].events.put(Event(CLIENT, message))
        except ConnectionClosed:
            current["listener"].events.put(CLOSED)

    threading.Thread(target=read, name="backpack-socket-reader", daemon=True).start()
    marks_due = depth_due = time.monotonic()
    try:
        while True:
            event = current["listener"].get(timeout=max(0.0, min(marks_due, depth_due) - time.monotonic()))
            if event is CLOSED:
                return
            if event is not None and event.kind == CLIENT:
                current["listener"] = _handle(connection, event.data, current["listener"])
            elif event is not None:
                _deliver(connection, event)
            if time.monotonic() >= depth_due:
                depth_due = time.monotonic() + DEPTH_EVERY_S
                _depth(connection)
            if time.monotonic() >= marks_due:
                marks_due = time.monotonic() + MARKS_EVERY_S
                _marks(connection)
    except ConnectionClosed:
        return
    finally:
        process_hub().leave(current["listener"])
        db.session.remove()


# Backpack answers a bad subscribe with a numeric code (ccxt quotes 4006 "Invalid stream"); refused
# credentials get 4001 here, whose number Backpack's public material does not show.
SOCKET_CODES = {Code.UNAUTHORIZED: 4001, Code.INVALID_SIGNATURE: 4001}
INVALID_STREAM = 4006


def _reply(connection: Connection, request_id, error: tuple[Code, str] | None = None) -> None:
    if error is not None:
        code = SOCKET_CODES.get(error[0], INVALID_STREAM)
        body = {"id": request_id, "error": {"code": code, "message": error[1]}}
    else:
        body = {"id": request_id, "result": None}
    connection.ws.send(json.dumps(body, separators=(",", ":")))


def _handle(connection: Connection, message, listener):
    try:
        frame = json.loads(message)
    except (TypeError, ValueError):
        frame = None
    if not isinstance(frame, dict) or frame.get("method") not in ("SUBSCRIBE", "UNSUBSCRIBE"):
        _reply(connection, None, (Code.INVALID_CLIENT_REQUEST, "Send {method: SUBSCRIBE|UNSUBSCRIBE, params}"))
        return listener
    params = frame.get("params")
    if not isinstance(params, list) or not all(isinstance(name, str) for name in params):
        _reply(connection, frame.get("id"), (Code.INVALID_CLIENT_REQUEST, "params is a list of stream names"))
        return listener
    if frame["method"] == "UNSUBSCRIBE":
        connection.streams.difference_update(params)
        _reply(connection, frame.get("id"))
        return listener
    private = [name for name in params if name.startswith(PRIVATE)]
    if private and connection.account_id is None:
        account_id, error = _signed_account(frame.get("signature"))
        if error is not None:
            _reply(connection, frame.get("id"), error)
            return listener
        connection.account_id = account_id
        hub = process_hub()
        hub.leave(listener)
        listener = hub.listen(account=account_id, prices=True)
    for name in params:
        if name.startswith(("bookTicker.", "markPrice.", "depth.")) or name.startswith(PRIVATE) or name in SILENT:
            connection.streams.add(name)
    _reply(connection, frame.get("id"))
    if any(name.startswith("account.positionUpdate") for name in params):
        _snapshot(connection)
    return listener


def _signed_account(signature) -> tuple[int | None, tuple[Code, str] | None]:
    """The netting account of a subscribe's `signature` [key, signature, timestamp, window]."""
    if not isinstance(signature, list) or len(signature) != 4 or not all(isinstance(s, str) for s in signature):
        return None, (
            Code.INVALID_CLIENT_REQUEST,
            "A private stream needs signature [key, signature, timestamp, window]",
        )
    key, sig, timestamp, window = signature
    try:
        headers = signing.parse_headers(
            {"X-API-Key": key, "X-Signature": sig, "X-Timestamp": timestamp, "X-Window": window}
        )
        signing.check_time(headers, int(time.time() * 1000))
        account_id = db.session.scalar(
            select(ApiKey.account_id).where(ApiKey.public_key == key, ApiKey.revoked_at.is_(None))
        )
        db.session.rollback()
        if account_id is None:
            return None, (
                Code.UNAUTHORIZED,
                "Unknown API key: this is a paper-trading venue, never send a real Backpack key",
            )
        signing.verify(signing.public_key_bytes(key), headers, "subscribe", {})
    except SigningError as error:
        return None, (Code(error.code), error.message)
    if not redis_client.set(
        f"backpack:signature:{sig}", 1, nx=True, px=headers.window_ms + signing.FUTURE_TOLERANCE_MS
    ):
        return None, (Code.INVALID_SIGNATURE, "This signature was used already: sign each subscribe anew")
    return account_id, None


def _deliver(connection: Connection, event) -> None:
    if event.kind == "price":
        _book_ticker(connection, event.data)
    elif isinstance(event.data, NetOrderChanged) and event.data.account_id == connection.account_id:
        _order_frames(connection, event.data.order_id)


class SharedFrames:
    """Public frames built once per process and event, then sent as the same text to every
    socket that wants them: a price event or a second's marks cost one read and one encoding,
    not one per socket. Bounded: the latest KEPT."""

    KEPT = 256

    def __init__(self) -> None:
        self.frames: OrderedDict[tuple, str | None] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple, build: Callable[[], str | None]) -> str | None:
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


def _encode(stream: str, data: dict) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def _marks(connection: Connection) -> None:
    """Each subscribed `markPrice.<symbol>`: the mark the poller keeps, as Backpack's frame."""
    symbols = sorted(name.split(".", 1)[1] for name in connection.streams if name.startswith("markPrice."))
    for symbol in symbols:
        text = shared.get(("markPrice", symbol, int(time.monotonic())), lambda symbol=symbol: _mark_frame(symbol))
        if text is not None:
            connection.ws.send(text)


def _mark_frame(symbol: str) -> str | None:
    mark = MarkStore(redis_client).read(symbol)
    if mark is None:
        return None
    frame = {
        "e": "markPrice",
        "E": _micros(),
        "s": symbol,
        "p": str(mark.mark),
        "f": None if mark.funding_rate is None else str(mark.funding_rate),
        "i": None if mark.index is None else str(mark.index),
        "n": mark.next_funding_ms,
        "T": mark.time_us,
    }
    return _encode(f"markPrice.{symbol}", {key: value for key, value in frame.items() if value is not None})


# symbol -> the book (bids, asks as {price: quantity}, update id) the last depth frame brought
# this process's sockets up to
_books_sent: dict[str, tuple[dict, dict, int]] = {}


def _depth(connection: Connection) -> None:
    """Each subscribed `depth.<symbol>`: Backpack's diff frame (levels changed since the book the
    last frame left, a removed level at quantity 0; `U`..`u` the book updates it spans), built
    once per process and tick. A client starts from `GET /api/v1/depth` and applies the frames
    past its `lastUpdateId`, as with Backpack."""
    for name in sorted(n for n in connection.streams if n.startswith("depth.")):
        symbol = name.split(".", 1)[1]
        text = shared.get(("depth", symbol, int(time.monotonic() / DEPTH_EVERY_S)), lambda s=symbol: _depth_frame(s))
        if text is not None:
            connection.ws.send(text)


def _depth_frame(symbol: str) -> str | None:
    asset = asset_named(symbol)
    book = BookStore(redis_client).read(asset.symbol, 10) if asset is not None else None
    if book is None:
        return None
    bids = {level.price: level.quantity for level in book.bids}
    asks = {level.price: level.quantity for level in book.asks}
    before = _books_sent.get(symbol)
    _books_sent[symbol] = (bids, asks, book.update_id)
    if before is None or before[2] == book.update_id:
        return None  # the first look sets the base; an unchanged book sends nothing

    def changed(now: dict, then: dict) -> list[list[str]]:
        prices = sorted({p for p in now if now[p] != then.get(p)} | {p for p in then if p not in now})
        return [
            [shapes.plain(p, asset.decimals), shapes.plain(now.get(p, 0), QUANTITY_DECIMALS) or "0"] for p in prices
        ]

    now_us = _micros()
    return _encode(
        f"depth.{symbol}",
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


def _book_ticker(connection: Connection, price: dict) -> None:
    asset = asset_named(price["asset"])
    symbol = asset.market if asset is not None else price["asset"]
    streams = connection.wants("bookTicker", symbol)
    if not streams or asset is None:
        return
    for stream in streams:
        text = shared.get((stream, price["time"]), lambda stream=stream: _ticker_frame(stream, symbol, asset, price))
        if text is not None:
            connection.ws.send(text)


def _ticker_frame(stream: str, symbol: str, asset, price: dict) -> str:
    book = BookStore(redis_client).read(asset.symbol, 10)
    sizes = (book.asks[0].quantity, book.bids[0].quantity) if book is not None and book.asks and book.bids else (0, 0)
    return _encode(
        stream,
        {
            "e": "bookTicker",
            "E": _micros(),
            "s": symbol,
            "a": shapes.plain(int(price["ask"]), asset.decimals),
            "A": shapes.plain(sizes[0], QUANTITY_DECIMALS) or "0",
            "b": shapes.plain(int(price["bid"]), asset.decimals),
            "B": shapes.plain(sizes[1], QUANTITY_DECIMALS) or "0",
            "u": int(price["time"]),
            "T": int(price["time"]),
        },
    )


def _order_frames(connection: Connection, order_id: str) -> None:
    """Backpack's frames for what changed in the order since this socket last told its client."""
    try:
        key = uuid.UUID(order_id)
    except ValueError:
        return
    order = db.session.get(NetOrder, key)
    if order is None:
        return
    view = netting.view(order)
    fills = list(
        db.session.scalars(
            select(Fill).where(Fill.order_id == key, Fill.id > connection.fills_sent.get(order_id, 0)).order_by(Fill.id)
        )
    )
    db.session.rollback()
    stream = connection.wants("account.orderUpdate", order.symbol)
    if stream:
        first = order_id not in connection.fills_sent
        if first:
            waiting = view["status"] == NetOrderStatus.TRIGGER_PENDING
            connection.send(stream, _order_frame("triggerPlaced" if waiting else "orderAccepted", view, "New"))
        for index, fill in enumerate(fills):
            last = index == len(fills) - 1
            status = shapes.STATUS[NetOrderStatus(view["status"])] if last else "PartiallyFilled"
            if status not in ("Filled", "PartiallyFilled"):
                status = "PartiallyFilled"
            connection.send(stream, _order_frame("orderFill", view, status, fill))
        ended = {NetOrderStatus.CANCELLED: "orderCancelled", NetOrderStatus.EXPIRED: "orderExpired"}
        if view["status"] in ended:
            connection.send(stream, _order_frame(ended[view["status"]], view, shapes.STATUS[view["status"]]))
    connection.fills_sent[order_id] = fills[-1].id if fills else connection.fills_sent.get(order_id, 0)
    if fills:
        _position_frame(connection, order.symbol)


def _order_frame(event: str, view: dict, status: str, fill: Fill | None = None) -> dict:
    shape = shapes.order(view)
    engine_at = fill.created_at if fill is not None else view["ended_at"] or view["created_at"]
    frame = {
        "e": event,
        "E": _micros(),
        "T": int(engine_at.timestamp() * 1_000_000),  # when the engine did it (Backpack's engine time)
        "s": view["symbol"],
        "c": view["client_id"],
        "S": shape["side"],
        "o": shape["orderType"].upper(),
        "f": shape["timeInForce"],
        "q": shape["quantity"],
        "Q": shape["quoteQuantity"],
        "p": shape.get("price"),
        "P": shape["triggerPrice"],
        "B": shape["triggerBy"],
        "r": view["reduce_only"],
        "y": view["post_only"],
        "V": "RejectTaker",
        "X": status,
        "i": shape["id"],
        "z": shape["executedQuantity"],
        "Z": shape["executedQuoteQuantity"],
        "O": "LIQUIDATION_AUTOCLOSE" if view["liquidation"] else "USER",
    }
    if fill is not None:
        quantities = view["quantity_decimals"]
        frame |= {
            "t": fill.id,
            "l": shapes.plain(fill.quantity // 10 ** (QUANTITY_DECIMALS - quantities), quantities),
            "L": shapes.plain(fill.price, view["price_decimals"]),
            "m": fill.maker,
            "n": shapes.usd(fill.fee),
            "N": "USDC",
        }
    return {key: value for key, value in frame.items() if value is not None}


def _position_shape(view: dict, event: str | None) -> dict:
    prices, quantities = view["price_decimals"], view["quantity_decimals"]
    now = _micros()
    frame = {
        "E": now,
        "T": now,
        "s": view["symbol"],
        "b": shapes.plain(view["entry_price"], prices),
        "B": shapes.plain(view["entry_price"], prices),
        "M": shapes.plain(view["mark_price"], prices),
        "q": shapes.plain(view["net_quantity"], quantities),
        "Q": shapes.plain(abs(view["net_quantity"]), quantities),
        "n": shapes.usd(view["notional"]),
        "p": shapes.usd(view["realized_pnl"]),
        "P": shapes.usd(view["unrealized_pnl"]),
        "l": "0",  # Backpack sends 0 since 2025-09-01
    }
    if event is not None:
        frame["e"] = event
    return {key: value for key, value in frame.items() if value is not None}


def _snapshot(connection: Connection) -> None:
    """On subscribe: each open position, without an `e` (as Backpack sends it)."""
    for view in netting.positions(connection.account_id):
        connection.positions[view["symbol"]] = view["net_quantity"]
        stream = connection.wants("account.positionUpdate", view["symbol"])
        if stream:
            connection.send(stream, _position_shape(view, None))
    db.session.rollback()


def _position_frame(connection: Connection, symbol: str) -> None:
    stream = connection.wants("account.positionUpdate", symbol)
    if not stream:
        return
    held = {view["symbol"]: view for view in netting.positions(connection.account_id)}
    db.session.rollback()
    before = connection.positions.get(symbol, 0)
    view = held.get(symbol)
    if view is None:
        if before:
            connection.send(stream, {"e": "positionClosed", "E": _micros(), "s": symbol, "q": "0", "Q": "0"})
        connection.positions[symbol] = 0
        return
    connection.send(stream, _position_shape(view, "positionOpened" if not before else "positionAdjusted"))
    connection.positions[symbol] = view["net_quantity"]
