"""The trading rules as pure functions on integers: no I/O, no clock, no floats.

Units are those of `core.money`: USD in cents, prices in the asset's decimals, quantities in 8.
"""

from dataclasses import dataclass
from decimal import Decimal

from core.enums import CloseReason, Side
from core.money import BPS, ceil_div, div_toward_zero, scale

LONG = Side.LONG
SHORT = Side.SHORT


def open_fill(side: Side, bid: int, ask: int) -> int:
    """A long buys at the ask; a short sells at the bid."""
    return ask if side == LONG else bid


def close_fill(side: Side, bid: int, ask: int) -> int:
    """A long sells at the bid; a short buys back at the ask."""
    return bid if side == LONG else ask


def quantity(margin: int, leverage: int, open_price: int, price_decimals: int) -> int:
    """margin x leverage / openPrice, truncated to 8 decimals."""
    return margin * leverage * scale(price_decimals) // open_price


def pnl(side: Side, open_price: int, close_price: int, qty: int, price_decimals: int) -> int:
    """Profit (or loss, negative) in USD units, truncated toward zero."""
    move = close_price - open_price if side == LONG else open_price - close_price
    return div_toward_zero(move * qty, scale(price_decimals))


def settlement(margin: int, profit: int) -> int:
    """What closing credits back to the free balance: margin + pnl, never below zero."""
    return max(0, margin + profit)


@dataclass(frozen=True)
class Closing:
    price: int
    credit: int  # back to the free balance
    pnl: int  # realized: credit - margin, so a loss never exceeds the margin


def close_at(side: Side, open_price: int, qty: int, margin: int, price_decimals: int, bid: int, ask: int) -> Closing:
    """What closing a position at this quote pays out."""
    price = close_fill(side, bid, ask)
    credit = settlement(margin, pnl(side, open_price, price, qty, price_decimals))
    return Closing(price, credit, credit - margin)


def liquidation_price(side: Side, open_price: int, qty: int, margin: int, ratio: Decimal, price_decimals: int) -> int:
    """The price at which the unrealized loss reaches `ratio` x margin.

    Rounded so that for integer prices `crossed(price)` is exactly `loss >= ratio x margin`:
    a long is liquidated when bid <= floor(x), a short when ask >= ceil(x).
    """
    if qty <= 0:
        return 0 if side == LONG else open_price
    numerator, denominator = ratio.as_integer_ratio()
    # price distance = ratio x margin x scale / qty, kept as one exact fraction
    distance_num = numerator * margin * scale(price_decimals)
    distance_den = denominator * qty
    if side == LONG:
        return max(0, (open_price * distance_den - distance_num) // distance_den)
    return ceil_div(open_price * distance_den + distance_num, distance_den)


def slippage_ok(side: Side, requested_price: int | None, fill_price: int, slippage_bps: int) -> bool:
    """Whether the fill is within `slippage_bps` of the price the client saw (in its disfavour)."""
    if requested_price is None:
        return True
    adverse = fill_price - requested_price if side == LONG else requested_price - fill_price
    return adverse * BPS <= requested_price * slippage_bps


def stops_valid(side: Side, open_price: int, stop_loss: int | None, take_profit: int | None) -> bool:
    """A stop-loss must lie on the losing side of the open price and a take-profit on the winning side."""
    if side == LONG:
        return (stop_loss is None or stop_loss < open_price) and (take_profit is None or take_profit > open_price)
    return (stop_loss is None or stop_loss > open_price) and (take_profit is None or take_profit < open_price)


@dataclass(frozen=True)
class Position:
    side: Side
    liquidation_price: int
    stop_loss: int | None = None
    take_profit: int | None = None


def close_trigger(position: Position, bid: int, ask: int) -> CloseReason | None:
    """Why the position must close at this quote, if it must: liquidation first, then SL, then TP."""
    price = close_fill(position.side, bid, ask)
    if position.side == LONG:
        if price <= position.liquidation_price:
            return CloseReason.LIQUIDATION
        if position.stop_loss is not None and price <= position.stop_loss:
            return CloseReason.STOP_LOSS
        if position.take_profit is not None and price >= position.take_profit:
            return CloseReason.TAKE_PROFIT
        return None
    if price >= position.liquidation_price:
        return CloseReason.LIQUIDATION
    if position.stop_loss is not None and price >= position.stop_loss:
        return CloseReason.STOP_LOSS
    if position.take_profit is not None and price <= position.take_profit:
        return CloseReason.TAKE_PROFIT
    return None
