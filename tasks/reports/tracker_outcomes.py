"""The tracker's Challenges and refusals and Escalations rows (issue 16), read from the store.

- **Challenges and refusals.** Every challenge about risk (the concurrent shape's `challenge`
  table) and every refusal at the receiving SPO's decision (the sequential shape's `decision`
  step). The outcome in a manager's words: Open, Withdrawn, Upheld, Disputed (a refusal disputed
  and waiting for the head of the receiving PDU), Upheld on dispute, Overturned; a sequential
  refusal is Refused. The days it took are working days from raised to settled (the dispute's
  settlement when there was one), or to the as-of day while it is still open.
- **Escalations.** Every "escalated" history entry: a concern a practitioner escalated
  (`casetransfer escalate`, key `escalated:<n>`) and an action the nightly reminders escalated
  for being overdue (key `escalated:<action code>`). An action's escalation is closed when the
  action is done or cancelled; a concern's when its transfer is closed. Age: working days from
  the day it was escalated to the day it closed, or to the as-of day while open.
- **Limited access cases** carry their CRN only: no name, and no concern text (what a person
  typed about a restricted case could name or place them).

Plain dicts, like tasks.notify.handover_report.report_records: the region slices are pickled to the
workers that write the workbooks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import select

from tasks.calendar import get_calendar
from tasks.settings import get_settings
from tasks.store.models import Action, Challenge, HistoryEntry, Nsi, StepRecord
from tasks.store.unit_of_work import UnitOfWork

_NSI_COLUMNS = (
    Nsi.id,
    Nsi.reference,
    Nsi.crn,
    Nsi.name,
    Nsi.lao,
    Nsi.transferring_region_code,
    Nsi.receiving_region_code,
    Nsi.transferring_pdu_code,
    Nsi.receiving_pdu_code,
    Nsi.closed_on,
)


def restricted(row: Any, whole: Collection[int] = ()) -> bool:
    """A limited access case's row, for a reader not on its access list (`whole`: the NSI ids the
    reader may see whole; a region's mailbox is on none)."""
    return bool(row.lao) and row.id not in whole


def _case(row: Any, lao_name: str, whole: Collection[int] = ()) -> dict[str, Any]:
    return {
        "reference": row.reference,
        "crn": row.crn,
        "name": lao_name if restricted(row, whole) else row.name,
        "lao": bool(row.lao),
        "t_region": row.transferring_region_code,
        "r_region": row.receiving_region_code,
        "t_pdu": row.transferring_pdu_code,
        "r_pdu": row.receiving_pdu_code,
    }


def challenge_outcome(status: str, dispute_status: str | None) -> str:
    if status == "open":
        return "Open"
    if status == "withdrawn":
        return "Withdrawn"
    return {None: "Upheld", "open": "Disputed", "confirmed": "Upheld on dispute", "overturned": "Overturned"}[dispute_status]


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def challenge_records(
    as_of: dt.date, nsi_ids: Collection[int] | None = None, url: str | None = None, lao_name: str = "Restricted (LAO)",
    whole: Collection[int] = (),
) -> list[dict[str, Any]]:
    """One row per challenge or refusal of the NSIs in scope (`nsi_ids`; None: all), oldest first."""
    cal = get_calendar(get_settings().calendar)
    scope = set(nsi_ids) if nsi_ids is not None else None
    rows: list[dict[str, Any]] = []
    with UnitOfWork(url) as uow:
        s = uow.session
        for n in s.execute(select(Challenge, *_NSI_COLUMNS).join(Nsi, Nsi.id == Challenge.nsi_id)):
            c: Challenge = n[0]
            if scope is not None and n.id not in scope:
                continue
            outcome = challenge_outcome(c.status, c.dispute_status)
            settled = c.dispute_settled_on if c.dispute_status in ("confirmed", "overturned") else None
            if settled is None and c.status != "open" and c.dispute_status != "open":
                settled = c.settled_on
            raised = _date(c.raised_on)
            rows.append(
                {
                    **_case(n, lao_name, whole),
                    "kind": f"Challenge {c.seq}",
                    "raised_on": raised,
                    "raised_by": c.raised_role,
                    "concern": None if restricted(n, whole) else c.concern,
                    "reasons": list(c.reasons or []),
                    "outcome": outcome,
                    "settled_on": _date(settled),
                    "open": settled is None,
                    "days": cal.working_days_between(raised, _date(settled) or as_of) if raised else None,
                }
            )
        decisions = s.execute(
            select(StepRecord.answer, StepRecord.done_on, Nsi.received_on, *_NSI_COLUMNS)
            .join(Nsi, Nsi.id == StepRecord.nsi_id)
            .where(StepRecord.step == "decision")
        )
        for r in decisions:
            answer = r.answer or {}
            if answer.get("outcome") != "refuse" or (scope is not None and r.id not in scope):
                continue
            received, done = _date(r.received_on), _date(r.done_on)
            rows.append(
                {
                    **_case(r, lao_name, whole),
                    "kind": "Refusal at decision",
                    "raised_on": received,
                    "raised_by": "receiving_spo",
                    "concern": None,
                    "reasons": list(answer.get("reasons") or []),
                    "outcome": "Refused",
                    "settled_on": done,
                    "open": False,
                    "days": cal.working_days_between(received, done or as_of) if received else None,
                }
            )
    rows.sort(key=lambda r: (r["raised_on"] or dt.date.min, r["reference"], r["kind"]))
    return rows


def refusal_reason_counts(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Reasons given for refusals that stand or stood (upheld, disputed, upheld on dispute, refused;
    not overturned), most frequent first."""
    counts: dict[str, int] = {}
    for r in rows:
        if r["outcome"] in ("Upheld", "Disputed", "Upheld on dispute", "Refused"):
            for reason in r["reasons"]:
                counts[reason] = counts.get(reason, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def escalation_records(
    as_of: dt.date, nsi_ids: Collection[int] | None = None, url: str | None = None, lao_name: str = "Restricted (LAO)",
    whole: Collection[int] = (),
) -> list[dict[str, Any]]:
    """One row per escalation of the NSIs in scope, oldest first."""
    settings = get_settings()
    cal = get_calendar(settings.calendar)
    scope = set(nsi_ids) if nsi_ids is not None else None
    rows: list[dict[str, Any]] = []
    with UnitOfWork(url) as uow:
        s = uow.session
        entries = s.execute(
            select(HistoryEntry.key, HistoryEntry.detail, HistoryEntry.actor, HistoryEntry.at, *_NSI_COLUMNS)
            .join(Nsi, Nsi.id == HistoryEntry.nsi_id)
            .where(HistoryEntry.event == "escalated")
        ).all()
        wanted = [e for e in entries if scope is None or e.id in scope]
        ids = sorted({e.id for e in wanted})
        actions: dict[tuple[int, str], Any] = {}
        for i in range(0, len(ids), 5000):
            for a in s.execute(
                select(Action.nsi_id, Action.code, Action.title, Action.status, Action.done_on).where(
                    Action.nsi_id.in_(ids[i : i + 5000])
                )
            ):
                actions[(a.nsi_id, a.code)] = a
    for e in wanted:
        at = e.at if e.at.tzinfo else e.at.replace(tzinfo=dt.UTC)
        on = at.astimezone(settings.zone).date()
        if on > as_of:
            continue  # escalated after the report's day (a tracker for an earlier --as-of)
        what = e.key.split(":", 1)[1]
        action = actions.get((e.id, what))
        if action is not None:
            kind, detail = "Overdue action", action.title
            closed = None if action.status == "open" else (_date(action.done_on) or _date(e.closed_on) or as_of)
        else:
            kind = "Concern"
            text = e.detail.removeprefix("concern escalated to the SPO: ")
            detail = "Restricted (LAO): see the case record" if restricted(e, whole) else text
            closed = _date(e.closed_on)
        if closed is not None and closed > as_of:
            closed = None  # closed after the report's day: open on that day
        elif closed is not None and closed < on:
            closed = on  # escalated about a transfer already closed: closed the day it was raised
        rows.append(
            {
                **_case(e, lao_name, whole),
                "kind": kind,
                "detail": detail,
                "by": e.actor,
                "escalated_on": on,
                "open": closed is None,
                "closed_on": closed,
                "age": cal.working_days_between(on, closed or as_of),
            }
        )
    rows.sort(key=lambda r: (r["escalated_on"], r["reference"], r["kind"]))
    return rows
