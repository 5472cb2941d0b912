from datetime import UTC, datetime, timedelta

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from app.fields import AccountInBody, AccountInQuery, StrictInteger
from app.markets.fields import TradableAsset
from app.markets.service import price_decimals
from core.assets import QUANTITY_DECIMALS
from core.book import slippage_bps
from core.enums import CloseReason, FillModel, OrderStatus, OrderType, RejectReason, Side

MAX_AMOUNT = 10**15  # far above any real balance or price, and far below BIGINT's range
MIN_LIFETIME = timedelta(seconds=1)  # an order's expiresAt is at least this far ahead when it arrives


def one_of(enum) -> validate.OneOf:
    return validate.OneOf([member.value for member in enum])


def enum_metadata(enum, description: str | None = None) -> dict:
    metadata: dict = {"enum": [member.value for member in enum]}
    if description:
        metadata["description"] = description
    return metadata


def check_trigger_price(data: dict) -> None:
    """A limit order names its limitPrice, a stop order its stopPrice, and a market order neither."""
    kind = data.get("orderType")
    needs = {OrderType.LIMIT: "limitPrice", OrderType.STOP: "stopPrice"}.get(kind)
    for field in ("limitPrice", "stopPrice"):
        if field == needs and data.get(field) is None:
            raise ValidationError(f"a {kind} order needs {field}", field)
        if field != needs and data.get(field) is not None:
            owner = "limit" if field == "limitPrice" else "stop"
            raise ValidationError(f"only a {owner} order takes {field}", field)


def symbol_as_asset(data):
    """`symbol` (a catalog market's) names the asset too; not both."""
    if isinstance(data, dict) and "symbol" in data:
        if "asset" in data:
            raise ValidationError("name either asset or symbol", "symbol")
        data = {**data, "asset": data["symbol"]}
        del data["symbol"]
    return data


class CreateTradeSchema(AccountInBody):
    asset = TradableAsset(required=True)
    symbol = fields.String(
        load_only=True, metadata={"description": "instead of asset: a perpetual's market symbol (GET /api/v1/markets)"}
    )

    @pre_load
    def symbol_names_the_asset(self, data, **_):
        return symbol_as_asset(data)

    type = fields.String(required=True, validate=one_of(Side))
    margin = StrictInteger(
        required=True,
        validate=validate.Range(min=100, max=MAX_AMOUNT),
        metadata={"description": "USD units (2 decimals)"},
    )
    leverage = StrictInteger(required=True, validate=validate.Range(min=1, max=100))
    slippage = StrictInteger(
        load_default=100, validate=validate.Range(min=1, max=10_000), metadata={"description": "basis points"}
    )
    price = StrictInteger(
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "price the client saw, in the asset's decimals"},
    )
    stopLoss = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_AMOUNT))
    takeProfit = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_AMOUNT))
    orderType = fields.String(load_default=OrderType.MARKET.value, validate=one_of(OrderType))
    limitPrice = StrictInteger(
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "limit orders: never filled worse; the quantity comes from it"},
    )
    stopPrice = StrictInteger(
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "stop orders: a market order once the book reaches it; the quantity comes from it"},
    )
    expiresAt = fields.AwareDateTime(metadata={"description": "limit and stop orders: ends them as expired"})

    @validates_schema
    def prices_fit_the_order_type(self, data, **_):
        kind = data.get("orderType")
        check_trigger_price(data)
        expires_at = data.get("expiresAt")
        if expires_at is not None and kind == OrderType.MARKET:
            raise ValidationError("expiresAt is for limit and stop orders (a market order fills or fails)", "expiresAt")
        if expires_at is not None and expires_at < datetime.now(UTC) + MIN_LIFETIME:
            raise ValidationError(f"expiresAt must be at least {MIN_LIFETIME.seconds} s in the future", "expiresAt")

    @validates_schema
    def stops_on_the_right_sides(self, data, **_):
        stop, take = data.get("stopLoss"), data.get("takeProfit")
        if stop is None or take is None:
            return
        if data.get("type") == Side.LONG and not stop < take:
            raise ValidationError("a long's stopLoss must be below its takeProfit", "stopLoss")
        if data.get("type") == Side.SHORT and not stop > take:
            raise ValidationError("a short's stopLoss must be above its takeProfit", "stopLoss")


class CloseTradeSchema(AccountInBody):
    orderId = fields.String(required=True, validate=validate.Length(min=1, max=64))


class FillSchema(Schema):
    price = fields.Integer(required=True)
    quantity = fields.Integer(required=True)


def _slippage_bps(order) -> int | None:
    if order.open_price is None or not order.requested_price:
        return None
    return slippage_bps(order.requested_price, order.open_price, buying=order.side == Side.LONG)


def _fees(order) -> int:
    return (order.open_fee or 0) + (order.close_fee or 0)


class TradeListQuerySchema(AccountInQuery):
    status = fields.String(validate=one_of(OrderStatus))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10**6))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "csv: every matching order (no paging), decimals as decimals"},
    )


class OrderSchema(Schema):
    orderId = fields.String(attribute="id", required=True)
    asset = fields.String(required=True)
    type = fields.String(attribute="side", required=True, metadata=enum_metadata(Side))
    orderType = fields.String(attribute="order_type", required=True, metadata=enum_metadata(OrderType))
    status = fields.String(required=True, metadata=enum_metadata(OrderStatus))
    margin = fields.Integer(required=True)
    leverage = fields.Integer(required=True)
    slippage = fields.Integer(attribute="slippage_bps")
    requestedPrice = fields.Integer(
        attribute="requested_price",
        allow_none=True,
        metadata={
            "description": "the price the client sent, or the top of book at acceptance; slippage is checked against it"
        },
    )
    quantity = fields.Integer(allow_none=True)
    quantityDecimals = fields.Function(lambda order: QUANTITY_DECIMALS, dump_only=True)
    openPrice = fields.Integer(attribute="open_price", allow_none=True)
    closePrice = fields.Integer(attribute="close_price", allow_none=True)
    pnl = fields.Integer(allow_none=True)
    unrealizedPnl = fields.Integer(
        attribute="unrealized_pnl",
        allow_none=True,
        dump_default=None,
        metadata={"description": "open positions: PnL if closed at the latest fresh price (USD units)"},
    )
    markPrice = fields.Integer(
        attribute="mark_price",
        allow_none=True,
        dump_default=None,
        metadata={"description": "open perpetual positions: the fresh mark they are valued and liquidated at"},
    )
    cumulativeFunding = fields.Integer(
        attribute="cumulative_funding",
        allow_none=True,
        dump_default=None,
        metadata={"description": "perpetuals: funding paid (< 0) and received (> 0) so far, USD units"},
    )
    liquidationPrice = fields.Integer(attribute="liquidation_price", allow_none=True)
    stopLoss = fields.Integer(attribute="stop_loss", allow_none=True)
    takeProfit = fields.Integer(attribute="take_profit", allow_none=True)
    limitPrice = fields.Integer(attribute="limit_price", allow_none=True)
    stopPrice = fields.Integer(attribute="stop_price", allow_none=True)
    expiresAt = fields.DateTime(attribute="expires_at", allow_none=True)
    fills = fields.List(fields.Nested(FillSchema), allow_none=True, metadata={"description": "the open's fills"})
    avgPrice = fields.Function(lambda order: order.open_price, allow_none=True, metadata={"description": "= openPrice"})
    slippageBps = fields.Function(
        _slippage_bps, allow_none=True, metadata={"description": "fill vs requestedPrice, positive = worse"}
    )
    fillModel = fields.String(attribute="fill_model", allow_none=True, metadata=enum_metadata(FillModel))
    fees = fields.Function(_fees, metadata={"description": "taker fees of the open and the close, USD units"})
    netPnl = fields.Function(
        lambda order: None if order.pnl is None else order.pnl - _fees(order),
        allow_none=True,
        metadata={"description": "pnl - fees"},
    )
    closeReason = fields.String(attribute="close_reason", allow_none=True, metadata=enum_metadata(CloseReason))
    rejectReason = fields.String(attribute="reject_reason", allow_none=True, metadata=enum_metadata(RejectReason))
    decimals = fields.Function(lambda order: price_decimals(order.asset), dump_only=True)
    createdAt = fields.DateTime(attribute="created_at")
    closedAt = fields.DateTime(attribute="closed_at", allow_none=True)


class PendingOrderSchema(Schema):
    orderId = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": [OrderStatus.PENDING.value, "closing", "cancelling"]})


class PreviewQuerySchema(Schema):
    asset = TradableAsset(required=True)
    type = fields.String(required=True, validate=one_of(Side))
    margin = fields.Integer(required=True, validate=validate.Range(min=100, max=MAX_AMOUNT))
    leverage = fields.Integer(required=True, validate=validate.Range(min=1, max=100))
    orderType = fields.String(load_default=OrderType.MARKET.value, validate=one_of(OrderType))
    limitPrice = fields.Integer(validate=validate.Range(min=1, max=MAX_AMOUNT), metadata={"description": "a limit's"})
    stopPrice = fields.Integer(validate=validate.Range(min=1, max=MAX_AMOUNT), metadata={"description": "a stop's"})

    @validates_schema
    def prices_fit_the_order_type(self, data, **_):
        check_trigger_price(data)


class PreviewSchema(Schema):
    price = fields.Integer(
        required=True,
        metadata={"description": "the expected average fill, from the live book (a working order's: its own price)"},
    )
    working = fields.Boolean(
        required=True,
        metadata={"description": "a limit or stop order the book does not reach now: it would rest, working"},
    )
    fillModel = fields.String(required=True, metadata=enum_metadata(FillModel))
    fee = fields.Integer(required=True, metadata={"description": "TAKER_FEE_BPS of the notional, USD units"})
    decimals = fields.Integer(required=True)
    quantity = fields.Integer(required=True)
    quantityDecimals = fields.Integer(required=True)
    notional = fields.Integer(required=True, metadata={"description": "margin x leverage, USD units"})
    liquidationPrice = fields.Integer(required=True)
