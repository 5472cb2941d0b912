"""funding of perpetual positions: rates per boundary, payments exactly once, shard progress

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Frozen copies of the enum at this revision.
LEDGER_KINDS = ("deposit", "open", "close", "reset", "fee", "release", "funding")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade():
    op.create_index(
        "ix_orders_closed", "orders", ["asset", "closed_at"], postgresql_where=sa.text("status = 'closed'")
    )
    op.drop_constraint("kind_known", "ledger_entries")
    op.create_check_constraint("kind_known", "ledger_entries", _in("kind", LEDGER_KINDS))
    op.create_table(
        "funding_rates",
        sa.Column("market", sa.String(64), primary_key=True),
        sa.Column("boundary", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("rate", sa.Numeric(), nullable=False),
        sa.Column("mark", sa.Numeric(), nullable=False),
    )
    op.create_table(
        "funding_settled",
        sa.Column("shard", sa.Integer(), primary_key=True),
        sa.Column("market", sa.String(64), primary_key=True),
        sa.Column("boundary", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "funding_payments",
        sa.Column("order_id", sa.Uuid(), sa.ForeignKey("orders.id"), primary_key=True),
        sa.Column("boundary", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("market", sa.String(64), nullable=False),
        sa.Column("rate", sa.Numeric(), nullable=False),
        sa.Column("mark", sa.Numeric(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("waived", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_funding_payments_user_boundary", "funding_payments", ["user_id", "boundary"])


def downgrade():
    op.drop_table("funding_payments")
    op.drop_table("funding_settled")
    op.drop_table("funding_rates")
    op.drop_constraint("kind_known", "ledger_entries")  # refused while funding entries exist: the ledger is kept
    op.create_check_constraint("kind_known", "ledger_entries", _in("kind", LEDGER_KINDS[:-1]))
    op.drop_index("ix_orders_closed", "orders")
