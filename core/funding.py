"""Funding of perpetual positions (pure: no I/O).

At each boundary of a market's funding interval (Backpack: every hour, on the hour, counted from
the Unix epoch), every position open on it pays or receives `rate x quantity x mark`: a positive
rate, longs pay shorts. The rate and mark are the last ones Backpack published before the
boundary (`boundary_of` decides when a mark event closes an interval), and the amount is
rounded against the trader to the cent.

A payment comes out of free USD; what free USD cannot cover comes out of the position's own
margin while it is open (its liquidation price moves closer), and is waived past both: the
balance never goes below zero (`split`).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal

from core.assets import QUANTITY_DECIMALS, USD_DECIMALS
from core.enums import Side

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # boundaries are counted from it
DEFAULT_INTERVAL_MS = 3_600_000  # Backpack's interval on every perp since 2025-08-20


def interval_ms(market_interval_ms: int | None, override_s: int | None) -> int:
    """FUNDING_INTERVAL_S when set, else the market's own `fundingInterval`, else Backpack's hour."""
    if override_s is not None:
        return override_s * 1000
    return market_interval_ms or DEFAULT_INTERVAL_MS


def next_boundary_ms(now_ms: int, interval: int) -> int:
    return (now_ms // interval + 1) * interval


def boundary_crossed(previous_us: int, now_us: int, interval_ms: int) -> int | None:
    """The funding boundary (ms) that a mark event at `now_us` closes after one at `previous_us`,
    if the earlier event lies in the interval just ended; None otherwise (same interval, or a gap
    longer than an interval: no mark of that boundary is known)."""
    interval_us = interval_ms * 1000
    boundary_us = now_us // interval_us * interval_us
    if previous_us < boundary_us <= now_us and previous_us >= boundary_us - interval_us:
        return boundary_us // 1000
    return None


def payment(side: Side, quantity: int, rate: Decimal, mark: Decimal) -> int:
    """The signed change of the trader's USD (cents) for a position of `quantity` (in
    QUANTITY_DECIMALS) at this boundary: negative when it pays; rounded against the trader."""
    coins = Decimal(quantity).scaleb(-QUANTITY_DECIMALS)
    owed = (rate * coins * mark).scaleb(USD_DECIMALS)  # what a long pays, in cents
    signed = -owed if side == Side.LONG else owed
    return int(signed.to_integral_value(rounding=ROUND_FLOOR))


@dataclass(frozen=True)
class Split:
    usd: int  # change of free USD
    margin: int  # change of the position's margin (and the account's locked margin), <= 0
    waived: int  # owed but beyond both, >= 0

    @property
    def settled(self) -> int:
        return self.usd + self.margin


def split(amount: int, free_usd: int, margin: int, is_open: bool) -> Split:
    """Where a payment of `amount` (signed, as `payment`) is taken from (or goes to)."""
    if amount >= 0:
        return Split(amount, 0, 0)
    owed = -amount
    from_usd = min(owed, max(free_usd, 0))
    from_margin = min(owed - from_usd, max(margin, 0)) if is_open else 0
    return Split(-from_usd, -from_margin, owed - from_usd - from_margin)
