"""POM-COM handovers and their in-person sessions (issue 14)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pom_com_handover",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crn", sa.String(length=7), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prison", sa.String(length=200), nullable=False),
        sa.Column("pom_name", sa.String(length=200), nullable=False),
        sa.Column("pom_email", sa.String(length=320), nullable=False),
        sa.Column("com_name", sa.String(length=200), nullable=False),
        sa.Column("com_email", sa.String(length=320), nullable=False),
        sa.Column("com_team_code", sa.String(length=20), nullable=True),
        sa.Column("com_pdu_code", sa.String(length=20), nullable=False),
        sa.Column("com_region_code", sa.String(length=10), nullable=False),
        sa.Column("omu_mailbox", sa.String(length=320), nullable=False),
        sa.Column("sentence_type", sa.String(length=10), nullable=False),
        sa.Column("sentence_length_months", sa.Integer(), nullable=False),
        sa.Column("release_date", sa.Date(), nullable=False),
        sa.Column("handover_date", sa.Date(), nullable=False),
        sa.Column("lao", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("crn", name="uq_pom_com_handover_crn"),
    )
    op.create_index("ix_pom_com_handover_com_region_code", "pom_com_handover", ["com_region_code"])
    op.create_index("ix_pom_com_handover_handover_date", "pom_com_handover", ["handover_date"])
    op.create_table(
        "pom_com_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("handover_id", sa.Integer(), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["handover_id"], ["pom_com_handover.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("handover_id", "held_on", name="uq_pom_com_session_day"),
    )
    op.create_index("ix_pom_com_session_handover_id", "pom_com_session", ["handover_id"])


def downgrade() -> None:
    op.drop_index("ix_pom_com_session_handover_id", table_name="pom_com_session")
    op.drop_table("pom_com_session")
    op.drop_index("ix_pom_com_handover_handover_date", table_name="pom_com_handover")
    op.drop_index("ix_pom_com_handover_com_region_code", table_name="pom_com_handover")
    op.drop_table("pom_com_handover")
