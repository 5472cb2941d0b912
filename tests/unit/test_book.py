"""Fills that walk the book: hand-computed books and properties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.book import Book, Level, expected_fill, fee, notional, slippage_bps, walk, walk_or_worst
from core.enums import FillModel
from core.money import BPS

ASKS = (Level(1000, 50), Level(1001, 30), Level(1005, 100))  # best (lowest) first
BIDS = (Level(999, 40), Level(995, 60))  # best (highest) first


def test_a_buy_that_fits_the_first_level_fills_at_it():
    execution = walk(ASKS, 20, buying=True)
    assert execution.price == 1000 and execution.fills == (Level(1000, 20),)


def test_a_larger_buy_walks_the_asks_and_its_average_rounds_up():
    execution = walk(ASKS, 90, buying=True)  # 50 @ 1000 + 30 @ 1001 + 10 @ 1005 = 90_080 / 90 = 1000.89
    assert execution.fills == (Level(1000, 50), Level(1001, 30), Level(1005, 10))
    assert execution.price == 1001


def test_a_sell_walks_the_bids_and_its_average_rounds_down():
    execution = walk(BIDS, 70, buying=False)  # 40 @ 999 + 30 @ 995 = 69_810 / 70 = 997.29
    assert execution.price == 997


def test_a_book_too_thin_is_no_fill_unless_the_engine_must_close():
    assert walk(BIDS, 101, buying=False) is None
    forced = walk_or_worst(BIDS, 150, buying=False)  # the 50 beyond the book at the worst level, 995
    assert forced.fills == (Level(999, 40), Level(995, 110)) and forced.quantity == 150
    assert walk_or_worst((), 1, buying=False) is None


def test_fees_and_notional_round_against_the_trader():
    assert notional(1_000_000_000, 10_000_000, 4) == 1_000_000  # 0.1 BTC at 100000.0000 = 10000.00 USD
    assert fee(100_000, 10) == 100 and fee(100_001, 10) == 101  # 10 bps, rounded up
    assert fee(100_000, 0) == 0
    assert slippage_bps(1000, 1001, buying=True) == 10 and slippage_bps(1000, 1001, buying=False) == -10


levels = st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 10**9)), min_size=1, max_size=8)


def book_side(raw, buying: bool) -> tuple[Level, ...]:
    prices = sorted({p for p, _ in raw}, reverse=not buying)  # asks ascending, bids descending
    sizes = dict(raw)
    return tuple(Level(p, sizes[p]) for p in prices)


@given(raw=levels, buying=st.booleans(), data=st.data())
def test_the_average_lies_between_the_best_and_the_worst_level_used(raw, buying, data):
    side = book_side(raw, buying)
    quantity = data.draw(st.integers(1, sum(level.quantity for level in side)))
    execution = walk(side, quantity, buying)
    used = [fill.price for fill in execution.fills]
    assert min(used) <= execution.price <= max(used)
    assert sum(fill.quantity for fill in execution.fills) == quantity


@given(raw=levels, buying=st.booleans(), data=st.data())
def test_a_larger_order_never_gets_a_better_average(raw, buying, data):
    side = book_side(raw, buying)
    total = sum(level.quantity for level in side)
    smaller = data.draw(st.integers(1, total))
    larger = data.draw(st.integers(smaller, total))
    small, large = walk(side, smaller, buying).price, walk(side, larger, buying).price
    assert (large >= small) if buying else (large <= small)


@given(raw=levels, buying=st.booleans(), data=st.data())
def test_the_top_of_book_when_the_first_level_suffices(raw, buying, data):
    side = book_side(raw, buying)
    quantity = data.draw(st.integers(1, side[0].quantity))
    assert walk(side, quantity, buying).price == side[0].price


@given(amount=st.integers(0, 10**15), bps=st.integers(0, 1000))
def test_a_fee_is_the_exact_share_rounded_up_never_more_than_a_unit_over(amount, bps):
    charged = fee(amount, bps)
    assert charged * BPS >= amount * bps > (charged - 1) * BPS or charged == 0


@pytest.mark.parametrize("quantity", [0, -1])
def test_nothing_to_fill_is_no_fill(quantity):
    assert walk(ASKS, quantity, buying=True) is None


def test_without_a_book_the_top_of_book_fills_any_size_but_never_beyond_a_limit():
    execution, model = expected_fill(None, bid=100, ask=101, quantity=10**12, buying=True)
    assert (execution.price, execution.fills, model) == (101, (Level(101, 10**12),), FillModel.TOP_OF_BOOK)
    assert expected_fill(None, bid=100, ask=101, quantity=5, buying=True, limit=100) is None
    assert expected_fill(None, bid=100, ask=101, quantity=5, buying=False, limit=100)[0].price == 100


def test_with_a_book_a_fill_walks_only_the_levels_within_its_limit():
    book = Book("BTC", bids=(Level(100, 5),), asks=(Level(101, 5), Level(103, 5)), update_id=1)
    execution, model = expected_fill(book, 100, 101, quantity=8, buying=True)
    assert model == FillModel.DEPTH and execution.price == (101 * 5 + 103 * 3 + 7) // 8
    assert expected_fill(book, 100, 101, quantity=8, buying=True, limit=102) is None
    assert expected_fill(book, 100, 101, quantity=8, buying=True, limit=102, forced=True)[0].price == 101
