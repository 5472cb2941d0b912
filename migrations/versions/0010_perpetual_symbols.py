"""orders and candles on perpetuals, keyed by their market symbol

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    for table in ("orders", "candles"):
        op.alter_column(table, "asset", type_=sa.String(64), existing_type=sa.String(8), existing_nullable=False)


def downgrade():
    for table in ("orders", "candles"):
        op.alter_column(table, "asset", type_=sa.String(8), existing_type=sa.String(64), existing_nullable=False)
