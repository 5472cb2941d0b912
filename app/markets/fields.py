"""The `asset` an order, a preview, a book or candles name: one of the seed's assets or a
perpetual MARKETS chose, checked when the request arrives (a perpetual listed since this process
started is looked up in the catalog)."""

from marshmallow import ValidationError, fields

from app.markets.service import asset_named
from core.assets import SEED_ASSETS


def _tradable(symbol: str) -> None:
    if not 1 <= len(symbol) <= 64 or asset_named(symbol) is None:
        raise ValidationError(f"Not a tradable asset: one of {', '.join(SEED_ASSETS)} or a perpetual's symbol")


def TradableAsset(**kwargs) -> fields.String:
    description = f"{', '.join(SEED_ASSETS)}, or the symbol of a perpetual listed by GET /api/v1/markets"
    return fields.String(validate=_tradable, metadata={"description": description, "example": "BTC"}, **kwargs)
