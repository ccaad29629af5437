"""Escalating overdue actions: the digests' one write to the store.

An action overdue by config/timescales.yaml's escalation_working_days is escalated once, on the
first run that finds it so (tasks/notify/reminders.py: classify): Action.escalated_on is set and
the NSI's history gets an "escalated" entry keyed `escalated:<action code>`, written once however
often the run is repeated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from tasks.notify.reminders import Escalation
from tasks.store.models import Action, HistoryEntry
from tasks.store.unit_of_work import UnitOfWork

ACTOR = "casetransfer reminders"
# SQLite allows 32,766 bound parameters per statement; IN lists are chunked well below that.
_CHUNK = 5000


def record_escalations(
    escalations: Sequence[Escalation], as_of: dt.date, url: str | None = None, flow_run_id: str | None = None
) -> int:
    """Set Action.escalated_on and write each escalation to its NSI's history, once.

    Returns how many history entries were new. Safe to repeat: the history key
    `escalated:<code>` is unique per NSI, and escalated_on keeps the first day.
    """
    if not escalations:
        return 0
    for attempt in range(2):
        with UnitOfWork(url) as uow:
            session = uow.session
            wanted = {(e.nsi_id, f"escalated:{e.code}"): e for e in escalations}
            have: set[tuple[int, str]] = set()
            nsi_ids = sorted({e.nsi_id for e in escalations})
            for i in range(0, len(nsi_ids), _CHUNK):
                rows = session.execute(
                    select(HistoryEntry.nsi_id, HistoryEntry.key).where(
                        HistoryEntry.nsi_id.in_(nsi_ids[i : i + _CHUNK]), HistoryEntry.key.like("escalated:%")
                    )
                )
                have.update((n, k) for n, k in rows)
            new = [
                {
                    "nsi_id": e.nsi_id,
                    "key": key,
                    "event": "escalated",
                    "detail": (
                        f"{e.title}: {e.working_days} working days overdue (due {e.due_on:%d %B %Y}); "
                        f"escalated to the SPOs of {e.owner_pdu} and {e.other_pdu}"
                    ),
                    "actor": ACTOR,
                    "flow_run_id": flow_run_id,
                }
                for (nsi_id, key), e in wanted.items()
                if (nsi_id, key) not in have
            ]
            if new:
                session.execute(insert(HistoryEntry), new)
            action_ids = sorted({e.action_id for e in escalations})
            for i in range(0, len(action_ids), _CHUNK):
                # Only a later date is replaced: a re-run, or a run for an earlier --as-of, keeps the first day.
                session.execute(
                    update(Action)
                    .where(Action.id.in_(action_ids[i : i + _CHUNK]))
                    .where((Action.escalated_on.is_(None)) | (Action.escalated_on > as_of))
                    .values(escalated_on=as_of)
                )
            try:
                uow.commit()
                return len(new)
            except IntegrityError:
                # Another run recorded some of these between our read and our write: read again.
                uow.rollback()
                if attempt:
                    raise
    return 0
