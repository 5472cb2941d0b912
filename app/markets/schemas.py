from marshmallow import Schema, fields, validate

from app.fields import plain_text
from core.markets import MarketType


class MarketQuerySchema(Schema):
    marketType = fields.String(validate=validate.OneOf([kind.value for kind in MarketType]))
    symbol = fields.String(validate=plain_text(64))


class MarketSchema(Schema):
    """Backpack's Market object as Backpack serves it, and the service's figures."""

    class Meta:
        unknown = "include"

    symbol = fields.String(required=True)
    baseSymbol = fields.String(required=True)
    quoteSymbol = fields.String(required=True)
    marketType = fields.String(required=True, metadata={"enum": [kind.value for kind in MarketType]})
    orderBookState = fields.String(required=True)
    filters = fields.Dict(required=True, metadata={"description": "price {tickSize, ...}, quantity {stepSize, ...}"})
    imfFunction = fields.Dict(allow_none=True)
    mmfFunction = fields.Dict(allow_none=True)
    fundingInterval = fields.Integer(allow_none=True, metadata={"description": "milliseconds"})
    priceDecimals = fields.Integer(required=True, metadata={"description": "the scale of tickSize"})
    quantityDecimals = fields.Integer(required=True, metadata={"description": "the scale of stepSize"})
    bid = fields.Integer(allow_none=True, metadata={"description": "best bid in priceDecimals, where priced"})
    ask = fields.Integer(allow_none=True, metadata={"description": "best ask in priceDecimals, where priced"})
    markPrice = fields.Integer(allow_none=True, metadata={"description": "perpetuals: the mark in priceDecimals"})
    indexPrice = fields.Integer(allow_none=True, metadata={"description": "perpetuals: the index in priceDecimals"})
    fundingRate = fields.String(
        allow_none=True, metadata={"description": "perpetuals: the estimated rate of this interval (a fraction)"}
    )
    nextFundingTimestamp = fields.Integer(allow_none=True, metadata={"description": "perpetuals: milliseconds"})
