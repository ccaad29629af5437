"""The tracker's Youth measures sheet (004): home visits, allocation within 2 working days,
three-way meetings within 5, caretaking past 3 months, the host's contact records, the
co-allocated workers' six-weekly reviews and the stays for missing information, read back
from real workbooks written from a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pytest
from conftest import TODAY, demo_form, pin_today

from tasks.domain import transfers
from tasks.domain.form import parse_form
from tasks.reports.tracker import run_tracker
from tasks.reports.youth_measures import SHEET, SUMMARY_GAP

AS_OF = dt.date(2027, 1, 8)
YOUTH_FIELDS = {"saw_level": "Low", "gender_identity": "Boy or young man", "date_of_birth": "2010-05-17"}


@pytest.fixture(autouse=True)
def _as_of(monkeypatch: pytest.MonkeyPatch) -> None:
    pin_today(monkeypatch, AS_OF)


def raise_youth(key: str, **changes) -> str:
    form = parse_form(demo_form(**{**YOUTH_FIELDS, **changes}), "youth")
    return transfers.register_nsi(form, key, profile="youth")


def rows_of(ws) -> list[dict]:
    values = list(ws.iter_rows(values_only=True))
    header = values[0]
    return [dict(zip(header, row, strict=False)) for row in values[1:] if row[0] and str(row[0])[:2] in ("CT", "TM")]


def test_the_youth_measures_count_what_the_store_holds(store_url, tmp_path):
    transfer = raise_youth("y-ct", crn="Y100001", raised_on=TODAY.isoformat())
    transfers.apply_step(transfer, "allocation", {"recorded_by": "Kim", "case_manager": "CM201", "team_code": "N50CAD",
                                                  "contact_frequency_weeks": 4, "done_on": "2026-12-22"})  # fmt: skip
    transfers.apply_step(transfer, "address_assessment", {"recorded_by": "Pat", "method": "home_visit", "suitable": True})
    transfers.apply_step(transfer, "handover", {"recorded_by": "Sam", "held_on": "2027-01-04"})  # due 31 December: late
    caretaking = raise_youth("y-tm", crn="Y100002", nsi_type="temporary_move", temporary_reason="Bail placement",
                             expected_return_date="2027-06-01", raised_on="2026-09-01")  # fmt: skip
    transfers.apply_step(caretaking, "support_allocation", {
        "recorded_by": "Kim", "support_contact": "Pat Host", "team_code": "N50CAD", "caretaking_from": "2026-09-01",
        "receiving_responsibilities": "Appointments", "home_responsibilities": "Planning", "review_date": "2026-11-30",
        "contact_frequency_weeks": 4, "done_on": "2026-09-01",
    })  # fmt: skip
    transfers.mark_action_done(caretaking, "contact_records", "Jo", on=dt.date(2026, 9, 29))  # due 29 September
    transfers.mark_action_done(caretaking, "contact_records", "Jo", on=dt.date(2026, 11, 2))  # due 27 October
    adult = transfers.register_nsi(parse_form(demo_form(crn="A100003")), "a-ct", profile="adult")

    night = run_tracker(AS_OF, tmp_path / "trackers", url=store_url, workers=1)
    ws = openpyxl.load_workbook(night.national)[SHEET]
    rows = {r["Reference"]: r for r in rows_of(ws)}
    assert set(rows) == {transfer, caretaking} and adult not in rows
    assert rows[transfer]["Home visit done (11.3)"] == "Yes"
    assert rows[transfer]["Allocated within 2 working days (11.4)"] == "Yes"
    assert rows[transfer]["Three-way meeting within 5 working days (11.7)"] == "No"
    assert rows[caretaking]["Caretaking past the limit (12.1)"] == "Yes"
    assert (rows[caretaking]["Contact records on time (12.8)"], rows[caretaking]["Contact records late (12.8)"]) == (1, 1)
    summary = {
        row[0]: row[1 + SUMMARY_GAP : 3 + SUMMARY_GAP] for row in ws.iter_rows(values_only=True) if row[0] and "(" in str(row[0])
    }
    assert summary["Home visits done (11.3)"] == (1, 1)
    assert summary["Three-way meetings within 5 working days of reallocation (11.7)"] == (0, 1)
    assert summary["Caretaking past 3 months (12.1)"] == (1, 1)
    assert summary["Contact records received on time (12.8)"] == (1, 2)
    region_books = [openpyxl.load_workbook(r.path) for r in night.regions]
    assert any(SHEET in wb.sheetnames for wb in region_books)
    assert not all(SHEET in wb.sheetnames for wb in region_books)  # a region with no youth cases has no such sheet


def test_5_3_and_12_4_the_sheet_counts_the_co_allocation_reviews_and_the_stays(store_url, tmp_path):
    transfer = raise_youth("y-ct", crn="Y100004", raised_on=TODAY.isoformat(), saw_level="Very High")
    transfers.apply_step(transfer, "allocation", {"recorded_by": "Kim", "case_manager": "CM102", "co_allocated_to": "CM201",
                                                  "team_code": "N50CAD", "contact_frequency_weeks": 1, "done_on": "2026-12-22"})  # fmt: skip
    transfers.mark_action_done(transfer, "co_allocation_review", "Pat", on=dt.date(2027, 1, 8))  # due 2 February: on time
    transfers.apply_step(transfer, "documents", {"recorded_by": "Admin", "done_on": "2027-01-05"})
    transfers.apply_step(transfer, "information_review", {"recorded_by": "Kim", "outcome": "stay", "missing": ["asset_plus"],
                                                          "reasons": "AssetPlus from June"})  # fmt: skip

    night = run_tracker(AS_OF, tmp_path / "trackers", url=store_url, workers=1)
    ws = openpyxl.load_workbook(night.national)[SHEET]
    row = {r["Reference"]: r for r in rows_of(ws)}[transfer]
    assert (row["Co-allocation reviews on time (5.3)"], row["Co-allocation reviews late (5.3)"], row["Times stayed (12.4)"]) == (1, 0, 1)
    summary = {
        row[0]: row[1 + SUMMARY_GAP : 3 + SUMMARY_GAP] for row in ws.iter_rows(values_only=True) if row[0] and "(" in str(row[0])
    }
    assert summary["Co-allocation reviews on time, at least every six weeks (5.3)"] == (1, 1)
    assert summary["Transfers in stayed for missing information (12.4)"] == (1, 1)
