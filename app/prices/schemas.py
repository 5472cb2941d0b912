from marshmallow import INCLUDE, Schema, fields, validate

from app.fields import StrictInteger
from app.markets.fields import TradableAsset
from core.assets import SEED_ASSETS
from core.candles import INTERVALS_S

UNIX_S = validate.Range(min=0, max=2**40)


class PriceSchema(Schema):
    bid = fields.Integer(required=True)
    ask = fields.Integer(required=True)
    mid = fields.Integer(required=True, metadata={"description": "(bid + ask) / 2, rounded down: what candles use"})
    spread = fields.Integer(required=True, metadata={"description": "ask - bid"})
    decimals = fields.Integer(required=True)
    time = fields.Integer(required=True, metadata={"description": "exchange event time, microseconds"})
    ageSeconds = fields.Float(required=True)
    stale = fields.Boolean(required=True, metadata={"description": "older than PRICE_MAX_AGE_S: trading refuses it"})


class PricesSchema(Schema.from_dict({symbol: fields.Nested(PriceSchema) for symbol in SEED_ASSETS})):
    """Each asset's price by its symbol: SOL, BTC, ETH and the registered perpetuals' market symbols."""

    class Meta:
        unknown = INCLUDE  # the document: the perpetuals are further properties

    def dump(self, obj, *, many=None):
        return {asset: PriceSchema().dump(price) for asset, price in obj.items()}


class BookQuerySchema(Schema):
    asset = TradableAsset(required=True)
    levels = fields.Integer(load_default=10, validate=validate.Range(min=1, max=50))


class BookLevelSchema(Schema):
    price = fields.Integer(required=True)
    quantity = fields.Integer(required=True)


class BookSchema(Schema):
    asset = fields.String(required=True)
    live = fields.Boolean(required=True, metadata={"description": "false: no fresh depth book; fills use the top"})
    decimals = fields.Integer(required=True)
    quantityDecimals = fields.Integer(required=True)
    bids = fields.List(fields.Nested(BookLevelSchema), required=True, metadata={"description": "best first"})
    asks = fields.List(fields.Nested(BookLevelSchema), required=True, metadata={"description": "best first"})
    updateId = fields.Integer(required=True, allow_none=True)


class CandleQuerySchema(Schema):
    asset = TradableAsset(required=True)
    interval = fields.String(load_default="1m", validate=validate.OneOf(list(INTERVALS_S)))
    start = fields.Integer(validate=UNIX_S, metadata={"description": "unix seconds, inclusive"})
    end = fields.Integer(validate=UNIX_S, metadata={"description": "unix seconds, exclusive"})
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=1000))


class CandleSchema(Schema):
    time = StrictInteger(required=True, metadata={"description": "bucket start, unix seconds"})
    open = fields.Integer(required=True)
    high = fields.Integer(required=True)
    low = fields.Integer(required=True)
    close = fields.Integer(required=True)
    ticks = fields.Integer(required=True, metadata={"description": "quotes (or trades, if backfilled) in the bucket"})


class CandlesSchema(Schema):
    asset = fields.String(required=True)
    interval = fields.String(required=True)
    decimals = fields.Integer(required=True)
    candles = fields.List(fields.Nested(CandleSchema), required=True)
