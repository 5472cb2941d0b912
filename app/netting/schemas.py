"""Netting orders, fills and positions as the native API shows them: integers, a quantity in the
market's quantity decimals (from its stepSize), prices in its price decimals, USD in cents."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.fields import AccountInBody, AccountInQuery, StrictInteger
from app.trading.schemas import MAX_AMOUNT, enum_metadata, one_of
from core.enums import NetOrderStatus, NetOrderType, NetRejectReason, TimeInForce, TradeSide, TriggerBy

CLIENT_ID = validate.Range(min=0, max=2**32 - 1)  # Backpack's clientId is a uint32


class NewNetOrderSchema(AccountInBody):
    symbol = fields.String(
        required=True, validate=validate.Length(min=1, max=64), metadata={"example": "SOL_USDC_PERP"}
    )
    side = fields.String(required=True, validate=one_of(TradeSide), metadata=enum_metadata(TradeSide))
    orderType = fields.String(required=True, validate=one_of(NetOrderType), metadata=enum_metadata(NetOrderType))
    quantity = StrictInteger(
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "in the market's quantity decimals (GET /api/v1/markets: quantityDecimals)"},
    )
    quoteQuantity = StrictInteger(
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "market orders instead of quantity: USD cents to spend (buy) or raise (sell)"},
    )
    price = StrictInteger(
        validate=validate.Range(min=1, max=MAX_AMOUNT), metadata={"description": "limit orders: in price decimals"}
    )
    timeInForce = fields.String(
        load_default=TimeInForce.GTC.value, validate=one_of(TimeInForce), metadata=enum_metadata(TimeInForce)
    )
    postOnly = fields.Boolean(load_default=False, metadata={"description": "limit orders: refused if it would take"})
    reduceOnly = fields.Boolean(load_default=False, metadata={"description": "only ever reduces the position"})
    clientId = StrictInteger(validate=CLIENT_ID, allow_none=True)
    triggerPrice = StrictInteger(
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "a trigger order: waits until the watched price reaches it, then executes"},
    )
    triggerBy = fields.String(validate=one_of(TriggerBy), metadata=enum_metadata(TriggerBy, "default: mark"))
    takeProfit = StrictInteger(
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "attached: a reduce-only market close triggered at this mark"},
    )
    stopLoss = StrictInteger(
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "attached: a reduce-only market close triggered at this mark"},
    )

    @validates_schema
    def consistent(self, data, **_):
        limit = data.get("orderType") == NetOrderType.LIMIT
        if ("quantity" in data) == ("quoteQuantity" in data):
            raise ValidationError("exactly one of quantity and quoteQuantity", "quantity")
        if limit and "price" not in data:
            raise ValidationError("a limit order needs its price", "price")
        if not limit and "price" in data:
            raise ValidationError("only a limit order takes a price", "price")
        if limit and "quoteQuantity" in data:
            raise ValidationError("a limit order names its quantity", "quoteQuantity")
        if not limit and data.get("postOnly"):
            raise ValidationError("only a limit order can be postOnly", "postOnly")
        if "triggerBy" in data and "triggerPrice" not in data:
            raise ValidationError("triggerBy goes with a triggerPrice", "triggerBy")
        if data.get("reduceOnly") and ("takeProfit" in data or "stopLoss" in data):
            raise ValidationError("a reduce-only order takes no takeProfit or stopLoss", "reduceOnly")


class NetOrderQuerySchema(AccountInQuery):
    status = fields.String(validate=one_of(NetOrderStatus), metadata=enum_metadata(NetOrderStatus))
    symbol = fields.String(validate=validate.Length(min=1, max=64))


class AccountQuerySchema(AccountInQuery):
    pass


class NetFillSchema(Schema):
    id = fields.Integer(required=True)
    orderId = fields.String(required=True, attribute="order_id")
    symbol = fields.String(required=True)
    side = fields.String(required=True, metadata=enum_metadata(TradeSide))
    price = fields.Integer(required=True)
    quantity = fields.Integer(required=True, metadata={"description": "in quantityDecimals"})
    fee = fields.Integer(required=True, metadata={"description": "USD cents"})
    realizedPnl = fields.Integer(required=True, attribute="realized_pnl", metadata={"description": "USD cents"})
    maker = fields.Boolean(required=True)
    liquidation = fields.Boolean(required=True, metadata={"description": "a close of the account's liquidation"})
    createdAt = fields.DateTime(required=True, attribute="created_at")


class NetOrderSchema(Schema):
    id = fields.String(required=True)
    accountId = fields.Integer(required=True, attribute="account_id")
    symbol = fields.String(required=True)
    side = fields.String(required=True, metadata=enum_metadata(TradeSide))
    orderType = fields.String(required=True, attribute="order_type", metadata=enum_metadata(NetOrderType))
    status = fields.String(required=True, metadata=enum_metadata(NetOrderStatus))
    quantity = fields.Integer(allow_none=True, metadata={"description": "in quantityDecimals"})
    quoteQuantity = fields.Integer(allow_none=True, attribute="quote_quantity")
    price = fields.Integer(allow_none=True)
    timeInForce = fields.String(required=True, attribute="time_in_force", metadata=enum_metadata(TimeInForce))
    postOnly = fields.Boolean(required=True, attribute="post_only")
    reduceOnly = fields.Boolean(required=True, attribute="reduce_only")
    clientId = fields.Integer(allow_none=True, attribute="client_id")
    executedQuantity = fields.Integer(required=True, attribute="executed_quantity")
    executedQuoteQuantity = fields.Integer(
        required=True, attribute="executed_quote", metadata={"description": "USD cents"}
    )
    fee = fields.Integer(required=True, metadata={"description": "USD cents"})
    liquidation = fields.Boolean(required=True, metadata={"description": "Backpack's LIQUIDATION_AUTOCLOSE"})
    rejectReason = fields.String(allow_none=True, attribute="reject_reason", metadata=enum_metadata(NetRejectReason))
    triggerPrice = fields.Integer(allow_none=True, attribute="trigger_price")
    triggerBy = fields.String(allow_none=True, attribute="trigger_by", metadata=enum_metadata(TriggerBy))
    triggeredAt = fields.DateTime(allow_none=True, attribute="triggered_at")
    takeProfit = fields.Integer(allow_none=True, attribute="take_profit")
    stopLoss = fields.Integer(allow_none=True, attribute="stop_loss")
    relatedOrderId = fields.String(
        allow_none=True, attribute="related_order_id", metadata={"description": "an attached close's parent order"}
    )
    priceDecimals = fields.Integer(required=True, attribute="price_decimals")
    quantityDecimals = fields.Integer(required=True, attribute="quantity_decimals")
    createdAt = fields.DateTime(required=True, attribute="created_at")
    endedAt = fields.DateTime(allow_none=True, attribute="ended_at")
    fills = fields.List(fields.Nested(NetFillSchema), required=True)


class PositionSchema(Schema):
    symbol = fields.String(required=True)
    netQuantity = fields.Integer(required=True, attribute="net_quantity", metadata={"description": "long > 0"})
    entryPrice = fields.Integer(required=True, attribute="entry_price")
    markPrice = fields.Integer(allow_none=True, attribute="mark_price")
    notional = fields.Integer(allow_none=True, metadata={"description": "USD cents at the mark"})
    unrealizedPnl = fields.Integer(allow_none=True, attribute="unrealized_pnl")
    realizedPnl = fields.Integer(required=True, attribute="realized_pnl", metadata={"description": "since it opened"})
    estLiquidationPrice = fields.Integer(allow_none=True, attribute="liquidation_price")
    cumulativeFunding = fields.Integer(required=True, attribute="cumulative_funding")
    priceDecimals = fields.Integer(required=True, attribute="price_decimals")
    quantityDecimals = fields.Integer(required=True, attribute="quantity_decimals")
    openedAt = fields.DateTime(allow_none=True, attribute="opened_at")
