"""A netting account's event (`NetOrderChanged`) and the committed states it carries: the
order, the fills the change made, the position after it. One of `core.events`' kinds."""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Self, get_args, get_type_hints


class _Committed:
    """A row's state as the engine committed it: `of` anything with the same attributes, one JSON
    form (UUIDs, datetimes and Decimals as strings) and back, each field parsed by its type."""

    @classmethod
    def of(cls, row: Any) -> Self:
        return cls(**{name: getattr(row, name) for name in _shape(cls)[0]})

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _shape(type(self))[0]}

    def to_json(self) -> Any:
        return {name: _json(value) for name, value in self.values().items()}

    @classmethod
    def from_json(cls, values: Any) -> Self:
        names, parsers = _shape(cls)
        return cls(
            **{
                name: values[name] if values[name] is None or name not in parsers else parsers[name](values[name])
                for name in names
            }
        )


_PARSERS: dict[type, Callable[[str], Any]] = {uuid.UUID: uuid.UUID, datetime: datetime.fromisoformat, Decimal: Decimal}


_SHAPES: dict[type, tuple[tuple[str, ...], dict[str, Callable[[str], Any]]]] = {}


def _shape(cls: type) -> tuple[tuple[str, ...], dict[str, Callable[[str], Any]]]:
    """A state class's field names, and how each field whose JSON form is a string is parsed back
    (from its type); worked out once per class."""
    if cls not in _SHAPES:
        names, hints = tuple(f.name for f in fields(cls)), get_type_hints(cls)
        parsers = {
            name: parse
            for name in names
            for kind, parse in _PARSERS.items()
            if hints[name] is kind or kind in get_args(hints[name])
        }
        _SHAPES[cls] = names, parsers
    return _SHAPES[cls]


def _json(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass(frozen=True)
class NetOrderState(_Committed):
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


@dataclass(frozen=True)
class FillState(_Committed):
    """One fill the change made (a row of `app.models.Fill`; its order says the rest)."""

    id: int
    price: int
    quantity: int
    fee: int
    realized_pnl: int
    maker: bool
    created_at: datetime

    def to_json(self) -> list[Any]:  # a list: an event may carry many
        return list(super().to_json().values())

    @classmethod
    def from_json(cls, values: list[Any]) -> Self:
        return super().from_json(dict(zip(_shape(cls)[0], values, strict=True)))


@dataclass(frozen=True)
class PositionState(_Committed):
    """The account's position on the order's market after the change (`app.models.Position`)."""

    symbol: str
    quantity: int
    cost: Decimal
    realized_pnl: int
    opened_at: datetime | None


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
