"""orders can be rejected for an account's working-order cap

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen copies of the enum at this revision.
REJECT_REASONS = ("insufficient_balance", "slippage_exceeded", "price_unavailable", "invalid_stops",
                  "invalid_quantity", "expired", "insufficient_liquidity", "too_many_working_orders")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade():
    op.drop_constraint("reject_reason_known", "orders")
    op.create_check_constraint("reject_reason_known", "orders", _in("reject_reason", REJECT_REASONS))


def downgrade():
    op.drop_constraint("reject_reason_known", "orders")
    op.create_check_constraint("reject_reason_known", "orders", _in("reject_reason", REJECT_REASONS[:-1]))
