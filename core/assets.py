"""The assets the service trades, their decimals and the Backpack market that prices them."""

from dataclasses import dataclass

USD_DECIMALS = 2
QUANTITY_DECIMALS = 8


@dataclass(frozen=True)
class Asset:
    symbol: str
    name: str
    decimals: int
    market: str
    image_url: str


ASSETS: dict[str, Asset] = {
    asset.symbol: asset
    for asset in (
        Asset("SOL", "Solana", 6, "SOL_USDC", "https://cryptologos.cc/logos/solana-sol-logo.png"),
        Asset("BTC", "Bitcoin", 4, "BTC_USDC", "https://cryptologos.cc/logos/bitcoin-btc-logo.png"),
        Asset("ETH", "Ethereum", 6, "ETH_USDC", "https://cryptologos.cc/logos/ethereum-eth-logo.png"),
    )
}
ASSET_BY_MARKET: dict[str, Asset] = {asset.market: asset for asset in ASSETS.values()}
