"""The simulator's market catalog: Backpack's own shapes (`GET /api/v1/markets`, `/assets`,
`/markPrices`) for a mix of spot and perpetual markets, awkward tick sizes, a dotted equity
symbol, lowercase-k thousand-unit bases, a closed and a post-only market, so everything that
reads Backpack's catalog works offline against the same variety.

Margin functions and funding bounds follow Backpack's published values where known (SOL and ETH
perps); the others are plausible, not sourced.
"""

from dataclasses import dataclass
from decimal import Decimal

CREATED_AT = "2025-01-21T06:34:54.691858"
FUNDING_INTERVAL_MS = 3_600_000
SQRT_DEFAULT = ("0.02", "0.00006", "0.0125", "0.0000375")  # imf base, factor; mmf base, factor


@dataclass(frozen=True)
class Listing:
    symbol: str
    mid: str
    tick: str
    step: str
    min_quantity: str
    state: str = "Open"
    margin: tuple[str, str, str, str] = SQRT_DEFAULT
    max_price: str | None = None

    @property
    def perp(self) -> bool:
        return self.symbol.endswith("_PERP")

    @property
    def base(self) -> str:
        return self.symbol.split("_")[0]


LISTINGS = (
    Listing("SOL_USDC", "178.42", "0.01", "0.01", "0.01"),
    Listing("BTC_USDC", "118318.3", "0.1", "0.00001", "0.00001"),
    Listing("ETH_USDC", "3667.49", "0.01", "0.0001", "0.0001"),
    Listing("JUP_USDC", "0.5123", "0.0001", "0.01", "0.01"),
    Listing("BONK_USDC", "0.00002345", "0.00000001", "1", "1"),
    Listing("USDT_USDC", "1.0002", "0.0001", "0.01", "0.01"),
    Listing("SOL_USDC_PERP", "178.43", "0.01", "0.01", "0.01", margin=("0.02", "0.0001275", "0.0125", "0.0000765")),
    Listing("BTC_USDC_PERP", "118320.1", "0.1", "0.00001", "0.00001", max_price="1000000"),
    Listing("ETH_USDC_PERP", "3667.8", "0.01", "0.0001", "0.0001", margin=("0.02", "0.0000935", "0.0125", "0.0000561")),
    Listing("kPEPE_USDC_PERP", "0.011234", "0.000001", "1", "1"),
    Listing("kBONK_USDC_PERP", "0.02345", "0.000001", "1", "1"),
    Listing("DOGE_USDC_PERP", "0.2345", "0.00001", "1", "1"),
    Listing("XRP_USDC_PERP", "2.3456", "0.0001", "0.1", "0.1"),
    Listing("SUI_USDC_PERP", "3.4567", "0.0001", "0.1", "0.1"),
    Listing("AVAX_USDC_PERP", "25.123", "0.001", "0.01", "0.01"),
    Listing("LINK_USDC_PERP", "15.234", "0.001", "0.1", "0.1"),
    Listing("HYPE_USDC_PERP", "38.123", "0.001", "0.01", "0.01"),
    Listing("BNB_USDC_PERP", "712.35", "0.05", "0.01", "0.02"),  # a tick that is not a power of ten
    Listing("WIF_USDC_PERP", "0.9876", "0.0001", "1", "1"),
    Listing("FARTCOIN_USDC_PERP", "1.2345", "0.0001", "0.1", "0.1"),
    Listing("AAPL.US_USDC_PERP", "230.12", "0.01", "0.001", "0.001"),
    Listing("TSLA.US_USDC_PERP", "340.52", "0.01", "0.001", "0.001"),
    Listing("MATIC_USDC_PERP", "0.4567", "0.0001", "1", "1", state="Closed"),
    Listing("ZORA_USDC_PERP", "0.0789", "0.00001", "1", "1", state="PostOnly"),
)
NAMES = {"SOL": "Solana", "BTC": "Bitcoin", "ETH": "Ethereum", "USDC": "USD Coin", "USDT": "Tether"}


def market_json(listing: Listing) -> dict:
    """One Market object as Backpack's `/api/v1/markets` serves it (string decimals)."""
    imf_base, imf_factor, mmf_base, mmf_factor = listing.margin
    perp = listing.perp
    return {
        "symbol": listing.symbol,
        "baseSymbol": listing.base,
        "quoteSymbol": "USDC",
        "marketType": "PERP" if perp else "SPOT",
        "filters": {
            "price": {
                "minPrice": listing.tick,
                "maxPrice": listing.max_price,
                "tickSize": listing.tick,
                "maxMultiplier": "1.25",
                "minMultiplier": "0.75",
                "maxImpactMultiplier": "1.03",
                "minImpactMultiplier": "0.97",
                "meanMarkPriceBand": {"maxMultiplier": "1.15", "minMultiplier": "0.9"},
                "meanPremiumBand": {"tolerancePct": "0.05"} if perp else None,
                "borrowEntryFeeMaxMultiplier": None,
                "borrowEntryFeeMinMultiplier": None,
            },
            "quantity": {"minQuantity": listing.min_quantity, "maxQuantity": None, "stepSize": listing.step},
        },
        "imfFunction": {"type": "sqrt", "base": imf_base, "factor": imf_factor} if perp else None,
        "mmfFunction": {"type": "sqrt", "base": mmf_base, "factor": mmf_factor} if perp else None,
        "fundingInterval": FUNDING_INTERVAL_MS if perp else None,
        "fundingRateUpperBound": "100" if perp else None,
        "fundingRateLowerBound": "-100" if perp else None,
        "openInterestLimit": "0",
        "positionLimitWeight": "1" if perp else None,
        "orderBookState": listing.state,
        "createdAt": CREATED_AT,
        "visible": True,
    }


def assets_json() -> list[dict]:
    """`/api/v1/assets`: every base and quote of the catalog, with no deposit networks (paper)."""
    symbols = sorted({listing.base for listing in LISTINGS} | {"USDC"})
    return [{"symbol": s, "displayName": NAMES.get(s, s.removeprefix("k")), "tokens": []} for s in symbols]


def mark_json(symbol: str, mark: Decimal, index: Decimal, rate: str, next_funding_ms: int) -> dict:
    """One entry of `/api/v1/markPrices` (the stream's `markPrice` frame carries the same values)."""
    return {
        "fundingRate": rate,
        "indexPrice": str(index),
        "markPrice": str(mark),
        "nextFundingTimestamp": next_funding_ms,
        "symbol": symbol,
    }
