"""Who is asking: the JWT's account. flask-jwt-extended answers in the contract's error shape,
401 `unauthorized` for any bad token, including a valid signature without `exp` or for an
account that does not exist."""

import re

from flask_jwt_extended import JWTManager, get_current_user
from sqlalchemy import select

from app.errors import ErrorCode, error_response
from app.extensions import db
from app.models import User

ACCOUNT_ID = re.compile(r"[1-9][0-9]{0,17}")  # a BIGINT id, ASCII digits only
KNOWN_ACCOUNTS_MAX = 100_000  # account ids a process remembers as existing before it starts over

_known_accounts: set[int] = set()


def account_id(subject: object) -> int | None:
    """The account id a token's `sub` names, or None when it names none we could have issued."""
    if isinstance(subject, str) and ACCOUNT_ID.fullmatch(subject):
        return int(subject)
    return None


def current_user_id() -> int:
    return int(get_current_user())


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
