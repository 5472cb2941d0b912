"""netting accounts: their orders, fills, positions and funding payments; cash that may go below zero under cross
margin; ledger kinds for realized PnL, liquidation fees and the insurance that covers a deficit

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Frozen copies at this revision.
LEDGER_KINDS = ("deposit", "open", "close", "reset", "fee", "release", "funding")
NEW_LEDGER_KINDS = ("realized_pnl", "liquidation_fee", "insurance")
SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit")
STATUSES = ("pending", "trigger_pending", "new", "partially_filled", "filled", "cancelled", "expired", "rejected")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
TRIGGER_BY = ("mark", "last", "index")
REJECT_REASONS = (
    "price_unavailable",
    "insufficient_margin",
    "insufficient_liquidity",
    "quantity_too_small",
    "reduce_only_not_reducing",
    "post_only_would_take",
    "too_many_working_orders",
    "expired",
)


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _kinds(kinds):
    op.drop_constraint("kind_known", "ledger_entries")
    op.create_check_constraint("kind_known", "ledger_entries", _in("kind", kinds))


def upgrade():
    op.add_column("balances", sa.Column("cross_margin", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.drop_constraint("usd_not_negative", "balances")
    op.create_check_constraint("usd_not_negative", "balances", "usd >= 0 OR cross_margin")
    _kinds(LEDGER_KINDS + NEW_LEDGER_KINDS)
    op.create_table(
        "net_orders",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("number", sa.BigInteger(), sa.Identity(), nullable=False, unique=True),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("order_type", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=True),
        sa.Column("quote_quantity", sa.BigInteger(), nullable=True),
        sa.Column("price", sa.BigInteger(), nullable=True),
        sa.Column("time_in_force", sa.String(3), nullable=False),
        sa.Column("post_only", sa.Boolean(), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=True),
        sa.Column("executed_quantity", sa.BigInteger(), nullable=False),
        sa.Column("executed_quote", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("liquidation", sa.Boolean(), nullable=False),
        sa.Column("reject_reason", sa.String(32), nullable=True),
        sa.Column("book_update", sa.BigInteger(), nullable=True),
        sa.Column("trigger_price", sa.BigInteger(), nullable=True),
        sa.Column("trigger_by", sa.String(8), nullable=True),
        sa.Column("trigger_above", sa.Boolean(), nullable=True),
        sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("take_profit", sa.BigInteger(), nullable=True),
        sa.Column("stop_loss", sa.BigInteger(), nullable=True),
        sa.Column("related_order_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("side", SIDES), name="net_side_known"),
        sa.CheckConstraint(_in("order_type", ORDER_TYPES), name="net_order_type_known"),
        sa.CheckConstraint(_in("status", STATUSES), name="net_status_known"),
        sa.CheckConstraint(_in("time_in_force", TIME_IN_FORCE), name="time_in_force_known"),
        sa.CheckConstraint(_in("reject_reason", REJECT_REASONS), name="net_reject_reason_known"),
        sa.CheckConstraint(_in("trigger_by", TRIGGER_BY), name="trigger_by_known"),
    )
    op.create_index("ix_net_orders_related_order_id", "net_orders", ["related_order_id"])
    op.create_index(
        "ix_net_orders_trigger_pending",
        "net_orders",
        ["symbol", "trigger_price"],
        postgresql_where=sa.text("status = 'trigger_pending'"),
    )
    op.create_index("ix_net_orders_account_created", "net_orders", ["account_id", "created_at"])
    op.create_index(
        "ix_net_orders_pending", "net_orders", ["created_at"], postgresql_where=sa.text("status = 'pending'")
    )
    op.create_index(
        "ix_net_orders_working",
        "net_orders",
        ["symbol", "side", "price"],
        postgresql_where=sa.text("status IN ('new', 'partially_filled')"),
    )
    op.create_table(
        "fills",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("order_id", sa.Uuid(), sa.ForeignKey("net_orders.id"), nullable=False),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("realized_pnl", sa.BigInteger(), nullable=False),
        sa.Column("maker", sa.Boolean(), nullable=False),
        sa.Column("liquidation", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("side", SIDES), name="fill_side_known"),
    )
    op.create_index("ix_fills_order_id", "fills", ["order_id"])
    op.create_index("ix_fills_account_id", "fills", ["account_id", "id"])
    op.create_index("ix_fills_position_created", "fills", ["account_id", "symbol", "created_at"])
    op.create_table(
        "positions",
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Numeric(40, 0), nullable=False),
        sa.Column("realized_pnl", sa.BigInteger(), nullable=False),
        sa.Column("liquidation_price", sa.BigInteger(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_positions_open_liquidation",
        "positions",
        ["symbol", "liquidation_price"],
        postgresql_where=sa.text("quantity <> 0"),
    )
    op.create_table(
        "net_funding_payments",
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("boundary", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("rate", sa.Numeric(), nullable=False),
        sa.Column("mark", sa.Numeric(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
    )
    op.add_column("ledger_entries", sa.Column("net_order_id", sa.Uuid(), sa.ForeignKey("net_orders.id"), nullable=True))
    op.create_index("ix_ledger_entries_net_order_id", "ledger_entries", ["net_order_id"])


def downgrade():
    op.drop_index("ix_ledger_entries_net_order_id", "ledger_entries")
    op.drop_column("ledger_entries", "net_order_id")
    op.drop_table("net_funding_payments")
    op.drop_table("positions")  # refused with netting ledger entries: they name these orders
    op.drop_table("fills")
    op.drop_table("net_orders")
    _kinds(LEDGER_KINDS)  # refused while netting entries exist: the ledger is kept
    op.drop_constraint("usd_not_negative", "balances")
    op.create_check_constraint("usd_not_negative", "balances", "usd >= 0")
    op.drop_column("balances", "cross_margin")
