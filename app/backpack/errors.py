"""Backpack's error bodies, `{"code", "message"}`, for every answer under /backpack: the native
services' errors translated, HTTP errors given Backpack's codes."""

from enum import StrEnum

from flask import jsonify

from app.errors import ErrorCode

PREFIX = "/backpack/"


class Code(StrEnum):
    """Backpack's ApiErrorCode values this service answers with."""

    ACCOUNT_DEACTIVATED = "ACCOUNT_DEACTIVATED"
    FORBIDDEN = "FORBIDDEN"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    INVALID_CLIENT_REQUEST = "INVALID_CLIENT_REQUEST"
    INVALID_MARKET = "INVALID_MARKET"
    INVALID_ORDER = "INVALID_ORDER"
    INVALID_PRICE = "INVALID_PRICE"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    INVALID_SYMBOL = "INVALID_SYMBOL"
    MAINTENANCE = "MAINTENANCE"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
    ORDER_LIMIT = "ORDER_LIMIT"
    RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
    SERVER_ERROR = "SERVER_ERROR"
    TIMEOUT = "TIMEOUT"
    TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
    TRADING_PAUSED = "TRADING_PAUSED"
    UNAUTHORIZED = "UNAUTHORIZED"


class BackpackError(Exception):
    def __init__(self, status: int, code: Code, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def fail(status: int, code: Code, message: str):
    raise BackpackError(status, code, message)


def response(status: int, code: Code | str, message: str):
    answer = jsonify({"code": str(code), "message": message})
    answer.status_code = status
    return answer


# A native service's error, as Backpack would say it.
FROM_NATIVE: dict[ErrorCode, tuple[int, Code]] = {
    ErrorCode.VALIDATION: (400, Code.INVALID_CLIENT_REQUEST),
    ErrorCode.UNAUTHORIZED: (401, Code.UNAUTHORIZED),
    ErrorCode.NOT_FOUND: (404, Code.RESOURCE_NOT_FOUND),
    ErrorCode.INVALID_PRICE: (400, Code.INVALID_PRICE),
    ErrorCode.INVALID_QUANTITY: (400, Code.INVALID_QUANTITY),
    ErrorCode.MARKET_NOT_OPEN: (400, Code.TRADING_PAUSED),
    ErrorCode.INSUFFICIENT_MARGIN: (400, Code.INSUFFICIENT_MARGIN),
    ErrorCode.REDUCE_ONLY: (400, Code.INVALID_ORDER),
    ErrorCode.POST_ONLY: (400, Code.INVALID_ORDER),
    ErrorCode.INSUFFICIENT_LIQUIDITY: (400, Code.INVALID_ORDER),
    ErrorCode.TOO_MANY_WORKING_ORDERS: (400, Code.ORDER_LIMIT),
    ErrorCode.EXPIRED: (504, Code.TIMEOUT),
    ErrorCode.PRICE_UNAVAILABLE: (503, Code.MAINTENANCE),
    ErrorCode.RATE_LIMITED: (429, Code.TOO_MANY_REQUESTS),
    ErrorCode.WRONG_ACCOUNT_MODE: (403, Code.FORBIDDEN),
    ErrorCode.ACCOUNT_ARCHIVED: (403, Code.ACCOUNT_DEACTIVATED),
    ErrorCode.NOT_WORKING: (400, Code.INVALID_CLIENT_REQUEST),
}
FROM_STATUS: dict[int, Code] = {
    400: Code.INVALID_CLIENT_REQUEST,
    401: Code.UNAUTHORIZED,
    403: Code.FORBIDDEN,
    404: Code.RESOURCE_NOT_FOUND,
    405: Code.INVALID_CLIENT_REQUEST,
    413: Code.INVALID_CLIENT_REQUEST,
    415: Code.INVALID_CLIENT_REQUEST,
    429: Code.TOO_MANY_REQUESTS,
    503: Code.MAINTENANCE,
}


def from_native(code: ErrorCode, message: str):
    status, backpack = FROM_NATIVE.get(code, (500, Code.SERVER_ERROR))
    return response(status, backpack, message)


def from_status(status: int, message: str):
    return response(status, FROM_STATUS.get(status, Code.SERVER_ERROR), message)
