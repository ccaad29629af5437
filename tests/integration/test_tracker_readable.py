"""Workbooks a manager can read and print (issue 16), written for real and opened with openpyxl:
print setup on every sheet, Excel tables, statuses in plain words, no server paths or timings,
the Challenges and refusals and Escalations sheets (on SQLite and PostgreSQL), and a regional
workbook rendered to PDF by LibreOffice where it is installed."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from conftest import TODAY, demo_form, pin_today
from sqlalchemy import update

from tasks.demo.seed import seed
from tasks.domain import transfers
from tasks.domain.form import parse_form
from tasks.reports.tracker import TrackerRun, load_tracker_config, run_tracker
from tasks.store.models import HistoryEntry
from tasks.store.unit_of_work import UnitOfWork

STRONG = "Risk of harm would increase and could not be managed at the new address"
ALLOCATION = {"recorded_by": "Kim SPO", "practitioner": "Pat Receiver", "team_code": "N50CAD", "done_on": "2026-12-15"}
SECRET_CONCERN = "Victim lives at 3 Secret Lane"
LAO_NAME = "Quentin Secretname"


def raise_transfer(key: str, **changes: Any) -> str:
    changes.setdefault("raised_on", "2026-12-14")
    ref = transfers.register_nsi(parse_form(demo_form(**changes)), key)
    transfers.apply_step(ref, "allocation", ALLOCATION)
    return ref


def record(ref: str, task: str, **answer: Any) -> None:
    transfers.apply_step(ref, task, {"recorded_by": "Kim SPO", **answer})


def rows(ws: Any) -> list[dict[str, Any]]:
    it = ws.iter_rows(values_only=True)
    header = list(next(it))
    out = []
    for r in it:
        if r[0] is None:
            break  # the list ends; a note or a count by reason follows below it
        out.append(dict(zip(header, r, strict=False)))
    return out


@pytest.fixture
def outcomes(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TrackerRun, dict[str, str]]:
    """A night's workbooks for a store with a challenge of every outcome and two escalations."""
    seed(120, 4, TODAY, url=store_url)
    pin_today(monkeypatch, dt.date(2026, 12, 16))
    refs = {
        "overturned": raise_transfer("overturned", crn="A000001"),
        "upheld": raise_transfer("upheld", crn="A000002"),
        "withdrawn": raise_transfer("withdrawn", crn="A000003"),
        "open": raise_transfer("open", crn="L000004", lao=True, name=LAO_NAME),
    }
    for key, ref in refs.items():
        transfers.raise_challenge(ref, SECRET_CONCERN if key == "open" else "Victim nearby", "Pat Receiver", "receiving_pp")
    record(refs["overturned"], "challenge-1", outcome="uphold", reasons=[STRONG], evidence="Police report")
    record(refs["upheld"], "challenge-1", outcome="uphold", reasons=[STRONG], evidence="Police report")
    record(refs["withdrawn"], "challenge-1", outcome="withdraw")
    pin_today(monkeypatch, dt.date(2026, 12, 17))
    transfers.raise_dispute(refs["overturned"], "The victim moved away", "Jo SPO")
    transfers.escalate(refs["withdrawn"], "No allocation news", "Pat Practitioner")
    transfers.escalate(refs["upheld"], "Refusal without a call", "Pat Practitioner")
    # History is stamped by the wall clock, which a pinned "today" does not move: stamp these as
    # the clock would have on the 17th.
    with UnitOfWork(store_url) as uow:
        uow.session.execute(
            update(HistoryEntry)
            .where(HistoryEntry.event == "escalated")
            .values(at=dt.datetime(2026, 12, 17, 10, 0, tzinfo=dt.UTC))
        )
        uow.commit()
    pin_today(monkeypatch, TODAY)
    record(refs["overturned"], "dispute-1", outcome="overturn", notes="Victim no longer local")
    return run_tracker(TODAY, tmp_path / "trackers", url=store_url, workers=1), refs


def test_challenges_and_refusals_list_each_with_reasons_outcome_and_days(outcomes: tuple[TrackerRun, dict[str, str]]) -> None:
    run, refs = outcomes
    ws = openpyxl.load_workbook(run.folder / "N50.xlsx")["Challenges and refusals"]
    listed = {r["Reference"]: r for r in rows(ws) if r["Reference"] in refs.values()}
    assert {listed[ref]["Outcome"] for ref in refs.values()} == {"Overturned", "Upheld", "Withdrawn", "Open"}
    assert [listed[refs[k]]["Outcome"] for k in ("overturned", "upheld", "withdrawn", "open")] == [
        "Overturned",
        "Upheld",
        "Withdrawn",
        "Open",
    ]
    assert listed[refs["upheld"]]["Reasons"] == STRONG
    # Raised Wednesday 16th; upheld the same day: 0 working days. The dispute settled Monday 21st: 3.
    assert listed[refs["upheld"]]["Working days taken"] == 0
    assert listed[refs["overturned"]]["Working days taken"] == 3
    assert listed[refs["open"]]["Still open"] == "Yes" and listed[refs["open"]]["Working days taken"] == 3
    # A limited access case: the CRN, never the name or what was typed about it.
    assert listed[refs["open"]]["Name"] == load_tracker_config().layout.lao_name and listed[refs["open"]]["Concern"] is None
    # Under the list, refusals that stand counted by reason (the overturned one does not count).
    cells = [[c for c in r if c is not None] for r in ws.iter_rows(values_only=True)]
    title = next(i for i, r in enumerate(cells) if r and str(r[0]).startswith("Refusals by reason"))
    counts = {r[1]: r[0] for r in cells[title + 1 :] if len(r) == 2}
    assert counts[STRONG] >= 1 and counts[STRONG] == sum(
        1
        for r in rows(ws)
        if r["Outcome"] in ("Upheld", "Disputed", "Upheld on dispute", "Refused") and STRONG in (r["Reasons"] or "")
    )


def test_escalations_are_listed_open_and_closed_with_their_age(outcomes: tuple[TrackerRun, dict[str, str]]) -> None:
    run, refs = outcomes
    ws = openpyxl.load_workbook(run.folder / "N50.xlsx")["Escalations"]
    listed = {r["Reference"]: r for r in rows(ws) if r["What"] == "Concern"}
    open_one, closed = listed[refs["withdrawn"]], listed[refs["upheld"]]
    assert (open_one["Status"], open_one["Detail"], open_one["Age (working days)"]) == ("Open", "No allocation news", 2)
    # The refused transfer closed on the 16th, before its concern was escalated on the 17th: closed, age 0.
    assert closed["Status"] == "Closed" and closed["Age (working days)"] == 0


def test_no_limited_access_name_or_concern_anywhere_in_any_workbook(outcomes: tuple[TrackerRun, dict[str, str]]) -> None:
    run, _ = outcomes
    for path in run.folder.glob("*.xlsx"):
        with zipfile.ZipFile(path) as z:
            for part in z.namelist():
                text = z.read(part).decode(errors="ignore")
                assert LAO_NAME not in text and "Secret Lane" not in text, f"{path.name} {part}"


def test_every_sheet_prints_landscape_fit_to_width_with_its_header_row_repeated(
    outcomes: tuple[TrackerRun, dict[str, str]],
) -> None:
    run, _ = outcomes
    books = sorted(run.folder.glob("*.xlsx"))
    assert len(books) == 13
    for path in books:
        for ws in openpyxl.load_workbook(path):
            where = f"{path.name}: {ws.title}"
            assert ws.page_setup.orientation == "landscape", where
            assert ws.sheet_properties.pageSetUpPr.fitToPage, where
            # One page wide, as many pages down as it takes (openpyxl reads a missing fitToWidth as 1).
            assert (ws.page_setup.fitToWidth or 1) == 1 and ws.page_setup.fitToHeight == 0, where
            assert ws.print_title_rows == "$1:$1", where


def test_list_sheets_are_excel_tables_with_banded_rows(outcomes: tuple[TrackerRun, dict[str, str]]) -> None:
    run, _ = outcomes
    wb = openpyxl.load_workbook(run.folder / "N50.xlsx")
    for ws in wb.worksheets[1:]:
        (table,) = ws.tables.values()
        assert table.tableStyleInfo.showRowStripes, ws.title
        header = [c.value for c in ws[1]]
        assert [c.name for c in table.tableColumns] == header[: len(table.tableColumns)], ws.title
        assert table.ref.startswith("A1:") and ws.auto_filter.ref is None, ws.title  # the table's filter, not a second one
    national = openpyxl.load_workbook(run.national)
    # Every sheet but the Summary (titled blocks and a chart) is a list, and so a table.
    assert {ws.title for ws in national.worksheets if ws.tables} == set(national.sheetnames) - {"Summary"}
    assert {"Police checks", "Compliance", "Workbooks"} <= set(national.sheetnames)


def test_statuses_and_roles_are_plain_words(outcomes: tuple[TrackerRun, dict[str, str]]) -> None:
    run, _ = outcomes
    wb = openpyxl.load_workbook(run.folder / "N50.xlsx")
    statuses = {r["Status"] for r in rows(wb["Transfers"])}
    assert "Awaiting address assessment" in statuses or "Completed" in statuses
    assert not any("_" in s for s in statuses), statuses
    assert {r["Direction"] for r in rows(wb["Transfers"])} <= {"Outgoing", "Incoming", "Within the region"}
    assert not any("_" in (r["Owner role"] or "") for r in rows(wb["Actions"]))
    assert {r["Status"] for r in rows(wb["Actions"])} <= {"Open", "Done", "Cancelled"}


def test_no_cell_in_any_workbook_holds_a_server_path_or_a_build_timing(
    outcomes: tuple[TrackerRun, dict[str, str]], tmp_path: Path
) -> None:
    run, _ = outcomes
    for path in run.folder.glob("*.xlsx"):
        for ws in openpyxl.load_workbook(path, read_only=True):
            for row in ws.iter_rows(values_only=True):
                for v in row:
                    assert not (isinstance(v, str) and (str(tmp_path) in v or "/" + path.name in v)), f"{path.name}: {v}"
    ws = openpyxl.load_workbook(run.national)["Workbooks"]
    assert [c.value for c in ws[1]] == ["Region", "Workbook", "NSIs", "Open"]
    assert {r["Workbook"] for r in rows(ws)} == {f"{r.region_code}.xlsx" for r in run.regions}


@pytest.mark.skipif(
    shutil.which("soffice") is None or shutil.which("pdftotext") is None,
    reason="LibreOffice (soffice) or pdftotext is not installed: apt-get install libreoffice-calc-nogui poppler-utils",
)
def test_a_regional_workbook_rendered_to_pdf_shows_every_column_of_transfers_on_the_page(
    outcomes: tuple[TrackerRun, dict[str, str]], tmp_path: Path
) -> None:
    run, _ = outcomes
    wb = openpyxl.load_workbook(run.folder / "N50.xlsx")
    headers = [c.value for c in wb["Transfers"][1]]
    first_ref = rows(wb["Transfers"])[0]["Reference"]
    out = tmp_path / "pdf"
    subprocess.run(
        ["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/lo-profile", "--convert-to", "pdf", "--outdir",
         str(out), str(run.folder / "N50.xlsx")],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    text = subprocess.run(["pdftotext", str(out / "N50.pdf"), "-"], check=True, capture_output=True, text=True).stdout
    pages = text.split("\f")  # pdftotext ends each page with a form feed
    # The Transfers sheet's first page: the one with its header row and its first transfer.
    page = next(t for t in pages if first_ref in t and "Transferring team" in t)
    words = " ".join(page.split())
    for h in headers:
        # A header cell wraps onto lines of its own; each of its words is on the page.
        assert all(w in words for w in h.split()), h
