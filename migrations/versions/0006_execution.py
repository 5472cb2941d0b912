"""execution: limit and stop orders, fills, fill model, fees

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen copies of the enums at this revision.
STATUSES = ("pending", "working", "cancelled", "open", "closed", "rejected")
ORDER_TYPES = ("market", "limit", "stop")
REJECT_REASONS = ("insufficient_balance", "slippage_exceeded", "price_unavailable", "invalid_stops",
                  "invalid_quantity", "expired", "insufficient_liquidity")
LEDGER_KINDS = ("deposit", "open", "close", "reset", "fee", "release")
FILL_MODELS = ("depth", "top_of_book")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _recheck(name: str, table: str, column: str, values: tuple[str, ...]) -> None:
    op.drop_constraint(name, table)
    op.create_check_constraint(name, table, _in(column, values))


def upgrade():
    op.alter_column("orders", "status", type_=sa.String(9))
    op.add_column("orders", sa.Column("limit_price", sa.BigInteger(), nullable=True))
    op.add_column("orders", sa.Column("stop_price", sa.BigInteger(), nullable=True))
    op.add_column("orders", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("orders", sa.Column("fill_model", sa.String(16), nullable=True))
    op.add_column("orders", sa.Column("fills", postgresql.JSONB(), nullable=True))
    op.add_column("orders", sa.Column("open_fee", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("orders", sa.Column("close_fee", sa.BigInteger(), nullable=False, server_default="0"))
    op.alter_column("orders", "open_fee", server_default=None)
    op.alter_column("orders", "close_fee", server_default=None)
    _recheck("status_known", "orders", "status", STATUSES)
    _recheck("order_type_known", "orders", "order_type", ORDER_TYPES)
    _recheck("reject_reason_known", "orders", "reject_reason", REJECT_REASONS)
    _recheck("kind_known", "ledger_entries", "kind", LEDGER_KINDS)
    op.create_check_constraint("fill_model_known", "orders", _in("fill_model", FILL_MODELS))
    op.create_index("ix_orders_working", "orders", ["asset", "side", "order_type"],
                    postgresql_where=sa.text("status = 'working'"))


def downgrade():
    op.drop_index("ix_orders_working", "orders")
    op.drop_constraint("fill_model_known", "orders")
    _recheck("kind_known", "ledger_entries", "kind", LEDGER_KINDS[:4])
    _recheck("reject_reason_known", "orders", "reject_reason", REJECT_REASONS[:6])
    _recheck("order_type_known", "orders", "order_type", ORDER_TYPES[:1])
    _recheck("status_known", "orders", "status", ("pending", "open", "closed", "rejected"))
    for column in ("close_fee", "open_fee", "fills", "fill_model", "expires_at", "stop_price", "limit_price"):
        op.drop_column("orders", column)
    op.alter_column("orders", "status", type_=sa.String(8))
