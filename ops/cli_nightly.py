"""The nightly jobs, run now from the command line: `remind` (the SPO digests) and `tracker` (the
MIS workbooks, `--send` to deliver them), added to the app by ops/cli.py in their place in its
--help; and run_job, the one way any mail job runs from here (ops/cli_handovers.py's
`handover-reminders` uses it too).

Exit codes as for every command: 0 done; 1 a run that failed, or emails that stayed queued for the
next run; 2 bad input.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ops.console import err, fail, out

if TYPE_CHECKING:
    from tasks.notify.mail_job import Summary


def run_job(what: str, in_process: Callable[[], Summary[Any]], flow: str | None = None, **parameters: Any) -> Summary[Any]:
    """Run a mail job and return its summary, whether every email went or some stayed queued.

    With `flow` (an entrypoint, "module:function" as in prefect.yaml) and a Prefect server
    configured (PREFECT_API_URL, which the CLI sets when the local stack answers), the job runs as
    that flow with these parameters: a run the Prefect UI shows. Otherwise `in_process` runs it
    here, without starting Prefect's temporary server (on a busy machine that timed out after 20 s
    and ended the command in a traceback). A run that failed for any other reason exits 1, naming
    `what`.
    """
    from tasks.notify.mail_job import NotDelivered, Summary

    result: Any
    if flow and os.environ.get("PREFECT_API_URL"):
        module, _, name = flow.partition(":")
        state = getattr(importlib.import_module(module), name)(**parameters, return_state=True)
        result = state.result(raise_on_failure=False)
    else:
        try:
            result = in_process()
        except NotDelivered as exc:
            result = exc
    summary = result.summary if isinstance(result, NotDelivered) else result
    if not isinstance(summary, Summary):
        fail(f"{what}: the run failed: {result}", 1)
    return summary


def _day(value: str | None, field: str) -> dt.date:
    from ops.boundary import as_of

    return as_of(value, field)


def remind(
    as_of: str | None = typer.Option(None, "--as-of", help="The day to remind for, YYYY-MM-DD (default: today, Europe/London)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Render and print what would be sent; send, escalate and log nothing"),
) -> None:
    """Send the reminder and escalation digests now: one email per PDU transfer mailbox (the nightly-reminders
    flow's night: as a flow run when a Prefect server answers, in this process when none does)."""
    from email import message_from_string
    from email import policy as email_policy

    from tasks.notify import mail_job
    from tasks.notify.digests import DIGESTS, run_reminders

    day = _day(as_of, "--as-of")
    if dry_run:
        # No flow run: a preview changes nothing, so there is nothing for the Prefect UI to show.
        summary, emails = mail_job.preview(DIGESTS, day)
        for e in emails:
            msg = message_from_string(e.body, policy=email_policy.default)
            body = msg.get_body(preferencelist=("plain",))
            print(f"To: {e.recipient}\nSubject: {e.subject}\n")
            print(body.get_content() if body is not None else "")
            print("=" * 78)
        for line in summary.lines():
            print(line)
        return
    summary = run_job("reminders", lambda: run_reminders(day), "flows.nightly_reminders:nightly_reminders", as_of=day)
    for line in summary.lines():
        print(line)
    if summary.failed:
        raise typer.Exit(1)


def tracker(
    as_of: str | None = typer.Option(None, "--as-of", help="The report's day, YYYY-MM-DD (default: today)"),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder for YYYY-MM-DD/<region>.xlsx (default: the tracker_dir setting)"
    ),
    region: str | None = typer.Option(None, "--region", help="One region code, e.g. N07 (default: every region)"),
    send: bool = typer.Option(
        False, "--send", help="Also deliver them, as the nightly job does (config/tracker_mailboxes.yaml; working days only)"
    ),
    as_: str | None = typer.Option(
        None, "--as", help="A person's own copy: the limited access cases on their access list whole (in production: yours)"
    ),
) -> None:
    """Write the MIS tracker now: one workbook per region and national.xlsx (the nightly-tracker
    flow's work, run here without a Prefect server). With --as, a person's own copy, never sent:
    each limited access row in it is in the access log."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from sqlalchemy.exc import DBAPIError

    from ops.boundary import out_dir as checked_out_dir
    from tasks.reports.tracker import RegionResult, TrackerData, check_region, run_tracker

    day = _day(as_of, "--as-of")
    if as_ and send:
        fail("--as: a person's own copy is never delivered to the regions' mailboxes; leave out --send")
    reader = _reader(as_) if as_ else None
    out_dir = checked_out_dir(_own_folder(out_dir, reader[0]) if reader else out_dir)
    try:
        check_region(region)
    except ValueError as exc:
        fail(f"--region: {str(exc).removeprefix('region: ')}")
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err.real, transient=False) as progress:
        reading = progress.add_task("reading the store", total=1)
        bars: dict[str, Any] = {}

        def loaded(data: TrackerData, codes: list[str]) -> None:
            progress.update(reading, completed=1, description=f"{len(data.nsis)} NSIs, {len(data.actions)} actions read")
            for code in codes:
                bars[code] = progress.add_task(f"{code} {data.regions[code]}", total=1)

        def written(result: RegionResult) -> None:
            progress.update(
                bars[result.region_code],
                completed=1,
                description=f"{result.region_code} {result.region_name}: {result.nsis} NSIs",
            )

        try:
            run = run_tracker(day, out_dir, region, progress=written, on_loaded=loaded, whole=reader[1] if reader else ())
        except DBAPIError as exc:
            fail(f"database: {exc.orig}; is it migrated (casetransfer db upgrade)?", 1)
    table = Table("region", "NSIs", "open", "overdue actions", "workbook", title=f"MIS tracker {run.as_of}", title_justify="left")
    for r in run.regions:
        table.add_row(f"{r.region_name} ({r.region_code})", str(r.nsis), str(r.open), str(r.overdue_actions), r.path)
    out.print(table)
    print(run.national)
    err.print(f"{len(run.regions)} regional workbooks and the national summary in {run.seconds:.1f} s", highlight=False)
    if reader is not None and run.data is not None:
        from tasks.domain.access_log import log_tracker_rows

        rows = run.data.nsis[run.data.nsis["lao"]]
        written_regions = {r.region_code for r in run.regions}
        mine = rows[rows["t_region"].isin(written_regions) | rows["r_region"].isin(written_regions)]
        log_tracker_rows(reader[0], {int(i): int(i) in reader[1] for i in mine["id"]})
    if send:
        from tasks.reports.tracker_delivery import deliver_trackers, workbooks_of

        summary = run_job("tracker delivery", lambda: deliver_trackers(run.as_of, workbooks_of(run.regions, run.national)))
        for line in summary.lines():
            err.print(line, highlight=False)
        if summary.failed:
            fail(summary.not_delivered(), 1)


def _reader(as_: str) -> tuple[Any, set[int]]:
    """`tracker --as`: who the copy is for, and the limited access NSIs they may see whole."""
    from ops import actor
    from tasks.domain.access_log import seen_whole_by

    people, viewer = actor.viewer(as_)
    if viewer.person is None:  # pragma: no cover - actor.viewer refuses an --as it cannot find
        fail(f"--as: no one on the staff list signs in as {as_!r}")
    return viewer, set(seen_whole_by(viewer.person, people))


def _own_folder(out_dir: Path | None, viewer: Any) -> Path:
    """A person's copy never lands where the nightly workbooks are delivered from."""
    from tasks.settings import get_settings

    settings = get_settings()
    if out_dir is None:
        return settings.data_dir / "trackers-for" / viewer.person.signin
    if out_dir.resolve() == settings.effective_tracker_dir.resolve():
        fail(f"--out: {out_dir} is where the regions' workbooks are delivered from; give a folder of your own")
    return out_dir
