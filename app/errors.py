"""JSON errors in flask-smorest's shape plus the contract's stable `error` string."""
from http import HTTPStatus

import kombu.exceptions
import marshmallow as ma
import redis
from flask import jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

# Default `error` string for statuses the contract names without a more specific one.
DEFAULT_ERRORS = {
    400: "validation",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    422: "validation",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class ErrorSchema(ma.Schema):
    """Every error body (documents the `Error` component of /openapi.json)."""

    code = ma.fields.Integer(required=True, metadata={"description": "HTTP status"})
    status = ma.fields.String(required=True, metadata={"description": "HTTP status phrase"})
    message = ma.fields.String(required=True)
    error = ma.fields.String(required=True, metadata={"description": "stable machine-readable error"})
    errors = ma.fields.Dict(metadata={"description": "validation errors by location and field"})


VALIDATION_MESSAGES = {
    400: "The request body is not valid JSON",
    422: "The request failed validation; see errors",
}


class ApiError(Exception):
    """A business error the service answers with a fixed status and `error` string."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def abort(status: int, error: str, message: str):
    raise ApiError(status, error, message)


def error_body(status: int, message: str, error: str | None = None, errors=None) -> dict:
    body = {
        "code": status,
        "status": HTTPStatus(status).phrase,
        "message": message,
        "error": error or DEFAULT_ERRORS.get(status, "error"),
    }
    if errors:
        body["errors"] = errors
    return body


def register_error_handlers(app):
    @app.errorhandler(ApiError)
    def handle_api_error(exc: ApiError):
        return jsonify(error_body(exc.status, exc.message, exc.error)), exc.status

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException):
        status = exc.code or 500
        data = getattr(exc, "data", None) or {}
        errors = data.get("messages") or data.get("errors")
        message = data.get("message") or (VALIDATION_MESSAGES.get(status) if errors else None)
        message = message or exc.description or ""
        if status == 429:
            message = f"Rate limit exceeded: {exc.description}"
        response = jsonify(error_body(status, message, errors=errors))
        response.status_code = status
        if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    @app.errorhandler(kombu.exceptions.OperationalError)
    def handle_dependency_down(exc: Exception):
        app.logger.warning("dependency unavailable: %s", exc)
        return jsonify(error_body(503, "A backing service is unavailable; retry shortly", "unavailable")), 503

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return jsonify(error_body(500, "Internal server error")), 500

