"""Imported NSIs: the day an NSI came in from a region's legacy tracker (issue 13)

Revision ID: 0005_import_tracker
Revises: 0004
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_import_tracker"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for every NSI raised here; set once, by the import, for one that was already in flight.
    with op.batch_alter_table("nsi") as batch:
        batch.add_column(sa.Column("imported_on", sa.Date(), nullable=True))
        batch.create_index("ix_nsi_imported_on", ["imported_on"])


def downgrade() -> None:
    with op.batch_alter_table("nsi") as batch:
        batch.drop_index("ix_nsi_imported_on")
        batch.drop_column("imported_on")
