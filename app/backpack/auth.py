"""Signed requests in Backpack paper mode: the key, signature, timestamp and window checked as
Backpack checks them (`core.signing`), each signature accepted once, and the request's netting
account found from its paper key. A key that is not registered here is refused loudly: a real
Backpack key sent to a paper venue could be replayed to Backpack within its window."""

import time

from flask import request
from sqlalchemy import select, update

from app.backpack.errors import Code, fail
from app.extensions import db, redis_client
from app.models import ApiKey, utcnow
from core import signing
from core.signing import SigningError

SEEN_SIGNATURE_KEY = "backpack:signature:{signature}"
TOUCH_LAST_USED_EVERY_S = 60
UNKNOWN_KEY = (
    "Unknown API key. This is a paper-trading venue: use a paper key made here "
    "(POST /api/v1/api-keys or the terminal's API keys panel), and never send a real Backpack key to it"
)


def signed_account(instruction: str, params) -> int:
    """The netting account a signed request acts for; Backpack's error otherwise, nothing written."""
    try:
        headers = signing.parse_headers(request.headers)
        signing.check_time(headers, int(time.time() * 1000))
    except SigningError as error:
        fail(400, Code(error.code), error.message)
    key = db.session.execute(
        select(ApiKey.id, ApiKey.account_id, ApiKey.last_used_at).where(
            ApiKey.public_key == headers.api_key, ApiKey.revoked_at.is_(None)
        )
    ).one_or_none()
    if key is None:
        fail(401, Code.UNAUTHORIZED, UNKNOWN_KEY)
    try:
        signing.verify(signing.public_key_bytes(headers.api_key), headers, instruction, params)
    except SigningError as error:
        fail(401 if error.code == "INVALID_SIGNATURE" else 400, Code(error.code), error.message)
    seen = SEEN_SIGNATURE_KEY.format(signature=request.headers["X-Signature"])
    if not redis_client.set(seen, 1, nx=True, px=headers.window_ms + signing.FUTURE_TOLERANCE_MS):
        fail(401, Code.INVALID_SIGNATURE, "This signature was used already: sign each request anew")
    now = utcnow()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= TOUCH_LAST_USED_EVERY_S:
        db.session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        db.session.commit()
    return key.account_id
