"""What Prefect may hold about a transfer, and when it lets go: store-side rules, no Prefect here.

The store is the record. Prefect holds references (the NSI reference, the CRN where the case is
not LAO, staff names as the audit) and nothing else; a finished transfer's runs are deleted from
Prefect after `prefect_run_retention_days` (config/settings.yaml). The store's own record is kept
under `store_retention_years`, which this project does not enforce.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from tasks.store.models import HistoryEntry, Nsi, WaitingTask
from tasks.store.unit_of_work import UnitOfWork

# Transfers whose runs the retention sweep deletes: the Case Transfer's and Temporary Move's ends.
FINISHED = ("completed", "withdrawn", "refused", "returned", "converted", "ended", "superseded")
RUNS_DELETED = "prefect runs deleted"  # the history event that marks a transfer already swept


class RetentionError(ValueError):
    pass


def forget_unstarted(reference: str, url: str | None = None) -> bool:
    """Remove an NSI just stored whose run could not be started (the Prefect server refused), so
    nothing is half-stored. Only an NSI with no run: one a run drives is the record. One transaction."""
    with UnitOfWork(url) as uow:
        nsi = uow.session.scalar(select(Nsi).where(Nsi.reference == reference, Nsi.flow_run_id.is_(None)))
        if nsi is None:
            return False
        uow.session.delete(nsi)  # its Action List and history go with it (cascade)
        uow.commit()
        return True


@dataclass(frozen=True)
class Expired:
    """A finished transfer whose Prefect runs are past retention: its reference and every run
    id the store knows for it (the transfer's run and its waiting tasks' runs)."""

    reference: str
    flow_run_ids: tuple[str, ...]


def expired_transfers(today: dt.date, retention_days: int, limit: int = 500, url: str | None = None) -> list[Expired]:
    """Finished transfers closed more than `retention_days` before `today` whose runs have not
    been swept yet, oldest first (an NSI closed on day D is swept from D + retention_days + 1)."""
    if retention_days < 0:
        raise RetentionError(f"prefect_run_retention_days: must be 0 or more, got {retention_days}")
    cutoff = today - dt.timedelta(days=retention_days)
    swept = select(HistoryEntry.nsi_id).where(HistoryEntry.event == RUNS_DELETED)
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(
            select(Nsi.id, Nsi.reference, Nsi.flow_run_id)
            .where(Nsi.status.in_(FINISHED), Nsi.closed_on.is_not(None), Nsi.closed_on < cutoff, Nsi.id.not_in(swept))
            .order_by(Nsi.closed_on, Nsi.id)
            .limit(limit)
        ).all()
        ids = [r.id for r in rows]
        task_runs: dict[int, list[str]] = {}
        if ids:
            for nsi_id, run_id in uow.session.execute(
                select(WaitingTask.nsi_id, WaitingTask.flow_run_id).where(WaitingTask.nsi_id.in_(ids), WaitingTask.flow_run_id.is_not(None))
            ):
                task_runs.setdefault(nsi_id, []).append(run_id)
    return [
        Expired(r.reference, tuple(dict.fromkeys([*([r.flow_run_id] if r.flow_run_id else []), *task_runs.get(r.id, [])])))
        for r in rows
    ]


def mark_runs_deleted(reference: str, count: int, actor: str = "retention", url: str | None = None) -> None:
    """Record in the NSI's history that its Prefect runs were deleted (so the sweep skips it)."""
    with UnitOfWork(url) as uow:
        nsi = uow.session.scalar(select(Nsi).where(Nsi.reference == reference))
        if nsi is None:
            return
        key = "prefect-runs-deleted"
        if uow.session.scalar(select(HistoryEntry.id).where(HistoryEntry.nsi_id == nsi.id, HistoryEntry.key == key)) is None:
            uow.session.add(
                HistoryEntry(nsi_id=nsi.id, key=key, event=RUNS_DELETED, detail=f"{count} Prefect flow runs deleted", actor=actor)
            )
            uow.commit()


def belongs_to(run_name: str, reference: str) -> bool:
    """Is a run named for this NSI (transfer-CT000001, police-checks-CT000001, withdraw-CT000001,
    action-CT000001-documents)? A whole token, so CT000001 never matches CT0000012."""
    return reference.upper() in run_name.upper().split("-")
