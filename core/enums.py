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
    RESET = "reset"  # the account was reset: every open position closed at the book


class RejectReason(StrEnum):
    INSUFFICIENT_BALANCE = "insufficient_balance"
    SLIPPAGE_EXCEEDED = "slippage_exceeded"
    PRICE_UNAVAILABLE = "price_unavailable"
    INVALID_STOPS = "invalid_stops"
    INVALID_QUANTITY = "invalid_quantity"
    EXPIRED = "expired"  # not executed within ORDER_MAX_DELAY_S: never filled late at a price nobody saw


class LedgerKind(StrEnum):
    DEPOSIT = "deposit"
    OPEN = "open"
    CLOSE = "close"
    RESET = "reset"  # free USD set back to the starting balance


class ResetStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # no fresh price to close a position at: nothing changed
