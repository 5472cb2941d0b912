"""Backpack paper-mode API keys: an ED25519 key pair bound to one netting account.

The service either generates the pair (the seed, Backpack's secret format, is returned once and
never stored) or registers the public key the user made. Only public keys are kept; a public key
is registered once, ever (a revoked one stays, so it can never come back under another account).
"""

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from app.errors import ErrorCode, abort
from app.extensions import db
from app.models import Account, ApiKey, utcnow
from core import signing
from core.enums import AccountMode
from core.signing import SigningError

MAX_KEYS = 20  # live keys per account


def create(account_id: int, label: str, public_key: str | None) -> dict:
    account = db.session.execute(select(Account).where(Account.id == account_id).with_for_update()).scalar_one()
    if account.mode != AccountMode.NETTING:
        db.session.rollback()
        abort(ErrorCode.WRONG_ACCOUNT_MODE, "API keys trade netting accounts (Backpack's model): open one first")
    if account.archived_at is not None:
        db.session.rollback()
        abort(ErrorCode.ACCOUNT_ARCHIVED, "This account is archived: it takes no new orders")
    live = select(func.count()).where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
    if db.session.scalar(live) >= MAX_KEYS:
        db.session.rollback()
        abort(ErrorCode.VALIDATION, f"At most {MAX_KEYS} live keys per account; revoke one first")
    seed = None
    if public_key is None:
        seed, public_key = signing.new_key_pair()
    else:
        try:
            signing.public_key_bytes(public_key)
        except SigningError:
            db.session.rollback()
            abort(ErrorCode.VALIDATION, "publicKey is not a base64 ED25519 public key (32 bytes)")
    key_id = db.session.scalar(
        insert(ApiKey)
        .values(account_id=account_id, label=label, public_key=public_key, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["public_key"])
        .returning(ApiKey.id)
    )
    if key_id is None:
        db.session.rollback()
        abort(ErrorCode.KEY_TAKEN, "This public key is registered already; generate a new pair for each key")
    db.session.commit()
    key = db.session.get(ApiKey, key_id)
    return {**_row(key), **({"seed": seed} if seed is not None else {})}


def _row(key: ApiKey) -> dict:
    return {c.name: getattr(key, c.name) for c in ApiKey.__table__.columns}


def list_keys(user_id: int) -> list[dict]:
    query = (
        select(ApiKey)
        .join(Account, Account.id == ApiKey.account_id)
        .where(Account.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.id)
    )
    return [_row(key) for key in db.session.scalars(query)]


def revoke(user_id: int, key_id: int) -> None:
    owned = select(Account.id).where(Account.user_id == user_id)
    revoked = db.session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.account_id.in_(owned), ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if revoked.rowcount == 0:
        db.session.rollback()
        abort(ErrorCode.NOT_FOUND, "No such key")
    db.session.commit()
