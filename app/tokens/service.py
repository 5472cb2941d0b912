"""Personal access tokens: a script's credential that needs no e-mailed link every day.

The secret (`pat_` and 43 URL-safe characters) is returned once, at creation; the database keeps
its SHA-256 only. A token acts for the user it was made for (any of their accounts, as a
sign-in does), until revoked.
"""

import secrets

from sqlalchemy import func, select, update

from app.errors import ErrorCode, abort
from app.extensions import db
from app.identity import PERSONAL_TOKEN_PREFIX, token_digest
from app.models import AccessToken, utcnow

MAX_TOKENS = 20  # live tokens per user


def create(user_id: int, label: str) -> AccessToken:
    """A new token; its secret is on the returned row's `secret`, this once."""
    live = select(func.count()).where(AccessToken.user_id == user_id, AccessToken.revoked_at.is_(None))
    if db.session.scalar(live) >= MAX_TOKENS:
        abort(ErrorCode.VALIDATION, f"At most {MAX_TOKENS} live tokens per user; revoke one first")
    secret = PERSONAL_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = AccessToken(user_id=user_id, label=label, token_hash=token_digest(secret), prefix=secret[:12])
    db.session.add(token)
    db.session.commit()
    token.secret = secret
    return token


def list_tokens(user_id: int) -> list[AccessToken]:
    query = select(AccessToken).where(AccessToken.user_id == user_id, AccessToken.revoked_at.is_(None))
    return list(db.session.scalars(query.order_by(AccessToken.id)))


def revoke(user_id: int, token_id: int) -> None:
    revoked = db.session.execute(
        update(AccessToken)
        .where(AccessToken.id == token_id, AccessToken.user_id == user_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if revoked.rowcount == 0:
        db.session.rollback()
        abort(ErrorCode.NOT_FOUND, "No such token")
    db.session.commit()
