"""Backpack frames to exact integer quotes. Defensive: the wire drifts from the docs."""

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

import orjson

from core.assets import ASSET_BY_MARKET, Asset
from core.marks import Mark
from core.money import NotAnAmount, to_units
from core.prices import Quote, now_micros

ASCII_INTEGER = re.compile(r"\s*[0-9]{1,19}\s*")  # str.isdigit() would accept "²"

# Microsecond timestamps since 1970 passed 10**14 in 1973; millisecond ones will not reach it before 5138.
MILLISECOND_EPOCH_LIMIT = 10**14


class BadFrame(ValueError):
    """A frame that cannot be used; the poller logs it and goes on."""


def _integer(value, name: str) -> int:
    """Ids and timestamps: JSON numbers on the wire, strings in the docs; accept both."""
    if isinstance(value, bool):
        raise BadFrame(f"{name} is not an integer: {value!r}")
    if isinstance(value, int) and 0 <= value < 2**63:
        return value
    if isinstance(value, str) and ASCII_INTEGER.fullmatch(value):
        return int(value)
    raise BadFrame(f"{name} is not an integer: {value!r}")


def _price(value, decimals: int, rounding: str) -> int:
    try:
        return to_units(value, decimals, rounding)
    except NotAnAmount as exc:
        raise BadFrame(f"price is {exc}") from None


def decode(raw: str | bytes) -> dict:
    """The `data` object of a stream frame. Raises BadFrame for malformed frames and error frames."""
    try:
        frame = orjson.loads(raw)
    except (ValueError, RecursionError):  # also UnicodeDecodeError and over-long integers
        raise BadFrame(f"not JSON: {raw[:80]!r}") from None
    if not isinstance(frame, dict):
        raise BadFrame(f"not a JSON object: {raw[:80]!r}")
    if frame.get("error") is not None:
        raise BadFrame(f"server error frame: {frame['error']!r}")
    data = frame.get("data")
    if not isinstance(data, dict):
        raise BadFrame(f"no data object: {raw[:80]!r}")
    return data


def depth_delta(data: dict) -> tuple[Asset, dict] | None:
    """(asset, delta) of a depth frame of a tracked market, its ids checked; None for other frames."""
    if data.get("e") != "depth":
        return None
    asset = ASSET_BY_MARKET.get(data.get("s"))
    if asset is None:
        return None
    first, last = _integer(data.get("U"), "U"), _integer(data.get("u"), "u")
    if first > last:
        raise BadFrame(f"depth ids out of order: U {first} > u {last}")
    for side in ("a", "b"):
        levels = data.get(side) or []
        if not isinstance(levels, list) or not all(isinstance(lv, list) and len(lv) == 2 for lv in levels):
            raise BadFrame(f"depth levels are not [price, size] pairs: {str(levels)[:80]}")
    return asset, data


def parse_frame(raw: str | bytes) -> Quote | None:
    """The quote in a bookTicker frame; None for frames that carry no quote we track."""
    return quote_from(decode(raw))


def quote_from(data: dict) -> Quote | None:
    """The quote of a bookTicker frame's data; None for other frames and untracked markets.

    Bids round down and asks round up, so normalization never narrows the spread.
    Raises BadFrame for malformed quotes.
    """
    if data.get("e") != "bookTicker":
        return None
    asset = ASSET_BY_MARKET.get(data.get("s"))
    if asset is None:
        return None
    bid = _price(data.get("b"), asset.decimals, ROUND_FLOOR)
    ask = _price(data.get("a"), asset.decimals, ROUND_CEILING)
    if bid > ask:
        raise BadFrame(f"crossed book for {asset.symbol}: bid {bid} > ask {ask}")
    update_id = _integer(data["u"], "u") if data.get("u") is not None else -1
    return Quote(asset.symbol, bid, ask, _event_time(data), update_id)


def _decimal(value, name: str, positive: bool) -> Decimal:
    try:
        parsed = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        parsed = None
    if parsed is None or not parsed.is_finite() or (positive and parsed <= 0):
        raise BadFrame(f"{name} is not a {'positive ' if positive else ''}decimal string: {value!r}")
    return parsed


def _event_time(data: dict) -> int:
    event_time = data.get("E", data.get("T"))
    time_us = _integer(event_time, "E") if event_time is not None else now_micros()
    if time_us == 0:
        raise BadFrame("E is 0: a frame without a time")
    return time_us * 1000 if time_us < MILLISECOND_EPOCH_LIMIT else time_us  # Backpack used ms before 2024


def mark_from(data: dict, markets: frozenset[str] | set[str]) -> Mark | None:
    """The mark of a `markPrice` frame of one of `markets`; None for other frames. The funding
    rate, index and next funding time are absent on prediction markets: None then."""
    if data.get("e") != "markPrice" or data.get("s") not in markets:
        return None
    rate, index, next_funding = data.get("f"), data.get("i"), data.get("n")
    return Mark(
        market=data["s"],
        mark=_decimal(data.get("p"), "p", positive=True),
        index=_decimal(index, "i", positive=True) if index is not None else None,
        funding_rate=_decimal(rate, "f", positive=False) if rate is not None else None,
        next_funding_ms=_integer(next_funding, "n") if next_funding is not None else None,
        time_us=_event_time(data),
    )
