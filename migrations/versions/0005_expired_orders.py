"""orders can be rejected as expired

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen copies of the enum at this revision.
REJECT_REASONS = ("insufficient_balance", "slippage_exceeded", "price_unavailable", "invalid_stops",
                  "invalid_quantity", "expired")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade():
    op.drop_constraint("reject_reason_known", "orders")
    op.create_check_constraint("reject_reason_known", "orders", _in("reject_reason", REJECT_REASONS))


def downgrade():
    op.drop_constraint("reject_reason_known", "orders")
    op.create_check_constraint("reject_reason_known", "orders", _in("reject_reason", REJECT_REASONS[:-1]))
