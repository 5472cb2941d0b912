"""Accounts and magic-link sign-in. Link tokens are random, stored hashed, single use.

Sign-up and sign-in do the same work in the request, whether or not the address has an
account: one `mail_outbox` row, committed, then its id enqueued by name. The mailer creates
the account (on sign-up) and the link, so neither the answer nor its timing tells whether an
address is registered, and a broker outage only delays the mail (the outbox sweep resends it).
"""

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from flask_jwt_extended import create_access_token
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.accounts.service import MAIN, open_account
from app.dispatch import enqueue
from app.errors import ErrorCode, abort
from app.extensions import db
from app.models import LoginToken, MailOutbox, User, utcnow
from core.enums import AccountMode
from core.tasks import SEND_SIGN_IN_LINK

LINK_TTL = timedelta(minutes=15)
SIGN_IN_PATH = "/api/v1/signin/post"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(email: str) -> User:
    """The user of `email` with its main account, the starting balance credited through the
    ledger (the existing user, unchanged, if there is one), in the caller's transaction."""
    user_id = db.session.execute(
        insert(User)
        .values(email=email, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["email"])  # the address only: any other conflict is an error
        .returning(User.id)
    ).scalar_one_or_none()
    if user_id is None:
        return db.session.execute(select(User).where(User.email == email)).scalar_one()
    open_account(user_id, MAIN, AccountMode.HEDGING, current_app.config["STARTING_BALANCE"])
    return db.session.get(User, user_id)


def request_link(email: str, create_account: bool) -> None:
    """Queue a sign-in link for `email` (an address already normalized by `EmailSchema`)."""
    outbox_id = db.session.execute(
        insert(MailOutbox)
        .values(email=email, create_account=create_account, created_at=utcnow())
        .returning(MailOutbox.id)
    ).scalar_one()
    db.session.commit()
    enqueue(SEND_SIGN_IN_LINK, outbox_id)


def take_link_to_send(outbox_id: int) -> tuple[str, str] | None:
    """For the mailer: return (address, link) for an outbox row, creating the account on sign-up
    and the login token, committed; None if there is nothing to send.

    Committed before the mail leaves, so the link works the moment it arrives. The row stays until
    the caller, having mailed the link, calls `mark_sent`: a failed send is retried with a new link
    (the unused token expires), and a duplicate delivery at worst mails a second valid link.
    """
    row = db.session.execute(
        select(MailOutbox).where(MailOutbox.id == outbox_id).with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if row is None:  # sent already, or being sent by a duplicate delivery right now
        return None
    if row.create_account:
        user = create_user(row.email)
    else:
        user = db.session.execute(select(User).where(User.email == row.email)).scalar_one_or_none()
    if user is None:  # sign-in for an address without an account: nothing to send
        mark_sent(outbox_id)
        return None
    token = secrets.token_urlsafe(32)
    db.session.add(LoginToken(user_id=user.id, token_hash=_hash(token), expires_at=utcnow() + LINK_TTL))
    address = row.email
    db.session.commit()
    return address, f"{current_app.config['PUBLIC_URL']}{SIGN_IN_PATH}?token={token}"


def mark_sent(outbox_id: int) -> None:
    db.session.execute(db.delete(MailOutbox).where(MailOutbox.id == outbox_id))
    db.session.commit()


def unsent_outbox_ids(older_than: timedelta, limit: int = 500) -> list[int]:
    cutoff = utcnow() - older_than
    query = select(MailOutbox.id).where(MailOutbox.created_at < cutoff).order_by(MailOutbox.id).limit(limit)
    return list(db.session.execute(query).scalars())


def redeem_link(token: str) -> str:
    """Spend a link token once and return a JWT for its user."""
    login = db.session.execute(
        select(LoginToken).where(LoginToken.token_hash == _hash(token)).with_for_update()
    ).scalar_one_or_none()
    if login is None or login.used_at is not None or login.expires_at <= utcnow():
        db.session.rollback()
        abort(ErrorCode.UNAUTHORIZED, "This sign-in link is invalid, used or expired")
    login.used_at = utcnow()
    db.session.commit()
    return create_access_token(identity=str(login.user_id))
