from flask.views import MethodView

from app.blueprint import Blueprint
from app.errors import ErrorCode, documents
from app.markets.service import price_decimals
from app.prices import service
from app.prices.schemas import BookQuerySchema, BookSchema, CandleQuerySchema, CandlesSchema, PricesSchema

blp = Blueprint("prices", __name__, description="Latest Backpack best bid/ask and candles per asset")


@blp.route("/prices")
class Prices(MethodView):
    @blp.response(200, PricesSchema)
    @documents(blp, ErrorCode.UNAVAILABLE)
    def get(self):
        """Latest quotes from Redis; an asset with no quote yet is absent."""
        return service.latest_quotes()


@blp.route("/book")
class OrderBook(MethodView):
    @blp.arguments(BookQuerySchema, location="query")
    @blp.response(200, BookSchema)
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAVAILABLE)
    def get(self, query):
        """The live depth book's best levels a side, as fills walk it; `live: false` and empty without one
        (fills then use the top of book)."""
        return service.book_levels(query["asset"], query["levels"])


@blp.route("/candles")
class Candles(MethodView):
    @blp.arguments(CandleQuerySchema, location="query")
    @blp.response(200, CandlesSchema)
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAVAILABLE)
    def get(self, query):
        """Candles of the service's own mid prices (rounded down), oldest first; minutes without a quote are absent."""
        rows = service.candles(query["asset"], query["interval"], query.get("start"), query.get("end"), query["limit"])
        return {
            "asset": query["asset"],
            "interval": query["interval"],
            "decimals": price_decimals(query["asset"]),
            "candles": rows,
        }
