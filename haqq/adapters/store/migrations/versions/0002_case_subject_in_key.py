"""a case is unique per program, event, subject and beneficiary

One event can start several cases of one program paid to the same person (a survivor's pension
for each child of the deceased, paid to the surviving parent).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD = ("program_id", "event_id", "beneficiary_fin")
NEW = ("program_id", "event_id", "subject_fin", "beneficiary_fin")


def _name(columns: tuple[str, ...]) -> str:
    return "uq_cases_" + "_".join(columns)


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_constraint(_name(OLD), type_="unique")
        batch.create_unique_constraint(_name(NEW), list(NEW))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_constraint(_name(NEW), type_="unique")
        batch.create_unique_constraint(_name(OLD), list(OLD))
