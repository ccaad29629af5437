"""index nsi.parent_reference

Every status view of an NSI looks for the Case Transfer it was converted to (its child's
parent_reference); without an index that read scanned every NSI, several times a step.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 02:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nsi", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nsi_parent_reference"), ["parent_reference"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nsi", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nsi_parent_reference"))
