"""Balances and their ledger. Every balance change goes through `post_entry`."""

from sqlalchemy import func, select

from app.extensions import db
from app.models import Balance, LedgerEntry, Order
from core.assets import SEED_ASSETS, USD_DECIMALS
from core.enums import LedgerKind


def post_entry(balance: Balance, kind: LedgerKind, usd_delta: int, locked_delta: int, order: Order | None = None):
    """Change `balance` and append the matching ledger entry, in the caller's transaction.

    The caller holds the balance row lock (or has just created the row).
    """
    balance.usd += usd_delta
    balance.locked_margin += locked_delta
    db.session.add(
        LedgerEntry(
            account_id=balance.account_id,
            order_id=order.id if order is not None else None,
            kind=kind,
            usd_delta=usd_delta,
            locked_delta=locked_delta,
        )
    )


def get_balance(account_id: int) -> Balance:
    return db.session.get(Balance, account_id)


def balances_view(account_id: int) -> dict:
    balance = get_balance(account_id)
    return balances_body(balance.usd, balance.locked_margin)


def balances_body(usd: int, locked_margin: int) -> dict:
    """The `/balance/` body of these amounts."""
    view = {
        "USD": {"balance": usd, "decimals": USD_DECIMALS},
        "lockedMargin": {"balance": locked_margin, "decimals": USD_DECIMALS},
    }
    for asset in SEED_ASSETS.values():
        view[asset.symbol] = {"balance": 0, "decimals": asset.decimals}
    return view


def ledger_mismatches() -> list[dict]:
    """Accounts whose balance differs from the sum of their ledger entries (empty when all is well)."""
    sums = (
        select(
            LedgerEntry.account_id,
            func.sum(LedgerEntry.usd_delta).label("usd"),
            func.sum(LedgerEntry.locked_delta).label("locked"),
        )
        .group_by(LedgerEntry.account_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Balance.account_id, Balance.usd, Balance.locked_margin, sums.c.usd, sums.c.locked)
        .outerjoin(sums, sums.c.account_id == Balance.account_id)
        .where(
            (Balance.usd != func.coalesce(sums.c.usd, 0)) | (Balance.locked_margin != func.coalesce(sums.c.locked, 0))
        )
    ).all()
    keys = ("accountId", "usd", "lockedMargin", "ledgerUsd", "ledgerLocked")
    return [dict(zip(keys, row, strict=True)) for row in rows]
