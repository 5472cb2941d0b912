"""The service's integers in Backpack's shapes: decimal strings, Backpack's names and statuses."""

import zlib
from datetime import datetime
from decimal import Decimal

from core.assets import QUANTITY_DECIMALS, USD_DECIMALS
from core.enums import NetOrderStatus, TriggerBy
from core.money import format_units

STATUS = {
    NetOrderStatus.PENDING: "New",  # accepted, the engine has not answered within TRADE_WAIT_S
    NetOrderStatus.NEW: "New",
    NetOrderStatus.PARTIALLY_FILLED: "PartiallyFilled",
    NetOrderStatus.FILLED: "Filled",
    NetOrderStatus.CANCELLED: "Cancelled",
    NetOrderStatus.EXPIRED: "Expired",
    NetOrderStatus.TRIGGER_PENDING: "TriggerPending",
    NetOrderStatus.REJECTED: "Expired",
}
TRIGGER_BY = {TriggerBy.MARK: "MarkPrice", TriggerBy.LAST: "LastPrice", TriggerBy.INDEX: "IndexPrice"}
TRIGGER_BY_NATIVE = {name: kind for kind, name in TRIGGER_BY.items()}
SIDE = {"buy": "Bid", "sell": "Ask"}
SIDE_NATIVE = {"Bid": "buy", "Ask": "sell"}


def plain(units: int | None, decimals: int) -> str | None:
    """Integer units as Backpack writes decimals: no trailing zeros ("120", "0.0036", "-0.5")."""
    if units is None:
        return None
    text = format_units(units, decimals)
    return text.rstrip("0").rstrip(".") if "." in text else text


def quantity(units: int, decimals: int) -> str | None:
    """A quantity in the service's units (QUANTITY_DECIMALS) as Backpack writes it in the market's
    quantity decimals (rounded down to its step)."""
    return plain(units // 10 ** (QUANTITY_DECIMALS - decimals), decimals)


def usd(cents: int | None) -> str | None:
    return plain(cents, USD_DECIMALS)


def ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def naive(moment: datetime | None) -> str | None:
    """The history endpoints' timestamps: naive UTC, milliseconds ("2025-07-27T17:39:00.092")."""
    return None if moment is None else moment.replace(tzinfo=None).isoformat(timespec="milliseconds")


def order(view: dict) -> dict:
    """A native netting order's view (`app.netting.service.views`) as Backpack's `OrderType`."""
    prices, quantities = view["price_decimals"], view["quantity_decimals"]
    limit = view["order_type"] == "limit"
    shape = {
        "clientId": view["client_id"],
        "createdAt": ms(view["created_at"]),
        "executedQuantity": plain(view["executed_quantity"], quantities),
        "executedQuoteQuantity": usd(view["executed_quote"]),
        "id": str(view["number"]),
        "orderType": "Limit" if limit else "Market",
        "quantity": plain(view["quantity"], quantities),
        "quoteQuantity": usd(view["quote_quantity"]),
        "reduceOnly": view["reduce_only"] or None,
        "relatedOrderId": None,
        "selfTradePrevention": "RejectTaker",
        "side": SIDE[view["side"]],
        "status": STATUS[NetOrderStatus(view["status"])],
        "stopLossLimitPrice": None,
        "stopLossTriggerBy": "MarkPrice" if view["stop_loss"] is not None else None,
        "stopLossTriggerPrice": plain(view["stop_loss"], prices),
        "strategyId": None,
        "symbol": view["symbol"],
        "takeProfitLimitPrice": None,
        "takeProfitTriggerBy": "MarkPrice" if view["take_profit"] is not None else None,
        "takeProfitTriggerPrice": plain(view["take_profit"], prices),
        "timeInForce": view["time_in_force"],
        "triggerBy": TRIGGER_BY[TriggerBy(view["trigger_by"])] if view["trigger_by"] else None,
        "triggerPrice": plain(view["trigger_price"], prices),
        "triggerQuantity": None,
        "triggeredAt": ms(view["triggered_at"]),
    }
    if limit:
        shape["price"] = plain(view["price"], prices)
        shape["postOnly"] = view["post_only"]
    return shape


def position_id(account_id: int, symbol: str, opened_at: datetime | None) -> str:
    """A position's numeric id: the same for its whole life (from flat to flat), as Backpack's."""
    return str(zlib.crc32(f"{account_id}:{symbol}:{opened_at}".encode()))


def position(view: dict, account_id: int, user_id: int, market: dict) -> dict:
    """A native netting position's view as Backpack's `FuturePositionWithMargin`."""
    prices, quantities = view["price_decimals"], view["quantity_decimals"]
    mark = view["mark_price"]
    notional = view["notional"]
    return {
        "breakEvenPrice": plain(view["entry_price"], prices),
        "cumulativeFundingPayment": usd(view["cumulative_funding"]),
        "cumulativeInterest": "0",
        "entryPrice": plain(view["entry_price"], prices),
        "estLiquidationPrice": plain(view["liquidation_price"] or 0, prices),
        "imf": str(Decimal(market["imfFunction"]["base"])),
        "imfFunction": market["imfFunction"],
        "markPrice": plain(mark, prices),
        "mmf": str(Decimal(market["mmfFunction"]["base"])),
        "mmfFunction": market["mmfFunction"],
        "netCost": usd(view["cost_cents"]),
        "netExposureNotional": usd(notional),
        "netExposureQuantity": plain(abs(view["net_quantity"]), quantities),
        "netQuantity": plain(view["net_quantity"], quantities),
        "pnlRealized": usd(view["realized_pnl"]),
        "pnlUnrealized": usd(view["unrealized_pnl"]),
        "positionId": position_id(account_id, view["symbol"], view["opened_at"]),
        "subaccountId": None,
        "symbol": view["symbol"],
        "userId": user_id,
    }


# Why an order ended without filling (Backpack's `expiryReason`), from the native reject reasons.
EXPIRY_REASON = {
    "insufficient_margin": "InsufficientMargin",
    "reduce_only_not_reducing": "ReduceOnlyNotReduced",
    "post_only_would_take": "PostOnlyTaker",
    "insufficient_liquidity": "FillOrKill",
    "quantity_too_small": "InsufficientMargin",
    "price_unavailable": "PriceImpact",
    "too_many_working_orders": "InsufficientMargin",
    "expired": "Expired",
}


def history_order(view: dict) -> dict:
    """An order as `/wapi/v1/history/orders` lists it: `createdAt` a naive string, why it expired."""
    shape = order(view)
    shape["createdAt"] = naive(view["created_at"])
    shape["expiryReason"] = EXPIRY_REASON.get(view["reject_reason"]) if view["reject_reason"] else None
    shape["systemOrderType"] = "LiquidatePositionOnBook" if view["liquidation"] else None
    return shape


def fill(row, number: int, client_id: int | None, prices: int, quantities: int) -> dict:
    """A fill (`app.models.Fill`) as `/wapi/v1/history/fills` lists it; its market's decimals."""
    return {
        "clientId": None if client_id is None else str(client_id),
        "fee": usd(row.fee),
        "feeSymbol": "USDC",
        "isMaker": row.maker,
        "orderId": str(number),
        "price": plain(row.price, prices),
        "quantity": quantity(row.quantity, quantities),
        "side": SIDE[row.side],
        "symbol": row.symbol,
        "systemOrderType": "LiquidatePositionOnBook" if row.liquidation else None,
        "timestamp": naive(row.created_at),
        "tradeId": row.id,
    }
