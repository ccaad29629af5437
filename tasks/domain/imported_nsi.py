"""Go-live import: a good row stored as an NSI marked imported, in the caller's transaction. Its
Action List planned as a flow would, the work the tracker dates recorded on its own dates through
the step registry's forms, what the tracker marks "N/A" cancelled, and its history saying where it
came from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from tasks.calendar import get_calendar
from tasks.domain import steps as registry
from tasks.domain import transfers
from tasks.domain.actions import Clocks, Facts, plan_actions, transfer_due
from tasks.domain.conditions import condition_rules
from tasks.domain.form import NsiType
from tasks.domain.import_rows import ACTOR, DONE_FIELDS, GoodRow, first_team, form_profile
from tasks.domain.policy import Policy, get_policy
from tasks.domain.temporary_moves import SUPPORTING
from tasks.places.estate import Estate
from tasks.places.placement import Placement, check_placement
from tasks.settings import get_settings
from tasks.store.models import Action, HistoryEntry, Nsi, StepRecord


def _answer(task: str, on: dt.date, good: GoodRow, team: str, policy: Policy) -> dict[str, Any]:
    """The step's answer as its own form takes it: the registry validates what is stored."""
    base: dict[str, Any] = {"recorded_by": ACTOR, "done_on": on.isoformat()}
    extra: dict[str, Any] = {
        "allocation": {"practitioner": good.allocated_to, "team_code": team},
        "support_allocation": {"support_contact": good.allocated_to, "team_code": team},
        "address_assessment": {"method": "home_visit", "suitable": True, "notes": "imported: the tracker dates it"},
        "police_checks": {"returned_on": on.isoformat()},
        "safeguarding_checks": {"returned_on": on.isoformat()},
        "handover": {"held_on": on.isoformat()},
        "completion": {"responsible_officer": good.allocated_to, "completed_on": on.isoformat()},
        "outcome": {"outcome": "ended", "on": on.isoformat(), "notes": "caretaking ended (legacy tracker)"},
    }.get(task, {"notes": "imported from the legacy tracker"})
    spec = registry.spec_for(task, policy)
    return spec.form.model_validate(base | extra).model_dump(mode="json")


def store_row(session: Session, good: GoodRow, source: str, today: dt.date, estate: Estate) -> str:
    """One NSI with its Action List, its done work and its history, in the caller's transaction.
    Returns its reference."""
    form = good.form
    policy = get_policy(form_profile())
    calendar = get_calendar(get_settings().calendar)
    placed = check_placement(form, Placement(form.receiving_pdu_code or ""), policy)
    is_tm = form.nsi_type is NsiType.temporary_move
    shape = transfers.shape_for(form.nsi_type, policy)
    notified = form.raised_on or today
    move = form.move_date or notified  # move_clock_without_move_date: notified
    first_step = "support_allocation" if is_tm else "allocation"
    dated = dict(good.done)
    if is_tm and "completion" in dated:
        dated["outcome"] = dated.pop("completion")  # a caretaking row's completion is its end
    team = good.receiving_team
    # Work after allocation means it was allocated: on its own date, else on the first later work
    # (a caretaking row naming the receiving team: supported from the date notified).
    allocated_on = good.allocated_on or (min(dated.values()) if dated else None)
    if allocated_on is None and is_tm and team:
        allocated_on = notified
    clocks = Clocks(raised=notified, received=notified, move=move, reallocation=allocated_on)
    planned = plan_actions(Facts(form), clocks, policy, calendar, shape)
    if is_tm:
        # Caretaking is measured as transfers are (documents, home visit, reassessment, ...): the
        # case transfer's actions the mapping names, on their own clocks from the start of caretaking.
        as_transfer = form.model_copy(update={"nsi_type": NsiType.case_transfer})
        ct_shape = transfers.shape_for(NsiType.case_transfer, policy)
        planned += [p for p in plan_actions(Facts(as_transfer), clocks, policy, calendar, ct_shape) if p.code in good.caretaking_actions]
    nsi = transfers.new_nsi(
        form,
        good.key,
        policy,
        shape,
        raised=notified,
        received=notified,
        move=move,
        due=transfer_due(notified, policy, calendar, form.nsi_type),
        placed=placed,
        placement=Placement(form.receiving_pdu_code or ""),
        imported_on=today,
    )
    session.add(nsi)
    session.flush()
    nsi.reference = f"{transfers.REFERENCE_PREFIX[form.nsi_type]}{nsi.id:06d}"
    actions = {
        p.code: Action(nsi_id=nsi.id, code=p.code, title=p.title, owner_role=p.owner_role, due_on=p.due_on, status="open")
        for p in planned
    }
    session.add_all(actions.values())

    def codes_of(task: str) -> list[str]:
        spec = registry.spec_for(task, policy)
        return [r.code for r in policy.rules_for_step(task)] + ([task] if spec.kind == "action" else [])

    history = [
        HistoryEntry(nsi_id=nsi.id, key="raised", event="raised",
                     detail=transfers.raised_detail(form.nsi_type.value, estate.pdus[form.receiving_pdu_code or ''].name), actor=ACTOR),
        HistoryEntry(nsi_id=nsi.id, key="imported", event="imported",
                     detail=f"imported on {today.isoformat()} from {source} row {good.number}", actor=ACTOR),
    ]  # fmt: skip
    if good.notes:
        history.append(HistoryEntry(nsi_id=nsi.id, key="imported:notes", event="note", detail=good.notes, actor=ACTOR))
    # Every dated cell ends in the store: as work done, or (work this NSI does not call for) as a line.
    done: dict[str, dt.date] = {}
    kept = list(good.kept)
    for task, on in dated.items():
        if any(code in actions for code in codes_of(task)):
            done[task] = on
        else:
            kept.append(f"imported, not applicable to {_why_not(task, good, is_tm)}: {_label(task)} {on:%d/%m/%Y}")
    for i, line in enumerate(kept, start=1):
        history.append(HistoryEntry(nsi_id=nsi.id, key=f"imported:kept:{i}", event="imported", detail=line, actor=ACTOR))
    if allocated_on is not None:
        team = team or first_team(estate, form.receiving_pdu_code or "")
        done[first_step] = allocated_on
    order = [first_step, *(t for t in done if t not in (first_step, "completion", "outcome")), "completion", "outcome"]
    for task in order:
        if task not in done:
            continue
        on = done[task]
        spec = registry.spec_for(task, policy)
        answer = _answer(task, on, good, team or "", policy)
        session.add(StepRecord(nsi_id=nsi.id, step=task, answer=answer, recorded_by=ACTOR, done_on=on))
        for code in codes_of(task):
            if (a := actions.get(code)) is not None:
                a.status, a.done_on = "done", on
        history.append(HistoryEntry(nsi_id=nsi.id, key=f"step:{task}", event=task,
                                    detail=f"{spec.title} done on {on.isoformat()} (imported)", actor=ACTOR))  # fmt: skip
    for task in sorted(good.not_applicable - set(done)):
        for code in codes_of(task):
            if (a := actions.get(code)) is not None and a.status == "open":
                a.status = "cancelled"
                history.append(HistoryEntry(nsi_id=nsi.id, key=f"not-applicable:{code}", event="not applicable",
                                            detail=f"{a.title}: N/A on the legacy tracker", actor=ACTOR))  # fmt: skip
    if first_step in done:
        nsi.allocated_on = done[first_step]
        nsi.receiving_team_code = team
        nsi.receiving_practitioner = good.allocated_to
        nsi.status = _status_after_allocation(is_tm, shape)
    if is_tm and "outcome" in done:
        _finish(nsi, actions.values(), "ended", done["outcome"])
    elif "completion" in done:
        nsi.responsible_officer = good.allocated_to
        # What the tracker never dated before completion no longer applies; the after-the-move
        # actions (reassessment, plan review, court application) stay open with their real dates.
        required = set(policy.completion_requires) | set(condition_rules().closed_on_imported_completion)
        _finish(nsi, [a for a in actions.values() if a.code in required], "completed", done["completion"])
    session.add_all(history)
    return nsi.reference


def _label(task: str) -> str:
    """The tracker's name for the work: its field without "_on" (court application, aco)."""
    name = next((f for f, t in DONE_FIELDS.items() if t == task), task)
    return name.removesuffix("_on").replace("_", " ")


def _why_not(task: str, good: GoodRow, is_tm: bool) -> str:
    form = good.form
    if is_tm:
        return "caretaking"
    if task == "court_application":
        return f"a {form.sentence_type.value.lower()}"
    if task in ("transfer_report", "full_information"):
        return "a case that is not high RoSH"
    if task == "aco_involvement":
        return "a case that is not high RoSH or MAPPA"
    if task == "mappa_brokering":
        return "a case that is not MAPPA level 2 or 3"
    return "this case"


def _status_after_allocation(is_tm: bool, shape: int) -> str:
    if is_tm:
        return SUPPORTING
    return transfers.IN_PROGRESS if shape >= 2 else "allocation_recorded"


def _finish(nsi: Nsi, actions: Iterable[Action], status: str, on: dt.date) -> None:
    """Closed on the tracker's date; `actions` still open no longer apply."""
    nsi.status, nsi.closed_on, nsi.waiting_step = status, on, None
    for a in actions:
        if a.status == "open":
            a.status = "cancelled"
