from flask.views import MethodView

from app.blueprint import ACCOUNT_PARAMETER, Blueprint
from app.errors import ErrorCode, documents
from app.identity import authenticated, current_account_id
from app.netting import service
from app.netting.schemas import (
    AccountQuerySchema,
    NetFillSchema,
    NetOrderQuerySchema,
    NetOrderSchema,
    NewNetOrderSchema,
    PositionSchema,
)
from app.trading.limits import trade_rate_limited

blp = Blueprint(
    "netting", __name__, description="Netting accounts (Backpack's model): orders, fills and one position per market"
)


@blp.route("/orders")
class Orders(MethodView):
    @authenticated
    @trade_rate_limited
    @blp.arguments(NewNetOrderSchema)
    @blp.response(200, NetOrderSchema, description="Executed by the engine: filled, working or ended")
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(
        blp,
        ErrorCode.VALIDATION,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.NOT_FOUND,
        ErrorCode.WRONG_ACCOUNT_MODE,
        ErrorCode.ACCOUNT_ARCHIVED,
        ErrorCode.INVALID_PRICE,
        ErrorCode.INVALID_QUANTITY,
        ErrorCode.MARKET_NOT_OPEN,
        ErrorCode.INSUFFICIENT_MARGIN,
        ErrorCode.REDUCE_ONLY,
        ErrorCode.POST_ONLY,
        ErrorCode.INSUFFICIENT_LIQUIDITY,
        ErrorCode.TOO_MANY_WORKING_ORDERS,
        ErrorCode.EXPIRED,
        ErrorCode.PRICE_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    )
    def post(self, body):
        """Place an order on a netting account: market or limit, by quantity or (market) quoteQuantity."""
        return service.create_order(current_account_id(body.get("accountId")), body)

    @authenticated
    @blp.arguments(NetOrderQuerySchema, location="query")
    @blp.response(200, NetOrderSchema(many=True))
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND)
    def get(self, query):
        """A netting account's orders, newest first, with their fills."""
        account_id = current_account_id(query.get("accountId"))
        return service.list_orders(account_id, query.get("status"), query.get("symbol"))


@blp.route("/orders/<order_id>")
class Order(MethodView):
    @authenticated
    @blp.arguments(AccountQuerySchema, location="query")
    @blp.response(200, NetOrderSchema)
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND)
    def get(self, query, order_id):
        """One order of a netting account, with its fills."""
        return service.get_order(current_account_id(query.get("accountId")), order_id)

    @authenticated
    @trade_rate_limited
    @blp.arguments(AccountQuerySchema, location="query")
    @blp.response(200, NetOrderSchema)
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND, ErrorCode.NOT_WORKING)
    def delete(self, query, order_id):
        """Cancel a working order (what it filled stays filled)."""
        return service.cancel(current_account_id(query.get("accountId")), order_id)


@blp.route("/fills")
class Fills(MethodView):
    @authenticated
    @blp.arguments(NetOrderQuerySchema, location="query")
    @blp.response(200, NetFillSchema(many=True))
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND)
    def get(self, query):
        """A netting account's fills, newest first."""
        return service.list_fills(current_account_id(query.get("accountId")), query.get("symbol"))


@blp.route("/positions")
class Positions(MethodView):
    @authenticated
    @blp.arguments(AccountQuerySchema, location="query")
    @blp.response(200, PositionSchema(many=True))
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND)
    def get(self, query):
        """A netting account's open positions: signed quantity, entry, mark, PnL, estimated liquidation."""
        return service.positions(current_account_id(query.get("accountId")))
