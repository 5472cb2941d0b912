"""Netting accounts (`core.netting`): positions, cross margin, and each order's decision against
the book, by tables and by properties."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import cross_margin, netting
from core.book import Level
from core.cross_margin import Account, Holding, Position, Spec
from core.enums import NetOrderStatus, NetOrderType, NetRejectReason, TimeInForce, TradeSide
from core.markets import MarginFunction
from core.money import scale
from core.netting import Costs, Order

# SOL_USDC_PERP as Backpack lists it: tick 0.01 (2 price decimals), IMF {0.02, 0.0001275}, MMF {0.0125, 0.0000765}
SOL = Spec(
    "SOL_USDC_PERP",
    2,
    MarginFunction(Decimal("0.02"), Decimal("0.0001275")),
    MarginFunction(Decimal("0.0125"), Decimal("0.0000765")),
    step=10**6,  # 0.01 SOL
    min_quantity=10**6,
)
ONE = 10**8  # one SOL
COSTS = Costs(taker_fee_bps=5, maker_fee_bps=2, max_working_orders=3)
ASKS = (Level(100_00, 2 * ONE), Level(100_10, 3 * ONE), Level(101_00, 5 * ONE))
BIDS = (Level(99_90, 2 * ONE), Level(99_80, 3 * ONE), Level(99_00, 5 * ONE))


def account(cash=1_000_000, position=Position(), mark=99_95, leverage_limit=10, working=0) -> Account:
    return Account(cash, leverage_limit, {SOL.symbol: Holding(SOL, position, mark, working)})


def buy(quantity=None, **terms) -> Order:
    return Order(TradeSide.BUY, terms.pop("order_type", NetOrderType.MARKET), quantity, **terms)


def sell(quantity=None, **terms) -> Order:
    return Order(TradeSide.SELL, terms.pop("order_type", NetOrderType.MARKET), quantity, **terms)


def arrive(order: Order, acct: Account | None = None, working_orders=0):
    levels = ASKS if order.buying else BIDS
    return netting.arrive(order, acct or account(), SOL.symbol, levels, COSTS, working_orders)


# --- positions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before, buying, quantity, price, after, realized",
    [
        (Position(), True, ONE, 100_00, Position(ONE, 100_00 * ONE), 0),
        (Position(ONE, 100_00 * ONE), True, ONE, 102_00, Position(2 * ONE, 202_00 * ONE), 0),  # adds: cost adds up
        (Position(2 * ONE, 202_00 * ONE), False, ONE, 103_00, Position(ONE, 101_00 * ONE), 2_00),  # realizes 2.00
        (Position(ONE, 100_00 * ONE), False, ONE, 99_00, Position(), -1_00),  # closed at a loss
        (Position(ONE, 100_00 * ONE), False, 3 * ONE, 99_00, Position(-2 * ONE, 198_00 * ONE), -1_00),  # flips short
        (Position(-ONE, 100_00 * ONE), True, ONE, 99_00, Position(), 1_00),  # a short bought back lower
        (Position(3, 1_00), False, 1, 33, Position(2, 66), -1),  # a third of the cost rounds up to 34: a loss
    ],
)
def test_a_fill_moves_the_position_and_realizes_what_it_reduced(before, buying, quantity, price, after, realized):
    assert before.after(buying, quantity, price, SOL.decimals) == (after, realized)


fills = st.lists(
    st.tuples(st.booleans(), st.integers(1, 50).map(lambda n: n * 10**6), st.integers(50_00, 150_00)),
    min_size=1,
    max_size=12,
)


@given(fills)
def test_realized_pnl_never_exceeds_the_cash_the_fills_moved(trades):
    """Trade any sequence and close flat: the PnL realized is the cash the fills moved (sells
    minus buys), rounded against the trader by less than a cent a fill."""
    position, realized, flow = Position(), 0, 0
    for buying, quantity, price in trades:
        position, gained = position.after(buying, quantity, price, SOL.decimals)
        realized += gained
        flow += -price * quantity if buying else price * quantity
    if position.quantity:
        price = trades[-1][2]
        flow += price * position.quantity
        position, gained = position.after(position.quantity < 0, abs(position.quantity), price, SOL.decimals)
        realized += gained
    assert position == Position()
    exact = Decimal(flow) / scale(SOL.decimals)
    assert exact - len(trades) - 1 <= realized <= exact


# --- margin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "notional_cents, fraction",
    [
        (1_000_00, Decimal("0.02")),  # small: the base
        (10_000_000_00, Decimal("0.0001275") * Decimal(10_000_000).sqrt()),  # 10M USD: 0.403
    ],
)
def test_a_margin_fraction_is_the_larger_of_base_and_factor_root_notional(notional_cents, fraction):
    assert cross_margin.margin_fraction(SOL.imf, notional_cents) == fraction


def test_the_leverage_limit_floors_the_initial_fraction():
    held = account(position=Position(10 * ONE, 1000_00 * ONE), mark=100_00)  # 1,000 USD
    assert held.initial_margin() == 100_00  # 1/10 beats the IMF's 2 %
    assert account(position=Position(10 * ONE, 1000_00 * ONE), mark=100_00, leverage_limit=50).initial_margin() == 20_00


def test_an_account_is_liquidatable_once_equity_reaches_maintenance():
    # 10 SOL long from 100: notional 1,000 at mark 100, maintenance 1.25 % = 12.50
    position = Position(10 * ONE, 1000_00 * ONE)
    assert not account(cash=20_00, position=position, mark=100_00).liquidatable()
    assert account(cash=20_00, position=position, mark=99_20).liquidatable()  # equity 12.00 <= 12.40
    assert not account(cash=0).liquidatable()  # no position: nothing to liquidate


@given(
    st.integers(1, 100).map(lambda n: n * 10**7),
    st.integers(60_00, 140_00),
    st.integers(5_00, 1_000_00),
    st.booleans(),
)
def test_the_estimated_liquidation_price_is_where_liquidation_starts(quantity, entry, cash, long):
    signed = quantity if long else -quantity
    held = account(cash=cash, position=Position(signed, entry * quantity), mark=entry)
    if held.liquidatable():
        return
    price = held.estimated_liquidation_price(SOL.symbol)
    at = lambda mark: account(cash=cash, position=Position(signed, entry * quantity), mark=mark)  # noqa: E731
    if price is None:
        assert long and not at(0).liquidatable()
        return
    assert at(price).liquidatable()
    assert not at(price + 1 if long else price - 1).liquidatable()


# --- orders arriving ------------------------------------------------------------------------


def test_a_market_buy_walks_the_asks_paying_the_taker_fee():
    outcome = arrive(buy(3 * ONE))
    assert outcome.status == NetOrderStatus.FILLED
    assert [(t.price, t.quantity) for t in outcome.trades] == [(100_00, 2 * ONE), (100_10, ONE)]
    assert [t.fee for t in outcome.trades] == [10, 6]  # 5 bps of 200.00 and of 100.10, rounded up
    assert outcome.position == Position(3 * ONE, 300_10 * ONE)
    assert outcome.cash_delta == -16


def test_a_market_buy_by_quote_quantity_buys_what_the_cents_pay_for_on_the_step():
    outcome = arrive(buy(quote_quantity=250_00))
    assert [(t.price, t.quantity) for t in outcome.trades] == [(100_00, 2 * ONE), (100_10, 49 * 10**6)]
    assert outcome.quantity == 249 * 10**6 and outcome.status == NetOrderStatus.FILLED


@pytest.mark.parametrize(
    "order, status, executed, working",
    [
        (buy(4 * ONE, order_type=NetOrderType.LIMIT, price=100_10), NetOrderStatus.PARTIALLY_FILLED, 4 * ONE, 0),
        (buy(6 * ONE, order_type=NetOrderType.LIMIT, price=100_10), NetOrderStatus.PARTIALLY_FILLED, 5 * ONE, ONE),
        (buy(ONE, order_type=NetOrderType.LIMIT, price=99_00), NetOrderStatus.NEW, 0, ONE),
        (
            buy(6 * ONE, order_type=NetOrderType.LIMIT, price=100_10, time_in_force=TimeInForce.IOC),
            NetOrderStatus.EXPIRED,
            5 * ONE,
            0,
        ),
        (
            buy(6 * ONE, order_type=NetOrderType.LIMIT, price=100_10, time_in_force=TimeInForce.FOK),
            NetOrderStatus.EXPIRED,
            0,
            0,
        ),
        (
            buy(5 * ONE, order_type=NetOrderType.LIMIT, price=100_10, time_in_force=TimeInForce.FOK),
            NetOrderStatus.FILLED,
            5 * ONE,
            0,
        ),
        (buy(20 * ONE), NetOrderStatus.EXPIRED, 10 * ONE, 0),  # a market order takes what the book shows
        (sell(ONE, order_type=NetOrderType.LIMIT, price=101_00, post_only=True), NetOrderStatus.NEW, 0, ONE),
    ],
)
def test_time_in_force_decides_what_becomes_of_the_rest(order, status, executed, working):
    outcome = arrive(order)
    expected_status = NetOrderStatus.FILLED if executed == order.quantity and not working else status
    assert (outcome.status, outcome.executed, outcome.working) == (expected_status, executed, working)


@pytest.mark.parametrize(
    "order, acct, reason",
    [
        (buy(ONE, order_type=NetOrderType.LIMIT, price=100_00, post_only=True), None, "post_only_would_take"),
        (sell(ONE, reduce_only=True), None, "reduce_only_not_reducing"),  # no position
        (buy(ONE, reduce_only=True), account(position=Position(ONE, 100_00 * ONE)), "reduce_only_not_reducing"),
        (buy(10 * ONE), account(cash=50_00), "insufficient_margin"),  # 1,000 USD at 10x needs 100
        (buy(ONE, order_type=NetOrderType.LIMIT, price=90_00), account(cash=5_00), "insufficient_margin"),
        (buy(quote_quantity=1), None, "quantity_too_small"),
    ],
)
def test_an_order_the_rules_refuse_is_rejected_whole(order, acct, reason):
    outcome = arrive(order, acct)
    assert (outcome.status, outcome.reason, outcome.trades) == (NetOrderStatus.REJECTED, NetRejectReason(reason), ())


def test_reducing_needs_no_margin_and_reduce_only_is_capped_at_the_position():
    broke = account(cash=0, position=Position(ONE, 100_00 * ONE))
    outcome = arrive(sell(3 * ONE, reduce_only=True), broke)
    assert outcome.status == NetOrderStatus.FILLED and outcome.executed == ONE and outcome.position == Position()


def test_no_price_rejects_and_a_full_account_refuses_to_rest():
    assert netting.arrive(buy(ONE), account(), SOL.symbol, None, COSTS, 0).reason == NetRejectReason.PRICE_UNAVAILABLE
    limit = buy(ONE, order_type=NetOrderType.LIMIT, price=90_00)
    assert arrive(limit, working_orders=3).reason == NetRejectReason.TOO_MANY_WORKING_ORDERS


# --- working orders and liquidation ---------------------------------------------------------


def test_a_working_limit_fills_by_the_visible_size_as_a_maker():
    order = buy(5 * ONE, order_type=NetOrderType.LIMIT, price=99_00)
    book = (Level(98_50, 2 * ONE), Level(99_00, ONE), Level(99_50, 9 * ONE))
    first = netting.on_book(order, 5 * ONE, Position(), SOL, book, COSTS)
    assert (first.status, first.executed, first.working) == (NetOrderStatus.PARTIALLY_FILLED, 3 * ONE, 2 * ONE)
    assert all(trade.maker for trade in first.trades) and first.trades[0].fee == 4  # 2 bps of 197.00
    second = netting.on_book(replace_filled(order, 3 * ONE), 5 * ONE, first.position, SOL, book, COSTS)
    assert (second.status, second.executed) == (NetOrderStatus.FILLED, 2 * ONE)
    assert netting.on_book(order, 5 * ONE, Position(), SOL, (Level(99_10, ONE),), COSTS) is None


def replace_filled(order: Order, filled: int) -> Order:
    return Order(order.side, order.order_type, order.quantity, price=order.price, filled=filled)


def test_a_working_reduce_only_ends_with_the_position():
    order = sell(5 * ONE, order_type=NetOrderType.LIMIT, price=99_00, reduce_only=True)
    ended = netting.on_book(order, 5 * ONE, Position(), SOL, BIDS, COSTS)
    assert ended.status == NetOrderStatus.CANCELLED and ended.trades == ()
    capped = netting.on_book(order, 5 * ONE, Position(ONE, 100_00 * ONE), SOL, BIDS, COSTS)
    assert capped.status == NetOrderStatus.CANCELLED and capped.executed == ONE and capped.position == Position()


def test_a_liquidation_closes_against_the_book_paying_one_percent_a_fill():
    trades, cash = netting.close_out(Position(3 * ONE, 300_00 * ONE), SOL, BIDS)
    assert [(t.price, t.quantity, t.fee) for t in trades] == [
        (99_90, 2 * ONE, 2_00),
        (99_80, ONE, 1_00),
    ]
    assert cash == sum(t.realized - t.fee for t in trades)
    thin, _ = netting.close_out(Position(-20 * ONE, 2000_00 * ONE), SOL, ASKS)
    assert sum(t.quantity for t in thin) == 20 * ONE and thin[-1].price == 101_00  # the rest at the worst level
    reset, _ = netting.close_out(Position(ONE, 100_00 * ONE), SOL, BIDS, fee_bps=COSTS.taker_fee_bps)
    assert [t.fee for t in reset] == [5]  # a reset's close pays the taker fee: 5 bps of 99.90


# --- triggers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger, above, price, fired",
    [
        (100_00, True, 99_99, False),
        (100_00, True, 100_00, True),
        (100_00, False, 100_01, False),
        (100_00, False, 99_00, True),
    ],
)
def test_a_trigger_fires_as_the_price_reaches_it_from_where_it_was(trigger, above, price, fired):
    assert netting.fires(trigger, above, price) is fired


def test_attached_closes_fire_on_the_side_each_protects():
    assert netting.attached_closes(TradeSide.BUY, 110_00, 90_00) == [(110_00, True), (90_00, False)]
    assert netting.attached_closes(TradeSide.SELL, 90_00, 110_00) == [(90_00, False), (110_00, True)]
    assert netting.attached_closes(TradeSide.SELL, None, None) == []
    assert netting.stops_on_the_right_side(TradeSide.BUY, 100_00, 110_00, 90_00)
    assert not netting.stops_on_the_right_side(TradeSide.BUY, 100_00, 100_00, None)
    assert not netting.stops_on_the_right_side(TradeSide.SELL, 100_00, None, 99_00)


@given(st.integers(1_00, 100_000_00), st.integers(-20, 20), st.booleans())
def test_the_max_order_quantity_is_the_largest_that_the_margin_takes(cash, held_lots, buying):
    held = Position(held_lots * 10**7, abs(held_lots) * 10**7 * 100_00)
    acct = account(cash=cash, position=held, mark=100_00)
    largest = netting.max_order_quantity(acct, SOL.symbol, buying, 100_00, COSTS)
    assert largest % SOL.step == 0
    deep = (Level(100_00, 10**15),)
    order = lambda q: Order(TradeSide.BUY if buying else TradeSide.SELL, NetOrderType.MARKET, q)  # noqa: E731
    if largest:
        assert netting.arrive(order(largest), acct, SOL.symbol, deep, COSTS, 0).status == NetOrderStatus.FILLED
    refused = netting.arrive(order(largest + SOL.step), acct, SOL.symbol, deep, COSTS, 0)
    assert refused.reason == NetRejectReason.INSUFFICIENT_MARGIN


def test_a_reduce_only_max_is_the_position_it_reduces():
    held = account(position=Position(3 * ONE, 300_00 * ONE))
    assert netting.max_order_quantity(held, SOL.symbol, False, 100_00, COSTS, reduce_only=True) == 3 * ONE
    assert netting.max_order_quantity(held, SOL.symbol, True, 100_00, COSTS, reduce_only=True) == 0
