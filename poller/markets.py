"""Which markets the poller follows: `MARKETS` resolved against the catalog `flask markets sync`
keeps in PostgreSQL. Quotes and books for every chosen market the service trades (the seed's spot
markets, and the perpetuals, registered here as tradable), marks for every chosen perpetual."""

import logging
from dataclasses import dataclass, field

import psycopg

from core.assets import ASSET_BY_MARKET, SEED_ASSETS, perpetual, register
from core.funding import interval_ms
from core.markets import MarketType, choose, parse_market

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Followed:
    priced: list[str]  # bookTicker and depth
    marked: list[str]  # markPrice
    funding_intervals_ms: dict[str, int] = field(default_factory=dict)  # by perpetual


def followed_markets(database_url: str, spec: str, funding_interval_s: int | None = None) -> Followed:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT backpack FROM markets").fetchall()
    catalog = [parse_market(raw) for (raw,) in rows]
    if not catalog:
        log.warning("the market catalog is empty (run `flask markets sync`): following the seed's spot markets")
        return Followed([asset.market for asset in SEED_ASSETS.values()], [])
    by_symbol = {market.symbol: market for market in catalog}
    chosen = choose(catalog, spec)
    perps = [by_symbol[symbol] for symbol in chosen if by_symbol[symbol].market_type == MarketType.PERP]
    register(perpetual(market) for market in perps)
    priced = [symbol for symbol in chosen if symbol in ASSET_BY_MARKET]
    skipped = [symbol for symbol in chosen if symbol not in ASSET_BY_MARKET]
    if skipped:
        log.info("not traded, so not followed: %s", ", ".join(skipped))
    intervals = {market.symbol: interval_ms(market.funding_interval_ms, funding_interval_s) for market in perps}
    return Followed(priced, [market.symbol for market in perps], intervals)
