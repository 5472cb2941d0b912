"""account analytics: equity snapshots, account resets, ledger indexes, reset kinds

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen copies of the enums at this revision.
LEDGER_KINDS = ("deposit", "open", "close", "reset")
CLOSE_REASONS = ("user", "liquidation", "stop_loss", "take_profit", "reset")
RESET_STATUSES = ("pending", "done", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade():
    op.drop_constraint("kind_known", "ledger_entries")
    op.create_check_constraint("kind_known", "ledger_entries", _in("kind", LEDGER_KINDS))
    op.drop_constraint("close_reason_known", "orders")
    op.create_check_constraint("close_reason_known", "orders", _in("close_reason", CLOSE_REASONS))
    op.drop_index("ix_ledger_entries_user_id", "ledger_entries")
    op.create_index("ix_ledger_entries_user_id_id", "ledger_entries", ["user_id", "id"])
    op.create_index("ix_ledger_entries_created_at", "ledger_entries", ["created_at"])
    op.create_table(
        "equity_snapshots",
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("cash", sa.BigInteger(), nullable=False),
        sa.Column("locked_margin", sa.BigInteger(), nullable=False),
        sa.Column("unrealized_pnl", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_equity_snapshots_taken_at", "equity_snapshots", ["taken_at"])
    op.create_table(
        "account_resets",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("closed_positions", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("status", RESET_STATUSES), name="reset_status_known"),
    )
    op.create_index("ix_account_resets_key", "account_resets", ["user_id", "idempotency_key"], unique=True)
    op.create_index(
        "ix_account_resets_pending", "account_resets", ["created_at"], postgresql_where=sa.text("status = 'pending'")
    )


def downgrade():
    op.drop_table("account_resets")
    op.drop_table("equity_snapshots")
    op.drop_index("ix_ledger_entries_created_at", "ledger_entries")
    op.drop_index("ix_ledger_entries_user_id_id", "ledger_entries")
    op.create_index("ix_ledger_entries_user_id", "ledger_entries", ["user_id"])
    op.drop_constraint("close_reason_known", "orders")
    op.create_check_constraint("close_reason_known", "orders", _in("close_reason", CLOSE_REASONS[:-1]))
    op.drop_constraint("kind_known", "ledger_entries")
    op.create_check_constraint("kind_known", "ledger_entries", _in("kind", LEDGER_KINDS[:-1]))
