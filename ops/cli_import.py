"""The `casetransfer` commands for the go-live import (issue 13), registered by ops/cli.py.

Exit codes as for every command: 0 done; 2 bad input (bad rows are listed, with the report
workbook beside the input; the good rows are stored all the same). Output gives rows by number,
CRN and reason (quoting the cell at fault); names and the other raw values go only to the report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from ops.console import fail


def import_tracker(
    file: Path = typer.Argument(..., help="The region's legacy tracker (.xlsx)"),
    sheet: str | None = typer.Option(None, "--sheet", help="The sheet to read (default: the first)"),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="The region's own header spellings (YAML), on top of config/import_mapping.yaml"
    ),
    region: str | None = typer.Option(None, "--region", help="The tracker's region code: PDU and team names resolve there first"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check every row, show which header went to which field, write the report; store nothing"
    ),
    strict: bool = typer.Option(False, "--strict", help="Refuse the file while any header is not mapped to a field"),
    report: Path | None = typer.Option(
        None, "--report", help="Where to write the report workbook (default: FILE.import-report.xlsx beside the input)"
    ),
    start_runs: bool = typer.Option(
        True, "--start-runs/--no-start-runs", help="Start the imported NSIs' flow runs afterwards, in the background"
    ),
) -> None:
    """Import the transfers in flight on a legacy tracker: each good row an NSI marked imported, with
    the work done on its own dates; each bad row reported (row, CRN, reason, raw values) in
    FILE.import-report.xlsx beside it (or --report PATH). Importing the same file again creates nothing new."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ops.boundary import spreadsheet, yaml_file
    from ops.console import err
    from tasks.domain import importer
    from tasks.domain.import_mapping import UnreadableTracker
    from tasks.store.migrate import upgrade

    spreadsheet(file, "FILE")
    if mapping is not None:
        # Read once here through the bounded loader: an alias bomb, a tag, a file that is not UTF-8
        # YAML is refused before any work (the importer reads it again, through the same loader).
        if not isinstance(yaml_file(mapping, "--mapping"), dict | None):
            fail(f"--mapping: {mapping.name} must hold a YAML mapping (see config/import_mapping.yaml)")
    if report is not None and report.suffix.lower() != ".xlsx":
        fail(f"--report: {report.name} is not an .xlsx workbook name")
    upgrade()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err.real) as bar:
        task = bar.add_task("storing", total=None)

        def stored(n: int) -> None:
            bar.advance(task, n)

        def sized(total: int) -> None:
            bar.update(task, total=total)

        try:
            result = importer.import_tracker(
                file, sheet=sheet, mapping_path=mapping, region=region, dry_run=dry_run, strict=strict, report=report,
                progress=stored, on_count=sized,
            )  # fmt: skip
        except UnreadableTracker as exc:
            fail(str(exc))
    if dry_run and result.header is not None:
        print("\n".join(result.header.lines()))
    elif (ignored := result.ignored_line()) is not None:
        print(ignored)
    print(result.line() + f" in {result.seconds:.1f} s")
    for b in result.bad:
        print(f"row {b.number}: {b.crn or '(no CRN)'}: {b.reason} [columns: {', '.join(result.at_fault(b))}]", file=sys.stderr)
    # Also with nothing new: an earlier start may have stopped part-way (the server stopped under
    # it), and importing the file again is what a person does to finish a go-live.
    if not dry_run and start_runs and (result.created or importer.imported_without_run(limit=1)):
        _start_in_background()
    if result.bad:
        raise typer.Exit(2)


def _start_in_background() -> None:
    """The imported NSIs' flow runs start apart from this command, at the configured rate."""
    import os

    from ops.console import answers
    from tasks.settings import get_settings

    settings = get_settings()
    # The server this process was pointed at (`up --port` sets PREFECT_API_URL), else the setting's.
    if not answers(os.environ.get("PREFECT_API_URL") or settings.prefect_api_url):
        print("No Prefect server answered: start the flow runs later with `casetransfer start-imported-runs`.")
        return
    log = settings.effective_import_dir / "start-imported-runs.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own command, no shell
            [sys.executable, "-m", "ops.cli", "start-imported-runs"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    print(f"Starting their flow runs in the background ({settings.import_runs_per_minute:g} a minute; pid {proc.pid}, log {log})")


def start_imported_runs(
    per_minute: float | None = typer.Option(
        None, "--per-minute", help="At most this many a minute (default: the import_runs_per_minute setting)"
    ),
    limit: int | None = typer.Option(None, "--limit", help="Start at most this many"),
) -> None:
    """Start the flow run of each open imported NSI that has none yet (safe to repeat)."""
    import services
    from prefect_runs.engine import EngineError
    from tasks.settings import get_settings

    rate = per_minute or get_settings().import_runs_per_minute
    try:
        started = services.start_imported_runs(rate, limit=limit)
    except EngineError as exc:
        fail(str(exc), 1)
    print(f"{len(started)} flow runs started for imported NSIs")


def register(app: typer.Typer) -> None:
    app.command("import-tracker")(import_tracker)
    app.command("start-imported-runs")(start_imported_runs)
