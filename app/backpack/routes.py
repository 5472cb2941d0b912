"""Backpack's REST API, served at /backpack/api/v1 and /backpack/wapi/v1: public endpoints from
the service's own data, private ones signed with a paper key and translated to the netting
services. Anything else Backpack has answers its error body naming it as not simulated."""

import logging
import time
from decimal import Decimal, InvalidOperation

from flask import Blueprint, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from app.backpack import errors, market_data, service, shapes, streams
from app.backpack.auth import signed_account
from app.backpack.errors import BackpackError, Code, fail
from app.errors import DEPENDENCY_ERRORS, ApiError
from app.extensions import sock
from app.markets.service import asset_named, perpetual_symbols
from app.netting import service as netting
from app.netting.schemas import NewNetOrderSchema
from app.prices.service import book_levels, fresh_quote
from core.assets import QUANTITY_DECIMALS

log = logging.getLogger(__name__)
blp = Blueprint("backpack", __name__, url_prefix="/backpack")

NEW_ORDER_SCHEMA = NewNetOrderSchema()  # built once: a schema's construction deep-copies its fields

# Backpack's order fields the paper venue does not simulate: refused by name rather than ignored.
NOT_SIMULATED_FIELDS = (
    "triggerQuantity",
    "stopLossLimitPrice",
    "takeProfitLimitPrice",
    "slippageTolerance",
    "slippageToleranceType",
    "autoLend",
    "autoLendRedeem",
    "autoBorrow",
    "autoBorrowRepay",
)


def _body() -> dict:
    body = request.get_json(silent=True)
    if body is None and request.get_data():
        fail(400, Code.INVALID_CLIENT_REQUEST, "The body is not valid JSON")
    if body is None:
        return {}
    if not isinstance(body, dict):
        fail(400, Code.INVALID_CLIENT_REQUEST, "The body must be a JSON object")
    return body


def _decimal(value: object, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if isinstance(value, bool) or not number.is_finite() or number <= 0:
        fail(400, Code.INVALID_CLIENT_REQUEST, f"{name} must be a positive decimal")
    return number


def _units(value: object, decimals: int, name: str, code: Code, too_long: str) -> int:
    number = _decimal(value, name)
    scaled = number.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        fail(400, code, too_long)
    return int(scaled)


def _market(symbol: object):
    asset = asset_named(symbol) if isinstance(symbol, str) else None
    if asset is None or not asset.perpetual:
        fail(400, Code.INVALID_SYMBOL, f"Unknown or unsupported symbol {symbol!r}: this venue trades the perpetuals")
    return asset


def _native_order(body: dict) -> dict:
    """Backpack's OrderExecutePayload as the native netting order it asks for."""
    for name in NOT_SIMULATED_FIELDS:
        if body.get(name) not in (None, False):
            fail(400, Code.INVALID_CLIENT_REQUEST, f"{name} is not simulated by this paper venue")
    asset = _market(body.get("symbol"))
    side = shapes.SIDE_NATIVE.get(body.get("side"))
    kind = {"Market": "market", "Limit": "limit"}.get(body.get("orderType"))
    if side is None or kind is None:
        fail(400, Code.INVALID_CLIENT_REQUEST, "side must be Bid or Ask, orderType Market or Limit")
    native: dict = {"symbol": asset.symbol, "side": side, "orderType": kind}
    if body.get("quantity") is not None:
        native["quantity"] = _units(
            body["quantity"], asset.quantity_decimals, "quantity", Code.INVALID_QUANTITY, "Quantity decimal too long"
        )
    if body.get("quoteQuantity") is not None:
        native["quoteQuantity"] = int(_decimal(body["quoteQuantity"], "quoteQuantity").scaleb(2))
    for source, target in (
        ("price", "price"),
        ("triggerPrice", "triggerPrice"),
        ("takeProfitTriggerPrice", "takeProfit"),
        ("stopLossTriggerPrice", "stopLoss"),
    ):
        if body.get(source) is not None:
            native[target] = _units(body[source], asset.decimals, source, Code.INVALID_PRICE, "Price decimal too long")
    for name in ("timeInForce", "postOnly", "reduceOnly", "clientId"):
        if body.get(name) is not None:
            native[name] = body[name]
    if body.get("triggerBy") is not None:
        native["triggerBy"] = shapes.TRIGGER_BY_NATIVE.get(body["triggerBy"], body["triggerBy"])
    try:
        return NEW_ORDER_SCHEMA.load(native)
    except ValidationError as error:
        fail(400, Code.INVALID_CLIENT_REQUEST, "; ".join(f"{k}: {v}" for k, v in error.normalized_messages().items()))


def _selector(params: dict) -> tuple[str, int | None, int | None]:
    """symbol and exactly one of orderId and clientId, as Backpack's order routes take them."""
    asset = _market(params.get("symbol"))
    order_id, client_id = params.get("orderId"), params.get("clientId")
    if (order_id is None) == (client_id is None):
        fail(400, Code.INVALID_CLIENT_REQUEST, "Name exactly one of orderId and clientId")
    try:
        return (
            asset.symbol,
            int(order_id) if order_id is not None else None,
            (int(client_id) if client_id is not None else None),
        )
    except (TypeError, ValueError):
        fail(400, Code.INVALID_CLIENT_REQUEST, "orderId and clientId are integers")


# ---- private ---------------------------------------------------------------------------------


@blp.get("/api/v1/capital")
def capital():
    return jsonify(service.capital(signed_account("balanceQuery", request.args.to_dict())))


@blp.get("/api/v1/capital/collateral")
def capital_collateral():
    return jsonify(service.collateral(signed_account("collateralQuery", request.args.to_dict())))


@blp.post("/api/v1/order")
def execute_order():
    body = _body()
    account_id = signed_account("orderExecute", body)
    return jsonify(shapes.order(netting.create_order(account_id, _native_order(body))))


MAX_BATCH = 20  # Backpack's (and ccxt's) cap on one batch


@blp.post("/api/v1/orders")
def execute_orders():
    """A batch, each order signed as its own `orderExecute` segment: executed in order, each
    answered as `Ok` with the order or `Err` with Backpack's code, as Backpack answers a batch."""
    batch = request.get_json(silent=True)
    if not isinstance(batch, list) or not all(isinstance(order, dict) for order in batch):
        fail(400, Code.INVALID_CLIENT_REQUEST, "A batch is a JSON list of orders")
    account_id = signed_account("orderExecute", batch)
    if not 1 <= len(batch) <= MAX_BATCH:
        fail(400, Code.INVALID_CLIENT_REQUEST, f"A batch holds 1 to {MAX_BATCH} orders")
    answers = []
    for body in batch:
        try:
            answers.append({"operation": "Ok", **shapes.order(netting.create_order(account_id, _native_order(body)))})
        except BackpackError as error:
            answers.append({"operation": "Err", "code": str(error.code), "message": error.message})
        except ApiError as error:
            _, code = errors.FROM_NATIVE.get(error.code, (500, Code.SERVER_ERROR))
            answers.append({"operation": "Err", "code": str(code), "message": error.message})
    return jsonify(answers)


@blp.get("/api/v1/order")
def query_order():
    params = request.args.to_dict()
    account_id = signed_account("orderQuery", params)
    order = netting.find_order(account_id, *_selector(params))
    if order is None or order.status not in netting.OPEN_STATUSES:
        fail(404, Code.RESOURCE_NOT_FOUND, "Order not found")
    return jsonify(shapes.order(netting.view(order)))


@blp.delete("/api/v1/order")
def cancel_order():
    body = _body()
    account_id = signed_account("orderCancel", body)
    order = netting.find_order(account_id, *_selector(body))
    if order is None or order.status not in netting.OPEN_STATUSES:
        fail(400, Code.INVALID_CLIENT_REQUEST, "Order not found")
    return jsonify(shapes.order(netting.cancel(account_id, str(order.id))))


@blp.get("/api/v1/orders")
def query_orders():
    params = request.args.to_dict()
    account_id = signed_account("orderQueryAll", params)
    symbol = _market(params["symbol"]).symbol if params.get("symbol") else None
    return jsonify([shapes.order(view) for view in netting.open_orders(account_id, symbol)])


@blp.delete("/api/v1/orders")
def cancel_orders():
    body = _body()
    account_id = signed_account("orderCancelAll", body)
    symbol = _market(body.get("symbol")).symbol
    cancelled = [netting.cancel(account_id, view["id"]) for view in netting.open_orders(account_id, symbol)]
    return jsonify([shapes.order(view) for view in cancelled])


@blp.get("/api/v1/position")
def query_positions():
    params = request.args.to_dict()
    account_id = signed_account("positionQuery", params)
    return jsonify(service.positions(account_id, params.get("symbol") or None))


@blp.get("/api/v1/account")
def query_account():
    return jsonify(service.account_settings(signed_account("accountQuery", request.args.to_dict())))


def _bounded(params, name: str, default: int, least: int, most: int) -> int:
    """An integer parameter within [least, most]; Backpack's error body otherwise."""
    try:
        value = int(params.get(name, default))
    except ValueError:
        fail(400, Code.INVALID_CLIENT_REQUEST, f"{name} is an integer")
    if not least <= value <= most:
        fail(400, Code.INVALID_CLIENT_REQUEST, f"{name} is {least} to {most}")
    return value


def _limit(params, most: int = 1000) -> int:
    return _bounded(params, "limit", 100, 1, most)


def _offset(params, most: int = 2**63 - 1) -> int:  # PostgreSQL's OFFSET is a bigint
    return _bounded(params, "offset", 0, 0, most)


def _page(params: dict) -> dict:
    """Backpack's paging: `limit` (default 100, at most 1000), `offset`, `sortDirection`."""
    limit, offset = _limit(params), _offset(params)
    direction = params.get("sortDirection", "Desc")
    if direction not in ("Asc", "Desc"):
        fail(400, Code.INVALID_CLIENT_REQUEST, "sortDirection is Asc or Desc")
    return {"limit": limit, "offset": offset, "ascending": direction == "Asc"}


def _order_number(params: dict) -> int | None:
    try:
        return int(params["orderId"]) if params.get("orderId") else None
    except ValueError:
        fail(400, Code.INVALID_CLIENT_REQUEST, "orderId is an integer")


@blp.get("/wapi/v1/history/fills")
def fill_history():
    params = request.args.to_dict()
    account_id = signed_account("fillHistoryQueryAll", params)
    symbol = params.get("symbol") or None
    return jsonify(service.fill_history(account_id, _page(params), symbol, _order_number(params)))


@blp.get("/wapi/v1/history/orders")
def order_history():
    params = request.args.to_dict()
    account_id = signed_account("orderHistoryQueryAll", params)
    symbol = params.get("symbol") or None
    return jsonify(service.order_history(account_id, _page(params), symbol, _order_number(params)))


@blp.get("/wapi/v1/history/position")
def position_history():
    params = request.args.to_dict()
    account_id = signed_account("positionHistoryQueryAll", params)
    state = params.get("state")
    if state not in (None, "Open", "Closed"):
        fail(400, Code.INVALID_CLIENT_REQUEST, "state is Open or Closed")
    return jsonify(service.position_history(account_id, _page(params), params.get("symbol") or None, state))


@blp.get("/wapi/v1/history/funding")
def funding_history():
    params = request.args.to_dict()
    account_id = signed_account("fundingHistoryQueryAll", params)
    return jsonify(service.funding_history(account_id, _page(params), params.get("symbol") or None))


@blp.get("/api/v1/account/limits/order")
def max_order_quantity():
    params = request.args.to_dict()
    account_id = signed_account("maxOrderQuantity", params)
    asset = _market(params.get("symbol"))
    side = params.get("side")
    if side not in shapes.SIDE_NATIVE:
        fail(400, Code.INVALID_CLIENT_REQUEST, "side must be Bid or Ask")
    price = None
    if params.get("price"):
        price = _units(params["price"], asset.decimals, "price", Code.INVALID_PRICE, "Price decimal too long")
    reduce_only = params.get("reduceOnly", "false").lower() == "true"
    largest, at = netting.max_order_quantity(account_id, asset.symbol, side == "Bid", price, reduce_only)
    answer = {
        "symbol": asset.symbol,
        "side": side,
        "maxOrderQuantity": shapes.plain(largest, asset.quantity_decimals),
        "price": shapes.plain(at, asset.decimals),
    }
    if "reduceOnly" in params:
        answer["reduceOnly"] = reduce_only
    return jsonify(answer)


@blp.patch("/api/v1/account")
def update_account():
    body = _body()
    account_id = signed_account("accountUpdate", body)
    try:
        service.update_account(account_id, body)
    except ValueError as error:
        fail(400, Code.INVALID_CLIENT_REQUEST, str(error))
    return "", 200


# ---- public ----------------------------------------------------------------------------------


@blp.get("/api/v1/markets")
def markets():
    return jsonify(service.markets())


@blp.get("/api/v1/market")
def market():
    found = service.markets(request.args.get("symbol", ""))
    if not found:
        fail(400, Code.INVALID_SYMBOL, "Unknown symbol")
    return jsonify(found[0])


@blp.get("/api/v1/assets")
def assets():
    return jsonify(service.assets())


@blp.get("/api/v1/securities")
def securities():
    return jsonify([])  # ccxt's load_markets asks; the paper venue lists no securities


@blp.get("/api/v1/status")
def status():
    return jsonify({"status": "Ok", "message": None})


@blp.get("/api/v1/ping")
def ping():
    return "pong", 200, {"Content-Type": "text/plain"}


@blp.get("/api/v1/time")
def server_time():
    return str(int(time.time() * 1000)), 200, {"Content-Type": "text/plain"}


@blp.get("/api/v1/markPrices")
def mark_prices():
    return jsonify(service.mark_prices(request.args.get("symbol") or None))


DEPTH_LIMITS = ("5", "10", "20", "50", "100", "500", "1000")  # Backpack's DepthLimit, strings


@blp.get("/api/v1/depth")
def depth():
    asset = _market(request.args.get("symbol"))
    limit = request.args.get("limit", "1000")
    if limit not in DEPTH_LIMITS:  # Backpack answers a parameter it cannot parse in plain text
        message = 'failed to parse parameter `limit`: failed to parse "DepthLimit": Expect a valid enumeration value.'
        return message, 400, {"Content-Type": "text/plain; charset=utf-8"}
    book = book_levels(asset.symbol, int(limit))
    quote = fresh_quote(asset.symbol)
    if not book["live"] and quote is None:
        fail(503, Code.MAINTENANCE, f"No fresh book for {asset.symbol}")

    def levels(side: list[dict]) -> list[list[str]]:
        return [
            [shapes.plain(lv["price"], asset.decimals), shapes.plain(lv["quantity"], QUANTITY_DECIMALS)] for lv in side
        ]

    bids = levels(book["bids"]) if book["live"] else [[shapes.plain(quote.bid, asset.decimals), "0"]]
    asks = levels(book["asks"]) if book["live"] else [[shapes.plain(quote.ask, asset.decimals), "0"]]
    return jsonify(
        {
            "asks": asks,  # Backpack lists both sides from the lowest price up: the asks best first,
            "bids": list(reversed(bids)),  # the bids best last
            "lastUpdateId": str(book["updateId"] or 0),
            "timestamp": quote.time_us if quote is not None else 0,  # microseconds, as Backpack's
        }
    )


def _perpetuals() -> list:
    """The perpetuals this venue trades (the chosen ones, registered)."""
    return [asset for asset in map(asset_named, perpetual_symbols()) if asset is not None]


def _ticker_window() -> str:
    window = request.args.get("interval", "1d")
    if window not in market_data.TICKER_WINDOWS_S:
        fail(400, Code.INVALID_CLIENT_REQUEST, "interval is 1d or 1w")
    return window


@blp.get("/api/v1/ticker")
def ticker():
    found = market_data.tickers([_market(request.args.get("symbol"))], _ticker_window())
    if not found:
        return "", 204  # Backpack's answer for a market without figures
    return jsonify(found[0])


@blp.get("/api/v1/tickers")
def tickers():
    window = _ticker_window()
    return jsonify(market_data.tickers(_perpetuals(), window))


@blp.get("/api/v1/klines")
def klines():
    asset = _market(request.args.get("symbol"))
    interval = request.args.get("interval")
    if interval not in market_data.KLINE_INTERVALS:
        fail(400, Code.INVALID_CLIENT_REQUEST, f"interval is one of {', '.join(market_data.KLINE_INTERVALS)}")
    if request.args.get("priceType", "Last") != "Last":
        fail(400, Code.INVALID_CLIENT_REQUEST, "Mark and index price klines are not simulated: priceType is Last")
    try:
        start = int(request.args["startTime"])
        end = int(request.args.get("endTime", int(time.time()) + 1))
    except (KeyError, ValueError):
        fail(400, Code.INVALID_CLIENT_REQUEST, "startTime (seconds) is required; startTime and endTime are integers")
    if not 0 <= start < end:
        fail(400, Code.INVALID_CLIENT_REQUEST, "startTime is before endTime")
    return jsonify(market_data.klines(asset, interval, start, end))


@blp.get("/api/v1/trades")
def recent_trades():
    asset = _market(request.args.get("symbol"))
    return jsonify(market_data.trades(asset, _limit(request.args)))


@blp.get("/api/v1/trades/history")
def trade_history():
    asset = _market(request.args.get("symbol"))
    return jsonify(market_data.trades(asset, _limit(request.args), _offset(request.args, 10**9)))


@blp.get("/api/v1/fundingRates")
def funding_rates():
    asset = _market(request.args.get("symbol"))
    return jsonify(market_data.funding_rates(asset, _limit(request.args, 10_000), _offset(request.args, 10**9)))


@blp.get("/api/v1/openInterest")
def open_interest():
    symbol = request.args.get("symbol")
    return jsonify(market_data.open_interest([_market(symbol)] if symbol else _perpetuals()))


@sock.route("/ws", bp=blp)
def socket(ws):
    """Backpack's WebSocket: public and private streams on one socket (`app.backpack.streams`)."""
    streams.serve(ws)


@blp.route("/<path:rest>", methods=["GET", "POST", "DELETE", "PATCH", "PUT"])
def not_simulated(rest: str):
    fail(404, Code.NOT_IMPLEMENTED, f"{request.method} /{rest} is not simulated by this paper venue")


# ---- errors: Backpack's body for everything under /backpack ------------------------------------


@blp.errorhandler(BackpackError)
def backpack_error(error: BackpackError):
    return errors.response(error.status, error.code, error.message)


@blp.errorhandler(ApiError)
def native_error(error: ApiError):
    return errors.from_native(error.code, error.message)


@blp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    return errors.from_status(error.code or 500, error.description or "")


@blp.errorhandler(Exception)
def unexpected(error: Exception):
    if isinstance(error, DEPENDENCY_ERRORS):
        return errors.response(503, Code.MAINTENANCE, "A dependency is down for a moment; retry shortly")
    log.exception("unexpected error under /backpack")
    return errors.response(500, Code.SERVER_ERROR, "Internal error")
