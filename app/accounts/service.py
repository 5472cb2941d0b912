"""A user's paper accounts: opened with their own deposit, listed, renamed, archived.

Each account has its own balance, ledger, positions, orders, equity history, reset and engine
shard (`core.shards` hashes the account id). Sign-up opens `main`; a user has at most
MAX_ACCOUNTS. Creating and renaming lock the user's row, so two concurrent requests can neither
both take the last place nor both take one name. An archived account keeps its history and its
open positions (they can still be closed) and takes no new orders; `main` is never archived.
"""

from flask import current_app
from sqlalchemy import func, select

from app.balances.service import post_entry
from app.errors import ErrorCode, abort
from app.extensions import db
from app.identity import main_account_id
from app.models import Account, Balance, User, utcnow
from core.enums import AccountMode, LedgerKind

MAIN = "main"
DEFAULT_LEVERAGE_LIMIT = 10  # Backpack's default for a new account


def open_account(user_id: int, name: str, mode: AccountMode, starting_balance: int) -> Account:
    """A new account with its deposit in the ledger, in the caller's transaction."""
    account = Account(
        user_id=user_id,
        name=name,
        mode=mode,
        starting_balance=starting_balance,
        leverage_limit=DEFAULT_LEVERAGE_LIMIT,
        created_at=utcnow(),
    )
    db.session.add(account)
    db.session.flush()
    balance = Balance(account_id=account.id, usd=0, locked_margin=0, cross_margin=mode == AccountMode.NETTING)
    db.session.add(balance)
    post_entry(balance, LedgerKind.DEPOSIT, starting_balance, 0)
    return account


def create(user_id: int, body: dict) -> dict:
    _lock_user(user_id)
    count = db.session.scalar(select(func.count()).where(Account.user_id == user_id))
    if count >= current_app.config["MAX_ACCOUNTS"]:
        db.session.rollback()
        abort(ErrorCode.TOO_MANY_ACCOUNTS, f"At most {current_app.config['MAX_ACCOUNTS']} accounts per user")
    _refuse_taken_name(user_id, body["name"])
    starting = body.get("startingBalance", current_app.config["STARTING_BALANCE"])
    account = open_account(user_id, body["name"], AccountMode(body["mode"]), starting)
    db.session.commit()
    return _view(account, main=count == 0)


def list_accounts(user_id: int) -> list[dict]:
    rows = db.session.execute(
        select(Account, Balance.usd, Balance.locked_margin)
        .join(Balance, Balance.account_id == Account.id)
        .where(Account.user_id == user_id)
        .order_by(Account.id)
    ).all()
    return [_view(account, usd, locked, main=index == 0) for index, (account, usd, locked) in enumerate(rows)]


def update(user_id: int, account_id: int, body: dict) -> dict:
    _lock_user(user_id)  # a rename's name check and write, one at a time per user
    account = _owned(user_id, account_id)
    if "name" in body and body["name"] != account.name:
        _refuse_taken_name(user_id, body["name"])
        account.name = body["name"]
    if "leverageLimit" in body:
        account.leverage_limit = body["leverageLimit"]
    db.session.commit()
    return _view(account, main=_is_main(account))


def archive(user_id: int, account_id: int) -> dict:
    account = _owned(user_id, account_id)
    if _is_main(account):
        db.session.rollback()
        abort(ErrorCode.MAIN_ACCOUNT, "The main account cannot be archived")
    if account.archived_at is None:
        account.archived_at = utcnow()
    db.session.commit()
    return _view(account, main=False)


def _lock_user(user_id: int) -> None:
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update())


def _owned(user_id: int, account_id: int) -> Account:
    account = db.session.execute(
        select(Account).where(Account.id == account_id, Account.user_id == user_id).with_for_update()
    ).scalar_one_or_none()
    if account is None:
        db.session.rollback()
        abort(ErrorCode.NOT_FOUND, "No such account")
    return account


def _is_main(account: Account) -> bool:
    return account.id == main_account_id(account.user_id)


def _refuse_taken_name(user_id: int, name: str) -> None:
    if db.session.scalar(select(Account.id).where(Account.user_id == user_id, Account.name == name)) is not None:
        db.session.rollback()
        abort(ErrorCode.NAME_TAKEN, f"You have an account named {name!r} already")


def _view(account: Account, usd: int | None = None, locked: int | None = None, *, main: bool) -> dict:
    if usd is None:
        balance = db.session.get(Balance, account.id)
        usd, locked = balance.usd, balance.locked_margin
    return {"account": account, "main": main, "usd": usd, "locked_margin": locked}
