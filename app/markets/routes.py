from flask.views import MethodView

from app.blueprint import Blueprint
from app.errors import ErrorCode, documents
from app.markets import service
from app.markets.schemas import MarketQuerySchema, MarketSchema

blp = Blueprint("markets", __name__, description="Backpack's market catalog")


@blp.route("/markets")
class Markets(MethodView):
    @blp.arguments(MarketQuerySchema, location="query")
    @blp.response(200, MarketSchema(many=True))
    @documents(blp, ErrorCode.VALIDATION)
    def get(self, query):
        """Every market of the catalog (Backpack's own fields), with its decimals and, where the
        service prices it, the best bid and ask."""
        return service.list_markets(query.get("marketType"), query.get("symbol"))
