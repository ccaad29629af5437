"""Continuity of supervision (issue 26): absences and a temporary move's contacts

Revision ID: 0009_continuity
Revises: 0008_handover_sentence_date
Create Date: 2026-12-06 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_continuity"
down_revision = "0008_handover_sentence_date"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supervision_contact",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("nsi_id", sa.Integer(), sa.ForeignKey("nsi.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("acceptable", sa.Boolean(), nullable=True),
        sa.Column("first_appointment", sa.Boolean(), nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("role", sa.String(30), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("nsi_id", "seq", name="uq_supervision_contact_nsi_seq"),
    )
    op.create_index("ix_supervision_contact_nsi_id", "supervision_contact", ["nsi_id"])


def downgrade() -> None:
    op.drop_index("ix_supervision_contact_nsi_id", table_name="supervision_contact")
    op.drop_table("supervision_contact")
