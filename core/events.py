"""Account events: typed, built once by the engine, published as JSON after its commit on the
account's channel (`core.keys.ACCOUNT_EVENTS_CHANNEL`), parsed once by each web process's hub.

They answer the request waiting on the engine and feed the account's streams. A new kind is a
dataclass with a `kind` and its entry in `KINDS`; the netting one is in `core.net_events`.
"""

import json
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

from core.enums import ResetStatus
from core.net_events import NetOrderChanged

_DATETIMES = frozenset({"close_requested_at", "expires_at", "created_at", "opened_at", "closed_at"})


@dataclass(frozen=True)
class OrderState:
    """An order's row as the engine committed it (every column of `app.models.Order`, a test keeps
    them equal), so the request waiting on it answers without reading the row again."""

    id: uuid.UUID
    account_id: int
    asset: str
    side: str
    order_type: str
    status: str
    margin: int
    leverage: int
    slippage_bps: int
    requested_price: int | None
    stop_loss: int | None
    take_profit: int | None
    quantity: int | None
    open_price: int | None
    liquidation_price: int | None
    close_price: int | None
    pnl: int | None
    close_reason: str | None
    reject_reason: str | None
    close_requested_at: datetime | None
    limit_price: int | None
    stop_price: int | None
    expires_at: datetime | None
    fill_model: str | None
    fills: list[dict[str, int]] | None
    open_fee: int
    close_fee: int
    created_at: datetime
    opened_at: datetime | None
    closed_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> "OrderState":
        """The state of an order row (anything with the columns as attributes)."""
        return cls(**{name: getattr(row, name) for name in _ORDER_FIELDS})

    def to_json(self) -> dict[str, Any]:
        """Its JSON values (`dataclasses.asdict` deep-copies: a third of a wake-up's time)."""
        state = {name: getattr(self, name) for name in _ORDER_FIELDS}
        state["id"] = str(self.id)
        for name in _DATETIMES:
            if state[name] is not None:
                state[name] = state[name].isoformat()
        return state

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> "OrderState":
        values = dict(state)
        values["id"] = uuid.UUID(values["id"])
        for name in _DATETIMES:
            if values[name] is not None:
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


_ORDER_FIELDS = tuple(f.name for f in fields(OrderState))


@dataclass(frozen=True)
class BalanceState:
    """An account's balance row as the engine committed it with a change."""

    usd: int
    locked_margin: int


@dataclass(frozen=True)
class OrderChanged:
    """An order changed state (executed, placed, filled, closed, cancelled, rejected), with its
    account's balance right after: a stream shows both without reading either again."""

    kind: ClassVar[str] = "order"
    account_id: int
    order: OrderState
    balance: BalanceState

    @property
    def order_id(self) -> str:
        return str(self.order.id)

    def body(self) -> dict[str, Any]:
        return {"order": self.order.to_json(), "balance": [self.balance.usd, self.balance.locked_margin]}

    @classmethod
    def parse(cls, account_id: int, body: dict[str, Any]) -> "OrderChanged":
        usd, locked = body["balance"]
        return cls(account_id, OrderState.from_json(body["order"]), BalanceState(int(usd), int(locked)))


@dataclass(frozen=True)
class RequestFailed:
    """The engine could not do what was asked of an order and changed nothing: a close the book
    cannot fill, a cancel of an order no longer working."""

    kind: ClassVar[str] = "failed"
    account_id: int
    order_id: str
    error: str

    def body(self) -> dict[str, Any]:
        return {"orderId": self.order_id, "error": self.error}

    @classmethod
    def parse(cls, account_id: int, body: dict[str, Any]) -> "RequestFailed":
        return cls(account_id, body["orderId"], body["error"])


@dataclass(frozen=True)
class ResetEnded:
    """An account reset ran: `done`, or `failed` (with why) having changed nothing."""

    kind: ClassVar[str] = "reset"
    account_id: int
    reset_id: str
    status: ResetStatus
    error: str | None = None

    def body(self) -> dict[str, Any]:
        return {"resetId": self.reset_id, "status": str(self.status), "error": self.error}

    @classmethod
    def parse(cls, account_id: int, body: dict[str, Any]) -> "ResetEnded":
        return cls(account_id, body["resetId"], ResetStatus(body["status"]), body.get("error"))


@dataclass(frozen=True)
class FundingPaid:
    """The account's positions on `market` paid (< 0) or received `amount` at a funding boundary
    (ms), with its balance after: one event per account and round, not one per position."""

    kind: ClassVar[str] = "funding"
    account_id: int
    market: str
    boundary_ms: int
    amount: int
    balance: BalanceState

    def body(self) -> dict[str, Any]:
        balance = [self.balance.usd, self.balance.locked_margin]
        return {"market": self.market, "boundary": self.boundary_ms, "amount": self.amount, "balance": balance}

    @classmethod
    def parse(cls, account_id: int, body: dict[str, Any]) -> "FundingPaid":
        usd, locked = body["balance"]
        return cls(account_id, body["market"], int(body["boundary"]), int(body["amount"]), BalanceState(usd, locked))


AccountEvent = OrderChanged | RequestFailed | ResetEnded | FundingPaid | NetOrderChanged
KINDS: dict[str, type[AccountEvent]] = {
    kind.kind: kind for kind in (OrderChanged, RequestFailed, ResetEnded, FundingPaid, NetOrderChanged)
}


def dumps(event: AccountEvent) -> str:
    """The event's one JSON form."""
    return json.dumps({"kind": event.kind, "accountId": event.account_id, **event.body()}, separators=(",", ":"))


def loads(payload: str | bytes) -> AccountEvent:
    """The event `dumps` wrote. Raises ValueError (or KeyError) on anything else."""
    data = json.loads(payload)
    return KINDS[data["kind"]].parse(int(data["accountId"]), data)
