"""Every error the API answers, in one place: codes, their statuses, the body schema, the handlers.

Bodies are flask-smorest's shape plus the contract's stable `error` string, always dumped
through `ErrorSchema`; routes document exactly the codes they can return with `documents`.
"""

from enum import StrEnum
from http import HTTPStatus

import flask_smorest
import kombu.exceptions
import marshmallow as ma
import redis
from flask import current_app, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException


class ErrorCode(StrEnum):
    VALIDATION = "validation"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    ALREADY_CLOSED = "already_closed"
    NOT_OPEN = "not_open"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    SLIPPAGE_EXCEEDED = "slippage_exceeded"
    PRICE_UNAVAILABLE = "price_unavailable"
    IDEMPOTENCY_MISMATCH = "idempotency_mismatch"
    EXPIRED = "expired"
    INSUFFICIENT_LIQUIDITY = "insufficient_liquidity"
    NOT_WORKING = "not_working"
    TOO_MANY_WORKING_ORDERS = "too_many_working_orders"
    INVALID_PRICE = "invalid_price"  # not on the market's tickSize
    INVALID_QUANTITY = "invalid_quantity"  # not on its stepSize, or under its minQuantity
    MARKET_NOT_OPEN = "market_not_open"  # its orderBookState is not Open
    ACCOUNT_ARCHIVED = "account_archived"  # an archived account takes no new orders
    TOO_MANY_ACCOUNTS = "too_many_accounts"  # the user has MAX_ACCOUNTS already
    NAME_TAKEN = "name_taken"  # the user has an account of that name
    MAIN_ACCOUNT = "main_account"  # the account sign-up created is never archived
    WRONG_ACCOUNT_MODE = "wrong_account_mode"  # a hedging route on a netting account, or the reverse
    INSUFFICIENT_MARGIN = "insufficient_margin"  # a netting order the account's equity cannot margin
    REDUCE_ONLY = "reduce_only"  # a reduceOnly order that would not reduce the position
    POST_ONLY = "post_only"  # a postOnly order that would take liquidity
    KEY_TAKEN = "key_taken"  # an API key's public key is registered already
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


STATUS = {
    ErrorCode.VALIDATION: 422,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.ALREADY_CLOSED: 409,
    ErrorCode.NOT_OPEN: 409,
    ErrorCode.INSUFFICIENT_BALANCE: 400,
    ErrorCode.SLIPPAGE_EXCEEDED: 409,
    ErrorCode.PRICE_UNAVAILABLE: 503,
    ErrorCode.IDEMPOTENCY_MISMATCH: 422,
    ErrorCode.EXPIRED: 409,
    ErrorCode.INSUFFICIENT_LIQUIDITY: 409,
    ErrorCode.NOT_WORKING: 409,
    ErrorCode.TOO_MANY_WORKING_ORDERS: 409,
    ErrorCode.INVALID_PRICE: 400,
    ErrorCode.INVALID_QUANTITY: 400,
    ErrorCode.MARKET_NOT_OPEN: 400,
    ErrorCode.ACCOUNT_ARCHIVED: 409,
    ErrorCode.TOO_MANY_ACCOUNTS: 409,
    ErrorCode.NAME_TAKEN: 409,
    ErrorCode.MAIN_ACCOUNT: 409,
    ErrorCode.WRONG_ACCOUNT_MODE: 409,
    ErrorCode.INSUFFICIENT_MARGIN: 400,
    ErrorCode.REDUCE_ONLY: 400,
    ErrorCode.POST_ONLY: 400,
    ErrorCode.KEY_TAKEN: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}
# The code of an HTTP error raised by Flask, Werkzeug or webargs rather than by our services.
CODE_FOR_STATUS = {
    400: ErrorCode.VALIDATION,  # unparsable JSON
    401: ErrorCode.UNAUTHORIZED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.TOO_LARGE,
    414: ErrorCode.TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION,
    429: ErrorCode.RATE_LIMITED,
    431: ErrorCode.TOO_LARGE,
}
VALIDATION_MESSAGES = {
    400: "The request body is not valid JSON",
    422: "The request failed validation; see errors",
}


class ErrorSchema(ma.Schema):
    """Every error body (the `Error` component of /openapi.json)."""

    code = ma.fields.Integer(required=True, metadata={"description": "HTTP status"})
    status = ma.fields.String(required=True, metadata={"description": "HTTP status phrase"})
    message = ma.fields.String(required=True)
    error = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(list(ErrorCode)),
        metadata={"description": "stable machine-readable error", "enum": list(ErrorCode)},
    )
    errors = ma.fields.Dict(metadata={"description": "validation errors by location and field"})


class ApiError(Exception):
    """A business error: its code fixes the status."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def abort(code: ErrorCode, message: str):
    raise ApiError(code, message)


def error_body(status: int, message: str, code: ErrorCode | None = None, errors=None) -> dict:
    body = {
        "code": status,
        "status": HTTPStatus(status).phrase,
        "message": message,
        "error": code or CODE_FOR_STATUS.get(status, ErrorCode.INTERNAL),
    }
    if errors:
        body["errors"] = errors
    return ErrorSchema().dump(body)


def error_response(status: int, message: str, code: ErrorCode | None = None, errors=None):
    response = jsonify(error_body(status, message, code, errors))
    response.status_code = status
    return response


def documents(blp: flask_smorest.Blueprint, *codes: ErrorCode):
    """Document exactly the error codes a route can return, grouped by status."""
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):  # each once, in order
        by_status.setdefault(STATUS[code], []).append(code.value)

    def decorate(view):
        for status, names in sorted(by_status.items()):
            view = blp.alt_response(status, schema=ErrorSchema, description="error: " + " | ".join(names))(view)
        return view

    return decorate


# A dependency down (PostgreSQL, Redis, the broker): 503 with Retry-After, never a 500.
DEPENDENCY_ERRORS = (
    OperationalError,
    InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
    kombu.exceptions.OperationalError,
)


class Api(flask_smorest.Api):
    """flask-smorest's Api whose every error, from any layer, is an `ErrorSchema` body."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        app = self._app
        app.register_error_handler(ApiError, self.handle_api_error)
        app.register_error_handler(HTTPException, self.handle_http_exception)
        for dependency_error in DEPENDENCY_ERRORS:
            app.register_error_handler(dependency_error, self.handle_dependency_down)
        app.register_error_handler(Exception, self.handle_unexpected)

    @staticmethod
    def handle_api_error(exc: ApiError):
        return error_response(STATUS[exc.code], exc.message, exc.code)

    def handle_http_exception(self, exc: HTTPException):
        status = exc.code or 500
        data = getattr(exc, "data", None) or {}
        errors = data.get("messages") or data.get("errors")
        message = data.get("message") or (VALIDATION_MESSAGES.get(status) if errors else None)
        message = message or exc.description or ""
        if status == 429:
            message = f"Rate limit exceeded: {exc.description}"
        response = error_response(status, message, errors=errors)
        if status == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @staticmethod
    def handle_dependency_down(exc: Exception):
        current_app.logger.warning("dependency unavailable: %s", exc)
        return error_response(503, "A backing service is unavailable; retry shortly", ErrorCode.UNAVAILABLE)

    @staticmethod
    def handle_unexpected(exc: Exception):
        current_app.logger.exception("unhandled error")
        return error_response(500, "Internal server error", ErrorCode.INTERNAL)
