"""Moving again: an NSI raised to supersede an open one, linked both ways (issue 25, item 3)

Revision ID: 0006_superseded_nsis
Revises: 0005_import_tracker
Create Date: 2026-12-06 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_superseded_nsis"
down_revision = "0005_import_tracker"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for every NSI that neither replaced nor was replaced by another; set once, when raised.
    with op.batch_alter_table("nsi") as batch:
        batch.add_column(sa.Column("supersedes_reference", sa.String(20), nullable=True))
        batch.add_column(sa.Column("superseded_by_reference", sa.String(20), nullable=True))
        batch.create_index("ix_nsi_supersedes_reference", ["supersedes_reference"])


def downgrade() -> None:
    with op.batch_alter_table("nsi") as batch:
        batch.drop_index("ix_nsi_supersedes_reference")
        batch.drop_column("superseded_by_reference")
        batch.drop_column("supersedes_reference")
