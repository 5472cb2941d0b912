"""Server-Sent Events: prices for everyone, order and balance changes (and live PnL) per account.

Each stream holds no database connection while it waits: it reads what it needs when an event
arrives and closes its session at once, so hundreds of open streams share a small pool.
"""

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from app.balances.service import balances_body, balances_view
from app.extensions import db
from app.hub import CLOSED, Hub
from app.markets.service import is_perpetual, price_decimals
from app.models import Order, Position
from app.prices.service import latest_quotes, valuation
from app.trading.schemas import OrderSchema
from app.trading.service import with_valuation
from core import cross_margin, rules
from core.assets import USD_DECIMALS
from core.enums import OrderStatus
from core.events import FundingPaid, OrderChanged, RequestFailed
from core.prices import Quote

KEEPALIVE_S = 15
RECONNECT_MS = 2000
PNL_EVENTS_EVERY_S = 0.5

# built once: a schema's construction deep-copies its fields (per event, 6 % of the web's time)
ORDER_SCHEMA = OrderSchema()


def sse(event: str | None, data, event_id: str | int | None = None) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


def price_events(hub: Hub) -> Iterator[str]:
    listener = hub.listen()
    try:
        yield f"retry: {RECONNECT_MS}\n\n"
        fields = ("bid", "ask", "mid", "spread", "decimals", "time")
        snapshot = {asset: {k: q[k] for k in fields} for asset, q in latest_quotes().items()}
        yield sse("snapshot", snapshot, event_id=max((q["time"] for q in snapshot.values()), default=0))
        while (event := listener.get(timeout=KEEPALIVE_S)) is not CLOSED:
            if event is None:
                yield ": keep-alive\n\n"  # nothing for KEEPALIVE_S: proxies and browsers keep the stream
            else:
                yield sse("price", event.data, event_id=event.data["time"])
    finally:
        hub.leave(listener)


@dataclass(frozen=True)
class OpenPosition:
    order_id: str
    asset: str
    side: str
    open_price: int
    quantity: int
    margin: int

    def pnl(self, quote: Quote) -> int:
        closing = rules.close_at(
            self.side, self.open_price, self.quantity, self.margin, price_decimals(self.asset), quote.bid, quote.ask
        )
        return closing.pnl


@dataclass(frozen=True)
class NettingPosition:
    """A netting account's position on one market, valued at its mark like Backpack's."""

    asset: str
    quantity: int
    cost: int

    def pnl(self, quote: Quote) -> int:
        return cross_margin.Position(self.quantity, self.cost).unrealized(quote.bid, price_decimals(self.asset))


class AccountView:
    """What one account's stream knows: its balance, open positions and the latest quotes."""

    def __init__(self, account_id: int, quotes: dict[str, dict]):
        self.account_id = account_id
        self.quotes = {asset: _quote(data) for asset, data in quotes.items()}
        self.balance: dict = {}
        self.positions: dict[str, OpenPosition | NettingPosition] = {}

    def reload(self) -> None:
        self.balance = balances_view(self.account_id)
        rows = db.session.execute(
            select(Order).where(Order.account_id == self.account_id, Order.status == OrderStatus.OPEN)
        ).scalars()
        self.positions = {
            str(o.id): OpenPosition(str(o.id), o.asset, o.side, o.open_price, o.quantity, o.margin) for o in rows
        }
        netting_rows = db.session.scalars(
            select(Position).where(Position.account_id == self.account_id, Position.quantity != 0)
        )
        self.positions |= {row.symbol: NettingPosition(row.symbol, row.quantity, int(row.cost)) for row in netting_rows}
        db.session.close()

    def changed(self, event: OrderChanged) -> dict:
        """Take in what an order's event says (its state, the balance after it) without a read;
        the order's JSON, with its unrealized PnL at the latest fresh quote if it is open."""
        order = event.order
        self.balance = balances_body(event.balance.usd, event.balance.locked_margin)
        self.positions.pop(event.order_id, None)
        body = ORDER_SCHEMA.dump(order)
        if order.status == OrderStatus.OPEN:
            position = OpenPosition(
                event.order_id, order.asset, order.side, order.open_price, order.quantity, order.margin
            )
            self.positions[event.order_id] = position
            quote = self.price_of(order.asset)
            body["unrealizedPnl"] = position.pnl(quote) if quote is not None else None
        return body

    def price_of(self, asset: str, marks: dict | None = None) -> Quote | None:
        """What a position on `asset` is valued at: the stream's latest fresh quote, or a
        perpetual's fresh mark (read once per market into `marks`)."""
        if is_perpetual(asset):
            marks = {} if marks is None else marks
            if asset not in marks:
                marks[asset] = valuation(asset)
            return marks[asset]
        quote = self.quotes.get(asset)
        return quote if quote is not None and quote.is_fresh(current_app.config["PRICE_MAX_AGE_S"]) else None

    def order(self, order_id: str) -> dict | None:
        order = db.session.get(Order, uuid.UUID(order_id))
        body = ORDER_SCHEMA.dump(with_valuation([order])[0]) if order is not None else None
        db.session.close()
        return body

    def pnl(self) -> dict:
        """Unrealized PnL of every open position at the latest fresh quote (a perpetual's: at its
        fresh mark, read once per market), and the equity."""
        positions: dict[str, int | None] = {}
        marks: dict = {}
        for order_id, position in self.positions.items():
            quote = self.price_of(position.asset, marks)
            positions[order_id] = position.pnl(quote) if quote is not None else None
        unrealized = sum(value for value in positions.values() if value is not None)
        cash, locked = self.balance["USD"]["balance"], self.balance["lockedMargin"]["balance"]
        return {
            "positions": positions,
            "unrealizedPnl": unrealized,
            "equity": cash + locked + unrealized,
            "decimals": self.balance["USD"]["decimals"],
        }


def _quote(data: dict) -> Quote:
    return Quote(data["asset"], int(data["bid"]), int(data["ask"]), int(data["time"]))


def order_events(hub: Hub, account_id: int, expires_at: float) -> Iterator[str]:
    """The account's stream until `expires_at` (Unix seconds: its token's expiry). What one event
    brings (an order, the balance, the PnL) goes out as one write."""
    ends = time.monotonic() + (expires_at - time.time())
    listener = hub.listen(account=account_id)
    try:
        view = AccountView(account_id, latest_quotes())
        view.reload()
        yield f"retry: {RECONNECT_MS}\n\n" + sse("balance", view.balance) + sse("pnl", view.pnl())
        pnl_due, sent_pnl_at = False, time.monotonic()
        while True:
            wait = max(0.0, sent_pnl_at + PNL_EVENTS_EVERY_S - time.monotonic()) if pnl_due else KEEPALIVE_S
            event = listener.get(timeout=max(0.0, min(wait, ends - time.monotonic())))
            if event is CLOSED or time.monotonic() >= ends:
                return
            frames = []
            if event is None and not pnl_due:
                frames.append(": keep-alive\n\n")
            elif event is not None and isinstance(event.data, OrderChanged):
                frames += [sse("order", view.changed(event.data)), sse("balance", view.balance)]
                pnl_due, sent_pnl_at = True, 0.0  # at once: the equity changed with the balance
            elif event is not None and isinstance(event.data, FundingPaid):
                view.reload()
                funding = {"market": event.data.market, "amount": event.data.amount, "decimals": USD_DECIMALS}
                frames += [sse("funding", funding), sse("balance", view.balance)]
                pnl_due, sent_pnl_at = True, 0.0
            elif event is not None and event.kind == "account":  # a failed request, a reset: read it all
                order = view.order(event.data.order_id) if isinstance(event.data, RequestFailed) else None
                view.reload()
                if order is not None:
                    frames.append(sse("order", order))
                frames.append(sse("balance", view.balance))
                pnl_due, sent_pnl_at = True, 0.0  # at once: the equity changed with the balance
            elif event is not None and event.kind == "price":
                view.quotes[event.data["asset"]] = _quote(event.data)
                pnl_due = pnl_due or any(p.asset == event.data["asset"] for p in view.positions.values())
            if pnl_due and time.monotonic() - sent_pnl_at >= PNL_EVENTS_EVERY_S:
                frames.append(sse("pnl", view.pnl()))
                pnl_due, sent_pnl_at = False, time.monotonic()
            if frames:
                yield "".join(frames)
    finally:
        hub.leave(listener)
