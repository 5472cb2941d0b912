from flask import jsonify, url_for
from flask.views import MethodView

from app.blueprint import ACCOUNT_PARAMETER, IDEMPOTENCY_PARAMETER, Blueprint, idempotency_key
from app.csv import csv_response, json_or_csv, wants_csv
from app.errors import ErrorCode, documents
from app.extensions import db
from app.fields import AccountInQuery
from app.identity import authenticated, current_account_id
from app.trading import service
from app.trading.limits import trade_rate_limited
from app.trading.schemas import (
    CloseTradeSchema,
    CreateTradeSchema,
    OrderSchema,
    PendingOrderSchema,
    PreviewQuerySchema,
    PreviewSchema,
    TradeListQuerySchema,
)
from core.enums import OrderStatus

blp = Blueprint("trading", __name__, description="Open and close leveraged long/short positions")


def _accepted(order, status: str):
    """202 for work the engine has not answered yet (a Response: @blp.response would dump an Order)."""
    response = jsonify(PendingOrderSchema().dump({"orderId": str(order.id), "status": status}))
    response.status_code = 202
    response.headers["Location"] = url_for("trading.Trade", order_id=order.id)
    return response


@blp.route("/trade/create")
class CreateTrade(MethodView):
    @authenticated
    @trade_rate_limited
    @blp.arguments(CreateTradeSchema)
    @blp.response(200, OrderSchema, description="Executed by the engine")
    @blp.alt_response(202, schema=PendingOrderSchema, description="Accepted; the engine has not answered yet")
    @blp.doc(parameters=[IDEMPOTENCY_PARAMETER, ACCOUNT_PARAMETER])
    @documents(
        blp,
        ErrorCode.VALIDATION,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.NOT_FOUND,
        ErrorCode.ACCOUNT_ARCHIVED,
        ErrorCode.INSUFFICIENT_BALANCE,
        ErrorCode.INVALID_PRICE,
        ErrorCode.INVALID_QUANTITY,
        ErrorCode.MARKET_NOT_OPEN,
        ErrorCode.SLIPPAGE_EXCEEDED,
        ErrorCode.IDEMPOTENCY_MISMATCH,
        ErrorCode.EXPIRED,
        ErrorCode.INSUFFICIENT_LIQUIDITY,
        ErrorCode.PRICE_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    )
    def post(self, body):
        """Open a position (optional `Idempotency-Key` header makes retries safe)."""
        order = service.create_order(current_account_id(body.get("accountId")), body, idempotency_key())
        if order.status == OrderStatus.PENDING:
            return _accepted(order, "pending")
        return order


@blp.route("/trade/close")
class CloseTrade(MethodView):
    @authenticated
    @trade_rate_limited
    @blp.arguments(CloseTradeSchema)
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @blp.response(200, OrderSchema, description="Closed at the current price")
    @blp.alt_response(202, schema=PendingOrderSchema, description="Close accepted; not executed yet")
    @documents(
        blp,
        ErrorCode.VALIDATION,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.NOT_FOUND,
        ErrorCode.ALREADY_CLOSED,
        ErrorCode.NOT_OPEN,
        ErrorCode.INSUFFICIENT_LIQUIDITY,
        ErrorCode.PRICE_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    )
    def post(self, body):
        """Close an open position at the current price."""
        order = service.close(current_account_id(body.get("accountId")), body["orderId"])
        if order.status != OrderStatus.CLOSED:
            return _accepted(order, "closing")
        return order


@blp.route("/trade/cancel")
class CancelTrade(MethodView):
    @authenticated
    @trade_rate_limited
    @blp.arguments(CloseTradeSchema)
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @blp.response(200, OrderSchema, description="Cancelled; its margin is back in free USD")
    @blp.alt_response(202, schema=PendingOrderSchema, description="Cancel accepted; not executed yet")
    @documents(
        blp,
        ErrorCode.VALIDATION,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_WORKING,
        ErrorCode.RATE_LIMITED,
    )
    def post(self, body):
        """Cancel a working limit or stop order (exactly one of a cancel and a fill wins)."""
        order = service.cancel(current_account_id(body.get("accountId")), body["orderId"])
        if order.status == OrderStatus.WORKING:
            return _accepted(order, "cancelling")
        return order


@blp.route("/trade/preview")
class TradePreview(MethodView):
    @blp.arguments(PreviewQuerySchema, location="query")
    @blp.response(200, PreviewSchema)
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.INSUFFICIENT_LIQUIDITY, ErrorCode.PRICE_UNAVAILABLE)
    def get(self, query):
        """Expected fill, quantity, notional, fee and liquidation price of an order now (the ticket's preview)."""
        trigger = query.get("limitPrice") or query.get("stopPrice")
        return service.preview(
            query["asset"], query["type"], query["margin"], query["leverage"], query["orderType"], trigger
        )


@blp.route("/trade/<uuid:order_id>")
class Trade(MethodView):
    @authenticated
    @blp.arguments(AccountInQuery, location="query")
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @blp.response(200, OrderSchema)
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND)
    def get(self, query, order_id):
        """One of your orders (open ones with their unrealized PnL)."""
        account_id = current_account_id(query.get("accountId"))
        return service.with_valuation([service.get_order(account_id, order_id)])[0]


@blp.route("/trades")
class Trades(MethodView):
    @authenticated
    @blp.arguments(TradeListQuerySchema, location="query")
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @blp.response(200, OrderSchema(many=True))
    @blp.doc(
        **json_or_csv(
            "A page of orders, or all as CSV",
            {"type": "array", "items": {"$ref": "#/components/schemas/Order"}},
            headers={"X-Total-Count": {"description": "orders matching the filter", "schema": {"type": "integer"}}},
        )
    )
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND)
    def get(self, query):
        """Your orders, newest first, `page_size` per `page`; `format=csv` (or Accept: text/csv) streams them all."""
        account_id = current_account_id(query.get("accountId"))
        if wants_csv(query["format"]):
            rows = service.order_csv_rows(account_id, query.get("status"))
            return csv_response("trades.csv", service.ORDER_CSV_HEADER, rows)
        page = db.paginate(
            service.list_orders(account_id, query.get("status")),
            page=query["page"],
            per_page=query["page_size"],
            error_out=False,
            count=True,
        )
        return service.with_valuation(page.items), 200, {"X-Total-Count": str(page.total)}
