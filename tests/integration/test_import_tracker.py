"""Go-live: a region's legacy tracker imported into the store (issue 13), on SQLite and PostgreSQL,
with real .xlsx files written with the mess real trackers have and read back with openpyxl."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TODAY, demo_form, pin_today
from openpyxl import load_workbook
from sqlalchemy import func, select

from tasks.demo.legacy_trackers import HEADERS, write_example, write_tracker
from tasks.domain import import_mapping, importer, transfer_views, transfers
from tasks.domain.form import parse_form
from tasks.notify import digests
from tasks.settings import ROOT
from tasks.store.models import Nsi, StepRecord
from tasks.store.unit_of_work import UnitOfWork

NOTIFIED = dt.date(2026, 11, 2)  # a Monday, seven weeks before the pinned today (21 December 2026)


def nsi_count(url: str) -> int:
    with UnitOfWork(url) as uow:
        return uow.session.scalar(select(func.count()).select_from(Nsi)) or 0


def one_row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "crn": "A100001",
        "name": "Alex Example",
        "date_of_birth": dt.date(1985, 3, 4),
        "sentence_type": "CRO",
        "nsi_type": "Transfer",
        "from": "Greenwich and Bexley",  # a PDU by name
        "to": "N50CAD",
        "notified_on": NOTIFIED,
        "move_on": NOTIFIED,
        "rosh": "Medium",
    }
    row.update(changes)
    return row


def test_a_messy_tracker_imports_its_good_rows_and_reports_each_bad_one_and_a_second_import_changes_nothing(
    store_url: str, tmp_path: Path
) -> None:
    example = write_example(tmp_path / "london.xlsx", n=30, seed=2)

    result = importer.import_tracker(example.path, region="N07")

    assert len(result.created) == len(example.good) == 30
    assert {b.crn: b.reason for b in result.bad}.keys() == example.bad.keys()
    for bad in result.bad:
        assert example.bad[bad.crn] in bad.reason, bad.reason
    report = load_workbook(result.report, read_only=True)
    rows = list(report["Bad rows"].iter_rows(values_only=True))
    assert rows[0][:3] == ("Row", "CRN", "Reason")
    assert [r[1] for r in rows[1:]] == [b.crn for b in result.bad]
    # Each bad row's number is the one Excel shows: its raw CRN is on that row of the input.
    source = load_workbook(example.path, read_only=True)["Tracker"]
    by_number = {i: r for i, r in enumerate(source.iter_rows(values_only=True), start=1)}
    for number, crn, *_ in rows[1:]:
        assert crn in str(by_number[number][0])
    assert "Offender Name" in rows[0]  # the raw values under their own headers
    stored = nsi_count(store_url)

    again = importer.import_tracker(example.path, region="N07")

    assert again.created == []
    assert sorted(again.skipped) == sorted(result.created)
    assert nsi_count(store_url) == stored


def test_a_dry_run_writes_the_report_and_stores_nothing(store_url: str, tmp_path: Path) -> None:
    example = write_example(tmp_path / "t.xlsx", n=5, seed=4)

    result = importer.import_tracker(example.path, dry_run=True)

    assert len(result.created) == 5 and result.report is not None and result.report.exists()
    assert nsi_count(store_url) == 0


def test_work_done_before_the_import_is_recorded_on_its_own_date_and_never_reminded(store_url: str, tmp_path: Path) -> None:
    path = write_tracker(
        tmp_path / "t.xlsx",
        [one_row(address_assessment_on="05/11/2026", documents_on=dt.date(2026, 11, 4), police_checks_on="N/A")],
    )

    result = importer.import_tracker(path)

    view = transfer_views.status_of(result.created[0])
    actions = {a.code: a for a in view.actions}
    assert (actions["address_assessment"].status, actions["address_assessment"].done_on) == ("done", dt.date(2026, 11, 5))
    assert actions["documents"].done_on == dt.date(2026, 11, 4)
    assert actions["police_checks"].status == "cancelled"  # N/A on the tracker
    assert view.status == transfers.IN_PROGRESS
    with UnitOfWork(store_url) as uow:
        recorded = {step: on for step, on in uow.session.execute(select(StepRecord.step, StepRecord.done_on))}
    # Allocation is implied by the work after it, on the first day of that work.
    assert recorded == {"allocation": dt.date(2026, 11, 4), "documents": dt.date(2026, 11, 4),
                        "address_assessment": dt.date(2026, 11, 5)}  # fmt: skip
    assert "imported" in [h.event for h in view.history]

    plan = digests.plan_for(TODAY, store_url)
    listed = {(i.reference, i.code) for d in plan.digests for i in (*d.escalated, *d.overdue, *d.due_soon)}
    assert (view.reference, "address_assessment") not in listed
    assert (view.reference, "documents") not in listed
    assert (view.reference, "police_checks") not in listed


def test_an_action_overdue_at_import_is_listed_as_overdue_and_escalates_counting_from_the_import_day(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_tracker(tmp_path / "t.xlsx", [one_row(documents_on="04/11/2026")])  # allocated; nothing else done
    reference = importer.import_tracker(path).created[0]

    def section(day: dt.date) -> str | None:
        for d in digests.plan_for(day, store_url).digests:
            for name in ("escalated", "overdue"):
                if any(i.reference == reference and i.code == "safeguarding_checks" and i.yours for i in getattr(d, name)):
                    return name
        return None

    # Due 16 November, five weeks overdue on the import day: overdue, not escalated...
    assert section(TODAY) == "overdue"
    # ... until escalation_working_days (3) have passed since the import: 24 December.
    pin_today(monkeypatch, dt.date(2026, 12, 23))
    assert section(dt.date(2026, 12, 23)) == "overdue"
    pin_today(monkeypatch, dt.date(2026, 12, 24))
    assert section(dt.date(2026, 12, 24)) == "escalated"


def test_a_crn_with_an_open_nsi_this_file_did_not_create_is_a_bad_row(store_url: str, tmp_path: Path) -> None:
    raised = transfers.register_nsi(parse_form(demo_form(crn="A100001")), "raised-here")
    path = write_tracker(tmp_path / "t.xlsx", [one_row(crn="A100001"), one_row(crn="A100002")])

    result = importer.import_tracker(path)

    assert len(result.created) == 1
    assert [(b.crn, raised in b.reason) for b in result.bad] == [("A100001", True)]


def test_a_caretaking_row_becomes_a_temporary_move_and_cells_that_look_like_formulas_or_html_stay_text(
    store_url: str, tmp_path: Path
) -> None:
    formula = '=HYPERLINK("http://example.invalid","x")'
    path = write_tracker(
        tmp_path / "t.xlsx",
        [one_row(nsi_type="Caretaking ", notes=formula), one_row(crn="A100002", notes="<script>alert(1)</script>")],
    )

    result = importer.import_tracker(path)

    move, transfer = (transfer_views.status_of(r) for r in result.created)
    assert not move.lao and not transfer.lao
    assert move.nsi_type == "temporary_move" and move.reference.startswith("TM")
    assert move.status == "supporting"  # the receiving team is named: supporting since notified
    notes = {h.detail for v in (move, transfer) for h in v.history if h.event == "note"}
    assert notes == {formula, "<script>alert(1)</script>"}


def test_a_region_mapping_adds_its_own_header_spellings(store_url: str, tmp_path: Path) -> None:
    headers = {**HEADERS, "crn": "Ref No.", "notified_on": "Referral in"}
    path = write_tracker(tmp_path / "t.xlsx", [one_row()], headers={k: headers[k] for k in one_row()})
    with pytest.raises(import_mapping.UnreadableTracker, match="crn"):
        importer.import_tracker(path)
    mapping = tmp_path / "region.yaml"
    mapping.write_text("columns:\n  crn: [Ref no]\n  notified_on: [Referral in]\n")
    import_mapping.load_mapping.cache_clear()

    result = importer.import_tracker(path, mapping_path=mapping)

    assert len(result.created) == 1


def test_the_command_imports_with_a_progress_bar_and_exits_2_naming_each_bad_row(store_url: str, tmp_path: Path) -> None:
    example = write_example(tmp_path / "t.xlsx", n=4, seed=5)
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # no server: runs start later

    done = subprocess.run([sys.executable, "-m", "ops.cli", "import-tracker", str(example.path), "--region", "N07"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)  # fmt: skip

    assert done.returncode == 2, done.stderr
    assert "4 NSIs created" in done.stdout
    for crn in example.bad:
        assert f": {crn}: " in done.stderr
    assert nsi_count(store_url) == 4


def test_a_limited_access_row_is_restricted_as_a_raised_one_is(store_url: str, tmp_path: Path) -> None:
    path = write_tracker(tmp_path / "t.xlsx", [one_row(lao="Yes")], headers={**HEADERS, "lao": "LAO"})

    view = transfer_views.status_of(importer.import_tracker(path).created[0])

    assert view.lao


def test_the_runs_to_start_are_the_open_imported_nsis_and_completed_ones_with_work_still_open(store_url: str, tmp_path: Path) -> None:
    path = write_tracker(
        tmp_path / "t.xlsx",
        [
            one_row(crn="A100001"),  # open
            one_row(crn="A100002", documents_on=NOTIFIED, completed_on="20/11/2026"),  # completed; reassessment still open
            one_row(crn="A100003", nsi_type="Caretaking", completed_on="20/11/2026"),  # caretaking ended
        ],
    )
    created = importer.import_tracker(path).created

    to_start = [ref for ref, _, _ in importer.imported_without_run()]

    assert to_start == created[:2]
    completed = transfer_views.status_of(created[1])
    assert completed.status == "completed"
    assert {a.code for a in completed.actions if a.status == "open"} == {"oasys_reassessment", "plan_review", "court_application"}


def test_a_caretaking_row_keeps_its_dates_as_work_done_and_is_never_reminded_of_it(store_url: str, tmp_path: Path) -> None:
    path = write_tracker(
        tmp_path / "t.xlsx",
        [one_row(nsi_type="Caretaking", to="N50GMS", documents_on="04/11/2026", address_assessment_on=dt.date(2026, 11, 5),
                 plan_review_on="20/11/2026", oasys_on="Not applicable", handover_on="06/11/2026")],
    )  # fmt: skip

    (reference,) = importer.import_tracker(path).created

    view = transfer_views.status_of(reference)
    actions = {a.code: (a.status, a.done_on) for a in view.actions}
    assert view.nsi_type == "temporary_move" and view.status == "supporting"
    # Supported from the first work the tracker dates; that work done on its own day.
    assert actions["support_contact"] == ("done", dt.date(2026, 11, 4))
    assert actions["documents"] == ("done", dt.date(2026, 11, 4))
    assert actions["address_assessment"] == ("done", dt.date(2026, 11, 5))
    assert actions["plan_review"] == ("done", dt.date(2026, 11, 20))
    assert actions["oasys_reassessment"][0] == "cancelled"
    done_lines = [h.detail for h in view.history if h.detail.endswith("(imported)")]
    assert len(done_lines) == 4  # support allocation, documents, home visit, plan review
    # A three-way handover is a transfer's: kept as a line, not dropped.
    assert "imported, not applicable to caretaking: handover 06/11/2026" in [h.detail for h in view.history]
    plan = digests.plan_for(TODAY, store_url)
    listed = {i.code for d in plan.digests for i in (*d.escalated, *d.overdue, *d.due_soon) if i.reference == reference}
    assert not listed & {"support_contact", "documents", "address_assessment", "plan_review", "oasys_reassessment"}


def test_a_date_for_work_the_case_does_not_call_for_is_kept_as_a_history_line(store_url: str, tmp_path: Path) -> None:
    path = write_tracker(
        tmp_path / "t.xlsx",
        [one_row(sentence_type="Licence", court_application_on="12/11/2026", documents_on="04/11/2026",
                 expected_return_on="01/02/2027")],
        headers={**HEADERS, "expected_return_on": "Expected return"},
    )  # fmt: skip

    view = transfer_views.status_of(importer.import_tracker(path).created[0])

    lines = [h.detail for h in view.history]
    assert "imported, not applicable to a licence: court application 12/11/2026" in lines
    assert "imported, not applicable to a case transfer: expected return 01/02/2027" in lines
    assert "court_application" not in {a.code for a in view.actions}


def test_a_blank_order_type_never_rejects_a_row_and_not_applicable_is_read_however_it_is_written(
    store_url: str, tmp_path: Path
) -> None:
    spellings = ["Not applicable", "n/a", "NA", "N/A ", "-"]
    rows = [one_row(crn=f"A10000{k}", sentence_type="", police_checks_on=na) for k, na in enumerate(spellings)]

    result = importer.import_tracker(write_tracker(tmp_path / "t.xlsx", rows))

    assert not result.bad and len(result.created) == len(spellings)
    for reference in result.created:
        view = transfer_views.status_of(reference)
        assert {a.code: a.status for a in view.actions}["police_checks"] == "cancelled"
        assert any("order or licence type not recorded" in h.detail for h in view.history)


def test_an_unknown_transfer_kind_is_a_bad_row_unless_the_mapping_sets_a_default(store_url: str, tmp_path: Path) -> None:
    path = write_tracker(tmp_path / "t.xlsx", [one_row(nsi_type="?"), one_row(crn="A100002", nsi_type="")])

    result = importer.import_tracker(path)

    assert result.created == []
    assert [b.reason.split(" (")[0] for b in result.bad] == ["nsi_type: Transfer or caretaking not given"] * 2
    mapping = tmp_path / "ours.yaml"
    mapping.write_text("nsi_type_when_not_given: transfer\n")
    import_mapping.load_mapping.cache_clear()

    again = importer.import_tracker(path, mapping_path=mapping)

    assert [transfer_views.status_of(r).nsi_type for r in again.created] == ["case_transfer", "case_transfer"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # no server: runs start later
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_a_dry_run_shows_the_mapping_it_used_and_strict_refuses_an_unknown_column(store_url: str, tmp_path: Path) -> None:
    headers = {**HEADERS, "shoe": "Shoe size", "documents_on": "Docs recieved"}
    path = write_tracker(tmp_path / "t.xlsx", [one_row(shoe="9", documents_on="04/11/2026")],
                         headers={k: headers[k] for k in [*one_row(), "shoe", "documents_on"]})  # fmt: skip

    dry = run_cli("import-tracker", str(path), "--dry-run")

    assert dry.returncode == 0, dry.stderr
    assert "'Case Ref' -> crn" in dry.stdout and "'Date Notified' -> notified_on" in dry.stdout
    assert "'Shoe size' ignored" in dry.stdout
    assert "'Docs recieved' ignored (closest field: documents_on)" in dry.stdout
    assert "no header for: " in dry.stdout and "police_checks_on" in dry.stdout
    mapping_sheet = list(load_workbook(tmp_path / "t.import-report.xlsx", read_only=True)["Mapping"].iter_rows(values_only=True))
    assert ("Shoe size", "", "ignored: kept as history lines") in mapping_sheet

    strict = run_cli("import-tracker", str(path), "--strict")

    assert strict.returncode == 2
    assert "--strict" in strict.stderr and "'Shoe size'" in strict.stderr and "Traceback" not in strict.stderr
    assert nsi_count(store_url) == 0

    done = run_cli("import-tracker", str(path))

    assert done.returncode == 0, done.stderr
    assert "headers not imported as fields" in done.stdout
    view = transfer_views.status_of(transfer_views_reference(store_url))
    lines = [h.detail for h in view.history]
    assert "imported, column not mapped: Shoe size: 9" in lines
    assert "imported, column not mapped: Docs recieved: 04/11/2026" in lines


def transfer_views_reference(url: str) -> str:
    with UnitOfWork(url) as uow:
        return uow.session.scalars(select(Nsi.reference)).one()


def test_the_report_holds_every_cell_as_typed_names_the_column_at_fault_and_goes_where_it_is_told(
    store_url: str, tmp_path: Path
) -> None:
    path = write_tracker(tmp_path / "t.xlsx", [one_row(documents_on="31/02/2026", move_on=None, rosh="Medium")])
    # A folder the report cannot be written to (as a read-only share is) is said before anything is stored.
    refused = run_cli("import-tracker", str(path), "--report", str(tmp_path / "no such folder" / "report.xlsx"))
    assert refused.returncode == 2 and "--report: cannot write" in refused.stderr and "Traceback" not in refused.stderr
    elsewhere = tmp_path / "out" / "report.xlsx"
    elsewhere.parent.mkdir()

    done = run_cli("import-tracker", str(path), "--report", str(elsewhere))

    assert done.returncode == 2 and "[columns: Docs received]" in done.stderr
    rows = list(load_workbook(elsewhere, read_only=True)["Bad rows"].iter_rows(values_only=True))
    head, row = rows[0], dict(zip(rows[0], rows[1], strict=True))
    assert head[:4] == ("Row", "CRN", "Reason", "Columns at fault")
    assert row["Columns at fault"] == "Docs received"
    assert row["Docs received"] == "31/02/2026"  # as typed
    assert "Move date" in head and row["Move date"] is None  # a blank cell shown blank
    source = list(load_workbook(path, read_only=True)["Tracker"].iter_rows(values_only=True))
    typed = {str(h).strip(): v for h, v in zip(source[3], source[4], strict=True)}
    assert {h: row[h] for h in typed} == typed  # every cell as the tracker held it: dates, serials, text
    assert not (tmp_path / "t.import-report.xlsx").exists()


def test_notes_reach_the_trackers_transfers_sheet_as_text_and_the_status_command(store_url: str, tmp_path: Path) -> None:
    from tasks.reports.tracker import run_tracker

    formula, html = '=HYPERLINK("http://example.invalid","x")', "<b>Chased</b> police twice"
    path = write_tracker(tmp_path / "t.xlsx", [one_row(notes=formula), one_row(crn="A100002", notes=html),
                                               one_row(crn="A100003", notes="Victim nearby", lao="Yes")],
                         headers={**HEADERS, "lao": "LAO"})  # fmt: skip
    created = importer.import_tracker(path, region="N07").created

    run_tracker(TODAY, out_dir=tmp_path / "trackers", workers=1)

    sheet = load_workbook(next((tmp_path / "trackers").iterdir()) / "N07.xlsx")["Transfers"]
    head = [c.value for c in sheet[1]]
    cells = {row[0].value: row[head.index("Notes")] for row in sheet.iter_rows(min_row=2)}
    assert (cells[created[0]].value, cells[created[0]].data_type) == (formula, "s")
    assert (cells[created[1]].value, cells[created[1]].data_type) == (html, "s")
    assert cells[created[2]].value is None  # a limited access case's notes stay out, as its name does
    shown = run_cli("status", created[1])
    assert f"note: {html}" in shown.stdout


def test_digests_for_imported_cases_greet_the_team_and_say_not_recorded_never_the_placeholder(store_url: str, tmp_path: Path) -> None:
    from tasks.notify.email import render
    from tasks.notify.reminders import load_rules

    path = write_tracker(tmp_path / "t.xlsx", [one_row(documents_on="04/11/2026")])  # safeguarding checks overdue
    (reference,) = importer.import_tracker(path).created
    placeholder = import_mapping.load_mapping().unknown_text

    plan = digests.plan_for(TODAY, store_url)

    mine = [d for d in plan.digests if any(i.reference == reference for i in (*d.escalated, *d.overdue, *d.due_soon))]
    assert mine
    for d in mine:
        email = render(digests.TEMPLATE, digests.digest_context(d, load_rules()))
        assert email.text.startswith(f"Hello {d.greeting},") or f"\nHello {d.greeting}," in email.text
        assert d.greeting.endswith("transfer team")
        for body in (email.text, email.html):
            assert placeholder not in body
        assert email.text.count("Transferring SPO: not recorded") == 1
