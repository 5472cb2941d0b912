"""Who is asking and for which account: the user of a JWT (a magic-link sign-in) or of a personal
access token, and the paper account the request names (`X-Account-Id`, or `accountId` in the body
or query), else the user's main account. flask-jwt-extended answers in the contract's error shape,
401 `unauthorized` for any bad token, including a valid signature without `exp` or for a user
that does not exist.

Users and accounts are never deleted and an account never changes hands, so a process remembers
each user it has found and each account's owner: naming an account costs a database read the
first time a process sees it, not on every request."""

import functools
import hashlib
import re
from datetime import timedelta

from flask import g, request
from flask_jwt_extended import JWTManager, get_current_user, jwt_required
from sqlalchemy import func, select, update

from app.errors import ErrorCode, abort, error_response
from app.extensions import db
from app.models import AccessToken, Account, User, utcnow
from app.openapi import SECURITY_MARK

ID = re.compile(r"[1-9][0-9]{0,17}")  # a BIGINT id, ASCII digits only
ACCOUNT_HEADER = "X-Account-Id"
REMEMBERED_MAX = 100_000  # ids a process remembers before it starts over

_known_users: set[int] = set()
_main_accounts: dict[int, int] = {}  # user id -> the account sign-up created (the user's first)
_account_owners: dict[int, int] = {}  # account id -> user id


def user_id_of(subject: object) -> int | None:
    """The user id a token's `sub` names, or None when it names none we could have issued."""
    if isinstance(subject, str) and ID.fullmatch(subject):
        return int(subject)
    return None


PERSONAL_TOKEN_PREFIX = "pat_"
TOKEN_LAST_USED_EVERY = timedelta(minutes=1)  # a busy script costs one write a minute, not one per request


def current_user_id() -> int:
    token_user = g.get("token_user")
    return token_user if token_user is not None else int(get_current_user())


def current_account_id(named: int | None = None) -> int:
    """The account the request acts on: the one named by the `X-Account-Id` header or by the
    body's or query's `accountId` (`named`), which must be the caller's (else 404, as for an id
    that does not exist), or else the caller's main account."""
    user_id = current_user_id()
    header = request.headers.get(ACCOUNT_HEADER)
    if header is not None:
        if not ID.fullmatch(header):
            abort(ErrorCode.VALIDATION, f"{ACCOUNT_HEADER} must be an account id")
        if named is not None and named != int(header):
            abort(ErrorCode.VALIDATION, f"{ACCOUNT_HEADER} and accountId name different accounts")
        named = int(header)
    if named is None:
        return main_account_id(user_id)
    if _owner_of(named) != user_id:
        abort(ErrorCode.NOT_FOUND, "No such account")
    return named


def main_account_id(user_id: int) -> int:
    main = _main_accounts.get(user_id)
    if main is None:
        main = db.session.scalar(select(func.min(Account.id)).where(Account.user_id == user_id))
        _remember(_main_accounts, user_id, main)
    return main


def _owner_of(account_id: int) -> int | None:
    owner = _account_owners.get(account_id)
    if owner is None:
        owner = db.session.scalar(select(Account.user_id).where(Account.id == account_id))
        if owner is not None:
            _remember(_account_owners, account_id, owner)
    return owner


def _remember(memory: dict | set, key: int, value: int | None = None) -> None:
    if len(memory) >= REMEMBERED_MAX:
        memory.clear()
    if isinstance(memory, set):
        memory.add(key)
    else:
        memory[key] = value


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def personal_token_user(secret: str) -> int | None:
    """The user a live personal access token acts for (recording its use), or None."""
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
    """The route acts for the caller: a JWT (header or cookie) or a personal access token."""
    with_jwt = jwt_required()(view)

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credential.startswith(PERSONAL_TOKEN_PREFIX):
            g.token_user = personal_token_user(credential)
            if g.token_user is None:
                return _unauthorized("Invalid or revoked access token")
            return view(*args, **kwargs)
        return with_jwt(*args, **kwargs)

    return _documented(wrapper)


def signed_in(view):
    """The route needs a real sign-in (a JWT): managing tokens is not something a token may do."""
    return _documented(jwt_required()(view))


def user_exists(user_id: int) -> bool:
    if user_id in _known_users:
        return True
    if db.session.scalar(select(User.id).where(User.id == user_id)) is None:
        return False
    _remember(_known_users, user_id)
    return True


def _unauthorized(message: str):
    return error_response(401, message, ErrorCode.UNAUTHORIZED)


def register(jwt: JWTManager) -> None:
    jwt.unauthorized_loader(_unauthorized)
    jwt.invalid_token_loader(lambda reason: _unauthorized(f"Invalid token: {reason}"))
    jwt.expired_token_loader(lambda _header, _payload: _unauthorized("Token has expired"))
    jwt.user_lookup_error_loader(lambda _header, _payload: _unauthorized("This user does not exist"))
    jwt.token_verification_failed_loader(lambda _header, _payload: _unauthorized("Token has no expiry"))

    @jwt.token_verification_loader
    def _has_expiry(_header, payload) -> bool:
        return "exp" in payload

    @jwt.user_lookup_loader
    def _load_user(_header, payload) -> int | None:
        user_id = user_id_of(payload.get("sub"))
        return user_id if user_id is not None and user_exists(user_id) else None
