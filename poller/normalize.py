"""Backpack frames to exact integer quotes. Defensive: the wire drifts from the docs."""
import json
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from app.assets.catalog import ASSET_BY_MARKET
from app.prices.store import Quote, now_micros


# Microsecond timestamps since 1970 passed 10**14 in 1973; millisecond ones will not reach it before 5138.
MILLISECOND_EPOCH_LIMIT = 10**14


class BadFrame(ValueError):
    """A frame that cannot be used; the poller logs it and goes on."""


def _integer(value, name: str) -> int:
    """Ids and timestamps: JSON numbers on the wire, strings in the docs; accept both."""
    if isinstance(value, bool):
        raise BadFrame(f"{name} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise BadFrame(f"{name} is not an integer: {value!r}")


def to_units(value, decimals: int, rounding: str) -> int:
    """A decimal price string as an integer in `decimals`; extra digits rounded by `rounding`."""
    if value is None:
        raise BadFrame("side is empty (null)")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadFrame(f"price is not a decimal string: {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadFrame(f"price is not a decimal: {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise BadFrame(f"price is not positive: {value!r}")
    return int(number.scaleb(decimals).to_integral_value(rounding=rounding))


def parse_frame(raw: str | bytes) -> Quote | None:
    """The quote in a bookTicker frame; None for frames that carry no quote we track.

    Bids round down and asks round up, so normalization never narrows the spread.
    Raises BadFrame for malformed frames and server error frames.
    """
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadFrame(f"not JSON: {raw[:80]!r}") from None
    if not isinstance(frame, dict):
        raise BadFrame(f"not a JSON object: {raw[:80]!r}")
    if frame.get("error") is not None:
        raise BadFrame(f"server error frame: {frame['error']!r}")
    data = frame.get("data")
    if not isinstance(data, dict):
        raise BadFrame(f"no data object: {raw[:80]!r}")
    if data.get("e") != "bookTicker":
        return None
    asset = ASSET_BY_MARKET.get(data.get("s"))
    if asset is None:
        return None
    bid = to_units(data.get("b"), asset.decimals, ROUND_FLOOR)
    ask = to_units(data.get("a"), asset.decimals, ROUND_CEILING)
    if bid > ask:
        raise BadFrame(f"crossed book for {asset.symbol}: bid {bid} > ask {ask}")
    event_time = data.get("E", data.get("T"))
    time_us = _integer(event_time, "E") if event_time is not None else now_micros()
    if time_us < MILLISECOND_EPOCH_LIMIT:  # a millisecond timestamp: Backpack used ms before 2024
        time_us *= 1000
    update_id = _integer(data["u"], "u") if data.get("u") is not None else -1
    return Quote(asset.symbol, bid, ask, time_us, update_id)
