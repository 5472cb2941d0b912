"""Which markets the poller follows: `MARKETS` resolved against the catalog `flask markets sync`
keeps in PostgreSQL. Prices and books for the markets the service trades today (the seed's spot
markets), marks for every chosen perpetual."""

import logging
from dataclasses import dataclass

import psycopg

from core.assets import ASSET_BY_MARKET
from core.markets import MarketType, choose, parse_market

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Followed:
    priced: list[str]  # bookTicker and depth
    marked: list[str]  # markPrice


def followed_markets(database_url: str, spec: str) -> Followed:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT backpack FROM markets").fetchall()
    catalog = [parse_market(raw) for (raw,) in rows]
    if not catalog:
        log.warning("the market catalog is empty (run `flask markets sync`): following the seed's spot markets")
        return Followed(list(ASSET_BY_MARKET), [])
    by_symbol = {market.symbol: market for market in catalog}
    chosen = choose(catalog, spec)
    priced = [symbol for symbol in chosen if symbol in ASSET_BY_MARKET]
    marked = [symbol for symbol in chosen if by_symbol[symbol].market_type == MarketType.PERP]
    unpriced = [symbol for symbol in chosen if symbol not in priced]
    if unpriced:
        log.info("following %d markets' marks; quotes and books of the traded spot markets only", len(unpriced))
    return Followed(priced, marked)
