"""A netting account's event (`NetOrderChanged`) and the committed states it carries: the
order, the fills the change made, the position after it. One of `core.events`' kinds."""

import json
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar


@dataclass(frozen=True)
class NetOrderState:
    """A netting order's row as the engine committed it (every column of `app.models.NetOrder`, a
    test keeps them equal): the waiting request and Backpack's sockets read nothing again."""

    id: uuid.UUID
    number: int
    account_id: int
    symbol: str
    side: str
    order_type: str
    status: str
    quantity: int | None
    quote_quantity: int | None
    price: int | None
    time_in_force: str
    post_only: bool
    reduce_only: bool
    client_id: int | None
    executed_quantity: int
    executed_quote: int
    fee: int
    liquidation: bool
    reject_reason: str | None
    book_update: int | None
    trigger_price: int | None
    trigger_by: str | None
    trigger_above: bool | None
    triggered_at: datetime | None
    take_profit: int | None
    stop_loss: int | None
    related_order_id: uuid.UUID | None
    created_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> "NetOrderState":
        return cls(**{name: getattr(row, name) for name in _NET_ORDER_FIELDS})

    def to_json(self) -> dict[str, Any]:
        return _json_values(self, _NET_ORDER_FIELDS)

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> "NetOrderState":
        return cls(**_parsed_values(state, _NET_ORDER_FIELDS))


_NET_ORDER_FIELDS = tuple(f.name for f in fields(NetOrderState))


def _json_values(state: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """A state's fields as JSON values: UUIDs and datetimes as their strings."""
    values = {}
    for name in names:
        value = getattr(state, name)
        values[name] = (
            str(value)
            if isinstance(value, uuid.UUID)
            else (value.isoformat() if isinstance(value, datetime) else value)
        )
    return values


def _parsed_values(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    parsed = {name: values[name] for name in names}
    for name in ("id", "related_order_id"):
        if parsed.get(name) is not None:
            parsed[name] = uuid.UUID(parsed[name])
    for name in ("triggered_at", "created_at", "ended_at", "opened_at"):
        if parsed.get(name) is not None:
            parsed[name] = datetime.fromisoformat(parsed[name])
    return parsed


@dataclass(frozen=True)
class FillState:
    """One fill the change made (a row of `app.models.Fill`; its order says the rest)."""

    id: int
    price: int
    quantity: int
    fee: int
    realized_pnl: int
    maker: bool
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> "FillState":
        return cls(row.id, row.price, row.quantity, row.fee, row.realized_pnl, row.maker, row.created_at)

    def to_json(self) -> list[Any]:
        return [
            self.id,
            self.price,
            self.quantity,
            self.fee,
            self.realized_pnl,
            self.maker,
            self.created_at.isoformat(),
        ]

    @classmethod
    def from_json(cls, values: list[Any]) -> "FillState":
        fill_id, price, quantity, fee, realized, maker, created_at = values
        return cls(fill_id, price, quantity, fee, realized, maker, datetime.fromisoformat(created_at))


@dataclass(frozen=True)
class PositionState:
    """The account's position on the order's market after the change (`app.models.Position`)."""

    symbol: str
    quantity: int
    cost: Decimal
    realized_pnl: int
    opened_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> "PositionState":
        return cls(**{name: getattr(row, name) for name in _POSITION_FIELDS})

    def to_json(self) -> dict[str, Any]:
        return {**_json_values(self, _POSITION_FIELDS), "cost": str(self.cost)}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "PositionState":
        parsed = _parsed_values(values, _POSITION_FIELDS)
        return cls(**{**parsed, "cost": Decimal(parsed["cost"])})


_POSITION_FIELDS = tuple(f.name for f in fields(PositionState))


@dataclass(frozen=True)
class NetOrderChanged:
    """A netting account's order changed (executed, filled in part or whole, cancelled, ended,
    or a liquidation's close): the order as committed, the fills this change made, the position
    on its market after it and the account's cash, so no listener reads them again."""

    kind: ClassVar[str] = "net_order"
    account_id: int
    order: NetOrderState
    usd: int
    fills: tuple[FillState, ...] = ()
    position: PositionState | None = None

    @property
    def order_id(self) -> str:
        return str(self.order.id)

    @property
    def status(self) -> str:
        return self.order.status

    def body(self) -> dict[str, Any]:
        return {
            "order": self.order.to_json(),
            "usd": self.usd,
            "fills": [fill.to_json() for fill in self.fills],
            "position": None if self.position is None else self.position.to_json(),
        }

    @classmethod
    def parse(cls, account_id: int, body: dict[str, Any]) -> "NetOrderChanged":
        position = body.get("position")
        return cls(
            account_id,
            NetOrderState.from_json(body["order"]),
            int(body["usd"]),
            tuple(FillState.from_json(fill) for fill in body.get("fills", ())),
            None if position is None else PositionState.from_json(position),
        )


@dataclass(frozen=True)
class PublicTrades:
    """A netting order's fills as its market's public trades (Backpack's `trade.<symbol>`): the
    book was the other side of each; no account, fee or PnL."""

    symbol: str
    side: str
    order_number: int
    trades: tuple[tuple[int, int, int, bool, datetime], ...]  # id, price, quantity, maker, time

    @classmethod
    def of(cls, event: NetOrderChanged) -> "PublicTrades":
        order = event.order
        trades = tuple((f.id, f.price, f.quantity, f.maker, f.created_at) for f in event.fills)
        return cls(order.symbol, order.side, order.number, trades)

    def dumps(self) -> str:
        trades = [[*trade[:4], trade[4].isoformat()] for trade in self.trades]
        body = {"symbol": self.symbol, "side": self.side, "number": self.order_number, "trades": trades}
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> "PublicTrades":
        body = json.loads(text)
        trades = tuple((i, p, q, m, datetime.fromisoformat(t)) for i, p, q, m, t in body["trades"])
        return cls(body["symbol"], body["side"], int(body["number"]), trades)
