"""Funding rules: boundaries, payments rounded against the trader, where a payment is taken from."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import funding
from core.enums import Side

HOUR_MS = 3_600_000
HOUR_US = HOUR_MS * 1000
T0 = 1_764_792_000_000_000  # a whole hour, in µs


@pytest.mark.parametrize(
    "market_ms, override_s, expected",
    [(HOUR_MS, None, HOUR_MS), (None, None, HOUR_MS), (28_800_000, None, 28_800_000), (HOUR_MS, 10, 10_000)],
)
def test_the_interval_is_the_override_or_the_markets_or_an_hour(market_ms, override_s, expected):
    assert funding.interval_ms(market_ms, override_s) == expected


@pytest.mark.parametrize(
    "previous_us, now_us, expected_ms",
    [
        (T0 - 1, T0, T0 // 1000),  # the event at the boundary closes the interval
        (T0 - 1_000_000, T0 + 1_000_000, T0 // 1000),  # one frame each side
        (T0 + 1, T0 + 2_000_000, None),  # within the same interval
        (T0, T0 + 1, None),  # the previous event already belongs to the new interval
        (T0 - HOUR_US, T0 + 5, T0 // 1000),  # a whole interval's silence, still the interval just ended
        (T0 - HOUR_US - 1, T0 + 5, None),  # older: no mark of that boundary is known
        (T0 - 1, T0 + HOUR_US, None),  # a gap over two boundaries: neither is known
    ],
)
def test_a_boundary_is_crossed_by_the_first_event_after_it(previous_us, now_us, expected_ms):
    assert funding.boundary_crossed(previous_us, now_us, HOUR_MS) == expected_ms


def test_the_next_boundary():
    assert funding.next_boundary_ms(T0 // 1000, HOUR_MS) == T0 // 1000 + HOUR_MS
    assert funding.next_boundary_ms(T0 // 1000 - 1, HOUR_MS) == T0 // 1000


@pytest.mark.parametrize(
    "side, quantity, rate, mark, expected",
    [
        # 1 BTC at 100,000 USD, 0.0000125/h: 1.25 USD; longs pay, shorts receive
        (Side.LONG, 100_000_000, "0.0000125", "100000", -125),
        (Side.SHORT, 100_000_000, "0.0000125", "100000", 125),
        # a negative rate: shorts pay
        (Side.LONG, 100_000_000, "-0.0000125", "100000", 125),
        (Side.SHORT, 100_000_000, "-0.0000125", "100000", -125),
        # 0.5 SOL at 180.01, 0.0001: 0.0090005 USD: paid as 1 cent, received as 0
        (Side.LONG, 50_000_000, "0.0001", "180.01", -1),
        (Side.SHORT, 50_000_000, "0.0001", "180.01", 0),
        (Side.LONG, 50_000_000, "0", "180.01", 0),
    ],
)
def test_payments_by_hand(side, quantity, rate, mark, expected):
    assert funding.payment(side, quantity, Decimal(rate), Decimal(mark)) == expected


rates = st.decimals(min_value=Decimal("-0.01"), max_value=Decimal("0.01"), places=7)
marks = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1000000"), places=4)
quantities = st.integers(min_value=1, max_value=10**14)


@given(quantities, rates, marks)
def test_a_payment_is_the_exact_amount_rounded_against_the_trader(quantity, rate, mark):
    exact = rate * Decimal(quantity).scaleb(-8) * mark * 100  # cents a long pays
    long, short = funding.payment(Side.LONG, quantity, rate, mark), funding.payment(Side.SHORT, quantity, rate, mark)
    assert -exact - 1 < long <= -exact and exact - 1 < short <= exact
    assert -1 <= long + short <= 0  # the venue never pays out more than it takes


@given(st.integers(-(10**9), 10**9), st.integers(-(10**9), 10**9), st.integers(0, 10**9), st.booleans())
def test_a_payment_never_takes_more_than_free_usd_and_an_open_positions_margin(amount, free_usd, margin, is_open):
    taken = funding.split(amount, free_usd, margin, is_open)
    assert taken.margin <= 0 and taken.waived >= 0
    if amount >= 0:
        assert taken == funding.Split(amount, 0, 0)
        return
    assert taken.settled - taken.waived == amount  # every cent owed is paid or waived
    assert -taken.usd <= max(free_usd, 0) and -taken.margin <= margin
    assert is_open or taken.margin == 0
    if taken.waived:  # waived only once free USD (and an open position's margin) are exhausted
        assert -taken.usd == max(free_usd, 0) and (not is_open or -taken.margin == margin)
