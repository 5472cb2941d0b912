"""What an order does at a price: one handler per order type, in one table (`HANDLERS`).

Pure decisions on integers (units of `core.money`): the engine executes them and the trade
preview shows them, so the two cannot drift. A handler answers for an order arriving
(`arrive`: fill now, rest working, or reject) and for a working order at a new price
(`on_price`: fill, end, or `None` to keep working). Adding an order type means adding a handler
here and its crossing condition to the engine's trigger check (`workers.triggers.CROSSING`).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from core import rules
from core.book import Book, Execution, Level, expected_fill, fee, levels_within, notional
from core.enums import FillModel, OrderType, RejectReason, Side
from core.money import BPS

MAX_QUANTITY = 2**63 - 1  # BIGINT


@dataclass(frozen=True)
class Terms:
    """What the order asks for. `quantity` is a working order's, set when it was placed."""

    order_type: OrderType
    side: Side
    margin: int
    leverage: int
    decimals: int
    requested_price: int | None = None  # a market order's slippage reference
    slippage_bps: int = BPS
    limit_price: int | None = None
    stop_price: int | None = None
    stop_loss: int | None = None
    take_profit: int | None = None
    expires_at: datetime | None = None
    quantity: int | None = None
    step: int = 1  # the market's lot: quantities are multiples of `step`, at least `min_quantity`
    min_quantity: int = 1

    @property
    def buying(self) -> bool:
        return self.side == Side.LONG

    def sized(self, price: int) -> int:
        """The quantity margin x leverage buys at `price`, down to the market's step; 0 below its
        minimum quantity."""
        quantity = rules.quantity(self.margin, self.leverage, price, self.decimals)
        quantity -= quantity % self.step
        return quantity if quantity >= self.min_quantity else 0


@dataclass(frozen=True)
class Market:
    """The market now: the top of book, and the depth book when a fresh one is kept."""

    bid: int
    ask: int
    book: Book | None = None
    model: FillModel = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", FillModel.DEPTH if self.book is not None else FillModel.TOP_OF_BOOK)

    def side_levels(self, buying: bool, limit: int | None = None) -> tuple[Level, ...]:
        """The levels a buy takes (asks) or a sell (bids), within `limit`; the top of book as one
        level of any size without a depth book."""
        if self.book is not None:
            return levels_within(self.book, buying, limit)
        price = self.ask if buying else self.bid
        if limit is not None and (price > limit if buying else price < limit):
            return ()
        return (Level(price, MAX_QUANTITY),)

    def fill(self, quantity: int, buying: bool, limit: int | None = None, forced: bool = False) -> Execution | None:
        """What `quantity` fills at now (`core.book.expected_fill`); None: it cannot fill."""
        found = expected_fill(self.book, self.bid, self.ask, quantity, buying, limit, forced)
        return None if found is None else found[0]


@dataclass(frozen=True)
class Account:
    """What the account holds that the decision depends on; `free_usd` None: not checked (a preview)."""

    free_usd: int | None
    working_orders: int = 0


@dataclass(frozen=True)
class Costs:
    """The service's trading rules that price a fill."""

    taker_fee_bps: int
    liquidation_ratio: Decimal
    max_working_orders: int
    maker_fee_bps: int = 0  # a limit order that rested before the book reached it

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> "Costs":
        """From the service's settings (`config.Config`)."""
        return cls(
            settings["TAKER_FEE_BPS"],
            settings["LIQUIDATION_RATIO"],
            settings["MAX_WORKING_ORDERS"],
            settings["MAKER_FEE_BPS"],
        )


@dataclass(frozen=True)
class Fill:
    """Open the position now: at `price` (the VWAP of `fills`), paying `fee`."""

    quantity: int
    price: int
    fills: tuple[Level, ...]
    model: FillModel
    fee: int
    liquidation_price: int


@dataclass(frozen=True)
class Rest:
    """Place it working at its own `price`, its margin reserved, for `quantity`."""

    quantity: int
    price: int


@dataclass(frozen=True)
class Reject:
    """Refuse it (arriving) or end it (working, its margin released), for `reason`."""

    reason: RejectReason


Decision = Fill | Rest | Reject


def _open(
    terms: Terms, execution: Execution, model: FillModel, account: Account, costs: Costs, maker: bool = False
) -> Fill | Reject:
    """The fill, unless its stops are on the wrong side of its price; the fee from what is free
    (a working order's margin is already reserved: its fee never takes the balance below zero)."""
    if not rules.stops_valid(terms.side, execution.price, terms.stop_loss, terms.take_profit):
        return Reject(RejectReason.INVALID_STOPS)
    fee_bps = costs.maker_fee_bps if maker else costs.taker_fee_bps
    charged = fee(notional(execution.price, execution.quantity, terms.decimals), fee_bps)
    if account.free_usd is not None:
        charged = min(charged, account.free_usd)
    liquidation = rules.liquidation_price(
        terms.side, execution.price, execution.quantity, terms.margin, costs.liquidation_ratio, terms.decimals
    )
    return Fill(execution.quantity, execution.price, execution.fills, model, charged, liquidation)


class MarketOrder:
    """Fills now against the book, sized from its reference price, within its slippage."""

    def arrive(self, terms: Terms, account: Account, market: Market | None, costs: Costs, now: datetime) -> Decision:
        if market is None:
            return Reject(RejectReason.PRICE_UNAVAILABLE)
        if account.free_usd is not None and account.free_usd < terms.margin:
            return Reject(RejectReason.INSUFFICIENT_BALANCE)  # the account's own limit first: it holds at any price
        reference = terms.requested_price or rules.open_fill(terms.side, market.bid, market.ask)
        quantity = terms.sized(reference)
        if not 0 < quantity <= MAX_QUANTITY:
            return Reject(RejectReason.INVALID_QUANTITY)
        execution = market.fill(quantity, terms.buying)
        if execution is None:
            return Reject(RejectReason.INSUFFICIENT_LIQUIDITY)
        if not rules.slippage_ok(terms.side, reference, execution.price, terms.slippage_bps):
            return Reject(RejectReason.SLIPPAGE_EXCEEDED)
        decision = _open(terms, execution, market.model, Account(None), costs)
        if (
            isinstance(decision, Fill)
            and account.free_usd is not None
            and account.free_usd < terms.margin + decision.fee
        ):
            return Reject(RejectReason.INSUFFICIENT_BALANCE)
        return decision

    def on_price(self, terms: Terms, account: Account, market: Market, costs: Costs, now: datetime) -> Decision | None:
        return None  # a market order never works


@dataclass(frozen=True)
class RestingOrder:
    """Works at its own price (`price_of`) with its margin reserved until the book reaches it
    (`reached`), then fills all at once, never beyond its `limit_of` (None: as a market order).

    Its quantity comes from its own price, but never so much that the notional at the fill
    exceeds margin x leverage: the effective leverage never exceeds the requested one, whatever
    price the order names (`_capped`). A `maker` (a limit) filled after it rested pays
    MAKER_FEE_BPS; filled as it arrives, it took liquidity: TAKER_FEE_BPS."""

    price_of: Callable[[Terms], int | None]
    reached: Callable[[Side, int, int], bool]  # (side, its price, the price it would open at)
    limit_of: Callable[[Terms], int | None]
    maker: bool = False

    def quantity(self, terms: Terms) -> int:
        price = self.price_of(terms)
        return terms.sized(price) if price else 0

    def arrive(self, terms: Terms, account: Account, market: Market | None, costs: Costs, now: datetime) -> Decision:
        quantity = self.quantity(terms)
        if terms.expires_at is not None and terms.expires_at <= now:
            return Reject(RejectReason.EXPIRED)  # past its time: never filled, never placed
        if account.free_usd is not None and account.free_usd < terms.margin:
            return Reject(RejectReason.INSUFFICIENT_BALANCE)
        if not 0 < quantity <= MAX_QUANTITY:
            return Reject(RejectReason.INVALID_QUANTITY)
        if account.working_orders >= costs.max_working_orders:
            return Reject(RejectReason.TOO_MANY_WORKING_ORDERS)
        placed = Terms(**{**terms.__dict__, "quantity": quantity})
        reserved = Account(None if account.free_usd is None else account.free_usd - terms.margin)
        decision = self._fill(placed, reserved, market, costs, now, maker=False) if market is not None else None
        return Rest(quantity, self.price_of(terms) or 0) if decision is None else decision

    def on_price(self, terms: Terms, account: Account, market: Market, costs: Costs, now: datetime) -> Decision | None:
        return self._fill(terms, account, market, costs, now, maker=self.maker)

    def _fill(
        self, terms: Terms, account: Account, market: Market, costs: Costs, now: datetime, maker: bool
    ) -> Decision | None:
        price, quantity = self.price_of(terms), terms.quantity
        if price is None or quantity is None:
            return None
        if not self.reached(terms.side, price, rules.open_fill(terms.side, market.bid, market.ask)):
            return None
        if terms.expires_at is not None and terms.expires_at <= now:
            return Reject(RejectReason.EXPIRED)
        limit = self.limit_of(terms)
        quantity = self._capped(terms, quantity, market.side_levels(terms.buying, limit))
        execution = market.fill(quantity, terms.buying, limit) if quantity else None
        if execution is not None:
            return _open(terms, execution, market.model, account, costs, maker)
        if limit is not None and sum(level.quantity for level in market.side_levels(terms.buying)) >= quantity > 0:
            return None  # the book holds it, not yet within its limit: all or nothing, it keeps working
        return Reject(RejectReason.INSUFFICIENT_LIQUIDITY)  # reached, and the book can never fill it

    @staticmethod
    def _capped(terms: Terms, quantity: int, levels: tuple[Level, ...]) -> int:
        """`quantity`, or less: no more than margin x leverage at the priciest level its fill can
        take, so the fill's notional (its average is never above that level) stays within it."""
        taken, priciest = 0, 0
        for level in levels:
            if taken >= quantity:
                break
            taken += level.quantity
            priciest = max(priciest, level.price)
        if not priciest:
            return quantity
        return min(quantity, terms.sized(priciest))


def _at_or_better(side: Side, price: int, opens_at: int) -> bool:
    return opens_at <= price if side == Side.LONG else opens_at >= price


def _at_or_beyond(side: Side, price: int, opens_at: int) -> bool:
    return opens_at >= price if side == Side.LONG else opens_at <= price


Handler = MarketOrder | RestingOrder

HANDLERS: dict[OrderType, Handler] = {
    OrderType.MARKET: MarketOrder(),
    # fills when the price it opens at is at or better than its limit, never worse than it
    OrderType.LIMIT: RestingOrder(lambda t: t.limit_price, _at_or_better, lambda t: t.limit_price, maker=True),
    # a market order once the price it opens at is at or beyond its stop
    OrderType.STOP: RestingOrder(lambda t: t.stop_price, _at_or_beyond, lambda t: None),
}


def arrive(terms: Terms, account: Account, market: Market | None, costs: Costs, now: datetime) -> Decision:
    """A new order: fill it now, place it working, or reject it."""
    return HANDLERS[terms.order_type].arrive(terms, account, market, costs, now)


def on_price(terms: Terms, account: Account, market: Market, costs: Costs, now: datetime) -> Decision | None:
    """A working order at a new price: fill it, end it (`Reject`), or None: it keeps working."""
    return HANDLERS[terms.order_type].on_price(terms, account, market, costs, now)
