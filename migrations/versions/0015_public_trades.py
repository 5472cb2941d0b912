"""Fills by market and time: Backpack mode's public trades, tickers and klines read them so

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

"""
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_fills_symbol_created", "fills", ["symbol", "created_at"])


def downgrade():
    op.drop_index("ix_fills_symbol_created", table_name="fills")
