"""Limited access (issue 28): an LAO NSI's granted access list, and the access log

Revision ID: 0010_lao_access
Revises: 0009_continuity
Create Date: 2026-12-06 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_lao_access"
down_revision = "0009_continuity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lao_grant",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("nsi_id", sa.Integer(), sa.ForeignKey("nsi.id", ondelete="CASCADE"), nullable=False),
        sa.Column("signin", sa.String(100), nullable=False),
        sa.Column("staff_name", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("nsi_id", "signin", name="uq_lao_grant_nsi_signin"),
    )
    op.create_index("ix_lao_grant_nsi_id", "lao_grant", ["nsi_id"])
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("nsi_id", sa.Integer(), sa.ForeignKey("nsi.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("surface", sa.String(20), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("signin", sa.String(100), nullable=True),
        sa.Column("os_account", sa.String(100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_access_log_nsi_id", "access_log", ["nsi_id"])


def downgrade() -> None:
    op.drop_index("ix_access_log_nsi_id", table_name="access_log")
    op.drop_table("access_log")
    op.drop_index("ix_lao_grant_nsi_id", table_name="lao_grant")
    op.drop_table("lao_grant")
