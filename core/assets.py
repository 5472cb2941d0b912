"""What the service trades: the seed's three assets (priced by Backpack's spot markets, with the
contract's fixed decimals) and the perpetuals `MARKETS` chooses from the catalog, registered by
each process at start. A perpetual's key is its market symbol and its price decimals the scale of
its tickSize; quantities have QUANTITY_DECIMALS everywhere."""

from collections.abc import Iterable
from dataclasses import dataclass

from core.markets import MarginFunction, Market

USD_DECIMALS = 2
QUANTITY_DECIMALS = 8


@dataclass(frozen=True)
class Asset:
    symbol: str
    name: str
    decimals: int
    market: str
    image_url: str
    perpetual: bool = False
    tick: int = 1  # prices are multiples of this, in price units (a tickSize of 0.05 in 2 decimals: 5)
    step: int = 1  # quantities are multiples of this, in QUANTITY_DECIMALS units
    min_quantity: int = 1
    quantity_decimals: int = QUANTITY_DECIMALS  # a perpetual's: its stepSize's (at most QUANTITY_DECIMALS)
    imf: MarginFunction | None = None  # a perpetual's initial and maintenance margin functions
    mmf: MarginFunction | None = None


SEED_ASSETS: dict[str, Asset] = {
    asset.symbol: asset
    for asset in (
        Asset("SOL", "Solana", 6, "SOL_USDC", "https://cryptologos.cc/logos/solana-sol-logo.png"),
        Asset("BTC", "Bitcoin", 4, "BTC_USDC", "https://cryptologos.cc/logos/bitcoin-btc-logo.png"),
        Asset("ETH", "Ethereum", 6, "ETH_USDC", "https://cryptologos.cc/logos/ethereum-eth-logo.png"),
    )
}
# Every tradable asset by key, and by the Backpack market that prices it: the seed's, then the
# registered perpetuals (the same dicts, updated in place, so every holder sees a registration).
ASSETS: dict[str, Asset] = dict(SEED_ASSETS)
ASSET_BY_MARKET: dict[str, Asset] = {asset.market: asset for asset in ASSETS.values()}


def perpetual(market: Market) -> Asset:
    """A perpetual as the service trades it, with the market's tick, step and minimum quantity."""
    decimals = market.price_decimals
    return Asset(
        market.symbol,
        f"{market.base_symbol} perpetual",
        decimals,
        market.symbol,
        "",
        perpetual=True,
        tick=int(market.tick_size.scaleb(decimals)),
        step=max(1, int(market.step_size.scaleb(QUANTITY_DECIMALS))),
        min_quantity=max(1, int(market.min_quantity.scaleb(QUANTITY_DECIMALS))),
        quantity_decimals=min(market.quantity_decimals, QUANTITY_DECIMALS),
        imf=market.imf,
        mmf=market.mmf,
    )


def register(assets: Iterable[Asset]) -> list[Asset]:
    """Make `assets` tradable in this process; returns the ones that were new."""
    added = []
    for asset in assets:
        if asset.symbol not in ASSETS:
            added.append(asset)
        ASSETS[asset.symbol] = asset
        ASSET_BY_MARKET[asset.market] = asset
    return added
