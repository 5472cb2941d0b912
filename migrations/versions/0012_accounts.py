"""several paper accounts per user: an `accounts` table, and every trading table keyed by account

Each existing user gets one account, `main`, with the user's own id, so no row moves: the
trading tables' `user_id` columns become `account_id` and point at `accounts`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

"""
import sqlalchemy as sa
from alembic import op
from flask import current_app

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Frozen copies at this revision.
ACCOUNT_MODES = ("hedging", "netting")
LEVERAGE_LIMIT = 10
# table -> (the FK's ON DELETE, the indexes over user_id to rename)
TRADING_TABLES = {
    "balances": ("CASCADE", {}),
    "ledger_entries": ("RESTRICT", {"ix_ledger_entries_user_id_id": "ix_ledger_entries_account_id_id"}),
    "orders": ("CASCADE", {"ix_orders_user_created": "ix_orders_account_created"}),
    "idempotency_keys": ("CASCADE", {}),
    "funding_payments": ("CASCADE", {"ix_funding_payments_user_boundary": "ix_funding_payments_account_boundary"}),
    "equity_snapshots": ("CASCADE", {}),
    "account_resets": ("CASCADE", {}),
}


def upgrade():
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("starting_balance", sa.BigInteger(), nullable=False),
        sa.Column("leverage_limit", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"mode IN ({', '.join(repr(m) for m in ACCOUNT_MODES)})", name="mode_known"),
    )
    op.create_index("ix_accounts_user_name", "accounts", ["user_id", "name"], unique=True)
    op.execute(
        sa.text(
            "INSERT INTO accounts (id, user_id, name, mode, starting_balance, leverage_limit, created_at) "
            "SELECT id, id, 'main', 'hedging', :starting, :leverage, created_at FROM users"
        ).bindparams(starting=current_app.config["STARTING_BALANCE"], leverage=LEVERAGE_LIMIT)
    )
    op.execute("SELECT setval('accounts_id_seq', COALESCE((SELECT max(id) FROM accounts), 0) + 1, false)")
    for table, (on_delete, indexes) in TRADING_TABLES.items():
        op.drop_constraint(f"{table}_user_id_fkey", table, type_="foreignkey")
        op.alter_column(table, "user_id", new_column_name="account_id")
        op.create_foreign_key(f"{table}_account_id_fkey", table, "accounts", ["account_id"], ["id"], ondelete=on_delete)
        for old, new in indexes.items():
            op.execute(f"ALTER INDEX {old} RENAME TO {new}")


def downgrade():
    if op.get_bind().scalar(sa.text("SELECT count(*) FROM accounts WHERE id <> user_id")):
        raise RuntimeError("accounts other than each user's first cannot be folded back into a user-keyed schema")
    for table, (on_delete, indexes) in TRADING_TABLES.items():
        op.drop_constraint(f"{table}_account_id_fkey", table, type_="foreignkey")
        op.alter_column(table, "account_id", new_column_name="user_id")
        op.create_foreign_key(f"{table}_user_id_fkey", table, "users", ["user_id"], ["id"], ondelete=on_delete)
        for old, new in indexes.items():
            op.execute(f"ALTER INDEX {new} RENAME TO {old}")
    op.drop_table("accounts")
