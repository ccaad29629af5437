"""Continuity of supervision while a case moves (issue 26; 002 5.2, App. 2).

Until completion the transferring practitioner owns enforcement (the owner of `enforcement_review`
in config/timescales.yaml): a missed appointment recorded by either side (`casetransfer absence`,
or a first appointment recorded as not kept) goes into the record of absences handed over and, when
unacceptable, opens "decide on enforcement" for the transferring practitioner. During a temporary
move the host records its contacts, and the supervising practitioner sees them (`casetransfer contact`).

Each function changes a Transfer in memory; the caller's unit of work commits it or nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from tasks.calendar import get_calendar
from tasks.domain.actions import due_date
from tasks.domain.conditions import condition_rules
from tasks.domain.form import NsiType
from tasks.domain.transfer import StepRefused, Transfer, today
from tasks.settings import get_settings
from tasks.store.models import Action, SupervisionContact

ENFORCEMENT = "enforcement_review"
ABSENCE, CONTACT = "absence", "contact"
ABSENCE_RECORDED, CONTACT_RECORDED = "absence recorded", "contact recorded"


@dataclass(frozen=True)
class Recorded:
    seq: int
    detail: str
    enforcement_due: dt.date | None  # an unacceptable absence: the transferring practitioner's review


def _check(t: Transfer, role: str, allowed: list[str], what: str, on: dt.date) -> None:
    # The person's own mistake first (the role they gave), then the NSI's state.
    if role not in allowed:
        raise StepRefused("role", f"{role!r} cannot record {what}; it is for: {', '.join(allowed)}")
    if t.closed:
        owner = "; the receiving side owns the case and its enforcement now" if t.nsi.status == "completed" else ""
        raise StepRefused("nsi", f"{t.reference} is {t.nsi.status}: {what} is recorded here only while the transfer is open{owner}")
    t.check_done_date("on", on)


def record_absence(
    t: Transfer, *, on: dt.date, acceptable: bool, by: str, role: str, notes: str = "", first_appointment: bool = False
) -> Recorded:
    """A missed appointment before completion: kept in the record of absences handed over; an
    unacceptable one opens (or keeps open) the transferring practitioner's enforcement review."""
    _check(t, role, condition_rules().absence_recorders, "an absence", on)
    # One absence a day: the same one recorded again (a re-run, a second click) changes nothing.
    same = next((c for c in t.nsi.contacts if c.kind == ABSENCE and c.on == on), None)
    if same is not None:
        if bool(same.acceptable) != acceptable:
            raise StepRefused(
                "acceptable",
                f"the absence on {on.isoformat()} is already recorded as {'acceptable' if same.acceptable else 'unacceptable'}",
            )
        return Recorded(same.seq, f"the absence on {on.isoformat()} is already recorded", None)
    return _absence(t, on=on, acceptable=acceptable, by=by, role=role, notes=notes, first_appointment=first_appointment)


def _absence(
    t: Transfer, *, on: dt.date, acceptable: bool, by: str, role: str, notes: str, first_appointment: bool
) -> Recorded:
    nsi = t.nsi
    seq = 1 + len(nsi.contacts)
    nsi.contacts.append(
        SupervisionContact(
            seq=seq, kind=ABSENCE, on=on, acceptable=acceptable, first_appointment=first_appointment,
            recorded_by=by, role=role, notes=notes,
        )
    )  # fmt: skip
    what = "first appointment missed" if first_appointment else "missed appointment"
    detail = f"{what} on {on.isoformat()}: {'acceptable' if acceptable else 'unacceptable'} absence, recorded by the {role.replace('_', ' ')}"
    due = None
    if not acceptable and not t.closed:  # after completion the receiving side owns enforcement
        due = _open_enforcement(t)
        if due is not None:
            owner = t.policy.rule(ENFORCEMENT).owner.replace("_", " ")
            detail += f"; enforcement decision for the {owner} by {due.isoformat()}"
    if notes:
        detail += f": {notes}"
    t.note(f"absence:{seq}", ABSENCE_RECORDED, detail, by)
    if nsi.shape_version >= 2 and not t.closed:
        t.wake()  # the transfer's run opens the enforcement review's task
    return Recorded(seq, detail, due)


def _open_enforcement(t: Transfer) -> dt.date | None:
    """The enforcement review, due from today (clock `absence`): added, reopened, or left open at
    its earlier due date. None when the policy has no such action."""
    nsi = t.nsi
    rule = next((r for r in t.policy.actions if r.code == ENFORCEMENT), None)
    if rule is None or nsi.nsi_type not in rule.nsi_types:
        return None
    due = due_date(rule, today(), get_calendar(get_settings().calendar))
    action = next((a for a in nsi.actions if a.code == ENFORCEMENT), None)
    if action is None:
        nsi.actions.append(Action(code=rule.code, title=rule.title, owner_role=rule.owner, due_on=due))
        return due
    if action.status == "open":
        return action.due_on
    action.status, action.done_on, action.due_on, action.escalated_on = "open", None, due, None
    return due


def record_contact(t: Transfer, *, on: dt.date, by: str, role: str, notes: str = "") -> Recorded:
    """A contact the host records during a temporary move; the supervising (transferring)
    practitioner sees it in status and the artifact."""
    nsi = t.nsi
    if nsi.nsi_type != NsiType.temporary_move.value:
        raise StepRefused("nsi", f"{t.reference} is a Case Transfer: contacts are recorded here for a Temporary Move's host")
    _check(t, role, condition_rules().contact_recorders, "a contact", on)
    if (same := next((c for c in nsi.contacts if c.kind == CONTACT and c.on == on and c.notes == notes), None)) is not None:
        return Recorded(same.seq, f"the contact on {on.isoformat()} is already recorded", None)  # a re-run changes nothing
    seq = 1 + len(nsi.contacts)
    nsi.contacts.append(SupervisionContact(seq=seq, kind=CONTACT, on=on, acceptable=None, recorded_by=by, role=role, notes=notes))
    detail = f"contact on {on.isoformat()} recorded by the host ({role.replace('_', ' ')})" + (f": {notes}" if notes else "")
    t.note(f"contact:{seq}", CONTACT_RECORDED, detail, by)
    return Recorded(seq, detail, None)


def after_answer(t: Transfer, step: str, answer: dict[str, Any]) -> None:
    """A first appointment recorded as not kept is an absence on the planned day (or the day
    recorded when no plan is on record). Idempotent: recorded once per answer."""
    if step != "first_appointment_kept" or answer.get("kept") is not False:
        return
    if any(c.first_appointment for c in t.nsi.contacts):
        return
    plan = t.recorded("first_appointment")
    planned = plan.answer.get("appointment_on") if plan is not None else None
    on = dt.date.fromisoformat(str(planned)) if planned else today()
    on = min(max(on, t.nsi.raised_on), today())
    if (same := next((c for c in t.nsi.contacts if c.kind == ABSENCE and c.on == on), None)) is not None:
        same.first_appointment = True  # already recorded with `absence`: it was the first appointment
        return
    role = t.policy.rule("first_appointment_kept").owner
    _absence(
        t, on=on, acceptable=bool(answer.get("acceptable")), by=str(answer.get("recorded_by") or "unknown"), role=role,
        notes=str(answer.get("notes") or ""), first_appointment=True,
    )  # fmt: skip
