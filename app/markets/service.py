"""The market catalog: loaded from Backpack's `/api/v1/markets` and `/api/v1/assets` by
`flask markets sync`, listed by `GET /api/v1/markets` with the service's own figures."""

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db, redis_client
from app.models import CatalogAsset, CatalogMarket, utcnow
from core import cross_margin
from core.assets import ASSET_BY_MARKET, ASSETS, Asset, perpetual, register
from core.funding import next_boundary_ms
from core.markets import CatalogError, MarketType, choose, parse_market
from core.marks import Mark, MarkStore, price_units
from core.prices import PriceStore

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S = 10
RELOAD_AT_MOST_EVERY_S = 5.0  # an unknown symbol reloads the catalog, but a flood of them does not

_registered_at = float("-inf")
_book_states: dict[str, tuple[str | None, float]] = {}  # symbol -> (orderBookState, read at)


class CatalogUnavailable(RuntimeError):
    """Backpack (or the simulator) did not answer; the catalog in the database stays as it was."""


@dataclass(frozen=True)
class SyncReport:
    markets: int
    assets: int


def _fetch(url: str):
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise CatalogUnavailable(f"{url}: {error}") from None


def sync(rest_url: str) -> SyncReport:
    """Upsert every market and asset Backpack lists, in one transaction: a malformed market
    (CatalogError) or an unreachable Backpack (CatalogUnavailable) writes nothing."""
    return store_catalog(_fetch(f"{rest_url}/api/v1/markets"), _fetch(f"{rest_url}/api/v1/assets"))


def store_catalog(markets: object, assets: object) -> SyncReport:
    """Backpack's markets and assets (as its REST serves them) into the catalog, in one transaction."""
    if not isinstance(markets, list) or not isinstance(assets, list):
        raise CatalogError("Backpack's markets and assets are not lists")
    now = utcnow()
    rows = []
    for raw in markets:
        market = parse_market(raw)
        rows.append(
            dict(
                symbol=market.symbol,
                base_symbol=market.base_symbol,
                quote_symbol=market.quote_symbol,
                market_type=market.market_type.value,
                order_book_state=market.book_state.value,
                tick_size=market.tick_size,
                step_size=market.step_size,
                min_quantity=market.min_quantity,
                price_decimals=market.price_decimals,
                quantity_decimals=market.quantity_decimals,
                funding_interval_ms=market.funding_interval_ms,
                backpack=raw,
                synced_at=now,
            )
        )
    asset_rows = []
    for raw in assets:
        if not isinstance(raw, dict) or not isinstance(raw.get("symbol"), str) or not raw["symbol"]:
            raise CatalogError(f"not an asset: {str(raw)[:80]}")
        asset_rows.append(dict(symbol=raw["symbol"], backpack=raw, synced_at=now))
    for model, batch in ((CatalogMarket, rows), (CatalogAsset, asset_rows)):
        if batch:
            statement = insert(model).values(batch)
            updated = {column: statement.excluded[column] for column in batch[0] if column != "symbol"}
            db.session.execute(statement.on_conflict_do_update(index_elements=["symbol"], set_=updated))
    db.session.commit()
    _book_states.clear()
    return SyncReport(len(rows), len(asset_rows))


def _rescaled(price: int, from_decimals: int, to_decimals: int) -> int:
    """A price in `from_decimals` units in `to_decimals` units (quotes sit on the tick: exact)."""
    return int(Decimal(price).scaleb(to_decimals - from_decimals).to_integral_value())


def list_markets(market_type: str | None = None, symbol: str | None = None) -> list[dict]:
    """The catalog as Backpack lists it, with its decimals; where the service prices the market,
    the best bid and ask; for a perpetual, its mark, index, funding rate and next funding time
    (prices are integers in `priceDecimals`, as every native price; a stale mark is null)."""
    query = select(CatalogMarket).order_by(CatalogMarket.market_type.desc(), CatalogMarket.symbol)
    if market_type is not None:
        query = query.where(CatalogMarket.market_type == market_type)
    if symbol is not None:
        query = query.where(CatalogMarket.symbol == symbol)
    store, listed = PriceStore(redis_client), []
    rows = list(db.session.scalars(query))
    max_age = current_app.config["PRICE_MAX_AGE_S"]
    marks = MarkStore(redis_client).read_many([row.symbol for row in rows if row.funding_interval_ms is not None])
    for row in rows:
        mark = marks.get(row.symbol)
        mark = mark if mark is not None and mark.is_fresh(max_age) else None
        asset = ASSET_BY_MARKET.get(row.symbol)
        quote = store.read(asset.symbol) if asset is not None else None
        priced = quote is not None and asset is not None
        listed.append(
            {
                **row.backpack,
                "priceDecimals": row.price_decimals,
                "quantityDecimals": row.quantity_decimals,
                "bid": _rescaled(quote.bid, asset.decimals, row.price_decimals) if priced else None,
                "ask": _rescaled(quote.ask, asset.decimals, row.price_decimals) if priced else None,
                "markPrice": mark.units(row.price_decimals) if mark else None,
                "indexPrice": price_units(mark.index, row.price_decimals) if mark and mark.index else None,
                "fundingRate": str(mark.funding_rate) if mark and mark.funding_rate is not None else None,
                "nextFundingTimestamp": _next_funding_ms(mark) if mark else None,
            }
        )
    db.session.rollback()
    return listed


def register_chosen_perpetuals() -> list[Asset]:
    """Make the perpetuals MARKETS chooses from the catalog tradable in this process (each process
    at start; again when an order names one it does not know). Without a catalog (not synced
    yet, or no database at hand): the seed's assets only."""
    global _registered_at
    _registered_at = time.monotonic()
    try:
        catalog = [parse_market(raw) for raw in db.session.scalars(select(CatalogMarket.backpack))]
        chosen = set(choose(catalog, current_app.config["MARKETS"]))
    except (SQLAlchemyError, CatalogError) as error:
        db.session.rollback()
        log.info("no perpetuals registered: %s", str(error).splitlines()[0])
        return []
    db.session.rollback()
    perps = [m for m in catalog if m.symbol in chosen and m.market_type == MarketType.PERP]
    return register(perpetual(market) for market in perps)


def _next_funding_ms(mark: Mark) -> int | None:
    """Backpack's next funding time, or the service's own when FUNDING_INTERVAL_S overrides it."""
    override_s = current_app.config["FUNDING_INTERVAL_S"]
    if override_s is None:
        return mark.next_funding_ms
    return next_boundary_ms(mark.time_us // 1000, override_s * 1000)


def perpetual_symbols() -> list[str]:
    """Every perpetual in the catalog, chosen or not (positions outlive a change of MARKETS)."""
    return list(db.session.scalars(select(CatalogMarket.symbol).where(CatalogMarket.market_type == MarketType.PERP)))


def is_perpetual(symbol: str) -> bool:
    """Whether orders on `symbol` are on a perpetual: a registered one, or one the catalog lists
    (a perpetual MARKETS no longer chooses keeps its positions' history)."""
    asset = asset_named(symbol)
    if asset is not None:
        return asset.perpetual
    listed = select(CatalogMarket.market_type).where(CatalogMarket.symbol == symbol)
    return db.session.scalar(listed) == MarketType.PERP


def asset_named(symbol: str) -> Asset | None:
    """The tradable asset `symbol` names, looking the catalog up again when it is new here."""
    if symbol not in ASSETS and time.monotonic() - _registered_at >= RELOAD_AT_MOST_EVERY_S:
        register_chosen_perpetuals()
    return ASSETS.get(symbol)


def book_state(symbol: str) -> str | None:
    """The market's orderBookState as the catalog last synced it, read at most every
    RELOAD_AT_MOST_EVERY_S by this process (not once per order: the sync that changes it runs
    minutes apart, and a sync in this process forgets what it read)."""
    known = _book_states.get(symbol)
    if known is not None and time.monotonic() - known[1] < RELOAD_AT_MOST_EVERY_S:
        return known[0]
    state = db.session.scalar(select(CatalogMarket.order_book_state).where(CatalogMarket.symbol == symbol))
    _book_states[symbol] = (state, time.monotonic())
    return state


def lot_of(symbol: str) -> dict[str, int]:
    """The market's lot as `core.execution.Terms` takes it (step and minimum quantity); any
    quantity of a seed asset, or of a perpetual MARKETS no longer chooses."""
    asset = asset_named(symbol)
    return {"step": asset.step, "min_quantity": asset.min_quantity} if asset is not None else {}


def netting_spec(symbol: str) -> cross_margin.Spec | None:
    """The perpetual as netting accounts trade it (decimals, lot, margin functions); None for
    anything else."""
    asset = asset_named(symbol)
    if asset is None or not asset.perpetual or asset.imf is None or asset.mmf is None:
        return None
    return cross_margin.Spec(symbol, asset.decimals, asset.imf, asset.mmf, asset.step, asset.min_quantity)


def price_decimals(symbol: str) -> int:
    """The price decimals of an order's asset, also for a perpetual MARKETS no longer chooses (its
    orders still show): the registry, else the catalog."""
    asset = asset_named(symbol)
    if asset is not None:
        return asset.decimals
    decimals = db.session.scalar(select(CatalogMarket.price_decimals).where(CatalogMarket.symbol == symbol))
    if decimals is None:
        raise LookupError(f"{symbol} is neither a seed asset nor in the market catalog")
    return decimals
