"""Backpack's market catalog

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Frozen copies of the enums at this revision.
MARKET_TYPES = ("SPOT", "PERP", "IPERP", "DATED", "PREDICTION", "RFQ", "MONAD")
BOOK_STATES = ("Open", "Closed", "CancelOnly", "LimitOnly", "PostOnly")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade():
    op.create_table(
        "markets",
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("base_symbol", sa.String(32), nullable=False),
        sa.Column("quote_symbol", sa.String(32), nullable=False),
        sa.Column("market_type", sa.String(16), nullable=False),
        sa.Column("order_book_state", sa.String(16), nullable=False),
        sa.Column("tick_size", sa.Numeric(), nullable=False),
        sa.Column("step_size", sa.Numeric(), nullable=False),
        sa.Column("min_quantity", sa.Numeric(), nullable=False),
        sa.Column("price_decimals", sa.Integer(), nullable=False),
        sa.Column("quantity_decimals", sa.Integer(), nullable=False),
        sa.Column("funding_interval_ms", sa.BigInteger(), nullable=True),
        sa.Column("backpack", postgresql.JSONB(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("market_type", MARKET_TYPES), name="market_type_known"),
        sa.CheckConstraint(_in("order_book_state", BOOK_STATES), name="order_book_state_known"),
    )
    op.create_table(
        "market_assets",
        sa.Column("symbol", sa.String(32), primary_key=True),
        sa.Column("backpack", postgresql.JSONB(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade():
    op.drop_table("market_assets")
    op.drop_table("markets")
