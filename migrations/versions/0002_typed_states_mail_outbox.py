"""typed states: CHECKs from the enums, order type, ledger FK RESTRICT, mail outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the enums at this revision (a migration must not change when the code does).
LEDGER_KINDS = ("deposit", "open", "close")
CLOSE_REASONS = ("user", "liquidation", "stop_loss", "take_profit")
REJECT_REASONS = ("insufficient_balance", "slippage_exceeded", "price_unavailable", "invalid_stops", "invalid_quantity")
ORDER_TYPES = ("market",)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade():
    op.create_check_constraint("kind_known", "ledger_entries", _in("kind", LEDGER_KINDS))
    op.add_column("orders", sa.Column("order_type", sa.String(8), nullable=False, server_default="market"))
    op.alter_column("orders", "order_type", server_default=None)
    op.create_check_constraint("order_type_known", "orders", _in("order_type", ORDER_TYPES))
    op.create_check_constraint("close_reason_known", "orders", _in("close_reason", CLOSE_REASONS))
    op.create_check_constraint("reject_reason_known", "orders", _in("reject_reason", REJECT_REASONS))
    # The ledger is append-only: deleting a user must not delete (or try to delete) its entries.
    op.drop_constraint("ledger_entries_user_id_fkey", "ledger_entries", type_="foreignkey")
    op.create_foreign_key(
        "ledger_entries_user_id_fkey", "ledger_entries", "users", ["user_id"], ["id"], ondelete="RESTRICT"
    )
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("create_account", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_mail_outbox_created_at", "mail_outbox", ["created_at"])


def downgrade():
    op.drop_index("ix_mail_outbox_created_at", "mail_outbox")
    op.drop_table("mail_outbox")
    op.drop_constraint("ledger_entries_user_id_fkey", "ledger_entries", type_="foreignkey")
    op.create_foreign_key(
        "ledger_entries_user_id_fkey", "ledger_entries", "users", ["user_id"], ["id"], ondelete="CASCADE"
    )
    op.drop_constraint("reject_reason_known", "orders")
    op.drop_constraint("close_reason_known", "orders")
    op.drop_constraint("order_type_known", "orders")
    op.drop_column("orders", "order_type")
    op.drop_constraint("kind_known", "ledger_entries")
