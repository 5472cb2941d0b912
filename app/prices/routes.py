from flask import current_app
from flask.views import MethodView
from marshmallow import Schema, fields

from app.blueprint import Blueprint
from app.extensions import redis_client
from core.assets import ASSETS
from core.prices import PriceStore

blp = Blueprint("prices", __name__, description="Latest Backpack best bid/ask per asset")


class PriceSchema(Schema):
    bid = fields.Integer(required=True)
    ask = fields.Integer(required=True)
    decimals = fields.Integer(required=True)
    time = fields.Integer(required=True, metadata={"description": "exchange event time, microseconds"})
    ageSeconds = fields.Float(required=True)
    stale = fields.Boolean(required=True, metadata={"description": "older than PRICE_MAX_AGE_S: trading refuses it"})


PricesSchema = Schema.from_dict({symbol: fields.Nested(PriceSchema) for symbol in ASSETS}, name="Prices")


@blp.route("/prices")
class Prices(MethodView):
    @blp.response(200, PricesSchema)
    def get(self):
        """Latest quotes from Redis; an asset with no quote yet is absent."""
        store = PriceStore(redis_client)
        max_age = current_app.config["PRICE_MAX_AGE_S"]
        prices = {}
        for symbol, asset in ASSETS.items():
            quote = store.read(symbol)
            if quote is not None:
                prices[symbol] = {
                    "bid": quote.bid,
                    "ask": quote.ask,
                    "decimals": asset.decimals,
                    "time": quote.time_us,
                    "ageSeconds": quote.age_s(),
                    "stale": not quote.is_fresh(max_age),
                }
        return prices
