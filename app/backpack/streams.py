"""Backpack's WebSocket at /backpack/ws, served by the web processes: Backpack's SUBSCRIBE /
UNSUBSCRIBE frames, the public streams (`app.backpack.public_streams`), and with a signature the
private `account.orderUpdate[.<symbol>]` and `account.positionUpdate[.<symbol>]` of the key's
netting account, fed from the process's hub (the same Redis events as the SSE streams).

An order's event (`core.net_events.NetOrderChanged`, the order, its new fills and the position as
committed) becomes Backpack's frames without a read: `orderAccepted` (or `triggerPlaced`) the
first time the socket hears of the order, an `orderFill` per fill, then `orderCancelled` /
`orderExpired`; a fill's position change a `positionOpened` / `Adjusted` / `Closed`. A
subscription the service does not simulate but clients send by default (`account.rfqUpdate`) is
accepted and stays silent.
"""

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import request
from simple_websocket import ConnectionClosed

from app.backpack import public_streams, shapes
from app.backpack.auth import SEEN_SIGNATURE_KEY, UNKNOWN_KEY, find_key
from app.backpack.errors import Code
from app.extensions import db, redis_client
from app.hub import CLOSED, Event, Listener, process_hub
from app.netting import service as netting
from core import signing
from core.book import notional
from core.enums import NetOrderStatus
from core.net_events import FillState, NetOrderChanged, PublicTrades
from core.signing import SigningError

log = logging.getLogger(__name__)

CLIENT = "client"  # an Event of this kind carries a frame the client sent
SILENT = ("account.rfqUpdate",)
PRIVATE = ("account.orderUpdate", "account.positionUpdate")
IDLE_WAIT_S = 30.0  # how long a socket that follows no timed stream waits for an event at most
ORDERS_REMEMBERED = 4096  # per socket: the orders it has announced (orderAccepted) to its client


@dataclass
class Connection:
    """One socket: its subscriptions, its account once a signed subscribe named one, and what it
    has told the client about orders and positions."""

    ws: object
    write: Callable[[str], None]  # sends one text frame
    streams: set[str] = field(default_factory=set)
    account_id: int | None = None
    announced: OrderedDict[str, None] = field(default_factory=OrderedDict)  # order ids, oldest first
    positions: dict[str, int] = field(default_factory=dict)  # symbol -> quantity the client knows

    def send(self, streams: list[str], data: dict) -> None:
        for stream in streams:
            self.write(public_streams.encode(stream, data))

    def wants(self, kind: str, symbol: str) -> list[str]:
        """The streams this socket subscribed that carry `kind` for `symbol` (the market's, the whole kind's)."""
        return [name for name in (kind, f"{kind}.{symbol}") if name in self.streams]

    def listener(self) -> Listener:
        """What the hub should send this socket: quotes once it follows a bookTicker, its
        account's events once signed, the markets' trades once it follows one."""
        trades = any(name.startswith("trade.") for name in self.streams)
        return process_hub().listen(account=self.account_id, prices=self.follows_prices(), trades=trades)

    def follows_prices(self) -> bool:
        return any(name.startswith("bookTicker") for name in self.streams)

    def heard_by(self, listener: Listener) -> bool:
        return listener.account == self.account_id and listener.trades == any(
            name.startswith("trade.") for name in self.streams
        )


def serve(ws) -> None:
    """A socket's life: one loop waits on a single queue, where the hub puts the streams' events
    and a reader (a greenlet under gevent) puts the client's frames, so an event is sent the
    moment it arrives; depth looks 10 times a second, marks, tickers and klines once a second."""
    connection = Connection(ws, _writer(ws))
    current = {"listener": connection.listener()}

    def read() -> None:
        try:
            while True:
                message = ws.receive()  # first: the listener may change while it waits
                current["listener"].events.put(Event(CLIENT, message))
        except ConnectionClosed:
            current["listener"].events.put(CLOSED)

    threading.Thread(target=read, name="backpack-socket-reader", daemon=True).start()
    # the timed streams' next turns: a socket that follows none of them is woken only by events
    timers = {public_streams.depth: public_streams.DEPTH_EVERY_S, public_streams.every_second: 1.0}
    due = dict.fromkeys(timers, time.monotonic())
    try:
        while True:
            waiting = [due[timer] for timer in timers if public_streams.follows(connection.streams, timer)]
            timeout = max(0.0, min(waiting) - time.monotonic()) if waiting else IDLE_WAIT_S
            event = current["listener"].get(timeout=timeout)
            if event is CLOSED:
                return
            if event is not None and event.kind == CLIENT:
                _handle(connection, event.data)
                if not connection.heard_by(current["listener"]):
                    process_hub().leave(current["listener"])
                    current["listener"] = connection.listener()
                process_hub().follow_prices(current["listener"], connection.follows_prices())
            elif event is not None:
                _deliver(connection, event)
            for timer, every in timers.items():
                if time.monotonic() >= due[timer]:
                    due[timer] = time.monotonic() + every
                    timer(connection.streams, connection.write)
    except ConnectionClosed:
        return
    finally:
        process_hub().leave(current["listener"])
        db.session.remove()


def _writer(ws) -> Callable[[str], None]:
    """How this socket sends a frame: a shared frame's bytes as they are (framed once per
    process), unless the client asked for compression, which each socket does with its own context."""
    if "permessage-deflate" in request.headers.get("Sec-WebSocket-Extensions", "").lower():
        return ws.send

    def write(text: str) -> None:
        if not ws.connected:
            raise ConnectionClosed()
        try:
            ws.sock.sendall(public_streams.framed(text))
        except OSError as error:
            raise ConnectionClosed() from error

    return write


# Backpack answers a bad subscribe with a numeric code (ccxt quotes 4006 "Invalid stream"); refused
# credentials get 4001 here, whose number Backpack's public material does not show.
SOCKET_CODES = {Code.UNAUTHORIZED: 4001, Code.INVALID_SIGNATURE: 4001}
INVALID_STREAM = 4006
INVALID_DEPTH_WINDOW = 4008  # Backpack's answer to a depth window it does not aggregate ([PROBE-WS])


def _reply(connection: Connection, request_id, error: tuple[Code, str] | None = None) -> None:
    if error is not None:
        code = SOCKET_CODES.get(error[0], INVALID_STREAM)
        body = {"id": request_id, "error": {"code": code, "message": error[1]}}
    else:
        body = {"id": request_id, "result": None}
    connection.write(json.dumps(body, separators=(",", ":")))


def _handle(connection: Connection, message) -> None:
    try:
        frame = json.loads(message)
    except (TypeError, ValueError):
        frame = None
    if not isinstance(frame, dict) or frame.get("method") not in ("SUBSCRIBE", "UNSUBSCRIBE"):
        _reply(connection, None, (Code.INVALID_CLIENT_REQUEST, "Send {method: SUBSCRIBE|UNSUBSCRIBE, params}"))
        return
    params = frame.get("params")
    if not isinstance(params, list) or not all(isinstance(name, str) for name in params):
        _reply(connection, frame.get("id"), (Code.INVALID_CLIENT_REQUEST, "params is a list of stream names"))
        return
    if frame["method"] == "UNSUBSCRIBE":
        connection.streams.difference_update(params)
        _reply(connection, frame.get("id"))
        return
    for name in params:
        window = public_streams.DEPTH_WINDOW.match(name)
        if window is not None and window.group(1) not in public_streams.DEPTH_WINDOWS_S:
            body = {
                "code": INVALID_DEPTH_WINDOW,
                "message": f"Invalid depth window {window.group(1)}: 200ms, 600ms or 1000ms",
            }
            connection.write(json.dumps({"id": frame.get("id"), "error": body}, separators=(",", ":")))
            return
    private = [name for name in params if name.startswith(PRIVATE)]
    if private and connection.account_id is None:
        account_id, error = _signed_account(frame.get("signature"))
        if error is not None:
            _reply(connection, frame.get("id"), error)
            return
        connection.account_id = account_id
    for name in params:
        if name.split(".", 1)[0] in public_streams.KINDS or name.startswith(PRIVATE) or name in SILENT:
            connection.streams.add(name)
    _reply(connection, frame.get("id"))
    if any(name.startswith("account.positionUpdate") for name in params):
        _snapshot(connection)


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
        found = find_key(key)
        if found is None:
            return None, (Code.UNAUTHORIZED, UNKNOWN_KEY)
        signing.verify(signing.public_key_bytes(key), headers, "subscribe", {})
    except SigningError as error:
        return None, (Code(error.code), error.message)
    seen = SEEN_SIGNATURE_KEY.format(signature=sig)
    if not redis_client.set(seen, 1, nx=True, px=headers.window_ms + signing.FUTURE_TOLERANCE_MS):
        return None, (Code.INVALID_SIGNATURE, "This signature was used already: sign each subscribe anew")
    return found.account_id, None


def _deliver(connection: Connection, event) -> None:
    if event.kind == "price":
        public_streams.book_ticker(connection.streams, event.data, connection.write)
    elif isinstance(event.data, PublicTrades):
        public_streams.trades(connection.streams, event.data, connection.write)
    elif isinstance(event.data, NetOrderChanged) and event.data.account_id == connection.account_id:
        _order_frames(connection, event.data)


def _order_frames(connection: Connection, event: NetOrderChanged) -> None:
    """Backpack's frames for what the order's change did."""
    order, order_id = event.order, event.order_id
    view = netting.view_of(order, [])
    stream = connection.wants("account.orderUpdate", order.symbol)
    if stream:
        if order_id not in connection.announced:
            waiting = order.status == NetOrderStatus.TRIGGER_PENDING
            connection.send(stream, _order_frame("triggerPlaced" if waiting else "orderAccepted", view, "New"))
        # each fill's frame carries the order's executed quantity and quote as of that fill
        executed = order.executed_quantity - sum(fill.quantity for fill in event.fills)
        quoted = order.executed_quote - sum(
            notional(fill.price, fill.quantity, view["price_decimals"]) for fill in event.fills
        )
        for index, fill in enumerate(event.fills):
            last = index == len(event.fills) - 1
            status = shapes.STATUS[NetOrderStatus(order.status)] if last else "PartiallyFilled"
            if status not in ("Filled", "PartiallyFilled"):
                status = "PartiallyFilled"
            executed += fill.quantity
            quoted += notional(fill.price, fill.quantity, view["price_decimals"])
            frame = _order_frame("orderFill", view, status, fill)
            frame |= {"z": shapes.quantity(executed, view["quantity_decimals"]), "Z": shapes.usd(quoted)}
            connection.send(stream, frame)
        ended = {NetOrderStatus.CANCELLED: "orderCancelled", NetOrderStatus.EXPIRED: "orderExpired"}
        if order.status in ended:
            connection.send(stream, _order_frame(ended[order.status], view, shapes.STATUS[order.status]))
    connection.announced[order_id] = None
    while len(connection.announced) > ORDERS_REMEMBERED:
        connection.announced.popitem(last=False)
    if event.fills and event.position is not None:
        _position_frame(connection, event)


def _order_frame(event: str, view: dict, status: str, fill: FillState | None = None) -> dict:
    shape = shapes.order(view)
    engine_at = fill.created_at if fill is not None else view["ended_at"] or view["created_at"]
    frame = {
        "e": event,
        "E": public_streams.micros(),
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
        frame |= {
            "t": fill.id,
            "l": shapes.quantity(fill.quantity, view["quantity_decimals"]),
            "L": shapes.plain(fill.price, view["price_decimals"]),
            "m": fill.maker,
            "n": shapes.usd(fill.fee),
            "N": "USDC",
        }
    return {key: value for key, value in frame.items() if value is not None}


def _position_shape(view: dict, event: str | None) -> dict:
    prices, quantities = view["price_decimals"], view["quantity_decimals"]
    now = public_streams.micros()
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


def _position_frame(connection: Connection, event: NetOrderChanged) -> None:
    symbol = event.order.symbol
    stream = connection.wants("account.positionUpdate", symbol)
    if not stream:
        return
    before = connection.positions.get(symbol, 0)
    view = netting.position_view(event.position) if event.position.quantity else None
    if view is None:
        if before:
            now = public_streams.micros()
            connection.send(stream, {"e": "positionClosed", "E": now, "s": symbol, "q": "0", "Q": "0"})
        connection.positions[symbol] = 0
        return
    connection.send(stream, _position_shape(view, "positionOpened" if not before else "positionAdjusted"))
    connection.positions[symbol] = view["net_quantity"]
