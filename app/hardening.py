"""What every request and response goes through: a bounded JSON parser and security headers.

Request bodies over `MAX_CONTENT_LENGTH` are refused by Flask itself (413); this module makes
sure that no body that fits, however deep or odd, can raise anything but a 400.
"""

import json
import math

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider

MAX_JSON_DEPTH = 32
MAX_JSON_NUMBER_DIGITS = 64  # far beyond any amount; int("9" * 5000) is slow and then refused by Python


class JsonTooComplex(ValueError):
    pass


def _bounded_int(text: str) -> int:
    if len(text) > MAX_JSON_NUMBER_DIGITS:
        raise JsonTooComplex(f"number with {len(text)} digits")
    return int(text)


def _bounded_float(text: str) -> float:
    value = float(text) if len(text) <= MAX_JSON_NUMBER_DIGITS else math.inf
    if not math.isfinite(value):
        raise JsonTooComplex(f"number out of range: {text[:20]}")
    return value


def _no_constant(name: str):
    raise JsonTooComplex(f"{name} is not JSON")


def json_depth(value) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_body(text: str | bytes):
    """json.loads with bounds; raises ValueError (which Flask answers as 400) for anything else."""
    try:
        value = json.loads(text, parse_int=_bounded_int, parse_float=_bounded_float, parse_constant=_no_constant)
    except RecursionError:
        raise JsonTooComplex("nested too deep") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise JsonTooComplex(f"nested deeper than {MAX_JSON_DEPTH}")
    return value


class BoundedJSONProvider(DefaultJSONProvider):
    sort_keys = False

    def loads(self, s, **kwargs):
        return parse_json_body(s)


def _authenticated(path: str) -> bool:
    """Answers that carry or depend on a session: never to be stored by a cache."""
    has_session = "Authorization" in request.headers or "access_token_cookie" in request.cookies
    return has_session or path.endswith("/signin/post")


# Pages run only this origin's scripts (the vendored libraries included): no CDN, no inline script.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # Swagger UI and the chart style elements from script
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


RETRY_UNAVAILABLE_AFTER_S = 2  # prices come back within a feed frame, servers within a restart


def add_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if _authenticated(request.path):
        headers["Cache-Control"] = "no-store"
    if response.status_code == 503:
        headers.setdefault("Retry-After", str(RETRY_UNAVAILABLE_AFTER_S))
    return response


def init_app(app: Flask) -> None:
    app.json = BoundedJSONProvider(app)
    app.after_request(add_security_headers)
