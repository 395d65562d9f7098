"""stops: each stop applied, held against rights written after it

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import haqq.adapters.store.schema

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stops',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('case_id', sa.String(length=24), nullable=False),
    sa.Column('fin', sa.String(length=7), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('programs', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('applied_at', haqq.adapters.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_stops_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stops'))
    )
    with op.batch_alter_table('stops', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stops_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stops_fin'), ['fin'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stops', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stops_fin'))
        batch_op.drop_index(batch_op.f('ix_stops_case_id'))
    op.drop_table('stops')
