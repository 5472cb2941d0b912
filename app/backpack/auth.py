"""Signed requests in Backpack paper mode: the key, signature, timestamp and window checked as
Backpack checks them (`core.signing`), each signature accepted once, and the request's netting
account found from its paper key. A key that is not registered here is refused loudly: a real
Backpack key sent to a paper venue could be replayed to Backpack within its window."""

import time

import redis
from flask import current_app, request
from sqlalchemy import select, update

from app.backpack.errors import Code, fail
from app.extensions import autocommit, redis_client
from app.models import ApiKey, utcnow
from app.trading.limits import rate_limit
from core import signing
from core.keys import BACKPACK_RATE_KEY
from core.signing import SigningError

SEEN_SIGNATURE_KEY = "backpack:signature:{signature}"
TOUCH_LAST_USED_EVERY_S = 60
UNKNOWN_KEY = (
    "Unknown API key. This is a paper-trading venue: use a paper key made here "
    "(POST /api/v1/api-keys or the terminal's API keys panel), and never send a real Backpack key to it"
)


def _once_and_counted(signature: str, window_ms: int, account_id: int) -> None:
    """The signature never seen before (remembered for its window), and the request within
    BACKPACK_RATE_LIMIT for the account (Backpack: 2000 a minute per subaccount; a fixed window):
    one round trip to Redis for both. Redis down: the request goes on, as every limit here does."""
    amount, window_s = rate_limit(current_app.config["BACKPACK_RATE_LIMIT"])
    window = int(time.time() // window_s)
    counter = BACKPACK_RATE_KEY.format(account=account_id, window=window)
    try:
        with redis_client.pipeline(transaction=False) as pipe:
            pipe.set(
                SEEN_SIGNATURE_KEY.format(signature=signature), 1, nx=True, px=window_ms + signing.FUTURE_TOLERANCE_MS
            )
            pipe.incr(counter)
            pipe.expire(counter, window_s + 1)
            first, count, _ = pipe.execute()
    except redis.RedisError:
        return
    if not first:
        fail(401, Code.INVALID_SIGNATURE, "This signature was used already: sign each request anew")
    if count > amount:
        fail(429, Code.TOO_MANY_REQUESTS, f"Too many requests: {amount} per {window_s} s per account")


def find_key(public_key: str):
    """The paper key (id, account_id, last_used_at) registered as `public_key` and not revoked, on
    an autocommit connection: one round trip, no transaction to begin and roll back."""
    with autocommit() as connection:
        return connection.execute(
            select(ApiKey.id, ApiKey.account_id, ApiKey.last_used_at).where(
                ApiKey.public_key == public_key, ApiKey.revoked_at.is_(None)
            )
        ).one_or_none()


def signed_account(instruction: str, params) -> int:
    """The netting account a signed request acts for; Backpack's error otherwise, nothing written."""
    try:
        headers = signing.parse_headers(request.headers)
        signing.check_time(headers, int(time.time() * 1000))
    except SigningError as error:
        fail(400, Code(error.code), error.message)
    key = find_key(headers.api_key)
    if key is None:
        fail(401, Code.UNAUTHORIZED, UNKNOWN_KEY)
    try:
        signing.verify(signing.public_key_bytes(headers.api_key), headers, instruction, params)
    except SigningError as error:
        fail(401 if error.code == "INVALID_SIGNATURE" else 400, Code(error.code), error.message)
    _once_and_counted(request.headers["X-Signature"], headers.window_ms, key.account_id)
    now = utcnow()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= TOUCH_LAST_USED_EVERY_S:
        with autocommit() as connection:
            connection.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    return key.account_id
