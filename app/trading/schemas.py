from marshmallow import Schema, fields, validate, validates_schema, ValidationError

from app.assets.catalog import ASSETS, QUANTITY_DECIMALS
from app.fields import StrictInteger

MAX_AMOUNT = 10**15  # far above any real balance or price, and far below BIGINT's range
SIDES = ("long", "short")
STATUSES = ("pending", "open", "closed", "rejected")


class CreateTradeSchema(Schema):
    asset = fields.String(required=True, validate=validate.OneOf(tuple(ASSETS)))
    type = fields.String(required=True, validate=validate.OneOf(SIDES))
    margin = StrictInteger(required=True, validate=validate.Range(min=100, max=MAX_AMOUNT),
                           metadata={"description": "USD units (2 decimals)"})
    leverage = StrictInteger(required=True, validate=validate.Range(min=1, max=100))
    slippage = StrictInteger(load_default=100, validate=validate.Range(min=1, max=10_000),
                             metadata={"description": "basis points"})
    price = StrictInteger(validate=validate.Range(min=1, max=MAX_AMOUNT),
                          metadata={"description": "price the client saw, in the asset's decimals"})
    stopLoss = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_AMOUNT))
    takeProfit = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_AMOUNT))

    @validates_schema
    def stops_on_the_right_sides(self, data, **_):
        stop, take = data.get("stopLoss"), data.get("takeProfit")
        if stop is None or take is None:
            return
        if data.get("type") == "long" and not stop < take:
            raise ValidationError("a long's stopLoss must be below its takeProfit", "stopLoss")
        if data.get("type") == "short" and not stop > take:
            raise ValidationError("a short's stopLoss must be above its takeProfit", "stopLoss")


class CloseTradeSchema(Schema):
    orderId = fields.String(required=True, validate=validate.Length(min=1, max=64))


class TradeListQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10**6))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class OrderSchema(Schema):
    orderId = fields.String(attribute="id", required=True)
    asset = fields.String(required=True)
    type = fields.String(attribute="side", required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    margin = fields.Integer(required=True)
    leverage = fields.Integer(required=True)
    slippage = fields.Integer(attribute="slippage_bps")
    quantity = fields.Integer(allow_none=True)
    quantityDecimals = fields.Function(lambda order: QUANTITY_DECIMALS, dump_only=True)
    openPrice = fields.Integer(attribute="open_price", allow_none=True)
    closePrice = fields.Integer(attribute="close_price", allow_none=True)
    pnl = fields.Integer(allow_none=True)
    unrealizedPnl = fields.Integer(
        attribute="unrealized_pnl", allow_none=True, dump_default=None,
        metadata={"description": "open positions: PnL if closed at the latest fresh price (USD units)"},
    )
    liquidationPrice = fields.Integer(attribute="liquidation_price", allow_none=True)
    stopLoss = fields.Integer(attribute="stop_loss", allow_none=True)
    takeProfit = fields.Integer(attribute="take_profit", allow_none=True)
    closeReason = fields.String(attribute="close_reason", allow_none=True)
    rejectReason = fields.String(attribute="reject_reason", allow_none=True)
    decimals = fields.Function(lambda order: ASSETS[order.asset].decimals, dump_only=True)
    createdAt = fields.DateTime(attribute="created_at")
    closedAt = fields.DateTime(attribute="closed_at", allow_none=True)


class PendingOrderSchema(Schema):
    orderId = fields.String(required=True)
    status = fields.String(required=True)
