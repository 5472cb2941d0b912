"""Decimal strings to integer units: the plain-string fast path agrees with Decimal's."""

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import NotAnAmount, plain_units, to_units


def by_decimal(text: str, decimals: int, rounding: str) -> int:
    return int(Decimal(text).scaleb(decimals).to_integral_value(rounding=rounding))


@given(
    whole=st.text("0123456789", min_size=1, max_size=12),
    fraction=st.one_of(st.none(), st.text("0123456789", min_size=1, max_size=12)),
    decimals=st.integers(0, 10),
    rounding=st.sampled_from([ROUND_FLOOR, ROUND_CEILING]),
)
def test_plain_decimal_strings_convert_exactly_as_decimal_rounds_them(whole, fraction, decimals, rounding):
    text = whole if fraction is None else f"{whole}.{fraction}"
    assert plain_units(text, decimals, rounding) == by_decimal(text, decimals, rounding)


@pytest.mark.parametrize(
    "text, decimals, rounding, expected",
    [
        ("3667.4900", 2, ROUND_FLOOR, 366749),
        ("3667.4901", 2, ROUND_CEILING, 366750),
        ("3667.4900", 2, ROUND_CEILING, 366749),  # trailing zeros are not a remainder
        ("0.00000", 8, ROUND_FLOOR, 0),
        ("86648.0", 0, ROUND_CEILING, 86648),
    ],
)
def test_plain_units_by_hand(text, decimals, rounding, expected):
    assert plain_units(text, decimals, rounding) == expected


@pytest.mark.parametrize("text", ["-1.5", "+1", "1e3", " 1", "1.", ".5", "1,5", "²", "NaN", "", "1.2.3"])
def test_anything_but_a_plain_decimal_is_left_to_decimal(text):
    assert plain_units(text, 2, ROUND_FLOOR) is None


def test_other_roundings_are_left_to_decimal():
    assert plain_units("1.005", 2, ROUND_HALF_EVEN) is None
    assert to_units("1.005", 2, ROUND_HALF_EVEN) == 100


@pytest.mark.parametrize("text", ["0", "0.000", "0.001", "-1", "1e999999", "abc"])
def test_to_units_still_refuses_what_is_not_a_positive_amount(text):
    with pytest.raises(NotAnAmount):
        to_units(text, 2, ROUND_FLOOR)
