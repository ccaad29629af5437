"""prefect-retention: delete finished transfers' flow runs from Prefect after the retention period.

Which transfers and which runs is the store's answer (tasks.domain.privacy); the deletion goes through
prefect_runs.engine. The store's record is kept (its own retention is not enforced here, see README).
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger

from prefect_runs import engine
from tasks.domain import privacy
from tasks.settings import get_settings


def sweep(today: dt.date | None = None, retention_days: int | None = None) -> dict[str, int]:
    """Delete the runs of every finished transfer past retention; reference -> runs deleted."""
    settings = get_settings()
    today = today or settings.current_date()
    days = settings.prefect_run_retention_days if retention_days is None else retention_days
    done: dict[str, int] = {}
    for expired in privacy.expired_transfers(today, days):
        count = engine.delete_runs(list(expired.flow_run_ids), named_for=expired.reference)
        privacy.mark_runs_deleted(expired.reference, count)
        done[expired.reference] = count
    return done


@flow(name="prefect-retention", flow_run_name="prefect-retention")
def prefect_retention(retention_days: int | None = None) -> dict[str, int]:
    """Delete from Prefect the flow runs (with their task runs, inputs and artifacts) of transfers
    completed, withdrawn or refused more than `retention_days` ago (default: config)."""
    done = sweep(retention_days=retention_days)
    get_run_logger().info("deleted the Prefect runs of %d finished transfers (%d runs)", len(done), sum(done.values()))
    return done
