"""candles: one row per asset and minute

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "candles",
        sa.Column("asset", sa.String(8), primary_key=True),
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("open", sa.BigInteger(), nullable=False),
        sa.Column("high", sa.BigInteger(), nullable=False),
        sa.Column("low", sa.BigInteger(), nullable=False),
        sa.Column("close", sa.BigInteger(), nullable=False),
        sa.Column("ticks", sa.Integer(), nullable=False),
    )


def downgrade():
    op.drop_table("candles")
