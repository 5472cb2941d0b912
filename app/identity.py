"""Who is asking: the account of a JWT (a magic-link sign-in) or of a personal access token.
flask-jwt-extended answers in the contract's error shape, 401 `unauthorized` for any bad token,
including a valid signature without `exp` or for an account that does not exist."""

import functools
import hashlib
import re
from datetime import timedelta

from flask import g, request
from flask_jwt_extended import JWTManager, get_current_user, jwt_required
from sqlalchemy import select, update

from app.errors import ErrorCode, error_response
from app.extensions import db
from app.models import AccessToken, User, utcnow
from app.openapi import SECURITY_MARK

ACCOUNT_ID = re.compile(r"[1-9][0-9]{0,17}")  # a BIGINT id, ASCII digits only
KNOWN_ACCOUNTS_MAX = 100_000  # account ids a process remembers as existing before it starts over

_known_accounts: set[int] = set()


def account_id(subject: object) -> int | None:
    """The account id a token's `sub` names, or None when it names none we could have issued."""
    if isinstance(subject, str) and ACCOUNT_ID.fullmatch(subject):
        return int(subject)
    return None


PERSONAL_TOKEN_PREFIX = "pat_"
TOKEN_LAST_USED_EVERY = timedelta(minutes=1)  # a busy script costs one write a minute, not one per request


def current_user_id() -> int:
    token_account = g.get("token_account")
    return token_account if token_account is not None else int(get_current_user())


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def personal_token_account(secret: str) -> int | None:
    """The account a live personal access token acts for (recording its use), or None."""
    token = db.session.execute(
        select(AccessToken.id, AccessToken.user_id, AccessToken.last_used_at).where(
            AccessToken.token_hash == token_digest(secret), AccessToken.revoked_at.is_(None)
        )
    ).first()
    if token is not None and (token.last_used_at is None or utcnow() - token.last_used_at >= TOKEN_LAST_USED_EVERY):
        db.session.execute(update(AccessToken).where(AccessToken.id == token.id).values(last_used_at=utcnow()))
        db.session.commit()
    else:
        db.session.rollback()
    return token.user_id if token is not None else None


def _documented(wrapper):
    apidoc = getattr(wrapper, "_apidoc", {})
    manual = apidoc.setdefault("manual_doc", {})
    manual[SECURITY_MARK] = True
    wrapper._apidoc = apidoc
    return wrapper


def authenticated(view):
    """The route acts for the caller's account: a JWT (header or cookie) or a personal access token."""
    with_jwt = jwt_required()(view)

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credential.startswith(PERSONAL_TOKEN_PREFIX):
            g.token_account = personal_token_account(credential)
            if g.token_account is None:
                return _unauthorized("Invalid or revoked access token")
            return view(*args, **kwargs)
        return with_jwt(*args, **kwargs)

    return _documented(wrapper)


def signed_in(view):
    """The route needs a real sign-in (a JWT): managing tokens is not something a token may do."""
    return _documented(jwt_required()(view))


def account_exists(user_id: int) -> bool:
    """Accounts are never deleted, so a process remembers each one it has found: a token costs a
    database read the first time its process sees the account, not on every request."""
    if user_id in _known_accounts:
        return True
    if db.session.scalar(select(User.id).where(User.id == user_id)) is None:
        return False
    if len(_known_accounts) >= KNOWN_ACCOUNTS_MAX:
        _known_accounts.clear()
    _known_accounts.add(user_id)
    return True


def _unauthorized(message: str):
    return error_response(401, message, ErrorCode.UNAUTHORIZED)


def register(jwt: JWTManager) -> None:
    jwt.unauthorized_loader(_unauthorized)
    jwt.invalid_token_loader(lambda reason: _unauthorized(f"Invalid token: {reason}"))
    jwt.expired_token_loader(lambda _header, _payload: _unauthorized("Token has expired"))
    jwt.user_lookup_error_loader(lambda _header, _payload: _unauthorized("This account does not exist"))
    jwt.token_verification_failed_loader(lambda _header, _payload: _unauthorized("Token has no expiry"))

    @jwt.token_verification_loader
    def _has_expiry(_header, payload) -> bool:
        return "exp" in payload

    @jwt.user_lookup_loader
    def _load_account(_header, payload) -> int | None:
        user_id = account_id(payload.get("sub"))
        return user_id if user_id is not None and account_exists(user_id) else None
