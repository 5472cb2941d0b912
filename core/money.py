"""Exact money: integers in fixed decimals, converted from decimal strings without floats.

Units: USD amounts in cents (2 decimals); a price `p` of an asset with `d` price decimals means
p / 10**d USD per coin; a quantity `q` means q / 10**8 coins. `scale(d)` converts between them:
USD units = price units x quantity units / scale(d).
"""

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from core.assets import QUANTITY_DECIMALS, USD_DECIMALS

BPS = 10_000
MAX_DECIMAL_DIGITS = 40  # far beyond any price; refuses "1e999999" before it is expanded


PLAIN_DECIMAL = re.compile(r"([0-9]{1,40})(?:\.([0-9]{1,40}))?")  # ASCII digits only: "²" is no digit


class NotAnAmount(ValueError):
    """A value that is not a positive decimal amount."""


def scale(price_decimals: int) -> int:
    return int(10 ** (price_decimals + QUANTITY_DECIMALS - USD_DECIMALS))


def div_toward_zero(numerator: int, denominator: int) -> int:
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def format_units(units: int, decimals: int) -> str:
    """Integer units as a decimal string: 500000 with 2 decimals is "5000.00", -5 is "-0.05"."""
    sign, digits = ("-" if units < 0 else ""), str(abs(units)).rjust(decimals + 1, "0")
    return (
        f"{sign}{digits[: len(digits) - decimals]}.{digits[len(digits) - decimals :]}"
        if decimals
        else f"{sign}{digits}"
    )


def plain_units(text: str, decimals: int, rounding: str) -> int | None:
    """A plain decimal string ("3667.4900", as every price and size on Backpack's wire) as an
    integer in `decimals`, rounded down or up (ROUND_FLOOR / ROUND_CEILING), by string arithmetic:
    the feed converts tens of thousands a second, and Decimal costs about three times as much.
    None for anything else (a sign, an exponent, spaces): the caller takes Decimal's path."""
    match = PLAIN_DECIMAL.fullmatch(text)
    if match is None or rounding not in (ROUND_FLOOR, ROUND_CEILING):
        return None
    whole, fraction = match.group(1), match.group(2) or ""
    units = int(whole + fraction[:decimals].ljust(decimals, "0"))
    if rounding == ROUND_CEILING and fraction[decimals:].strip("0"):
        units += 1
    return units


def to_units(value: object, decimals: int, rounding: str) -> int:
    """A positive decimal string (or integer) as an integer in `decimals`; extra digits rounded by `rounding`."""
    if value is None:
        raise NotAnAmount("empty (null)")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise NotAnAmount(f"not a decimal string: {value!r}")
    plain = plain_units(value, decimals, rounding) if isinstance(value, str) else None
    if plain is not None and plain > 0:
        return plain
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise NotAnAmount(f"not a decimal: {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise NotAnAmount(f"not positive: {value!r}")
    if number.adjusted() > MAX_DECIMAL_DIGITS:
        raise NotAnAmount(f"too large: {value!r}")
    units = int(number.scaleb(decimals).to_integral_value(rounding=rounding))
    if units <= 0:
        raise NotAnAmount(f"rounds to zero in {decimals} decimals: {value!r}")
    return units
