"""Cross margin, Backpack's model, as pure values: one signed position per market, valued at the
mark, and one account whose equity covers the margin of them all.

Units are those of `core.money`: USD in cents, prices in the market's price decimals, quantities
in QUANTITY_DECIMALS. A position keeps its cost basis exactly (`cost` = Σ price × quantity of
what is open, in price × quantity units), so neither its entry price nor the PnL a partial close
realizes drifts with rounding. Every rounding goes against the trader.

Margin (Backpack's liquidation and futures pages): a market's margin fraction is
max(base, factor × √notional) of its `imfFunction` (initial) or `mmfFunction` (maintenance);
the initial fraction is never below 1 / the account's leverageLimit. The account is liquidated
once its equity is at or below the maintenance margin of its positions.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, Decimal

from core.markets import MarginFunction
from core.money import ceil_div, scale


@dataclass(frozen=True)
class Spec:
    """A perpetual as netting needs it: its decimals, its lot and its margin functions."""

    symbol: str
    decimals: int
    imf: MarginFunction
    mmf: MarginFunction
    step: int = 1
    min_quantity: int = 1

    def notional(self, price: int, quantity: int) -> int:
        """USD cents of |quantity| at `price`, rounded up (margin is never understated)."""
        return ceil_div(price * abs(quantity), scale(self.decimals))


def margin_fraction(function: MarginFunction, notional_cents: int) -> Decimal:
    """max(base, factor × √notional), the notional in USD."""
    usd = Decimal(notional_cents) / 100
    return max(function.base, function.factor * usd.sqrt())


def _margin(notional_cents: int, fraction: Decimal) -> int:
    return int((notional_cents * fraction).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class Position:
    """A market's signed net quantity (long > 0) and the exact cost of what is open."""

    quantity: int = 0
    cost: int = 0

    @property
    def long(self) -> bool:
        return self.quantity > 0

    def entry_price(self) -> Decimal | None:
        """The average price paid for what is open, in price units (a fraction of one, exactly)."""
        return Decimal(self.cost) / abs(self.quantity) if self.quantity else None

    def unrealized(self, mark: int, decimals: int) -> int:
        """Cents the position would realize at `mark`, rounded down."""
        value = mark * abs(self.quantity)
        return (value - self.cost if self.long else self.cost - value) // scale(decimals)

    def after(self, buying: bool, quantity: int, price: int, decimals: int) -> tuple["Position", int]:
        """The position after a fill, and the PnL (cents, rounded down) the fill realized by
        reducing it: the reduced part's share of the cost, rounded against the trader."""
        signed = quantity if buying else -quantity
        if self.quantity == 0 or (self.quantity > 0) == buying:
            return Position(self.quantity + signed, self.cost + price * quantity), 0
        held = abs(self.quantity)
        reduced = min(quantity, held)
        # a long's basis rounds up, a short's down: either way the realized PnL comes out lower
        basis = ceil_div(self.cost * reduced, held) if self.long else self.cost * reduced // held
        proceeds = price * reduced
        realized = (proceeds - basis if self.long else basis - proceeds) // scale(decimals)
        left = Position(self.quantity + signed if reduced < held else 0, self.cost - basis if reduced < held else 0)
        if quantity > held:  # flipped: the rest opens the other way at this price
            left = Position(signed + self.quantity, price * (quantity - held))
        return left, realized


@dataclass(frozen=True)
class Holding:
    """A market of the account: its position, the mark it is valued at, and the notional (cents,
    at their own prices) of its working orders that would add exposure."""

    spec: Spec
    position: Position = Position()
    mark: int = 0
    working: int = 0

    def notional(self) -> int:
        return self.spec.notional(self.mark, self.position.quantity)


@dataclass(frozen=True)
class Account:
    """What a netting account holds: cash (cents; it may go below zero while unrealized profit
    covers it), its leverageLimit and its markets."""

    cash: int
    leverage_limit: int
    holdings: Mapping[str, Holding] = field(default_factory=dict)

    def equity(self) -> int:
        return self.cash + sum(h.position.unrealized(h.mark, h.spec.decimals) for h in self.holdings.values())

    def initial_fraction(self, function: MarginFunction, notional_cents: int) -> Decimal:
        return max(margin_fraction(function, notional_cents), Decimal(1) / self.leverage_limit)

    def initial_margin(self) -> int:
        """What positions and working orders need for new exposure: each at its market's IMF."""
        total = 0
        for holding in self.holdings.values():
            for notional in (holding.notional(), holding.working):
                if notional:
                    total += _margin(notional, self.initial_fraction(holding.spec.imf, notional))
        return total

    def maintenance_margin(self) -> int:
        total = 0
        for holding in self.holdings.values():
            if notional := holding.notional():
                total += _margin(notional, margin_fraction(holding.spec.mmf, notional))
        return total

    def exposure(self) -> int:
        return sum(holding.notional() for holding in self.holdings.values())

    def liquidatable(self) -> bool:
        """Margin fraction (equity / exposure) at or below the maintenance fraction."""
        return self.exposure() > 0 and self.equity() <= self.maintenance_margin()

    def with_holding(self, symbol: str, holding: Holding, cash_delta: int = 0) -> "Account":
        return Account(self.cash + cash_delta, self.leverage_limit, {**self.holdings, symbol: holding})

    def estimated_liquidation_price(self, symbol: str) -> int | None:
        """The mark of `symbol` at which the account would be liquidated, every other mark held
        (Backpack: a reference only). None without a position, or when no price liquidates it."""
        holding = self.holdings.get(symbol)
        if holding is None or holding.position.quantity == 0:
            return None

        def liquidated_at(mark: int) -> bool:
            moved = self.with_holding(symbol, replace(holding, mark=mark))
            return moved.equity() <= moved.maintenance_margin()

        if holding.position.long:  # liquidated as the mark falls: the highest mark that does it
            low, high = 0, holding.mark
            if not liquidated_at(low):
                return None  # not even at zero
            if liquidated_at(high):
                return high
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if liquidated_at(middle) else (low, middle)
            return low
        low, high = holding.mark, max(holding.mark, 1)
        if liquidated_at(low):
            return low
        for _ in range(64):  # a short: the lowest mark above that liquidates it
            high *= 2
            if liquidated_at(high):
                break
        else:
            return None
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if liquidated_at(middle) else (middle, high)
        return high
