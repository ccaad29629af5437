"""What a transfer looks like now, read from the store: its status with the Action List, open
tasks, challenges and history; and the small reads the flows and the service layer poll.

Queries of their own, not built from the Transfer aggregate (tasks/domain/transfer.py): each opens
one read-only session and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tasks.calendar import get_calendar
from tasks.domain import challenges, conditions, moving_again
from tasks.domain import steps as registry
from tasks.domain.changes import clock_stopped_words
from tasks.domain.form import NsiType
from tasks.domain.policy import Policy, get_policy
from tasks.domain.transfer import CLOSED, Transfers, TransferWork, attempt_prefixes, today
from tasks.places.estate import load_estate
from tasks.settings import get_settings
from tasks.store.models import HistoryEntry, Nsi, StepRecord, WaitingTask
from tasks.store.unit_of_work import UnitOfWork


def _load(session: Session, reference: str) -> Nsi:
    return Transfers(session).get(reference).nsi


def _attempts(session: Session, nsi: Nsi, step: str) -> Any:
    rejected, not_final = attempt_prefixes(step)
    return (
        select(HistoryEntry)
        .where(HistoryEntry.nsi_id == nsi.id, HistoryEntry.key.startswith(rejected) | HistoryEntry.key.startswith(not_final))
        .order_by(HistoryEntry.id)
    )


def registered(request_key: str, url: str | None = None) -> str | None:
    """The reference of the NSI stored under `request_key` once a flow run has taken it on."""
    with UnitOfWork(url) as uow:
        row = uow.session.execute(select(Nsi.reference, Nsi.flow_run_id).where(Nsi.request_key == request_key)).first()
        return row.reference if row is not None and row.flow_run_id else None


def open_flow_runs(url: str | None = None) -> list[tuple[str, str]]:
    """(reference, flow run id) of every open NSI's run and of every open waiting task's run. A
    completed transfer whose tasks after the move still wait is open too: its run drives them, and
    a run of it left Pending by a dead worker must still be found (the soak found five)."""
    with UnitOfWork(url) as uow:
        waiting = select(WaitingTask.nsi_id).where(WaitingTask.status.in_(("open", "recorded")))
        rows = uow.session.execute(
            select(Nsi.reference, Nsi.flow_run_id).where(
                or_(Nsi.status.not_in(CLOSED), Nsi.id.in_(waiting)), Nsi.flow_run_id.is_not(None)
            )
        )
        tasks = uow.session.execute(
            select(Nsi.reference, WaitingTask.flow_run_id)
            .join(WaitingTask, WaitingTask.nsi_id == Nsi.id)
            .where(WaitingTask.status.in_(("open", "recorded")), WaitingTask.flow_run_id.is_not(None))
        )
        return [(r, f) for r, f in [*rows, *tasks] if f]


def waiting_steps(url: str | None = None) -> dict[str, tuple[str, str]]:
    """flow run id -> (reference, the step it waits at) for every open NSI waiting at a step, and
    for every open waiting task's run."""
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(
            select(Nsi.flow_run_id, Nsi.reference, Nsi.waiting_step).where(
                Nsi.status.not_in(CLOSED), Nsi.flow_run_id.is_not(None), Nsi.waiting_step.is_not(None)
            )
        )
        tasks = uow.session.execute(
            select(WaitingTask.flow_run_id, Nsi.reference, WaitingTask.task)
            .join(Nsi, WaitingTask.nsi_id == Nsi.id)
            .where(WaitingTask.status == "open", WaitingTask.flow_run_id.is_not(None))
        )
        return {f: (r, s) for f, r, s in [*rows, *tasks] if f and s}


def recorded_steps(reference: str, url: str | None = None) -> dict[str, dict[str, Any]]:
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return {s.step: s.answer for s in nsi.steps}


def nsi_status(reference: str, url: str | None = None) -> tuple[str, str | None]:
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return nsi.status, nsi.waiting_step


def shape_of(reference: str, url: str | None = None) -> int:
    """The process shape the NSI was raised under (1 sequential, 2 concurrent tasks). Shape 1's
    branches here and in apply_step stay while open transfers raised under it can still finish."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return nsi.shape_version if nsi.nsi_type == NsiType.case_transfer.value else 1


def policy_of(reference: str, url: str | None = None) -> Policy:
    """The policy an NSI follows: its profile's, whatever the calling process's profile is."""
    with UnitOfWork(url) as uow:
        return get_policy(_load(uow.session, reference).profile)


def step_attempts(reference: str, step: str, url: str | None = None) -> int:
    """How many answers to `step` were taken without recording it: the next suspension's number."""
    return step_state(reference, step, url).attempts


def last_attempt(reference: str, step: str, url: str | None = None) -> tuple[str, str] | None:
    """(event, detail) of the latest answer to `step` that left it waiting, if any."""
    return step_state(reference, step, url).last_attempt


def rejected_attempts(reference: str, step: str, url: str | None = None) -> int:
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return (
            uow.session.scalar(
                select(func.count())
                .select_from(HistoryEntry)
                .where(
                    HistoryEntry.nsi_id == nsi.id,
                    HistoryEntry.event == "answer rejected",
                    HistoryEntry.key.like(f"rejected:{step}:%"),
                )
            )
            or 0
        )


@dataclass(frozen=True)
class StepState:
    """Where one step stands, in one read: what someone who just sent an answer waits to see."""

    recorded: bool
    status: str
    attempts: int
    last_attempt: tuple[str, str] | None  # (event, detail) of the latest answer that left it waiting
    recorded_by: str | None = None  # who gave the answer recorded, and when (UTC): told to whoever lost a race to it
    recorded_at: dt.datetime | None = None


def step_state(reference: str, step: str, url: str | None = None) -> StepState:
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        record = uow.session.execute(select(StepRecord.recorded_by, StepRecord.recorded_at).where(
            StepRecord.nsi_id == nsi.id, StepRecord.step == step)).first()  # fmt: skip
        entries = uow.session.scalars(_attempts(uow.session, nsi, step)).all()
        last = (entries[-1].event, entries[-1].detail) if entries else None
        by, at = (record[0], record[1]) if record is not None else (None, None)
        if at is not None and at.tzinfo is None:  # SQLite gives it back naive: it was stored as UTC
            at = at.replace(tzinfo=dt.UTC)
        return StepState(record is not None, nsi.status, len(entries), last, by, at)


def dispute_deadline(reference: str, url: str | None = None) -> dt.date | None:
    """The last day the latest refusal can be disputed, or None when nothing was refused."""
    with TransferWork(url) as uow:
        return challenges.dispute_deadline(uow.transfers.get(reference))


def task_round(reference: str, task: str, url: str | None = None) -> tuple[int, str, str | None] | None:
    """(round, status, flow run id) of the latest waiting task `task`, or None before it opens."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        rows = [r for r in nsi.tasks if r.task == task]
        if not rows:
            return None
        row = max(rows, key=lambda r: r.round)
        return row.round, row.status, row.flow_run_id


def wake_state(reference: str, url: str | None = None) -> tuple[int, int, str | None, str]:
    """(wake_seq, seen_seq, the transfer's flow run id, status)."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return nsi.wake_seq, nsi.seen_seq, nsi.flow_run_id, nsi.status


def unseen_wakeups(url: str | None = None) -> list[tuple[str, str]]:
    """(reference, flow run id) of open concurrent transfers with a change their run has not read."""
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(
            select(Nsi.reference, Nsi.flow_run_id).where(
                Nsi.shape_version >= 2, Nsi.wake_seq > Nsi.seen_seq, Nsi.flow_run_id.is_not(None)
            )
        )
        return [(r, f) for r, f in rows if f]


@dataclass
class ActionView:
    code: str
    title: str
    owner_role: str
    due_on: dt.date
    status: str
    done_on: dt.date | None
    days_overdue: int


@dataclass
class TaskView:
    """An open waiting task: who it waits for, when it is due, and its run in the Prefect UI."""

    task: str
    title: str
    owner_role: str
    due_on: dt.date | None
    round: int
    flow_run_id: str | None


@dataclass
class ChallengeView:
    seq: int
    status: str
    raised_on: dt.date
    raised_by: str
    settled_on: dt.date | None
    dispute_status: str | None


@dataclass
class HistoryView:
    at: dt.datetime
    event: str
    detail: str
    actor: str
    flow_run_id: str | None
    reference: str | None = None  # set on an earlier NSI's line: the NSI it belongs to (moving again)


@dataclass
class StatusView:
    reference: str
    crn: str
    name: str
    lao: bool
    nsi_type: str
    status: str
    waiting_step: str | None
    raised_on: dt.date
    due_on: dt.date
    transferring: str
    receiving: str
    receiving_practitioner: str | None
    responsible_officer: str | None
    flow_run_id: str | None
    actions: list[ActionView] = field(default_factory=list)
    history: list[HistoryView] = field(default_factory=list)
    profile: str = "adult"
    parent_reference: str | None = None  # the Temporary Move this Case Transfer was converted from
    converted_to: str | None = None  # the Case Transfer this Temporary Move became
    shape_version: int = 1
    tasks: list[TaskView] = field(default_factory=list)
    challenges: list[ChallengeView] = field(default_factory=list)
    clock_stopped: str | None = None  # "clock stopped (recalled to custody) since 3 Dec 2026"
    # Moving again (tasks/domain/moving_again.py): the NSI this one superseded and the one that
    # superseded it; the history of the NSIs it superseded, oldest first, each line as stored.
    supersedes: str | None = None
    superseded_by: str | None = None
    earlier_history: list[HistoryView] = field(default_factory=list)
    # NSIs raised for this person in the repeat-mover window, when that makes them a repeat mover; else 0.
    repeat_mover: int = 0
    repeat_mover_rule: str = ""
    notes: list[str] = field(default_factory=list)  # the notes a legacy tracker held, as typed
    # Restrictive conditions as data, the exclusion zone flags, and the record of absences (and a
    # temporary move's contacts) handed over (issue 26: tasks/domain/conditions.py, continuity.py).
    conditions: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)


def status_of(reference: str, as_of: dt.date | None = None, url: str | None = None) -> StatusView:
    as_of = as_of or today()
    calendar = get_calendar(get_settings().calendar)
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        estate = load_estate()
        view = StatusView(
            reference=nsi.reference,
            crn=nsi.crn,
            name=nsi.name,
            lao=nsi.lao,
            nsi_type=nsi.nsi_type,
            status=nsi.status,
            waiting_step=nsi.waiting_step,
            raised_on=nsi.raised_on,
            due_on=nsi.due_on,
            transferring=f"{estate.pdus[nsi.transferring_pdu_code].name} ({nsi.transferring_team_code})",
            receiving=f"{estate.pdus[nsi.receiving_pdu_code].name}"
            + (f" ({nsi.receiving_team_code})" if nsi.receiving_team_code else ""),
            receiving_practitioner=nsi.receiving_practitioner,
            responsible_officer=nsi.responsible_officer,
            flow_run_id=nsi.flow_run_id,
            profile=nsi.profile,
            parent_reference=nsi.parent_reference,
            converted_to=uow.session.scalar(select(Nsi.reference).where(Nsi.parent_reference == nsi.reference)),
        )
        view.clock_stopped = clock_stopped_words(nsi.clock_stop_reason, nsi.clock_stopped_on)
        # While the clock stands still no day counts against anyone.
        counted_to = min(as_of, nsi.clock_stopped_on) if nsi.clock_stopped_on else as_of
        for a in nsi.actions:
            overdue = calendar.working_days_between(a.due_on, counted_to) if a.status == "open" and a.due_on < counted_to else 0
            view.actions.append(ActionView(a.code, a.title, a.owner_role, a.due_on, a.status, a.done_on, overdue))
        view.actions.sort(key=lambda a: (a.due_on, a.code))
        for h in nsi.history:
            view.history.append(HistoryView(h.at, h.event, h.detail, h.actor, h.flow_run_id))
        view.notes = [h.detail for h in view.history if h.event == "note"]
        view.conditions = conditions.conditions_words(nsi.form or {})
        view.flags = [h.detail for h in view.history if h.event == conditions.FLAGGED]
        view.contacts = [
            {"seq": c.seq, "kind": c.kind, "on": c.on, "acceptable": c.acceptable, "first_appointment": c.first_appointment,
             "recorded_by": c.recorded_by, "role": c.role, "notes": c.notes}
            for c in nsi.contacts
        ]  # fmt: skip
        view.shape_version = nsi.shape_version
        policy = get_policy(nsi.profile)
        due = {a.code: a.due_on for a in nsi.actions}
        for row in nsi.tasks:
            if row.status != "open":
                continue
            rule = policy.rule_for_task(row.task)
            title = registry.spec_for(row.task, policy).title
            view.tasks.append(TaskView(row.task, title, row.owner_role, due.get(rule.code) if rule else None, row.round, row.flow_run_id))
        view.tasks.sort(key=lambda t: (t.due_on or dt.date.max, t.task))
        view.challenges = [
            ChallengeView(c.seq, c.status, c.raised_on, c.raised_by, c.settled_on, c.dispute_status) for c in nsi.challenges
        ]
        view.supersedes, view.superseded_by = nsi.supersedes_reference, nsi.superseded_by_reference
        for earlier in moving_again.earlier_nsis(uow.session, nsi):
            view.earlier_history += [HistoryView(h.at, h.event, h.detail, h.actor, h.flow_run_id, earlier.reference) for h in earlier.history]
        rule = moving_again.load_rule()
        view.repeat_mover = moving_again.repeat_movers(uow.session, as_of, [nsi.crn], rule).get(nsi.crn, 0)
        view.repeat_mover_rule = rule.words()
        return view


def outcome_to_tell(reference: str, url: str | None = None) -> str | None:
    """The history key of a closed transfer's outcome that the other side is told of at once:
    its completion, or the upheld challenge (or refusal decision) that refused it."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        if nsi.status == "completed":
            return "step:completion"
        if nsi.status != "refused":
            return None
        keys = [h.key for h in nsi.history if h.key in ("step:decision", "step:information_review") or (h.key.startswith("step:challenge-") and " upheld" in h.detail)]
        return keys[-1] if keys else None
