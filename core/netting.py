"""Netting orders as pure decisions: what an order does against the book, for an account under
cross margin (`core.cross_margin`). An order that adds exposure is taken only if the account's
equity after it covers the initial margin of its positions and working orders; every rounding
goes against the trader.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.book import Level, fee
from core.cross_margin import Account, Position, Spec
from core.enums import NetOrderStatus, NetOrderType, NetRejectReason, TimeInForce, TradeSide
from core.money import scale

LIQUIDATION_FEE_BPS = 100  # Backpack: 1 % of each liquidation fill


@dataclass(frozen=True)
class Costs:
    taker_fee_bps: int
    maker_fee_bps: int
    max_working_orders: int


@dataclass(frozen=True)
class Order:
    """What a netting order asks for; `filled` is what a working order has executed so far."""

    side: TradeSide
    order_type: NetOrderType
    quantity: int | None = None
    quote_quantity: int | None = None  # cents a market order spends (buy) or receives (sell)
    price: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    filled: int = 0

    @property
    def buying(self) -> bool:
        return self.side == TradeSide.BUY


@dataclass(frozen=True)
class Trade:
    """One fill: a level of the book taken, its fee, and the PnL it realized."""

    price: int
    quantity: int
    fee: int
    maker: bool
    realized: int


@dataclass(frozen=True)
class Outcome:
    """What an order did: its fills (and the position and cash after them), the quantity it works
    on from now, and its status; `reason` when it was rejected."""

    status: NetOrderStatus
    trades: tuple[Trade, ...] = ()
    quantity: int | None = None  # the order's whole quantity (from quoteQuantity: what it bought)
    working: int = 0
    position: Position | None = None
    cash_delta: int = 0
    reason: NetRejectReason | None = None

    @property
    def executed(self) -> int:
        return sum(trade.quantity for trade in self.trades)


def rejected(reason: NetRejectReason) -> Outcome:
    return Outcome(NetOrderStatus.REJECTED, reason=reason)


def _within(levels: Sequence[Level], buying: bool, price: int | None) -> list[Level]:
    if price is None:
        return list(levels)
    return [level for level in levels if (level.price <= price if buying else level.price >= price)]


def _take(levels: Sequence[Level], quantity: int) -> list[Level]:
    taken, remaining = [], quantity
    for level in levels:
        if remaining <= 0:
            break
        size = min(level.quantity, remaining)
        if size > 0:
            taken.append(Level(level.price, size))
            remaining -= size
    return taken


def _spend(levels: Sequence[Level], budget: int, spec: Spec) -> list[Level]:
    """The levels `budget` cents buys (or, selling, brings in), each size down to the step."""
    taken, left = [], budget * scale(spec.decimals)  # in price × quantity units
    for level in levels:
        size = min(level.quantity, left // level.price)
        size -= size % spec.step
        if size <= 0:
            break
        taken.append(Level(level.price, size))
        left -= level.price * size
    return taken


def _trades(
    levels: list[Level], order: Order, position: Position, spec: Spec, fee_bps: int, maker: bool
) -> tuple[tuple[Trade, ...], Position, int]:
    """The levels as fills one after the other, the position after them, and the cash they moved."""
    trades, cash = [], 0
    for level in levels:
        position, realized = position.after(order.buying, level.quantity, level.price, spec.decimals)
        charged = fee(spec.notional(level.price, level.quantity), fee_bps)
        trades.append(Trade(level.price, level.quantity, charged, maker, realized))
        cash += realized - charged
    return tuple(trades), position, cash


def _reducible(order: Order, position: Position) -> int:
    """How much an order on the other side of the position can reduce it (0: it cannot)."""
    if position.quantity == 0 or position.long == order.buying:
        return 0
    return abs(position.quantity)


def arrive(
    order: Order, account: Account, symbol: str, levels: Sequence[Level] | None, costs: Costs, working_orders: int
) -> Outcome:
    """A new order against the side of the book it takes (`levels`, best first; None: no fresh
    price): fill what it may now, rest the rest (a GTC limit), or reject it whole."""
    holding = account.holdings[symbol]
    spec, position = holding.spec, holding.position
    if levels is None:
        return rejected(NetRejectReason.PRICE_UNAVAILABLE)
    quantity = order.quantity
    if order.reduce_only:
        reducible = _reducible(order, position)
        if not reducible:
            return rejected(NetRejectReason.REDUCE_ONLY_NOT_REDUCING)
        quantity = min(quantity, reducible) if quantity is not None else None
    within = _within(levels, order.buying, order.price if order.order_type == NetOrderType.LIMIT else None)
    if order.order_type == NetOrderType.LIMIT and order.post_only and within:
        return rejected(NetRejectReason.POST_ONLY_WOULD_TAKE)
    if quantity is None:  # a market order by quoteQuantity
        taken = _spend(within, order.quote_quantity or 0, spec)
        quantity = sum(level.quantity for level in taken)
        if order.reduce_only:
            taken = _take(taken, min(quantity, _reducible(order, position)))
            quantity = sum(level.quantity for level in taken)
        if quantity < spec.min_quantity:
            return rejected(NetRejectReason.QUANTITY_TOO_SMALL if within else NetRejectReason.INSUFFICIENT_LIQUIDITY)
    else:
        taken = _take(within, quantity)
    executed = sum(level.quantity for level in taken)
    if order.time_in_force == TimeInForce.FOK and executed < quantity:
        return Outcome(NetOrderStatus.EXPIRED, quantity=quantity)
    rests = order.order_type == NetOrderType.LIMIT and order.time_in_force == TimeInForce.GTC and executed < quantity
    if rests and working_orders >= costs.max_working_orders:
        return rejected(NetRejectReason.TOO_MANY_WORKING_ORDERS)
    trades, after, cash = _trades(taken, order, position, spec, costs.taker_fee_bps, maker=False)
    working = quantity - executed if rests else 0
    adds_working = working and not order.reduce_only
    new_holding = replace(
        holding,
        position=after,
        working=holding.working + (spec.notional(order.price or 0, working) if adds_working else 0),
    )
    if _adds_exposure(position, after) or adds_working:
        result = account.with_holding(symbol, new_holding, cash)
        if result.equity() < result.initial_margin():
            return rejected(NetRejectReason.INSUFFICIENT_MARGIN)
    if working:
        status = NetOrderStatus.PARTIALLY_FILLED if executed else NetOrderStatus.NEW
    else:
        status = NetOrderStatus.FILLED if executed == quantity else NetOrderStatus.EXPIRED
    return Outcome(status, trades, quantity, working, after, cash)


def _adds_exposure(before: Position, after: Position) -> bool:
    """More held, or the position flipped to the other side."""
    flipped = before.quantity and after.quantity and before.long != after.long
    return abs(after.quantity) > abs(before.quantity) or bool(flipped)


def on_book(
    order: Order, quantity: int, position: Position, spec: Spec, levels: Sequence[Level], costs: Costs
) -> Outcome | None:
    """A working limit at a new book: fill (as a maker) up to the size visible at or better than
    its price, keep the rest working. None: the book does not reach it. A reduce-only order fills
    no more than the position it reduces, and ends when there is none left to reduce."""
    remaining = quantity - order.filled
    if order.reduce_only:
        reducible = _reducible(order, position)
        if not reducible:
            return Outcome(NetOrderStatus.CANCELLED, quantity=quantity)
        remaining = min(remaining, reducible)
    taken = _take(_within(levels, order.buying, order.price), remaining)
    if not taken:
        return None
    trades, after, cash = _trades(taken, order, position, spec, costs.maker_fee_bps, maker=True)
    executed = order.filled + sum(trade.quantity for trade in trades)
    if executed >= quantity:
        return Outcome(NetOrderStatus.FILLED, trades, quantity, 0, after, cash)
    if order.reduce_only and after.quantity == 0:
        return Outcome(NetOrderStatus.CANCELLED, trades, quantity, 0, after, cash)
    return Outcome(NetOrderStatus.PARTIALLY_FILLED, trades, quantity, quantity - executed, after, cash)


def close_out(
    position: Position, spec: Spec, levels: Sequence[Level], fee_bps: int = LIQUIDATION_FEE_BPS
) -> tuple[tuple[Trade, ...], int]:
    """Close `position` against the book (a thin book fills the rest at its worst visible level):
    its fills, each paying `fee_bps` (a liquidation's by default), and the cash they bring."""
    size = abs(position.quantity)
    taken = _take(levels, size)
    short_by = size - sum(level.quantity for level in taken)
    if short_by and taken:
        taken[-1] = Level(taken[-1].price, taken[-1].quantity + short_by)
    elif short_by:
        return (), 0
    closing = Order(TradeSide.SELL if position.long else TradeSide.BUY, NetOrderType.MARKET, size)
    trades, _, cash = _trades(taken, closing, position, spec, fee_bps, maker=False)
    return trades, cash


def fires(trigger_price: int, above: bool, price: int) -> bool:
    """Whether a trigger fires at `price`: one placed above the price then (`above`) as the price
    rises to it, one placed below as it falls to it."""
    return price >= trigger_price if above else price <= trigger_price


def attached_closes(side: TradeSide, take_profit: int | None, stop_loss: int | None) -> list[tuple[int, bool]]:
    """The reduce-only closes an order's take-profit and stop-loss become once it fills, as
    (trigger price, fires rising): a buy's take-profit fires as the price rises, its stop-loss as
    it falls; a sell's the other way round."""
    buying = side == TradeSide.BUY
    closes = []
    if take_profit is not None:
        closes.append((take_profit, buying))
    if stop_loss is not None:
        closes.append((stop_loss, not buying))
    return closes


def stops_on_the_right_side(side: TradeSide, reference: int, take_profit: int | None, stop_loss: int | None) -> bool:
    """A buy's take-profit above the price it opens at and its stop-loss below; a sell's reversed."""
    buying = side == TradeSide.BUY
    if take_profit is not None and (take_profit <= reference if buying else take_profit >= reference):
        return False
    return stop_loss is None or (stop_loss < reference if buying else stop_loss > reference)


def max_order_quantity(
    account: Account, symbol: str, buying: bool, price: int, costs: Costs, reduce_only: bool = False
) -> int:
    """The largest quantity (on the market's step) an order on `symbol` filled whole at `price`
    may have with the account's margin: Backpack's `maxOrderQuantity`. Reducing needs no margin;
    a reduce-only order is capped at the position it reduces."""
    holding = account.holdings[symbol]
    spec, position = holding.spec, holding.position
    side = TradeSide.BUY if buying else TradeSide.SELL
    reducible = _reducible(Order(side, NetOrderType.MARKET), position)
    if reduce_only:
        return reducible - reducible % spec.step

    def fits(quantity: int) -> bool:
        after, realized = position.after(buying, quantity, price, spec.decimals)
        cash = realized - fee(spec.notional(price, quantity), costs.taker_fee_bps)
        result = account.with_holding(symbol, replace(holding, position=after), cash)
        return not _adds_exposure(position, after) or result.equity() >= result.initial_margin()

    low, high = 0, spec.step
    while fits(high) and high < 2**62:
        low, high = high, high * 2
    while high - low > spec.step:  # low fits, high does not; both on the step
        middle = low + (high - low) // 2
        middle -= middle % spec.step
        if middle <= low:
            break
        low, high = (middle, high) if fits(middle) else (low, middle)
    return max(low, reducible - reducible % spec.step)
