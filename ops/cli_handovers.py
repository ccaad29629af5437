"""The `casetransfer` commands for POM-COM handovers (issue 14), registered by ops/cli.py.

Exit codes as for every command: 0 done; 2 bad input (each bad row and field named, nothing
stored); 3 not found. Output names cases by CRN and dates only: a terminal may be shared or logged.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import typer

from ops import actor
from ops.console import fail


def _day(value: str | None, option: str) -> dt.date:
    from ops.boundary import as_of

    return as_of(value, option)


def _migrated() -> None:
    from tasks.store.migrate import upgrade

    upgrade()


def import_handovers(
    file: Path = typer.Argument(..., help="A .csv or .xlsx file: one row per handover, a header row (field names or their spellings)"),
    by: str | None = typer.Option(None, "--by", help="Who is importing (default: your login)"),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="The office's own header spellings (YAML: columns: {field: [headers]}), on top of config/handovers.yaml"
    ),
) -> None:
    """Load POM-COM handover records from a spreadsheet. Every row is checked first: any bad row is
    reported with its row number and nothing is stored. A CRN already stored is corrected; an
    identical row changes nothing."""
    from ops.boundary import spreadsheet
    from tasks.domain.handovers import HandoverInputError, import_file

    spreadsheet(file, "FILE", (".csv", ".xlsx"))
    if mapping is not None and not mapping.is_file():
        fail(f"--mapping: {mapping} does not exist", 3)
    _migrated()
    try:
        result = import_file(file, actor.anyone(by), mapping=mapping)
    except HandoverInputError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        n = len(exc.errors)
        fail(f"{file.name}: {n} {'problem' if n == 1 else 'problems'}; nothing was stored")
    print(f"{file.name}: {result.line()}")


def _options(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def add_handover(
    crn: str = typer.Option(..., "--crn"),
    name: str = typer.Option(..., "--name"),
    prison: str = typer.Option(..., "--prison"),
    pom_name: str = typer.Option(..., "--pom-name"),
    pom_email: str = typer.Option(..., "--pom-email"),
    com_name: str = typer.Option(..., "--com-name"),
    com_email: str = typer.Option(..., "--com-email"),
    omu_mailbox: str = typer.Option(..., "--omu-mailbox"),
    sentence_type: str = typer.Option(..., "--sentence-type", help="A code from config/handovers.yaml, e.g. SDS"),
    sentence_length_months: str = typer.Option(..., "--sentence-months"),
    sentence_date: str | None = typer.Option(
        None, "--sentence-date", help="The sentence date or custody start, YYYY-MM-DD: time to serve runs from it to release"
    ),
    release_date: str = typer.Option(..., "--release-date", help="YYYY-MM-DD"),
    handover_date: str = typer.Option(..., "--handover-date", help="The date the handover must happen by, YYYY-MM-DD"),
    com_team_code: str | None = typer.Option(None, "--com-team", help="The COM's team code (its PDU follows)"),
    com_pdu_code: str | None = typer.Option(None, "--com-pdu", help="The COM's PDU code, if no team is given"),
    lao: bool = typer.Option(False, "--lao/--no-lao", help="A limited access (restricted) case"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """Add one POM-COM handover record."""
    from tasks.domain.handovers import HandoverInputError, check_record, get_record, save_records

    values = _options(
        crn=crn,
        name=name,
        prison=prison,
        pom_name=pom_name,
        pom_email=pom_email,
        com_name=com_name,
        com_email=com_email,
        omu_mailbox=omu_mailbox,
        sentence_type=sentence_type,
        sentence_length_months=sentence_length_months,
        sentence_date=sentence_date,
        release_date=release_date,
        handover_date=handover_date,
        com_team_code=com_team_code,
        com_pdu_code=com_pdu_code,
        lao=lao,
    )
    _migrated()
    try:
        record = check_record(values)
        if get_record(record.crn) is not None:
            fail(f"crn: a handover for {record.crn} is already stored; change it with correct-handover {record.crn}")
        save_records([record], actor.anyone(by))
    except HandoverInputError as exc:
        fail(str(exc))
    print(f"{record.crn}: handover by {record.handover_date} stored")


def correct_handover(
    crn: str = typer.Argument(...),
    name: str | None = typer.Option(None, "--name"),
    prison: str | None = typer.Option(None, "--prison"),
    pom_name: str | None = typer.Option(None, "--pom-name"),
    pom_email: str | None = typer.Option(None, "--pom-email"),
    com_name: str | None = typer.Option(None, "--com-name"),
    com_email: str | None = typer.Option(None, "--com-email"),
    omu_mailbox: str | None = typer.Option(None, "--omu-mailbox"),
    sentence_type: str | None = typer.Option(None, "--sentence-type"),
    sentence_length_months: str | None = typer.Option(None, "--sentence-months"),
    sentence_date: str | None = typer.Option(None, "--sentence-date", help="YYYY-MM-DD"),
    release_date: str | None = typer.Option(None, "--release-date"),
    handover_date: str | None = typer.Option(None, "--handover-date"),
    com_team_code: str | None = typer.Option(None, "--com-team"),
    com_pdu_code: str | None = typer.Option(None, "--com-pdu"),
    lao: bool | None = typer.Option(None, "--lao/--no-lao"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """Correct a stored POM-COM handover: only the options given change; the whole record is checked again.
    A corrected handover date or address is sent again; the COM's calendar entry is updated, not duplicated."""
    from tasks.domain.handovers import HandoverInputError, correct_record

    changes = _options(
        name=name,
        prison=prison,
        pom_name=pom_name,
        pom_email=pom_email,
        com_name=com_name,
        com_email=com_email,
        omu_mailbox=omu_mailbox,
        sentence_type=sentence_type,
        sentence_length_months=sentence_length_months,
        sentence_date=sentence_date,
        release_date=release_date,
        handover_date=handover_date,
        com_team_code=com_team_code,
        com_pdu_code=com_pdu_code,
        lao=lao,
    )
    if not changes:
        fail("nothing to correct: give at least one option, e.g. --handover-date 2027-02-01")
    _migrated()
    try:
        result = correct_record(crn, changes, actor.anyone(by))
    except HandoverInputError as exc:
        code = 3 if str(exc).startswith("crn: no handover stored") else 2
        fail(str(exc), code)
    print(f"{crn.strip().upper()}: {'corrected' if result.updated else 'unchanged'}")


def record_handover_session(
    crn: str = typer.Argument(...),
    on: str = typer.Option(..., "--on", help="The day the in-person session was held, YYYY-MM-DD"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """Record an in-person supervision session held before a POM-COM handover."""
    from ops.boundary import day as checked_day
    from tasks.domain.handovers import HandoverInputError, record_session

    day = checked_day(on, "--on")
    _migrated()
    try:
        new = record_session(crn, day, actor.anyone(by))
    except HandoverInputError as exc:
        fail(str(exc))
    except LookupError as exc:
        fail(str(exc).strip("'\""), 3)
    print(f"{crn.strip().upper()}: in-person session on {day} {'recorded' if new else 'was already recorded'}")


def handover_reminders(
    as_of: str | None = typer.Option(None, "--as-of", help="The day, YYYY-MM-DD (default: today, Europe/London)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be sent; send and log nothing"),
) -> None:
    """Send today's POM-COM handover emails and diary alerts now (the handover-reminders flow)."""
    from ops.cli_nightly import run_job
    from tasks.notify import mail_job
    from tasks.notify.handover_emails import HANDOVERS, run_handover_reminders

    day = _day(as_of, "--as-of")
    if dry_run:
        summary, emails = mail_job.preview(HANDOVERS, day)
        for e in emails:
            print(f"{e.kind} to {e.recipient}: {e.subject}")
        for line in summary.lines():
            print(line)
        return
    summary = run_job(
        "handover-reminders", lambda: run_handover_reminders(day), "flows.handover_reminders:handover_reminders", as_of=day
    )
    for line in summary.lines():
        print(line)
    if summary.failed:
        raise typer.Exit(1)


def handovers(as_of: str | None = typer.Option(None, "--as-of", help="The day, YYYY-MM-DD (default: today)")) -> None:
    """List the POM-COM handovers in their report window: CRN, deadline, report and alert days, session flag."""
    from tasks.notify.handover_reminders import plan_for
    from tasks.notify.handover_report import describe

    day = _day(as_of, "--as-of")
    plan = plan_for(day)
    for line in describe(plan.report):
        print(line)
    print(f"{len(plan.report)} handovers in the report on {day}")


def seed_handovers(
    seed: int = typer.Option(0, "--seed", help="Same seed and day, same records"),
    records: int | None = typer.Option(None, "--records", help="How many (default: config/handovers.yaml demo.records)"),
    as_of: str | None = typer.Option(None, "--as-of", help="Handover dates fall after this day (default: today)"),
) -> None:
    """Store example POM-COM handovers for the demo (placeholder addresses: never mailed through SMTP)."""
    from ops.boundary import count
    from tasks.demo.handover_seed import seed_handovers as write

    if records is not None:
        count(records, "--records", "seed_handover_records")
    count(seed, "--seed", "seed")
    day = _day(as_of, "--as-of")
    _migrated()
    print(f"example handovers: {write(day, seed, records).line()}")


def register(app: typer.Typer) -> None:
    """Add the handover commands to the `casetransfer` app."""
    app.command("import-handovers")(import_handovers)
    app.command("add-handover")(add_handover)
    app.command("correct-handover")(correct_handover)
    app.command("record-handover-session")(record_handover_session)
    app.command("handover-reminders")(handover_reminders)
    app.command("handovers")(handovers)
    app.command("seed-handovers")(seed_handovers)
