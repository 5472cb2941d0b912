"""The trading rules, by hand-computed tables and by properties."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import rules
from core.enums import CloseReason
from core.rules import LONG, SHORT

RATIO = Decimal("0.9")


@pytest.mark.parametrize(
    "side, bid, ask, opens_at, closes_at",
    [(LONG, 100, 101, 101, 100), (SHORT, 100, 101, 100, 101)],
)
def test_fills_cross_the_spread(side, bid, ask, opens_at, closes_at):
    assert rules.open_fill(side, bid, ask) == opens_at
    assert rules.close_fill(side, bid, ask) == closes_at


@pytest.mark.parametrize(
    "margin, leverage, price, decimals, expected",
    [
        # 1000.00 USD x 10 at 100000.0000 BTC = 0.1 BTC
        (100_000, 10, 1_000_000_000, 4, 10_000_000),
        # 50.00 USD x 1 at 178.420000 SOL = 0.28023764... SOL, truncated to 8 decimals
        (5_000, 1, 178_420_000, 6, 28_023_764),
        # 1.00 USD x 100 at 3000.000000 ETH = 0.03333333 ETH
        (100, 100, 3_000_000_000, 6, 3_333_333),
    ],
)
def test_quantity_is_margin_times_leverage_over_price_truncated(margin, leverage, price, decimals, expected):
    assert rules.quantity(margin, leverage, price, decimals) == expected


@pytest.mark.parametrize(
    "side, open_price, close_price, qty, decimals, expected",
    [
        (LONG, 1_000_000_000, 1_010_000_000, 10_000_000, 4, 10_000),  # +1000 USD/BTC x 0.1 = +100.00
        (LONG, 1_000_000_000, 990_000_000, 10_000_000, 4, -10_000),
        (SHORT, 1_000_000_000, 990_000_000, 10_000_000, 4, 10_000),
        (SHORT, 1_000_000_000, 1_010_000_000, 10_000_000, 4, -10_000),
        # 0.01 USD move on 0.5 SOL = 0.005 USD -> truncated toward zero to 0 either way
        (LONG, 178_420_000, 178_430_000, 50_000_000, 6, 0),
        (LONG, 178_430_000, 178_420_000, 50_000_000, 6, 0),
        # 0.03 USD move on 0.5 SOL = 0.015 USD -> 1 cent / -1 cent (toward zero)
        (LONG, 178_420_000, 178_450_000, 50_000_000, 6, 1),
        (SHORT, 178_420_000, 178_450_000, 50_000_000, 6, -1),
    ],
)
def test_pnl_table(side, open_price, close_price, qty, decimals, expected):
    assert rules.pnl(side, open_price, close_price, qty, decimals) == expected


def test_close_at_pays_margin_plus_pnl_and_caps_the_loss_at_the_margin():
    qty = rules.quantity(100_000, 10, 1_000_000_000, 4)  # 0.1 BTC
    win = rules.close_at(LONG, 1_000_000_000, qty, 100_000, 4, bid=1_010_000_000, ask=1_010_100_000)
    assert win == rules.Closing(price=1_010_000_000, credit=110_000, pnl=10_000)
    wipeout = rules.close_at(SHORT, 1_000_000_000, qty, 100_000, 4, bid=1_200_000_000, ask=1_200_000_000)
    assert wipeout == rules.Closing(price=1_200_000_000, credit=0, pnl=-100_000)


def test_settlement_never_negative():
    assert rules.settlement(1000, -400) == 600
    assert rules.settlement(1000, -1000) == 0
    assert rules.settlement(1000, -5000) == 0
    assert rules.settlement(1000, 250) == 1250


def test_liquidation_price_table():
    # 1000.00 USD x 10 long BTC at 100000: qty 0.1 BTC; 90% of margin = 900 USD = 9000 USD/BTC move
    qty = rules.quantity(100_000, 10, 1_000_000_000, 4)
    assert rules.liquidation_price(LONG, 1_000_000_000, qty, 100_000, RATIO, 4) == 910_000_000
    assert rules.liquidation_price(SHORT, 1_000_000_000, qty, 100_000, RATIO, 4) == 1_090_000_000


@pytest.mark.parametrize(
    "side, requested, fill, bps, ok",
    [
        (LONG, 10_000, 10_100, 100, True),  # exactly 1% worse
        (LONG, 10_000, 10_101, 100, False),
        (LONG, 10_000, 9_000, 1, True),  # better is always fine
        (SHORT, 10_000, 9_900, 100, True),
        (SHORT, 10_000, 9_899, 100, False),
        (SHORT, 10_000, 11_000, 1, True),
        (LONG, None, 99_999, 1, True),  # no price seen: nothing to compare
    ],
)
def test_slippage(side, requested, fill, bps, ok):
    assert rules.slippage_ok(side, requested, fill, bps) is ok


@pytest.mark.parametrize(
    "side, open_price, stop, take, ok",
    [
        (LONG, 100, 90, 110, True),
        (LONG, 100, 100, None, False),
        (LONG, 100, None, 100, False),
        (SHORT, 100, 110, 90, True),
        (SHORT, 100, 90, None, False),
        (SHORT, 100, None, 110, False),
        (LONG, 100, None, None, True),
    ],
)
def test_stops_valid(side, open_price, stop, take, ok):
    assert rules.stops_valid(side, open_price, stop, take) is ok


@pytest.mark.parametrize(
    "position, bid, ask, reason",
    [
        (rules.Position(LONG, 900, 950, 1200), 1000, 1001, None),
        (rules.Position(LONG, 900, 950, 1200), 950, 951, CloseReason.STOP_LOSS),
        (rules.Position(LONG, 900, 950, 1200), 900, 901, CloseReason.LIQUIDATION),  # liquidation wins
        (rules.Position(LONG, 900, 950, 1200), 1200, 1201, CloseReason.TAKE_PROFIT),
        (rules.Position(LONG, 900), 1_000_000, 1_000_001, None),
        (rules.Position(SHORT, 1100, 1050, 800), 1000, 1001, None),
        (rules.Position(SHORT, 1100, 1050, 800), 1049, 1050, CloseReason.STOP_LOSS),
        (rules.Position(SHORT, 1100, 1050, 800), 1099, 1100, CloseReason.LIQUIDATION),
        (rules.Position(SHORT, 1100, 1050, 800), 799, 800, CloseReason.TAKE_PROFIT),
        # a short closes at the ask: a bid below the take-profit alone does not trigger it
        (rules.Position(SHORT, 1100, None, 800), 799, 801, None),
    ],
)
def test_close_trigger_table(position, bid, ask, reason):
    assert rules.close_trigger(position, bid, ask) == reason


decimals_st = st.sampled_from([4, 6])
price_st = st.integers(min_value=1_000, max_value=10**12)
side_st = st.sampled_from([LONG, SHORT])


@given(side_st, st.integers(100, 10**9), st.integers(1, 100), price_st, price_st, decimals_st)
def test_money_is_conserved_and_pnl_sign_matches_direction(side, margin, leverage, open_price, close_price, decimals):
    qty = rules.quantity(margin, leverage, open_price, decimals)
    profit = rules.pnl(side, open_price, close_price, qty, decimals)
    credit = rules.settlement(margin, profit)
    # free balance after open and close = before - margin + credit; never below what was left
    assert credit >= 0
    assert credit - margin == max(profit, -margin)
    went_up = close_price > open_price
    if close_price == open_price:
        assert profit == 0
    elif (side == LONG) == went_up:
        assert profit >= 0
    else:
        assert profit <= 0


@given(side_st, st.integers(100, 10**9), st.integers(1, 100), price_st, decimals_st, st.integers(1, 10**12))
def test_liquidation_price_marks_exactly_where_loss_reaches_the_ratio(
    side, margin, leverage, open_price, decimals, price
):
    qty = rules.quantity(margin, leverage, open_price, decimals)
    if qty == 0:
        return
    liq = rules.liquidation_price(side, open_price, qty, margin, RATIO, decimals)
    position = rules.Position(side, liq)
    crossed = rules.close_trigger(position, price, price) == CloseReason.LIQUIDATION
    # the exact (untruncated) loss at `price`, compared without rounding
    move = (open_price - price) if side == LONG else (price - open_price)
    loss_reaches_ratio = move * qty * 10 >= 9 * margin * rules.scale(decimals)
    assert crossed == loss_reaches_ratio


@given(side_st, price_st, price_st, st.integers(1, 10_000))
def test_slippage_accepts_only_fills_within_bound(side, requested, fill, bps):
    ok = rules.slippage_ok(side, requested, fill, bps)
    worse_by = (fill - requested) if side == LONG else (requested - fill)
    assert ok == (Decimal(worse_by) / requested <= Decimal(bps) / 10_000)
