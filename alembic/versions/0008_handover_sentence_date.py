"""POM-COM handovers: the sentence date (or custody start), from which time to serve is counted (issue 27)

Revision ID: 0008_handover_sentence_date
Revises: 0007_transfer_changes
Create Date: 2026-12-06 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_handover_sentence_date"
down_revision = "0007_transfer_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null on records stored before it: those are judged on the sentence length, as they were.
    with op.batch_alter_table("pom_com_handover") as batch:
        batch.add_column(sa.Column("sentence_date", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pom_com_handover") as batch:
        batch.drop_column("sentence_date")
