"""the message log: every exchange with another institution, hash-chained

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import haqq.adapters.store.schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=False),
        sa.Column("message_id", sa.String(length=60), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("client", sa.String(length=200), nullable=False),
        sa.Column("service", sa.String(length=300), nullable=False),
        sa.Column("user_id", sa.String(length=60), nullable=False),
        sa.Column("issue", sa.String(length=80), nullable=True),
        sa.Column("at", haqq.adapters.store.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=80), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("request_hash", sa.String(length=100), nullable=True),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_message_log")),
    )
    op.create_index("ix_message_log_message_id", "message_log", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_message_log_message_id", table_name="message_log")
    op.drop_table("message_log")
