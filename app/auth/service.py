"""Accounts and magic-link sign-in. Link tokens are random, stored hashed, single use."""
import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from flask_jwt_extended import create_access_token, current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.balances.service import post_entry
from app.errors import abort
from app.extensions import db
from app.models import Balance, LoginToken, User, utcnow

LINK_TTL = timedelta(minutes=15)
SIGN_IN_PATH = "/api/v1/signin/post"


def current_user_id() -> int:
    return current_user.id


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_user(email: str) -> User:
    """The user with the starting balance credited through the ledger, in one transaction."""
    user = User(email=normalize_email(email))
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        abort(409, "user_exists", "An account with this email already exists")
    balance = Balance(user_id=user.id, usd=0, locked_margin=0)
    db.session.add(balance)
    post_entry(balance, "deposit", current_app.config["STARTING_BALANCE"], 0)
    return user


def _issue_link(user: User) -> str:
    token = secrets.token_urlsafe(32)
    db.session.add(LoginToken(user_id=user.id, token_hash=_hash(token), expires_at=utcnow() + LINK_TTL))
    return f"{current_app.config['PUBLIC_URL']}{SIGN_IN_PATH}?token={token}"


def _send_link(email: str, link: str) -> None:
    from workers.mail import send_sign_in_link

    send_sign_in_link.apply_async(args=[email, link], argsrepr=f"({email!r}, '<sign-in link>')")


def sign_up(email: str) -> None:
    user = create_user(email)
    link = _issue_link(user)
    db.session.commit()
    _send_link(user.email, link)


def request_sign_in(email: str) -> None:
    """Send a link if the user exists; the caller answers the same either way (no enumeration)."""
    user = db.session.execute(select(User).where(User.email == normalize_email(email))).scalar_one_or_none()
    if user is None:
        return
    link = _issue_link(user)
    db.session.commit()
    _send_link(user.email, link)


def redeem_link(token: str) -> str:
    """Spend a link token once and return a JWT for its user."""
    login = db.session.execute(
        select(LoginToken).where(LoginToken.token_hash == _hash(token)).with_for_update()
    ).scalar_one_or_none()
    if login is None or login.used_at is not None or login.expires_at <= utcnow():
        db.session.rollback()
        abort(401, "unauthorized", "This sign-in link is invalid, used or expired")
    login.used_at = utcnow()
    db.session.commit()
    return create_access_token(identity=str(login.user_id))
