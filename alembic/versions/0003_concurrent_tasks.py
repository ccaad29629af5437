"""concurrent waiting tasks: shape version, wake-ups, done dates, tasks, challenges

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 08:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nsi", schema=None) as batch_op:
        # Every NSI stored before this revision was raised under the sequential shape (1).
        batch_op.add_column(sa.Column("shape_version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("wake_seq", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("seen_seq", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("step_record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("done_on", sa.Date(), nullable=True))
    op.create_table(
        "waiting_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nsi_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=60), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("owner_role", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["nsi_id"], ["nsi.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("nsi_id", "task", "round", name="uq_waiting_task_nsi_task_round"),
    )
    op.create_index("ix_waiting_task_nsi_id", "waiting_task", ["nsi_id"])
    op.create_index("ix_waiting_task_status", "waiting_task", ["status"])
    op.create_index("ix_waiting_task_flow_run_id", "waiting_task", ["flow_run_id"])
    op.create_table(
        "challenge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nsi_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("concern", sa.Text(), nullable=False),
        sa.Column("raised_by", sa.String(length=200), nullable=False),
        sa.Column("raised_role", sa.String(length=30), nullable=False),
        sa.Column("raised_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("settled_by", sa.String(length=200), nullable=True),
        sa.Column("settled_on", sa.Date(), nullable=True),
        sa.Column("dispute_status", sa.String(length=12), nullable=True),
        sa.Column("disputed_by", sa.String(length=200), nullable=True),
        sa.Column("disputed_on", sa.Date(), nullable=True),
        sa.Column("grounds", sa.Text(), nullable=True),
        sa.Column("dispute_settled_by", sa.String(length=200), nullable=True),
        sa.Column("dispute_settled_on", sa.Date(), nullable=True),
        sa.Column("dispute_notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["nsi_id"], ["nsi.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("nsi_id", "seq", name="uq_challenge_nsi_seq"),
    )
    op.create_index("ix_challenge_nsi_id", "challenge", ["nsi_id"])


def downgrade() -> None:
    op.drop_index("ix_challenge_nsi_id", table_name="challenge")
    op.drop_table("challenge")
    op.drop_index("ix_waiting_task_flow_run_id", table_name="waiting_task")
    op.drop_index("ix_waiting_task_status", table_name="waiting_task")
    op.drop_index("ix_waiting_task_nsi_id", table_name="waiting_task")
    op.drop_table("waiting_task")
    with op.batch_alter_table("step_record", schema=None) as batch_op:
        batch_op.drop_column("done_on")
    with op.batch_alter_table("nsi", schema=None) as batch_op:
        batch_op.drop_column("seen_seq")
        batch_op.drop_column("wake_seq")
        batch_op.drop_column("shape_version")
