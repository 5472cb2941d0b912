"""The trading rules as pure functions on integers: no I/O, no clock, no floats.

Units: USD amounts in cents (2 decimals); a price `p` of an asset with `d` price decimals means
p / 10**d USD per coin; a quantity `q` means q / 10**8 coins. `scale(d)` converts between them:
USD units = price units x quantity units / scale(d).
"""
from dataclasses import dataclass
from decimal import Decimal

from app.assets.catalog import QUANTITY_DECIMALS, USD_DECIMALS

LONG = "long"
SHORT = "short"
BPS = 10_000

LIQUIDATION = "liquidation"
STOP_LOSS = "stop_loss"
TAKE_PROFIT = "take_profit"


def scale(price_decimals: int) -> int:
    return 10 ** (price_decimals + QUANTITY_DECIMALS - USD_DECIMALS)


def _div_toward_zero(numerator: int, denominator: int) -> int:
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def open_fill(side: str, bid: int, ask: int) -> int:
    """A long buys at the ask; a short sells at the bid."""
    return ask if side == LONG else bid


def close_fill(side: str, bid: int, ask: int) -> int:
    """A long sells at the bid; a short buys back at the ask."""
    return bid if side == LONG else ask


def quantity(margin: int, leverage: int, open_price: int, price_decimals: int) -> int:
    """margin x leverage / openPrice, truncated to 8 decimals."""
    return margin * leverage * scale(price_decimals) // open_price


def pnl(side: str, open_price: int, close_price: int, qty: int, price_decimals: int) -> int:
    """Profit (or loss, negative) in USD units, truncated toward zero."""
    move = close_price - open_price if side == LONG else open_price - close_price
    return _div_toward_zero(move * qty, scale(price_decimals))


def settlement(margin: int, profit: int) -> int:
    """What closing credits back to the free balance: margin + pnl, never below zero."""
    return max(0, margin + profit)


@dataclass(frozen=True)
class Closing:
    price: int
    credit: int  # back to the free balance
    pnl: int  # realized: credit - margin, so a loss never exceeds the margin


def close_at(side: str, open_price: int, qty: int, margin: int, price_decimals: int, bid: int, ask: int) -> Closing:
    """What closing a position at this quote pays out."""
    price = close_fill(side, bid, ask)
    credit = settlement(margin, pnl(side, open_price, price, qty, price_decimals))
    return Closing(price, credit, credit - margin)


def liquidation_price(
    side: str, open_price: int, qty: int, margin: int, ratio: Decimal, price_decimals: int
) -> int:
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
    return _ceil_div(open_price * distance_den + distance_num, distance_den)


def slippage_ok(side: str, requested_price: int | None, fill_price: int, slippage_bps: int) -> bool:
    """Whether the fill is within `slippage_bps` of the price the client saw (in its disfavour)."""
    if requested_price is None:
        return True
    adverse = fill_price - requested_price if side == LONG else requested_price - fill_price
    return adverse * BPS <= requested_price * slippage_bps


def stops_valid(side: str, open_price: int, stop_loss: int | None, take_profit: int | None) -> bool:
    """A stop-loss must lie on the losing side of the open price and a take-profit on the winning side."""
    if side == LONG:
        return (stop_loss is None or stop_loss < open_price) and (take_profit is None or take_profit > open_price)
    return (stop_loss is None or stop_loss > open_price) and (take_profit is None or take_profit < open_price)


@dataclass(frozen=True)
class Position:
    side: str
    liquidation_price: int
    stop_loss: int | None = None
    take_profit: int | None = None


def close_trigger(position: Position, bid: int, ask: int) -> str | None:
    """Why the position must close at this quote, if it must: liquidation first, then SL, then TP."""
    price = close_fill(position.side, bid, ask)
    if position.side == LONG:
        if price <= position.liquidation_price:
            return LIQUIDATION
        if position.stop_loss is not None and price <= position.stop_loss:
            return STOP_LOSS
        if position.take_profit is not None and price >= position.take_profit:
            return TAKE_PROFIT
        return None
    if price >= position.liquidation_price:
        return LIQUIDATION
    if position.stop_loss is not None and price >= position.stop_loss:
        return STOP_LOSS
    if position.take_profit is not None and price <= position.take_profit:
        return TAKE_PROFIT
    return None
