"""The record of absences handed over (issue 26), read from the store for the tracker: every
missed appointment recorded before completion (`casetransfer absence`, or a first appointment
recorded as not kept), with the transfer it belongs to and whether the transferring practitioner's
enforcement review is done.

Plain dicts, like tasks/reports/tracker_outcomes.py: the region slices are pickled to the workers.
A limited access case carries its CRN only, and none of the notes typed about it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import select

from tasks.reports.tracker_outcomes import _NSI_COLUMNS, _case, _date, restricted
from tasks.store.models import Action, Nsi, SupervisionContact
from tasks.store.unit_of_work import UnitOfWork

ENFORCEMENT = "enforcement_review"  # tasks/domain/continuity.py: the transferring practitioner's review


def absence_records(
    as_of: dt.date, nsi_ids: Collection[int] | None = None, url: str | None = None, lao_name: str = "Restricted (LAO)",
    whole: Collection[int] = (),
) -> list[dict[str, Any]]:
    """One row per absence of the NSIs in scope recorded by the as-of day, oldest first."""
    scope = set(nsi_ids) if nsi_ids is not None else None
    rows: list[dict[str, Any]] = []
    with UnitOfWork(url) as uow:
        found = uow.session.execute(
            select(
                SupervisionContact.on, SupervisionContact.acceptable, SupervisionContact.first_appointment,
                SupervisionContact.role, SupervisionContact.notes, *_NSI_COLUMNS,
            )
            .join(Nsi, Nsi.id == SupervisionContact.nsi_id)
            .where(SupervisionContact.kind == "absence")
            .order_by(SupervisionContact.on, SupervisionContact.id)
        ).all()  # fmt: skip
        wanted = [r for r in found if (scope is None or r.id in scope) and (_date(r.on) or as_of) <= as_of]
        ids = sorted({r.id for r in wanted})
        review: dict[int, str] = {}
        for i in range(0, len(ids), 5000):
            for nsi_id, status in uow.session.execute(
                select(Action.nsi_id, Action.status).where(Action.code == ENFORCEMENT, Action.nsi_id.in_(ids[i : i + 5000]))
            ):
                review[nsi_id] = status
    for r in wanted:
        rows.append(
            {
                **_case(r, lao_name, whole),
                "on": _date(r.on),
                "acceptable": bool(r.acceptable),
                "first_appointment": bool(r.first_appointment),
                "recorded_by": r.role,
                "notes": None if restricted(r, whole) else (r.notes or None),
                "enforcement": {"open": "Open", "done": "Done"}.get(review.get(r.id, ""), "") if not r.acceptable else "",
            }
        )
    return rows


def host_contacts(as_of: dt.date, nsi_ids: Collection[int], url: str | None = None) -> dict[int, tuple[int, dt.date]]:
    """NSI id -> (contacts its temporary move's host recorded by the as-of day, the latest one's day)."""
    scope = set(nsi_ids)
    out: dict[int, tuple[int, dt.date]] = {}
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(
            select(SupervisionContact.nsi_id, SupervisionContact.on).where(SupervisionContact.kind == "contact")
        ).all()
    for nsi_id, on in rows:
        day = _date(on)
        if nsi_id not in scope or day is None or day > as_of:
            continue
        n, last = out.get(nsi_id, (0, day))
        out[nsi_id] = (n + 1, max(last, day))
    return out
