"""Backpack's market catalog, read strictly: a market's filters, its decimals (the scale of
`tickSize` / `stepSize`, as Backpack's own client derives them), its margin functions, and which
markets `MARKETS` chooses."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

SEED_SPOT_MARKETS = ("SOL_USDC", "BTC_USDC", "ETH_USDC")


class MarketType(StrEnum):
    SPOT = "SPOT"
    PERP = "PERP"
    IPERP = "IPERP"
    DATED = "DATED"
    PREDICTION = "PREDICTION"
    RFQ = "RFQ"
    MONAD = "MONAD"


class BookState(StrEnum):
    OPEN = "Open"
    CLOSED = "Closed"
    CANCEL_ONLY = "CancelOnly"
    LIMIT_ONLY = "LimitOnly"
    POST_ONLY = "PostOnly"


class CatalogError(ValueError):
    """Backpack sent a market this service cannot read; the message names it and the field."""


@dataclass(frozen=True)
class MarginFunction:
    """Backpack's `{"type": "sqrt", "base", "factor"}`: margin fraction = max(base, factor × √notional)."""

    base: Decimal
    factor: Decimal


@dataclass(frozen=True)
class Market:
    symbol: str
    base_symbol: str
    quote_symbol: str
    market_type: MarketType
    book_state: BookState
    tick_size: Decimal
    step_size: Decimal
    min_quantity: Decimal
    max_quantity: Decimal | None
    min_price: Decimal | None
    max_price: Decimal | None
    imf: MarginFunction | None
    mmf: MarginFunction | None
    funding_interval_ms: int | None

    @property
    def price_decimals(self) -> int:
        return scale(self.tick_size)

    @property
    def quantity_decimals(self) -> int:
        return scale(self.step_size)

    @property
    def is_usdc_perp(self) -> bool:
        return self.market_type == MarketType.PERP and self.quote_symbol == "USDC"

    def on_tick(self, price: Decimal) -> bool:
        return price > 0 and price % self.tick_size == 0

    def on_step(self, quantity: Decimal) -> bool:
        return quantity > 0 and quantity % self.step_size == 0


def scale(step: Decimal) -> int:
    """Decimal places of a step as written ("0.01" → 2, "1" → 0, "0.10" → 2), like Rust's `scale()`."""
    exponent = step.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _decimal(raw: Mapping[str, Any], key: str, symbol: str, required: bool = True) -> Decimal | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    try:
        parsed = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        parsed = None
    if parsed is None or not parsed.is_finite() or parsed < 0:
        raise CatalogError(f"{symbol}: {key}={value!r} is not a decimal string")
    return parsed


def _margin(raw: Any, key: str, symbol: str) -> MarginFunction | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or raw.get("type") != "sqrt":
        raise CatalogError(f"{symbol}: {key}={raw!r} is not a sqrt margin function")
    base, factor = _decimal(raw, "base", symbol), _decimal(raw, "factor", symbol)
    assert base is not None and factor is not None
    return MarginFunction(base, factor)


def parse_market(raw: Any) -> Market:
    """One of Backpack's Market objects, every field checked; CatalogError names what is wrong."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("symbol"), str) or not raw["symbol"]:
        raise CatalogError(f"not a market: {str(raw)[:80]}")
    symbol = raw["symbol"]
    try:
        filters, price, quantity = raw["filters"], raw["filters"]["price"], raw["filters"]["quantity"]
        market_type, state = MarketType(raw["marketType"]), BookState(raw["orderBookState"])
        base, quote = raw["baseSymbol"], raw["quoteSymbol"]
    except (KeyError, TypeError, ValueError) as error:
        raise CatalogError(f"{symbol}: missing or unknown {error}") from None
    if not (isinstance(filters, Mapping) and isinstance(base, str) and isinstance(quote, str)):
        raise CatalogError(f"{symbol}: malformed filters or symbols")
    tick, step = _decimal(price, "tickSize", symbol), _decimal(quantity, "stepSize", symbol)
    min_quantity = _decimal(quantity, "minQuantity", symbol)
    assert tick is not None and step is not None and min_quantity is not None
    if tick == 0 or step == 0:
        raise CatalogError(f"{symbol}: a zero tickSize or stepSize")
    interval = raw.get("fundingInterval")
    if interval is not None and (not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0):
        raise CatalogError(f"{symbol}: fundingInterval={interval!r} is not a number of milliseconds")
    return Market(
        symbol=symbol,
        base_symbol=base,
        quote_symbol=quote,
        market_type=market_type,
        book_state=state,
        tick_size=tick,
        step_size=step,
        min_quantity=min_quantity,
        max_quantity=_decimal(quantity, "maxQuantity", symbol, required=False),
        min_price=_decimal(price, "minPrice", symbol, required=False),
        max_price=_decimal(price, "maxPrice", symbol, required=False),
        imf=_margin(raw.get("imfFunction"), "imfFunction", symbol),
        mmf=_margin(raw.get("mmfFunction"), "mmfFunction", symbol),
        funding_interval_ms=interval if market_type == MarketType.PERP else None,
    )


def choose(markets: Iterable[Market], spec: str) -> list[str]:
    """The symbols MARKETS names: `default` (every open USDC perpetual and the seed's three spot
    markets), `perp` (every open USDC perpetual) or a comma-separated list of catalog symbols."""
    catalog = {market.symbol: market for market in markets}
    open_perps = sorted(s for s, m in catalog.items() if m.is_usdc_perp and m.book_state == BookState.OPEN)
    spec = spec.strip()
    if spec in ("", "default"):
        return [s for s in SEED_SPOT_MARKETS if s in catalog] + open_perps
    if spec == "perp":
        return open_perps
    named = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in named if s not in catalog]
    if unknown:
        raise CatalogError(f"MARKETS names markets the catalog does not have: {', '.join(unknown)}")
    return list(dict.fromkeys(named))
