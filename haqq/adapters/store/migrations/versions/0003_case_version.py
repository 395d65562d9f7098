"""a case's row version, raised by every write to it

Several workers on one SQLite file read and work on their cases outside the write lock; the
version tells them whether someone (a bank answer, a citizen's reply) wrote the case meanwhile.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("version")
