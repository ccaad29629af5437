"""nightly-tracker: every region's MIS workbook and the national summary, each night (prefect.yaml).

Thin on purpose: the work is in tasks/reports/tracker.py, which `casetransfer tracker` also runs without
Prefect. Here each region is a task run, so the UI shows which region failed or ran long; the
CPU-bound writing happens in a process pool that the region tasks wait on (threads alone would
serialise on the GIL).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from tasks.limits import check_date
from tasks.notify.mail_job import NotDelivered, Summary
from tasks.notify.sent_log import undelivered
from tasks.reports import tracker, tracker_delivery
from tasks.settings import get_settings

# The data are large and rebuilt every night: nothing to cache, nothing worth persisting.
EPHEMERAL: dict[str, Any] = dict(cache_policy=NO_CACHE, persist_result=False)


@task(name="read-store", retries=2, retry_delay_seconds=[30, 120], **EPHEMERAL)
def read_store(as_of: dt.date) -> tracker.TrackerData:
    data = tracker.load_data(as_of)
    get_run_logger().info("%d NSIs and %d actions in scope on %s", len(data.nsis), len(data.actions), as_of)
    return data


@task(name="write-region", task_run_name="region-{code}", **EPHEMERAL)
def write_region(data: tracker.TrackerData, code: str, folder: Path, pool: Executor | None) -> tracker.RegionResult:
    result = tracker.submit_region(pool, data, code, folder).result()
    get_run_logger().info(
        "%s: %d NSIs, %d overdue actions -> %s (%.1f s)", code, result.nsis, result.overdue_actions, result.path, result.seconds
    )
    return result


@task(name="write-national", **EPHEMERAL)
def write_national(data: tracker.TrackerData, results: list[tracker.RegionResult], path: Path) -> Path:
    return tracker.write_national(data, results, path)


@task(name="publish-artifact", **EPHEMERAL)
def publish(
    data: tracker.TrackerData,
    results: list[tracker.RegionResult],
    national: Path,
    delivered: Summary[tracker_delivery.TrackerFacts] | None = None,
) -> None:
    create_table_artifact(
        key="nightly-tracker",
        table=tracker.artifact_table(results, national, total_nsis=len(data.nsis)),
        description=f"MIS tracker for {data.as_of:%d %B %Y}: NSIs per region and where each workbook is.",
    )
    markdown = tracker_delivery.artifact_markdown(
        data.as_of,
        results,
        national,
        tracker.headline(data, results),
        data.transfer_working_days,
        failed=undelivered(),
        delivered=delivered.lines() if delivered else (),
    )
    create_markdown_artifact(key="nightly-tracker-summary", markdown=markdown, description="MIS tracker summary")


@task(name="deliver-workbooks", **EPHEMERAL)
def deliver(as_of: dt.date, results: list[tracker.RegionResult], national: Path) -> Summary[tracker_delivery.TrackerFacts]:
    summary = tracker_delivery.deliver_trackers(as_of, tracker_delivery.workbooks_of(results, national))
    for line in summary.lines():
        get_run_logger().info(line)
    return summary


def _run_name() -> str:
    as_of = flow_run.parameters.get("as_of") or get_settings().current_date()
    return f"tracker-{as_of}"


@flow(name="nightly-tracker", flow_run_name=_run_name, log_prints=True)
def nightly_tracker(
    as_of: dt.date | None = None, out_dir: str | None = None, region: str | None = None, send: bool = True
) -> dict[str, Any]:
    """Write DIR/YYYY-MM-DD/<region_code>.xlsx for every region (or one), and national.xlsx; on a
    working day (send) email each to its region and the national list (config/tracker_mailboxes.yaml)."""
    # A deployment parameter crosses the same boundary as --as-of (config/limits.yaml: dates.as_of).
    as_of = check_date("as_of", as_of or get_settings().current_date(), "as_of")

    def write_regions(data: tracker.TrackerData, codes: list[str], folder: Path, pool: Executor | None) -> list[tracker.RegionResult]:
        futures = [write_region.submit(data, code, folder, pool) for code in codes]  # all submitted, then awaited
        return [f.result() for f in futures]

    steps = tracker.NightSteps(read=read_store, write_regions=write_regions, write_national=write_national)
    run = tracker.run_tracker(as_of, Path(out_dir) if out_dir else None, region, steps=steps)
    data, results, national, folder = run.data, run.regions, run.national, run.folder
    delivered, not_delivered = None, None
    if send:
        try:
            delivered = deliver(as_of, results, national)
        except NotDelivered as exc:
            delivered, not_delivered = exc.summary, exc
    # Published either way: the artifact lists what was not delivered, then the run fails visibly.
    publish(data, results, national, delivered)
    if not_delivered is not None:
        raise not_delivered
    return {
        "as_of": as_of.isoformat(),
        "folder": str(folder),
        "national": str(national),
        "regions": {r.region_code: r.path for r in results},
        "delivered": delivered.lines() if delivered else [],
    }
