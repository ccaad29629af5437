"""Transfers that change: a clock stopped while the person cannot be supervised (issue 25)

Revision ID: 0007_transfer_changes
Revises: 0006_superseded_nsis
Create Date: 2026-12-06 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_transfer_changes"
down_revision = "0006_superseded_nsis"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null while the clock runs. The working days it stood still so far, and how many times it
    # stopped, are kept so compliance can take them out of the measure.
    with op.batch_alter_table("nsi") as batch:
        batch.add_column(sa.Column("clock_stopped_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("clock_stop_reason", sa.String(20), nullable=True))
        batch.add_column(sa.Column("clock_stopped_days", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("clock_stops", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_nsi_clock_stopped_on", ["clock_stopped_on"])


def downgrade() -> None:
    with op.batch_alter_table("nsi") as batch:
        batch.drop_index("ix_nsi_clock_stopped_on")
        for name in ("clock_stops", "clock_stopped_days", "clock_stop_reason", "clock_stopped_on"):
            batch.drop_column(name)
