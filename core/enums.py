"""States and kinds. The database CHECK constraints are built from these (see `app.models`)."""

from enum import StrEnum


class Side(StrEnum):
    LONG = "long"
    SHORT = "short"


class OrderType(StrEnum):
    MARKET = "market"


class OrderStatus(StrEnum):
    PENDING = "pending"  # accepted, not executed yet
    OPEN = "open"
    CLOSED = "closed"
    REJECTED = "rejected"


class CloseReason(StrEnum):
    USER = "user"
    LIQUIDATION = "liquidation"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


class RejectReason(StrEnum):
    INSUFFICIENT_BALANCE = "insufficient_balance"
    SLIPPAGE_EXCEEDED = "slippage_exceeded"
    PRICE_UNAVAILABLE = "price_unavailable"
    INVALID_STOPS = "invalid_stops"
    INVALID_QUANTITY = "invalid_quantity"


class LedgerKind(StrEnum):
    DEPOSIT = "deposit"
    OPEN = "open"
    CLOSE = "close"
