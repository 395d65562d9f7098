"""payment runs and bank files

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import haqq.adapters.store.schema

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payment_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('label', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('run_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('payments', sa.Integer(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('threshold', sa.BigInteger(), nullable=False),
    sa.Column('created_at', haqq.adapters.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=60), nullable=False),
    sa.Column('file_prefix', sa.String(length=8), nullable=False),
    sa.Column('approved_by', sa.String(length=60), nullable=True),
    sa.Column('approved_at', haqq.adapters.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('second_approved_by', sa.String(length=60), nullable=True),
    sa.Column('second_approved_at', haqq.adapters.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('sent_by', sa.String(length=60), nullable=True),
    sa.Column('sent_at', haqq.adapters.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_runs')),
    sa.UniqueConstraint('label', name=op.f('uq_payment_runs_label'))
    )
    op.create_table('payment_files',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('bank', sa.String(length=20), nullable=False),
    sa.Column('message_id', sa.String(length=35), nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('original_message_id', sa.String(length=35), nullable=True),
    sa.Column('transactions', sa.Integer(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('at', haqq.adapters.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', haqq.adapters.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['payment_runs.id'], name=op.f('fk_payment_files_run_id_payment_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_files')),
    sa.UniqueConstraint('direction', 'kind', 'message_id', name=op.f('uq_payment_files_direction_kind_message_id')),
    sa.UniqueConstraint('sha256', name=op.f('uq_payment_files_sha256'))
    )
    with op.batch_alter_table('payment_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_files_run_id'), ['run_id'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holder', sa.Text(), nullable=True))

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=10), server_default='case', nullable=False))
        batch_op.add_column(sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('attempt', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('reason_code', sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column('settled_at', haqq.adapters.store.schema.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_payments_run_id'), ['run_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_payments_run_id_payment_runs'), 'payment_runs', ['run_id'], ['id'])

    with op.batch_alter_table('recovery_claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_at', haqq.adapters.store.schema.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_by', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('recovery_claims', schema=None) as batch_op:
        batch_op.drop_column('note')
        batch_op.drop_column('closed_by')
        batch_op.drop_column('closed_at')

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_payments_run_id_payment_runs'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_payments_run_id'))
        batch_op.drop_column('settled_at')
        batch_op.drop_column('reason_code')
        batch_op.drop_column('attempt')
        batch_op.drop_column('run_id')
        batch_op.drop_column('source')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('holder')

    with op.batch_alter_table('payment_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_files_run_id'))

    op.drop_table('payment_files')
    op.drop_table('payment_runs')
