"""The execution core (`core.execution`): each order type's decision, by tables and by properties."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import execution, rules
from core.book import Book, Level, notional
from core.enums import FillModel, OrderType, RejectReason, Side
from core.execution import HANDLERS, Account, Costs, Fill, Market, Reject, Rest, Terms

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
COSTS = Costs(taker_fee_bps=10, liquidation_ratio=Decimal("0.9"), max_working_orders=3)
BID, ASK = 1_000_000_000, 1_000_100_000  # BTC (4 decimals): 100000.0000 / 100010.0000
Q = 10**8  # one BTC


def btc(order_type=OrderType.MARKET, side=Side.LONG, margin=100_000, leverage=10, **terms) -> Terms:
    return Terms(order_type, side, margin, leverage, 4, **terms)


def deep(bid=BID, ask=ASK) -> Market:
    return Market(bid, ask, Book("BTC", (Level(bid, 10 * Q),), (Level(ask, 10 * Q),), 1))


RICH = Account(free_usd=500_000)


@pytest.mark.parametrize(
    "order_type, side, trigger, expected",
    [
        ("limit", "long", ASK, True),  # buys at the ask: at its limit
        ("limit", "long", ASK - 1, False),
        ("limit", "short", BID, True),  # sells at the bid
        ("limit", "short", BID + 1, False),
        ("stop", "long", ASK, True),  # the ask reached the stop
        ("stop", "long", ASK + 1, False),
        ("stop", "short", BID, True),
        ("stop", "short", BID - 1, False),
    ],
)
def test_a_working_order_is_reached_by_the_price_it_would_open_at(order_type, side, trigger, expected):
    handler = HANDLERS[OrderType(order_type)]
    assert handler.reached(Side(side), trigger, rules.open_fill(Side(side), BID, ASK)) is expected


@pytest.mark.parametrize(
    "terms, account, market, reason",
    [
        (btc(), RICH, None, RejectReason.PRICE_UNAVAILABLE),
        (btc(), Account(99_999), deep(), RejectReason.INSUFFICIENT_BALANCE),
        (btc(margin=100_000), Account(100_000), deep(), RejectReason.INSUFFICIENT_BALANCE),  # the fee does not fit
        (btc(margin=100, leverage=1, requested_price=10**15), RICH, deep(), RejectReason.INVALID_QUANTITY),
        (btc(requested_price=ASK - 200_000, slippage_bps=1), RICH, deep(), RejectReason.SLIPPAGE_EXCEEDED),
        (btc(stop_loss=ASK + 1), RICH, deep(), RejectReason.INVALID_STOPS),
        (btc(margin=10_000_000, leverage=100), Account(10**9), deep(), RejectReason.INSUFFICIENT_LIQUIDITY),
    ],
)
def test_a_market_order_is_rejected_for_the_first_rule_it_breaks(terms, account, market, reason):
    assert execution.arrive(terms, account, market, COSTS, NOW) == Reject(reason)


def test_a_market_order_fills_at_the_book_with_its_fee_and_liquidation_price():
    decision = execution.arrive(btc(), RICH, deep(), COSTS, NOW)
    quantity = rules.quantity(100_000, 10, ASK, 4)
    assert decision == Fill(
        quantity,
        ASK,
        (Level(ASK, quantity),),
        FillModel.DEPTH,
        fee=-(-notional(ASK, quantity, 4) * 10 // 10_000),
        liquidation_price=rules.liquidation_price(Side.LONG, ASK, quantity, 100_000, Decimal("0.9"), 4),
    )


def test_limit_and_stop_orders_rest_at_their_own_price_until_reached():
    limit = execution.arrive(btc(OrderType.LIMIT, limit_price=BID), RICH, deep(), COSTS, NOW)
    assert limit == Rest(rules.quantity(100_000, 10, BID, 4), BID)
    stop = execution.arrive(btc(OrderType.STOP, stop_price=ASK + 1), RICH, deep(), COSTS, NOW)
    assert stop == Rest(rules.quantity(100_000, 10, ASK + 1, 4), ASK + 1)
    assert execution.arrive(btc(OrderType.STOP, stop_price=ASK + 1), RICH, None, COSTS, NOW) == stop  # no price


def test_a_limit_the_book_holds_beyond_its_limit_keeps_working_all_or_nothing():
    thin_at_limit = Market(BID, ASK, Book("BTC", (Level(BID, Q),), (Level(ASK, 1_000), Level(ASK + 10_000, Q)), 1))
    decision = execution.arrive(btc(OrderType.LIMIT, limit_price=ASK), RICH, thin_at_limit, COSTS, NOW)
    assert isinstance(decision, Rest)


def test_an_account_at_its_working_order_cap_places_no_more():
    terms = btc(OrderType.LIMIT, limit_price=BID)
    at_cap = Account(500_000, working_orders=COSTS.max_working_orders)
    assert execution.arrive(terms, at_cap, deep(), COSTS, NOW) == Reject(RejectReason.TOO_MANY_WORKING_ORDERS)
    assert isinstance(execution.arrive(btc(), at_cap, deep(), COSTS, NOW), Fill)  # market orders do not work


# Defect 1: a marketable limit whose expiresAt had passed was filled.
@pytest.mark.parametrize("expires_at", [NOW, NOW - timedelta(seconds=1)])
def test_an_order_past_its_expiry_is_never_filled(expires_at):
    marketable = btc(OrderType.LIMIT, limit_price=ASK + 50_000, expires_at=expires_at)
    assert execution.arrive(marketable, RICH, deep(), COSTS, NOW) == Reject(RejectReason.EXPIRED)
    working = btc(OrderType.LIMIT, limit_price=ASK, expires_at=expires_at, quantity=10**6)
    assert execution.on_price(working, RICH, deep(), COSTS, NOW) == Reject(RejectReason.EXPIRED)


# Defect 2: a limit short at a tenth of the bid opened ten times the notional asked for.
@pytest.mark.parametrize(
    "terms",
    [
        btc(OrderType.LIMIT, Side.SHORT, limit_price=BID // 10),
        btc(OrderType.STOP, Side.LONG, stop_price=ASK // 10),
    ],
)
def test_a_marketable_order_priced_far_from_the_book_opens_no_more_than_margin_times_leverage(terms):
    decision = execution.arrive(terms, RICH, deep(), COSTS, NOW)
    assert isinstance(decision, Fill)
    assert notional(decision.price, decision.quantity, 4) <= terms.margin * terms.leverage


# Defect 3: a reached order that the book can never fill stayed working and was re-walked on every move.
def test_a_reached_stop_the_book_cannot_fill_ends_insufficient_liquidity():
    thin = Market(BID, ASK, Book("BTC", (Level(BID, 1_000),), (Level(ASK, 1_000),), 1))
    terms = btc(OrderType.STOP, stop_price=100, margin=10_000_000, leverage=100)
    assert execution.arrive(terms, Account(10**9), thin, COSTS, NOW) == Reject(RejectReason.INSUFFICIENT_LIQUIDITY)
    working = btc(OrderType.LIMIT, limit_price=ASK, quantity=10 * Q)  # more than the whole visible side
    assert execution.on_price(working, RICH, thin, COSTS, NOW) == Reject(RejectReason.INSUFFICIENT_LIQUIDITY)


def test_a_limit_filled_after_resting_pays_the_maker_fee_and_one_filled_on_arrival_the_taker_fee():
    costs = Costs(taker_fee_bps=10, liquidation_ratio=Decimal("0.9"), max_working_orders=3, maker_fee_bps=2)
    quantity = rules.quantity(100_000, 10, ASK, 4)
    charged = {bps: -(-notional(ASK, quantity, 4) * bps // 10_000) for bps in (2, 10)}
    rested = execution.on_price(btc(OrderType.LIMIT, limit_price=ASK, quantity=quantity), RICH, deep(), costs, NOW)
    assert isinstance(rested, Fill) and rested.fee == charged[2]
    arrived = execution.arrive(btc(OrderType.LIMIT, limit_price=ASK), RICH, deep(), costs, NOW)
    assert isinstance(arrived, Fill) and arrived.fee == charged[10]
    stopped = execution.on_price(btc(OrderType.STOP, stop_price=ASK, quantity=quantity), RICH, deep(), costs, NOW)
    assert isinstance(stopped, Fill) and stopped.fee == charged[10]  # a stop becomes a market order: a taker


def test_a_working_fill_takes_its_fee_only_from_what_is_free():
    working = btc(OrderType.STOP, stop_price=ASK, quantity=rules.quantity(100_000, 10, ASK, 4))
    decision = execution.on_price(working, Account(3), deep(), COSTS, NOW)
    assert isinstance(decision, Fill) and decision.fee == 3


levels_st = st.lists(
    st.tuples(st.integers(1, 20_000), st.integers(1, 5 * Q)), min_size=1, max_size=6, unique_by=lambda lv: lv[0]
)


@st.composite
def markets(draw):
    """A book around a random mid, the sides not crossing (or no book: the top of book)."""
    mid = draw(st.integers(10**6, 10**10))
    bids = sorted(((mid - offset, size) for offset, size in draw(levels_st)), reverse=True)
    asks = sorted((mid + offset, size) for offset, size in draw(levels_st))
    book = Book("X", tuple(Level(*lv) for lv in bids), tuple(Level(*lv) for lv in asks), 1)
    return Market(bids[0][0], asks[0][0], book if draw(st.booleans()) else None)


@given(
    markets(),
    st.sampled_from([OrderType.LIMIT, OrderType.STOP]),
    st.sampled_from(list(Side)),
    st.integers(100, 10**8),
    st.integers(1, 100),
    st.integers(1, 2 * 10**10),
)
def test_no_fill_ever_exceeds_the_requested_leverage(market, order_type, side, margin, leverage, price):
    prices = {"limit_price": price} if order_type == OrderType.LIMIT else {"stop_price": price}
    terms = Terms(order_type, side, margin, leverage, 4, **prices)
    decision = execution.arrive(terms, Account(None), market, COSTS, NOW)
    if isinstance(decision, Fill):
        assert notional(decision.price, decision.quantity, 4) <= margin * leverage
        assert decision.quantity == sum(level.quantity for level in decision.fills)
        if order_type == OrderType.LIMIT:  # never worse than its limit
            assert decision.price <= price if side == Side.LONG else decision.price >= price


@given(markets(), st.sampled_from(list(Side)), st.integers(100, 10**8), st.integers(1, 100))
def test_a_market_order_fills_what_the_book_walk_gives_or_says_why_not(market, side, margin, leverage):
    terms = Terms(OrderType.MARKET, side, margin, leverage, 4)
    decision = execution.arrive(terms, Account(None), market, COSTS, NOW)
    reference = rules.open_fill(side, market.bid, market.ask)
    quantity = rules.quantity(margin, leverage, reference, 4)
    walked = market.fill(quantity, side == Side.LONG) if quantity else None
    if isinstance(decision, Fill):
        assert walked is not None and (decision.price, decision.quantity) == (walked.price, quantity)
    else:
        assert decision.reason in (
            RejectReason.INVALID_QUANTITY,
            RejectReason.INSUFFICIENT_LIQUIDITY,
            RejectReason.SLIPPAGE_EXCEEDED,
        )
