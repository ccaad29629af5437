"""SQLAlchemy 2 typed models. Alembic migrations in alembic/ create these tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Nsi(Base):
    """A Case Transfer or Temporary Move NSI."""

    __tablename__ = "nsi"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    # Makes raising idempotent: a retried raise or a re-run flow finds the same NSI.
    request_key: Mapped[str] = mapped_column(String(64), unique=True)
    nsi_type: Mapped[str] = mapped_column(String(20), index=True)
    profile: Mapped[str] = mapped_column(String(10), default="adult")
    status: Mapped[str] = mapped_column(String(40), index=True)
    crn: Mapped[str] = mapped_column(String(7), index=True)
    name: Mapped[str] = mapped_column(String(200))
    lao: Mapped[bool] = mapped_column(Boolean, default=False)
    rosh: Mapped[str] = mapped_column(String(10))
    mappa_category: Mapped[int | None] = mapped_column(Integer)
    mappa_level: Mapped[int | None] = mapped_column(Integer)
    diversity_recorded: Mapped[bool] = mapped_column(Boolean, default=False)
    raised_on: Mapped[dt.date] = mapped_column(Date, index=True)
    received_on: Mapped[dt.date] = mapped_column(Date)
    move_on: Mapped[dt.date | None] = mapped_column(Date)
    due_on: Mapped[dt.date] = mapped_column(Date)
    allocated_on: Mapped[dt.date | None] = mapped_column(Date)
    closed_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    transferring_region_code: Mapped[str] = mapped_column(String(10), index=True)
    transferring_pdu_code: Mapped[str] = mapped_column(String(20))
    transferring_team_code: Mapped[str] = mapped_column(String(20))
    transferring_practitioner: Mapped[str] = mapped_column(String(200))
    transferring_spo: Mapped[str] = mapped_column(String(200))
    receiving_region_code: Mapped[str] = mapped_column(String(10), index=True)
    receiving_pdu_code: Mapped[str] = mapped_column(String(20))
    receiving_team_code: Mapped[str | None] = mapped_column(String(20))
    receiving_practitioner: Mapped[str | None] = mapped_column(String(200))
    responsible_officer: Mapped[str | None] = mapped_column(String(200))
    distance_km: Mapped[float | None] = mapped_column(Float)
    form: Mapped[dict[str, Any]] = mapped_column(JSON)
    flow_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    waiting_step: Mapped[str | None] = mapped_column(String(40))
    parent_reference: Mapped[str | None] = mapped_column(String(20), index=True)
    # The process shape the NSI was raised under (config `shape_version`): 1 = one step after
    # another (before concurrent tasks), 2 = concurrent waiting tasks. An open NSI finishes on its own.
    shape_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Wake-ups: every change the transfer's run must react to bumps wake_seq; the run records the
    # value it last acted on in seen_seq, so a wake-up lost in flight is found and re-sent.
    wake_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    seen_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set when the NSI came in from a region's legacy tracker (tasks/domain/importer.py): its work before
    # this day is history, and escalation of what was already overdue counts from this day.
    imported_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    # The transfer's clocks stand still while the person cannot be supervised (custody, recall,
    # remand, hospital): since when and why; the working days stood still before, and how often.
    clock_stopped_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    clock_stop_reason: Mapped[str | None] = mapped_column(String(20))
    clock_stopped_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    clock_stops: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Moving again (tasks/domain/moving_again.py): the open NSI this one replaced, closed as
    # superseded, and on that one the NSI that replaced it. Set once, when the new one is raised.
    supersedes_reference: Mapped[str | None] = mapped_column(String(20), index=True)
    superseded_by_reference: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    actions: Mapped[list[Action]] = relationship(back_populates="nsi", order_by="Action.id", cascade="all, delete-orphan")
    steps: Mapped[list[StepRecord]] = relationship(back_populates="nsi", order_by="StepRecord.id", cascade="all, delete-orphan")
    history: Mapped[list[HistoryEntry]] = relationship(
        back_populates="nsi", order_by="HistoryEntry.id", cascade="all, delete-orphan"
    )
    tasks: Mapped[list[WaitingTask]] = relationship(
        back_populates="nsi", order_by="WaitingTask.id", cascade="all, delete-orphan"
    )
    challenges: Mapped[list[Challenge]] = relationship(
        back_populates="nsi", order_by="Challenge.seq", cascade="all, delete-orphan"
    )
    contacts: Mapped[list[SupervisionContact]] = relationship(
        back_populates="nsi", order_by="SupervisionContact.seq", cascade="all, delete-orphan"
    )
    # Limited access (issue 28): the staff granted a look beyond the default list, and every look.
    lao_grants: Mapped[list[LaoGrant]] = relationship(order_by="LaoGrant.id", cascade="all, delete-orphan")
    access_log: Mapped[list[AccessLogEntry]] = relationship(order_by="AccessLogEntry.id", cascade="all, delete-orphan")


class Action(Base):
    """One line of the Action List."""

    __tablename__ = "action"
    __table_args__ = (
        UniqueConstraint("nsi_id", "code", name="uq_action_nsi_code"),
        Index("ix_action_status_due", "status", "due_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nsi_id: Mapped[int] = mapped_column(ForeignKey("nsi.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    owner_role: Mapped[str] = mapped_column(String(20))
    due_on: Mapped[dt.date] = mapped_column(Date)
    done_on: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | done | cancelled | not_required
    escalated_on: Mapped[dt.date | None] = mapped_column(Date)

    nsi: Mapped[Nsi] = relationship(back_populates="actions")


class StepRecord(Base):
    """The answer to one waiting step, recorded once: a second answer is refused."""

    __tablename__ = "step_record"
    __table_args__ = (UniqueConstraint("nsi_id", "step", name="uq_step_nsi_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nsi_id: Mapped[int] = mapped_column(ForeignKey("nsi.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(40))
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    # The day the work was done (not the day it was typed); corrections change it, the history keeps both.
    done_on: Mapped[dt.date | None] = mapped_column(Date)

    nsi: Mapped[Nsi] = relationship(back_populates="steps")


class WaitingTask(Base):
    """One waiting task of a transfer (police checks, a challenge...) and the flow run that asks
    for it. A task reopened after an overturned refusal gets a new round and a new run."""

    __tablename__ = "waiting_task"
    __table_args__ = (
        UniqueConstraint("nsi_id", "task", "round", name="uq_waiting_task_nsi_task_round"),
        Index("ix_waiting_task_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nsi_id: Mapped[int] = mapped_column(ForeignKey("nsi.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(60))
    round: Mapped[int] = mapped_column(Integer, default=1)
    owner_role: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | done | cancelled
    flow_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    nsi: Mapped[Nsi] = relationship(back_populates="tasks")


class Challenge(Base):
    """A challenge about risk raised by the receiving side before completion, settled by the
    receiving SPO (upheld: a refusal; or withdrawn), and the transferring SPO's dispute of an
    upheld one, settled above the SPO (confirmed or overturned)."""

    __tablename__ = "challenge"
    __table_args__ = (UniqueConstraint("nsi_id", "seq", name="uq_challenge_nsi_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nsi_id: Mapped[int] = mapped_column(ForeignKey("nsi.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    concern: Mapped[str] = mapped_column(Text)
    raised_by: Mapped[str] = mapped_column(String(200))
    raised_role: Mapped[str] = mapped_column(String(30))
    raised_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | upheld | withdrawn
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    evidence: Mapped[str] = mapped_column(Text, default="")
    settled_by: Mapped[str | None] = mapped_column(String(200))
    settled_on: Mapped[dt.date | None] = mapped_column(Date)
    dispute_status: Mapped[str | None] = mapped_column(String(12))  # open | confirmed | overturned
    disputed_by: Mapped[str | None] = mapped_column(String(200))
    disputed_on: Mapped[dt.date | None] = mapped_column(Date)
    grounds: Mapped[str | None] = mapped_column(Text)
    dispute_settled_by: Mapped[str | None] = mapped_column(String(200))
    dispute_settled_on: Mapped[dt.date | None] = mapped_column(Date)
    dispute_notes: Mapped[str | None] = mapped_column(Text)

    nsi: Mapped[Nsi] = relationship(back_populates="challenges")


class SupervisionContact(Base):
    """Continuity of supervision while a case moves (issue 26): an absence (a missed appointment,
    acceptable or not, recorded by either side before completion) or a contact the host records
    during a temporary move. The record of absences handed over is these rows."""

    __tablename__ = "supervision_contact"
    __table_args__ = (UniqueConstraint("nsi_id", "seq", name="uq_supervision_contact_nsi_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nsi_id: Mapped[int] = mapped_column(ForeignKey("nsi.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(12))  # absence | contact
    on: Mapped[dt.date] = mapped_column(Date)
    acceptable: Mapped[bool | None] = mapped_column(Boolean)  # an absence's: None for a contact
    first_appointment: Mapped[bool] = mapped_column(Boolean, default=False)  # the planned first appointment missed
    recorded_by: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(30))
    notes: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    nsi: Mapped[Nsi] = relationship(back_populates="contacts")


class HistoryEntry(Base):
    """Append-only: what happened, who did it, when, from which flow run."""

    __tablename__ = "history"
    __table_args__ = (UniqueConstraint("nsi_id", "key", name="uq_history_nsi_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nsi_id: Mapped[int] = mapped_column(ForeignKey("nsi.id", ondelete="CASCADE"), index=True)
    # Idempotency key: the same event written twice (a re-run flow) is stored once.
    key: Mapped[str] = mapped_column(String(120))
    event: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))

    nsi: Mapped[Nsi] = relationship(back_populates="history")


class LaoGrant(Base):
    """A person added to a limited access (LAO) NSI's access list by `casetransfer grant`, beyond
    the staff it names and its PDUs' SPOs (config/access.yaml `lao`). The history says who granted it."""

    __tablename__ = "lao_grant"
    __table_args__ = (UniqueConstraint("nsi_id", "signin", name="uq_lao_grant_nsi_signin"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nsi_id: Mapped[int] = mapped_column(ForeignKey("nsi.id", ondelete="CASCADE"), index=True)
    signin: Mapped[str] = mapped_column(String(100))
    staff_name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AccessLogEntry(Base):
    """Who read an NSI's details, allowed or refused (the changes are its history's entries).
    Kept as long as the NSI: deleted with it."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nsi_id: Mapped[int] = mapped_column(ForeignKey("nsi.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    surface: Mapped[str] = mapped_column(String(20))  # status | tracker
    allowed: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(200))  # the staff member's name, or the unmapped account
    signin: Mapped[str | None] = mapped_column(String(100))
    os_account: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")


class SentEmail(Base):
    """Sent-log for exactly-once email: inserted as 'sending', then marked 'sent'."""

    __tablename__ = "sent_email"
    __table_args__ = (UniqueConstraint("key", name="uq_sent_email_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(12))  # sending | sent | failed
    message_id: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)  # the rendered message, kept to resend unchanged
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class PomComHandover(Base):
    """A prison-to-community (POM to COM) handover (seed 003, tasks/domain/handovers.py).

    One record per CRN: an import or a correction updates it in place and bumps `revision`,
    which becomes the SEQUENCE of the COM's calendar event, so a corrected date updates it.
    """

    __tablename__ = "pom_com_handover"
    __table_args__ = (UniqueConstraint("crn", name="uq_pom_com_handover_crn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crn: Mapped[str] = mapped_column(String(7))
    name: Mapped[str] = mapped_column(String(200))
    prison: Mapped[str] = mapped_column(String(200))
    pom_name: Mapped[str] = mapped_column(String(200))
    pom_email: Mapped[str] = mapped_column(String(320))
    com_name: Mapped[str] = mapped_column(String(200))
    com_email: Mapped[str] = mapped_column(String(320))
    com_team_code: Mapped[str | None] = mapped_column(String(20))
    com_pdu_code: Mapped[str] = mapped_column(String(20))
    com_region_code: Mapped[str] = mapped_column(String(10), index=True)
    omu_mailbox: Mapped[str] = mapped_column(String(320))
    sentence_type: Mapped[str] = mapped_column(String(10))
    sentence_length_months: Mapped[int] = mapped_column(Integer)
    # The sentence date or custody start: time to serve runs from it to the release date (migration 0007).
    sentence_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    release_date: Mapped[dt.date] = mapped_column(Date)
    handover_date: Mapped[dt.date] = mapped_column(Date, index=True)
    lao: Mapped[bool] = mapped_column(Boolean, default=False)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    sessions: Mapped[list[PomComSession]] = relationship(
        back_populates="handover", cascade="all, delete-orphan", order_by="PomComSession.held_on"
    )


class PomComSession(Base):
    """An in-person supervision session before a handover; recording one day twice stores it once."""

    __tablename__ = "pom_com_session"
    __table_args__ = (UniqueConstraint("handover_id", "held_on", name="uq_pom_com_session_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handover_id: Mapped[int] = mapped_column(ForeignKey("pom_com_handover.id", ondelete="CASCADE"), index=True)
    held_on: Mapped[dt.date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    handover: Mapped[PomComHandover] = relationship(back_populates="sessions")
