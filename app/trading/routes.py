from flask import jsonify, request
from flask.views import MethodView
from flask_jwt_extended import jwt_required
from flask_smorest import Blueprint

from app.auth.service import current_user_id
from app.errors import abort
from app.extensions import db
from app.trading import service
from app.trading.schemas import (
    CloseTradeSchema,
    CreateTradeSchema,
    OrderSchema,
    PendingOrderSchema,
    TradeListQuerySchema,
)

blp = Blueprint("trading", __name__, description="Open and close leveraged long/short positions")

IDEMPOTENCY_HEADER = "Idempotency-Key"
ERRORS = {
    400: "insufficient_balance",
    401: "unauthorized",
    404: "not_found",
    409: "already_closed / slippage_exceeded",
    503: "price_unavailable",
}


def _document_errors(*statuses):
    def decorate(view):
        for status in statuses:
            view = blp.alt_response(status, description=ERRORS[status])(view)
        return view

    return decorate


def _accepted(order, status: str):
    """202 for work the engine has not answered yet (a Response: @blp.response would dump an Order)."""
    response = jsonify(PendingOrderSchema().dump({"orderId": str(order.id), "status": status}))
    response.status_code = 202
    return response


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not 1 <= len(key) <= 255:
        abort(422, "validation", f"{IDEMPOTENCY_HEADER} must be 1 to 255 characters")
    return key


@blp.route("/trade/create")
class CreateTrade(MethodView):
    @jwt_required()
    @blp.arguments(CreateTradeSchema)
    @blp.response(200, OrderSchema, description="Executed by the engine")
    @blp.alt_response(202, schema=PendingOrderSchema, description="Accepted; the engine has not answered yet")
    @_document_errors(400, 401, 409, 503)
    def post(self, body):
        """Open a position (optional `Idempotency-Key` header makes retries safe)."""
        order = service.create_order(current_user_id(), body, _idempotency_key())
        if order.status == "pending":
            return _accepted(order, "pending")
        return order


@blp.route("/trade/close")
class CloseTrade(MethodView):
    @jwt_required()
    @blp.arguments(CloseTradeSchema)
    @blp.response(200, OrderSchema, description="Closed at the current price")
    @blp.alt_response(202, schema=PendingOrderSchema, description="Close accepted; not executed yet")
    @_document_errors(401, 404, 409, 503)
    def post(self, body):
        """Close an open position at the current price."""
        order = service.close(current_user_id(), body["orderId"])
        if order.status != "closed":
            return _accepted(order, "closing")
        return order


@blp.route("/trade/<uuid:order_id>")
class Trade(MethodView):
    @jwt_required()
    @blp.response(200, OrderSchema)
    @_document_errors(401, 404)
    def get(self, order_id):
        """One of your orders (open ones with their unrealized PnL)."""
        return service.with_unrealized_pnl([service.get_order(current_user_id(), order_id)])[0]


@blp.route("/trades")
class Trades(MethodView):
    @jwt_required()
    @blp.arguments(TradeListQuerySchema, location="query")
    @blp.response(200, OrderSchema(many=True), headers={
        "X-Total-Count": {"description": "orders matching the filter", "schema": {"type": "integer"}},
    })
    @_document_errors(401)
    def get(self, query):
        """Your orders, newest first, `page_size` per `page`."""
        page = db.paginate(
            service.list_orders(current_user_id(), query.get("status")),
            page=query["page"], per_page=query["page_size"], error_out=False, count=True,
        )
        return service.with_unrealized_pnl(page.items), 200, {"X-Total-Count": str(page.total)}
