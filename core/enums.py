"""States and kinds. The database CHECK constraints are built from these (see `app.models`)."""

from enum import StrEnum


class AccountMode(StrEnum):
    HEDGING = "hedging"  # every trade its own isolated position, opened and closed by id (the seed's model)
    NETTING = "netting"  # Backpack's: one signed position per market, cross margin


class Side(StrEnum):
    LONG = "long"
    SHORT = "short"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"  # fills when the book reaches limitPrice, all at once, never worse
    STOP = "stop"  # becomes a market order when the book reaches stopPrice


class OrderStatus(StrEnum):
    PENDING = "pending"  # accepted, not executed yet
    WORKING = "working"  # a limit or stop order, margin reserved, waiting for its price
    CANCELLED = "cancelled"
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
    EXPIRED = "expired"  # not executed within ORDER_MAX_DELAY_S (or past its expiresAt): never filled late
    INSUFFICIENT_LIQUIDITY = "insufficient_liquidity"  # the visible book cannot fill the quantity
    TOO_MANY_WORKING_ORDERS = "too_many_working_orders"  # the account has MAX_WORKING_ORDERS working already


class LedgerKind(StrEnum):
    DEPOSIT = "deposit"
    OPEN = "open"
    CLOSE = "close"
    RESET = "reset"  # free USD set back to the starting balance
    FEE = "fee"  # TAKER_FEE_BPS of an open's or a close's notional (MAKER_FEE_BPS: a rested limit's open)
    RELEASE = "release"  # the reserved margin of a working order that was cancelled or expired
    FUNDING = "funding"  # a perpetual position's payment at a funding boundary (`core.funding`)
    REALIZED_PNL = "realized_pnl"  # a netting fill that reduced a position: the PnL it realized
    LIQUIDATION_FEE = "liquidation_fee"  # 1 % of each fill of a netting account's liquidation
    INSURANCE = "insurance"  # a liquidation left the account below zero: the deficit, covered


class TradeSide(StrEnum):
    """A netting order's side."""

    BUY = "buy"
    SELL = "sell"


class NetOrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    GTC = "GTC"  # good till cancelled: a limit's rest works
    IOC = "IOC"  # immediate or cancel: what does not fill now expires
    FOK = "FOK"  # fill or kill: all now, or nothing


class NetOrderStatus(StrEnum):
    """A netting order's life, Backpack's statuses (`app.backpack` spells them its way)."""

    PENDING = "pending"  # accepted, not executed yet
    TRIGGER_PENDING = (
        "trigger_pending"  # a trigger order (or an attached take-profit / stop-loss) waiting for its price
    )
    NEW = "new"  # working, nothing filled yet
    PARTIALLY_FILLED = "partially_filled"  # working, part filled
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # its time in force ended it (IOC, FOK, a market order the book could not fill whole)
    REJECTED = "rejected"


class TriggerBy(StrEnum):
    """The price a netting trigger order watches (Backpack's MarkPrice, LastPrice, IndexPrice)."""

    MARK = "mark"
    LAST = "last"  # the book's mid: this service sees Backpack's book, not its trades
    INDEX = "index"


class NetRejectReason(StrEnum):
    PRICE_UNAVAILABLE = "price_unavailable"
    INSUFFICIENT_MARGIN = "insufficient_margin"  # equity after it would not cover the initial margin
    INSUFFICIENT_LIQUIDITY = "insufficient_liquidity"
    QUANTITY_TOO_SMALL = "quantity_too_small"  # quoteQuantity buys less than the market's minQuantity
    REDUCE_ONLY_NOT_REDUCING = "reduce_only_not_reducing"
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    TOO_MANY_WORKING_ORDERS = "too_many_working_orders"
    EXPIRED = "expired"  # not executed within ORDER_MAX_DELAY_S


class FillModel(StrEnum):
    DEPTH = "depth"  # walked the live L2 book
    TOP_OF_BOOK = "top_of_book"  # no fresh depth book: the best bid/ask, for any size


class ResetStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # no fresh price to close a position at: nothing changed
