"""Trigger levels (`core.triggers`): a quote crosses a shard's levels exactly when it would close one
of its positions or reach one of its working orders, so checking only on crossings misses nothing."""

from hypothesis import given
from hypothesis import strategies as st

from core import rules
from core.enums import OrderType, Side
from core.execution import HANDLERS
from core.triggers import Levels, fold, of_position, of_working

prices = st.integers(1, 10**12)
maybe_prices = st.none() | prices
quotes = st.tuples(prices, st.integers(0, 10**6)).map(lambda q: (q[0], q[0] + q[1]))  # bid <= ask


@given(st.sampled_from(list(Side)), prices, maybe_prices, maybe_prices, quotes)
def test_a_position_crosses_its_levels_exactly_when_it_must_close(side, liquidation, stop_loss, take_profit, quote):
    bid, ask = quote
    must_close = rules.close_trigger(rules.Position(side, liquidation, stop_loss, take_profit), bid, ask)
    assert of_position(side, liquidation, stop_loss, take_profit).crossed(bid, ask) == (must_close is not None)


@given(st.sampled_from([OrderType.LIMIT, OrderType.STOP]), st.sampled_from(list(Side)), prices, quotes)
def test_a_working_order_crosses_its_level_exactly_when_the_quote_reaches_it(order_type, side, price, quote):
    bid, ask = quote
    reached = HANDLERS[order_type].reached(side, price, rules.open_fill(side, bid, ask))
    assert of_working(order_type, side, price).crossed(bid, ask) == reached


levels = st.builds(Levels, maybe_prices, maybe_prices, maybe_prices, maybe_prices)


@given(st.lists(levels, max_size=5), quotes)
def test_a_shards_levels_are_crossed_when_any_of_its_orders_is(each, quote):
    assert fold(each).crossed(*quote) == any(level.crossed(*quote) for level in each)


def test_nothing_open_crosses_nothing():
    assert not Levels().crossed(1, 2)
