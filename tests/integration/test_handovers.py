"""POM-COM handovers end to end: the store (SQLite and PostgreSQL), imports, a real SMTP server on
loopback (aiosmtpd), the .ics parsed back with icalendar, the tracker's .xlsx read back with openpyxl.

The days (handover on Monday 15 February 2027):
  one-month alert  Friday 15 January      (15 February - 1 month)
  28-day report    Monday 18 January      (15 February - 28 days)
  two-week alert   Monday 1 February      (15 February - 2 weeks)
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from icalendar import Calendar
from sqlalchemy import func, select
from support.smtp import SmtpServer, parts, smtp_on_loopback
from typer.testing import CliRunner

from ops.cli import app
from tasks.domain.handovers import (
    FIELDS,
    HandoverInputError,
    check_rows,
    correct_record,
    import_file,
    record_session,
    save_records,
)
from tasks.notify import handover_emails, handover_report
from tasks.notify import handover_reminders as hr
from tasks.notify.mail_job import NotDelivered, Summary
from tasks.settings import ROOT
from tasks.store.models import PomComHandover, PomComSession, SentEmail
from tasks.store.unit_of_work import UnitOfWork

HANDOVER = dt.date(2027, 2, 15)
ONE_MONTH = dt.date(2027, 1, 15)
REPORT = dt.date(2027, 1, 18)
TWO_WEEKS = dt.date(2027, 2, 1)
POM, COM, OMU = "pom.one@justice.test", "com.one@probation.test", "omu.hmpmanchester@justice.test"


def row(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "crn": "X100001",
        "name": "Robin Example",
        "prison": "HMP Manchester",
        "pom_name": "Pat Pom",
        "pom_email": POM,
        "com_name": "Chris Com",
        "com_email": COM,
        "com_team_code": "N50CAD",
        "com_pdu_code": "",
        "omu_mailbox": OMU,
        "sentence_type": "SDS",
        "sentence_length_months": 24,
        "release_date": "2027-03-01",
        "handover_date": HANDOVER.isoformat(),
        "lao": "no",
    }
    values.update(changes)
    return values


def store(*rows: dict[str, Any]) -> None:
    save_records(check_rows([(i + 2, r) for i, r in enumerate(rows)], "test"), "tester")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(FIELDS))
        w.writeheader()
        w.writerows(rows)
    return path


def count(model: type) -> int:
    with UnitOfWork() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def smtp(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    with smtp_on_loopback(monkeypatch) as server:
        yield server


def run(day: dt.date) -> Summary[handover_emails.HandoverFacts]:
    return handover_emails.run_handover_reminders(day)


def received(server: SmtpServer) -> list[tuple[str, str]]:
    """(recipient, subject) of every message the server took, in order."""
    return [(rcpt[0], str(m["Subject"])) for rcpt, m in server.inbox.messages]


def calendar_of(msg: EmailMessage) -> Calendar:
    (part,) = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    return Calendar.from_ical(part.get_payload(decode=True))


def event_of(msg: EmailMessage) -> Any:
    (event,) = calendar_of(msg).walk("VEVENT")
    return event


# --- the store: imports --------------------------------------------------------------------------


def test_a_file_with_bad_rows_stores_nothing_and_names_each_row(store_url: str, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "handovers.csv",
        [row(), row(crn="X100002", handover_date=""), row(crn="X100003", com_email="chris at probation")],
    )
    with pytest.raises(HandoverInputError) as caught:
        import_file(path, "tester")
    assert caught.value.errors == [
        "handovers.csv row 3: handover_date: is required",
        "handovers.csv row 4: com_email: 'chris at probation' is not an email address",
    ]
    assert count(PomComHandover) == 0  # not even the good row 2

    # The CLI says the same on stderr, exits 2, and still stores nothing.
    result = CliRunner().invoke(app, ["import-handovers", str(path), "--by", "tester"])
    assert result.exit_code == 2
    assert "row 3: handover_date: is required" in result.output and "nothing was stored" in result.output
    assert count(PomComHandover) == 0


def test_a_repeat_import_creates_nothing_and_a_changed_row_corrects_the_record(store_url: str, tmp_path: Path) -> None:
    rows = [row(), row(crn="X100002", name="Sam Second")]
    path = write_csv(tmp_path / "handovers.csv", rows)
    assert import_file(path, "tester").line() == "2 created, 0 corrected, 0 unchanged"
    assert import_file(path, "tester").line() == "0 created, 0 corrected, 2 unchanged"
    assert count(PomComHandover) == 2
    write_csv(path, [row(handover_date="2027-02-22"), rows[1]])
    result = import_file(path, "tester")
    assert (result.updated, result.unchanged) == (["X100001"], ["X100002"])
    with UnitOfWork() as uow:
        h = uow.session.scalars(select(PomComHandover).where(PomComHandover.crn == "X100001")).one()
        assert (h.handover_date, h.revision, h.com_pdu_code, h.com_region_code) == (dt.date(2027, 2, 22), 2, "N50GMS", "N50")


def test_an_xlsx_import_takes_date_cells_and_keeps_formula_like_text_as_text(store_url: str, tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append([f.replace("_", " ").title() for f in FIELDS])  # "Pom Email" etc.: headers as people type them
    values = row(name='=HYPERLINK("http://x","y")', release_date=dt.datetime(2027, 3, 1), handover_date=dt.date(2027, 2, 15))
    ws.append([values.get(f) or None for f in FIELDS])
    ws.cell(2, FIELDS.index("name") + 1).data_type = "s"  # typed text that starts with '=', not a formula
    ws.append([None] * len(FIELDS))  # a blank line is not a bad row
    path = tmp_path / "handovers.xlsx"
    wb.save(path)
    assert import_file(path, "tester").created == ["X100001"]
    with UnitOfWork() as uow:
        h = uow.session.scalars(select(PomComHandover)).one()
        assert h.name == '=HYPERLINK("http://x","y")' and h.release_date == dt.date(2027, 3, 1)


def test_the_cli_adds_corrects_and_records_sessions_one_at_a_time(store_url: str) -> None:
    cli = CliRunner()
    args = ["add-handover", "--crn", "X100001", "--name", "Robin Example", "--prison", "HMP Manchester"]
    args += ["--pom-name", "Pat Pom", "--pom-email", POM, "--com-name", "Chris Com", "--com-email", COM, "--com-team", "N50CAD"]
    args += ["--omu-mailbox", OMU, "--sentence-type", "SDS", "--sentence-months", "24"]
    args += ["--release-date", "2027-03-01", "--handover-date", "2027-02-15", "--by", "tester"]
    assert cli.invoke(app, args).exit_code == 0
    again = cli.invoke(app, args)
    assert again.exit_code == 2 and "already stored; change it with correct-handover X100001" in again.output
    bad = cli.invoke(app, ["correct-handover", "X100001", "--handover-date", "2027-04-01"])
    assert bad.exit_code == 2 and "is after the release date" in bad.output
    ok = cli.invoke(app, ["correct-handover", "x100001", "--handover-date", "2027-02-22", "--by", "tester"])
    assert ok.exit_code == 0 and "X100001: corrected" in ok.output
    assert cli.invoke(app, ["correct-handover", "X999999", "--name", "Nobody"]).exit_code == 3
    assert cli.invoke(app, ["record-handover-session", "X100001", "--on", "2026-12-01"]).exit_code == 0
    twice = cli.invoke(app, ["record-handover-session", "X100001", "--on", "2026-12-01"])
    assert twice.exit_code == 0 and "already recorded" in twice.output
    assert cli.invoke(app, ["record-handover-session", "X100001", "--on", "2027-12-01"]).exit_code == 2  # the future
    assert cli.invoke(app, ["record-handover-session", "X999999", "--on", "2026-12-01"]).exit_code == 3
    assert count(PomComSession) == 1


# --- the emails: the right people, the right day, once -----------------------------------------------


def test_the_right_people_get_the_right_email_on_the_right_day_once(smtp: SmtpServer) -> None:
    store(row())
    assert run(ONE_MONTH - dt.timedelta(days=1)).sent == 0
    assert received(smtp) == []

    first = run(ONE_MONTH)  # the one-month diary alert, to the COM only
    assert (first.sent, first.facts.alerts, first.facts.reported) == (1, 1, 0)
    ((to, subject),) = received(smtp)
    assert to == COM and "one month to the POM-COM handover for CRN X100001 (by 15 February 2027)" in subject

    report = run(REPORT)  # the 28-day report: the POM, the COM and the prison OMU mailbox, each once
    assert (report.facts.reported, report.sent) == (1, 3)
    assert sorted(to for to, _ in received(smtp)[1:]) == sorted([POM, COM, OMU])
    for _, subject in received(smtp)[1:]:
        assert subject.startswith("OFFICIAL-SENSITIVE: POM-COM handover for CRN X100001 must happen by 15 February 2027")
    text, html = parts(smtp.inbox.messages[1][1])
    assert "must happen by Monday 15 February 2027" in text and "Robin Example, CRN X100001" in text
    assert "15 February 2027" in html

    again = run(REPORT)
    assert (again.sent, again.skipped) == (0, 4)
    assert run(REPORT + dt.timedelta(days=1)).sent == 0
    assert len(received(smtp)) == 4

    last = run(TWO_WEEKS)
    assert last.sent == 1 and received(smtp)[-1][0] == COM and "two weeks to" in received(smtp)[-1][1]
    assert run(HANDOVER + dt.timedelta(days=1)).sent == 0  # past the deadline: nothing more
    assert len(received(smtp)) == 5
    with UnitOfWork() as uow:
        statuses = uow.session.scalars(select(SentEmail.status).where(SentEmail.kind.like("handover_%"))).all()
    assert sorted(statuses) == ["sent"] * 5


def test_the_ics_parses_with_the_deadline_and_one_stable_uid_updated_by_each_alert(smtp: SmtpServer) -> None:
    store(row())
    run(ONE_MONTH)
    run(TWO_WEEKS)
    alerts = [m for rcpt, m in smtp.inbox.messages if "diary alert" in str(m["Subject"])]
    assert len(alerts) == 2
    first, second = (event_of(m) for m in alerts)
    assert calendar_of(alerts[0])["METHOD"] == "PUBLISH"
    assert first.decoded("DTSTART") == HANDOVER and first.decoded("DTEND") == HANDOVER + dt.timedelta(days=1)
    assert str(first["UID"]) == str(second["UID"]) == "pom-com-handover-x100001@probation.example.gov.uk"
    assert int(second["SEQUENCE"]) > int(first["SEQUENCE"])
    assert "X100001" in str(first["SUMMARY"]) and "Robin" not in str(first["SUMMARY"])

    # A corrected deadline is news: a new alert with the same UID, a later date and a higher SEQUENCE.
    correct_record("X100001", {"handover_date": "2027-02-22"}, "tester")
    run(dt.date(2027, 2, 8))  # two weeks before 22 February
    newest = event_of([m for rcpt, m in smtp.inbox.messages if "diary alert" in str(m["Subject"])][-1])
    assert str(newest["UID"]) == str(first["UID"])
    assert newest.decoded("DTSTART") == dt.date(2027, 2, 22)
    assert int(newest["SEQUENCE"]) > int(second["SEQUENCE"])


def test_a_28_day_point_on_a_bank_holiday_is_reported_the_working_day_before(smtp: SmtpServer) -> None:
    store(row(handover_date="2027-01-22", release_date="2027-02-01"))  # 28 days before: Christmas Day
    assert run(dt.date(2026, 12, 23)).facts.reported == 0
    on_eve = run(dt.date(2026, 12, 24))
    assert (on_eve.facts.reported, on_eve.facts.report_emails) == (1, 3)
    assert sorted(to for to, s in received(smtp) if "must happen by 22 January 2027" in s) == sorted([POM, COM, OMU])
    assert run(dt.date(2026, 12, 25)).working_day is False
    assert run(dt.date(2026, 12, 29)).sent == 0  # already sent on the 24th: not again
    with UnitOfWork() as uow:
        days = set(uow.session.scalars(select(SentEmail.day).where(SentEmail.kind == "handover_report")))
    assert days == {dt.date(2026, 12, 24)}


def test_a_restricted_case_is_by_crn_only_in_the_omu_email_and_the_report(smtp: SmtpServer, tmp_path: Path) -> None:
    from tasks.demo.seed import seed
    from tasks.reports.tracker import run_tracker

    store(row(lao="yes", name="Lee Restricted", prison="HMP Secret"))
    run(REPORT)
    by_recipient = {rcpt[0]: m for rcpt, m in smtp.inbox.messages if "must happen by" in str(m["Subject"])}
    omu_text, omu_html = parts(by_recipient[OMU])
    for body in (omu_text, omu_html, str(by_recipient[OMU]["Subject"])):
        assert "X100001" in body and "Lee Restricted" not in body and "HMP Secret" not in body
    assert "CRN X100001 (limited access case)" in omu_text
    com_text, _ = parts(by_recipient[COM])  # the managers of the case see its name
    assert "Lee Restricted, CRN X100001" in com_text

    plan = hr.plan_for(REPORT)
    assert [set(r) for r in handover_report.artifact_rows(plan)] == [
        {"crn", "handover_by", "release_date", "report_on", "one_month_alert_on", "two_weeks_alert_on", "last_in_person_session"}
    ]
    assert "Lee" not in repr(handover_report.artifact_rows(plan))

    seed(5, 1, REPORT)  # the tracker needs NSIs in the store; the handover sheet is what is checked
    tracker_run = run_tracker(REPORT, tmp_path / "trackers", region="N50", workers=1)
    ws = openpyxl.load_workbook(tracker_run.folder / "N50.xlsx")["POM-COM handovers"]
    cells = [c for r in ws.iter_rows(values_only=True) for c in r if c is not None]
    assert "X100001" in cells and "Restricted (LAO)" in cells
    assert not any("Lee Restricted" in str(c) or "HMP Secret" in str(c) for c in cells)


def test_a_qualifying_case_without_a_session_in_the_final_months_is_flagged_everywhere(smtp: SmtpServer, tmp_path: Path) -> None:
    from tasks.demo.seed import seed
    from tasks.reports.tracker import run_tracker

    store(row(), row(crn="X100002", sentence_length_months=6, com_email="com.two@probation.test"))
    record_session("X100001", dt.date(2026, 11, 1), "tester", today=dt.date(2026, 11, 1))  # before the final 3 months
    run(ONE_MONTH)
    run(REPORT)
    flagged = [str(m["Subject"]) for _, m in smtp.inbox.messages if "X100001" in str(m["Subject"])]
    assert len(flagged) == 4 and all("(no in-person session recorded)" in s for s in flagged)
    assert not any("no in-person" in str(m["Subject"]) for _, m in smtp.inbox.messages if "X100002" in str(m["Subject"]))
    text, _ = parts([m for rcpt, m in smtp.inbox.messages if rcpt == [COM] and "diary alert" in str(m["Subject"])][0])
    assert "IN-PERSON SESSION NEEDED" in text and "None is recorded since 15 November 2026" in text
    assert "(standard determinate sentence, more than 10 months to serve)" in text
    event = event_of([m for rcpt, m in smtp.inbox.messages if rcpt == [COM] and "diary alert" in str(m["Subject"])][0])
    assert "No in-person supervision session" in str(event["DESCRIPTION"])

    seed(5, 2, REPORT)
    tracker_run = run_tracker(REPORT, tmp_path / "trackers", region="N50", workers=1)
    ws = openpyxl.load_workbook(tracker_run.folder / "N50.xlsx")["POM-COM handovers"]
    rows = list(ws.iter_rows(values_only=True))
    header = rows[0]
    flag = header.index("No session in final 3 months")
    by_crn = {r[0]: r for r in rows[1:] if r[0] in ("X100001", "X100002")}
    assert by_crn["X100001"][flag] == "Yes" and by_crn["X100002"][flag] is None
    assert by_crn["X100001"][header.index("Handover by")] == dt.datetime(2027, 2, 15)

    # A session in the final three months clears the flag from the next alert on.
    record_session("X100001", dt.date(2027, 1, 20), "tester", today=dt.date(2027, 1, 20))
    run(TWO_WEEKS)
    last = [m for rcpt, m in smtp.inbox.messages if rcpt == [COM] and "two weeks" in str(m["Subject"])][0]
    assert "no in-person" not in str(last["Subject"]) and "IN-PERSON SESSION NEEDED" not in parts(last)[0]


def test_what_people_typed_is_escaped_in_the_html_part(smtp: SmtpServer) -> None:
    store(row(name="<script>alert(1)</script>", prison="HMP <b>Bold</b>"))
    run(REPORT)
    _, html = parts([m for rcpt, m in smtp.inbox.messages if rcpt == [POM]][0])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "HMP &lt;b&gt;Bold&lt;/b&gt;" in html


def test_example_data_is_generated_repeatably_and_never_mailed_through_smtp(smtp: SmtpServer) -> None:
    from tasks.demo.handover_seed import seed_handovers

    assert len(seed_handovers(dt.date(2026, 12, 21), seed=3, n=30).created) == 30
    assert len(seed_handovers(dt.date(2026, 12, 21), seed=3, n=30).unchanged) == 30
    summary = run(dt.date(2027, 1, 15))
    assert len(summary.held) > 0 and summary.sent == 0 and received(smtp) == []


def test_a_refused_email_is_queued_and_sent_by_the_next_run(smtp: SmtpServer) -> None:
    store(row())
    smtp.inbox.refuse.add(OMU)
    with pytest.raises(NotDelivered) as caught:
        run(REPORT)
    # The POM's and COM's reports and the COM's one-month alert (its day has passed) went; the OMU's did not.
    assert (caught.value.summary.sent, caught.value.summary.failed) == (3, 1)
    smtp.inbox.refuse.clear()
    later = run(REPORT + dt.timedelta(days=1))
    assert (later.sent, later.retried) == (1, 1)
    assert sorted(rcpt[0] for rcpt, _ in smtp.inbox.messages) == sorted([POM, COM, OMU, COM])


# --- the deployment ------------------------------------------------------------------------------------


def test_the_deployment_runs_the_flow_daily_on_working_days_in_london_time() -> None:
    import importlib

    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    (dep,) = [d for d in deployments if d["name"] == "handover-reminders"]
    module, _, name = dep["entrypoint"].partition(":")
    flow = getattr(importlib.import_module(module), name)
    assert flow.name == "handover-reminders"
    (schedule,) = dep["schedules"]
    assert schedule["timezone"] == "Europe/London" and schedule["cron"].endswith("1-5")
    assert dep["work_pool"]["name"] == "casetransfer"


def test_casetransfer_up_stores_the_example_handovers_once_before_the_nightly_jobs(store_url: str) -> None:
    import inspect

    import ops.demo

    said: list[str] = []
    ops.demo._seed_handovers(said.append)
    assert said == ["example POM-COM handovers: 40 created, 0 corrected, 0 unchanged"]
    assert count(PomComHandover) == 40
    ops.demo._seed_handovers(said.append)
    assert "40 unchanged" in said[-1] and count(PomComHandover) == 40
    # Before the nightly tracker and reminders run, so their handover sheet and emails have cases.
    source = inspect.getsource(ops.demo.bring_up)
    assert source.index("_seed_handovers(say)") < source.index("_seed_and_report(")


OFFICE_HEADERS = {"crn": "Case ref", "name": "Prisoner", "prison": "Establishment", "pom_name": "POM", "pom_email": "POM e-mail",
                  "com_name": "Offender manager", "com_email": "OM email", "com_team_code": "Team", "omu_mailbox": "OMU",
                  "sentence_type": "Sentence", "sentence_length_months": "Length (months)", "sentence_date": "Sentenced on",
                  "release_date": "Release", "handover_date": "Handover due"}  # fmt: skip
OFFICE_MAPPING = """columns:
  name: Prisoner
  com_name: [Offender manager]
  com_email: OM email
  com_team_code: Team
  sentence_length_months: Length (months)
  sentence_date: Sentenced on
  handover_date: [Handover due]
"""


def write_office_csv(path: Path, rows: list[dict[str, Any]], encoding: str) -> Path:
    """A list as an OMU keeps it: its own headers, UK dates, saved by Excel on Windows."""
    with path.open("w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(list(OFFICE_HEADERS.values()))
        for r in rows:
            w.writerow([r.get(f, "") for f in OFFICE_HEADERS])
    return path


def office_rows() -> list[dict[str, Any]]:
    base = row(com_pdu_code=None, lao=None)
    return [
        # 14 months, released at the halfway point: 7 months to serve.
        {**base, "crn": "X100001", "name": "Zoë O’Brien", "sentence_type": "Standard determinate sentence",
         "sentence_length_months": 14, "sentence_date": "01/06/2026", "release_date": "01/01/2027", "handover_date": "15/12/2026"},
        # 24 months: 12 months to serve.
        {**base, "crn": "X100002", "name": "José Núñez", "sentence_type": "standard determinate",
         "sentence_length_months": 24, "sentence_date": "01/06/2026", "release_date": "01/06/2027", "handover_date": "01/05/2027"},
        {**base, "crn": "X100003", "name": "Siân Öztürk", "sentence_type": "Extended determinate", "sentence_length_months": 60,
         "sentence_date": "01/06/2025", "release_date": "01/06/2027", "handover_date": "01/05/2027"},
    ]  # fmt: skip


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8", "utf-8-sig"])
def test_an_offices_own_list_in_any_excel_encoding_imports_every_row_and_time_to_serve_decides_the_session(
    store_url: str, tmp_path: Path, encoding: str
) -> None:
    path = write_office_csv(tmp_path / "omu.csv", office_rows(), encoding)
    mapping = tmp_path / "omu.yaml"
    mapping.write_text(OFFICE_MAPPING)

    result = CliRunner().invoke(app, ["import-handovers", str(path), "--mapping", str(mapping), "--by", "tester"])

    assert result.exit_code == 0, result.output
    with UnitOfWork() as uow:
        stored = {h.crn: h for h in uow.session.scalars(select(PomComHandover))}
        assert {c: (h.name, h.sentence_type) for c, h in stored.items()} == {
            "X100001": ("Zoë O’Brien", "SDS"), "X100002": ("José Núñez", "SDS"), "X100003": ("Siân Öztürk", "EDS")}  # fmt: skip
    qualifies = {c.crn: c.qualifies for day in (dt.date(2026, 11, 20), dt.date(2027, 4, 1)) for c in hr.cases_around(day)}
    assert qualifies == {"X100001": False, "X100002": True, "X100003": False}


def test_a_list_in_no_known_encoding_is_refused_clearly_and_every_problem_of_every_row_is_said_at_once(
    store_url: str, tmp_path: Path
) -> None:
    garbled = tmp_path / "garbled.csv"
    garbled.write_bytes(b"crn,name\r\nX100001,\x81\x8d\x8f\x90\r\n")
    refused = CliRunner().invoke(app, ["import-handovers", str(garbled)])
    assert refused.exit_code == 2 and "not UTF-8 or Windows-1252" in refused.output and "Traceback" not in refused.output
    bad = office_rows()
    bad[0] |= {"sentence_type": "Standard", "pom_email": "not an email", "com_team_code": "NOPE99", "handover_date": "02/02/2027"}
    bad[1] |= {"name": "", "sentence_length_months": "two years"}
    path = write_office_csv(tmp_path / "omu.csv", bad[:2], "cp1252")
    mapping = tmp_path / "omu.yaml"
    mapping.write_text(OFFICE_MAPPING.replace("  name: Prisoner\n", ""))  # "Prisoner" is not a header it knows

    result = CliRunner().invoke(app, ["import-handovers", str(path), "--mapping", str(mapping)])

    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.startswith("omu.csv row")]
    assert any("row 1: unknown columns Prisoner" in ln for ln in lines)
    assert any("row 1: missing columns name" in ln for ln in lines)
    assert "omu.csv: 2 problems; nothing was stored" in result.output
    assert count(PomComHandover) == 0
    mapping.write_text(OFFICE_MAPPING)

    again = CliRunner().invoke(app, ["import-handovers", str(path), "--mapping", str(mapping)])

    fields_at_fault = {(ln.split(":")[0], ln.split(": ")[1]) for ln in again.output.splitlines() if ln.startswith("omu.csv row")}
    assert fields_at_fault == {("omu.csv row 2", "pom_email"), ("omu.csv row 2", "com_team_code"), ("omu.csv row 2", "handover_date"),
                               ("omu.csv row 3", "name"), ("omu.csv row 3", "sentence_length_months")}  # fmt: skip
    assert "'Standard'" not in again.output  # a name config/handovers.yaml gives SDS
    assert "omu.csv: 5 problems; nothing was stored" in again.output
