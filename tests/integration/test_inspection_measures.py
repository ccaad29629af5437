"""The inspection's measures in the tracker (issues 13, 27): a legacy tracker whose dates reproduce
the 2004 inspection's Appendix 2 (002), with its caretaking cases (39% of the sample) and "not
applicable" written in several ways, gives exactly its counts, met of applicable, in the
"Compliance" sheet (its 2004 inspection rows) of the national workbook and of the region's: for
all cases, and for transfers and temporary moves apart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from conftest import TODAY, demo_form
from openpyxl import load_workbook

from tasks.demo.legacy_trackers import HEADERS, write_tracker
from tasks.domain import importer, transfers
from tasks.domain.form import parse_form
from tasks.reports.tracker import run_tracker

NOTIFIED = dt.date(2026, 9, 1)  # a Tuesday; every deadline below has passed by the pinned today
HEADERS_2004 = {**HEADERS, "ethnicity": "Ethnicity", "transfer_report_on": "Transfer report", "full_information_on": "Full information",
                "aco_on": "ACO involvement"}  # fmt: skip
# Appendix 2, "Results": (met, applicable) of the 80 case files.
APPENDIX_2 = {
    "Home visit or address confirmed within 5 working days (2004 standard)": (19, 75),
    "Documents received within 10 days of notification or the start of caretaking": (31, 73),
    "Supervision plan reviewed within 4 weeks of the move": (22, 79),
    "ACO involved (high RoSH / MAPPA) by the due date": (3, 10),
    "High RoSH transfer report the same day": (10, 23),
    "High RoSH full information within 5 working days": (14, 24),
    # "Ethnicity not recorded: 14" of the sample's 80.
    "Diversity recorded": (66, 80),
}


# "Not applicable" as trackers write it (config/import_mapping.yaml not_applicable).
NOT_APPLICABLE = ["N/A", "Not applicable", "n/a", "NA", "N/A ", "-"]


def caretaking(i: int) -> bool:
    """31 of the 80 (39%), spread through the sample: i * 31 mod 80 runs over 0..79 once."""
    return i * 31 % 80 < 31


def day(n: int) -> dt.date:
    return NOTIFIED + dt.timedelta(days=n)


def pick(i: int, met: int, applicable: int, on_time: object, late: object) -> object:
    """Row i: done on time for the first `met`, late (or not done) up to `applicable`, N/A after."""
    return on_time if i < met else late if i < applicable else NOT_APPLICABLE[i % len(NOT_APPLICABLE)]


def appendix_2_rows() -> list[dict[str, object]]:
    rows = []
    for i in range(80):
        high = i < 24
        rows.append(
            {
                "crn": f"H{200000 + i}",
                "name": f"Case File {i}",
                "date_of_birth": dt.date(1970, 1, 1),
                "ethnicity": "White" if i < 66 else "",
                "sentence_type": "CRO",
                "nsi_type": "Caretaking" if caretaking(i) else "Transfer",
                "from": "Greenwich and Bexley",
                "to": "N50CAD",
                "notified_on": NOTIFIED,
                "move_on": NOTIFIED,
                "rosh": "High" if high else "Low",
                # 5 working days from 1 September: 8 September.
                "address_assessment_on": pick(i, 19, 75, day(2), day(29)),
                # 10 days: 11 September; blank is not done, its deadline passed.
                "documents_on": pick(i, 31, 73, day(4), None),
                # 4 weeks from the move: 29 September.
                "plan_review_on": pick(i, 22, 79, day(19), day(49)),
                # High RoSH only: the same day; 5 working days; the ACO action's due date (5 working days).
                "transfer_report_on": pick(i, 10, 23, day(0), day(1)) if high else None,
                "full_information_on": pick(i, 14, 24, day(3), None) if high else None,
                "aco_on": pick(i, 3, 10, day(1), None) if high else None,
            }
        )
    return rows


def expected(group: str) -> dict[str, tuple[int, int]]:
    """Appendix 2's counts for the rows of one group: row i is met below `met`, applicable below
    `applicable` (the high-RoSH measures count the 24 high-RoSH rows only)."""
    rows = [i for i in range(80) if group == "All" or caretaking(i) == (group == "Temporary moves")]
    out = {}
    for measure, (met, applicable) in APPENDIX_2.items():
        sample = [i for i in rows if i < 24] if measure.startswith(("High RoSH", "ACO")) else rows
        out[measure] = (sum(i < met for i in sample), sum(i < applicable for i in sample))
    return out


def measures(path: Path, columns: tuple[str, str], group: str = "All") -> dict[str, tuple[int, int]]:
    sheet = load_workbook(path, read_only=True)["Compliance"]
    rows = list(sheet.iter_rows(values_only=True))
    head = rows[0]
    at = {h: k for k, h in enumerate(head)}
    return {
        r[0]: (r[at[columns[0]]], r[at[columns[1]]])
        for r in rows[1:]
        if r[1] == group and str(r[at["Standard"]]).startswith("2004 inspection")
    }


def test_a_tracker_reproducing_appendix_2_gives_exactly_its_counts_in_the_inspection_measures(store_url: str, tmp_path: Path) -> None:
    path = write_tracker(tmp_path / "appendix-2.xlsx", appendix_2_rows(), headers=HEADERS_2004)
    result = importer.import_tracker(path, region="N07")
    assert len(result.created) == 80 and not result.bad
    # One transfer raised here after go-live: counted with "Raised here", not with the imported ones.
    transfers.register_nsi(parse_form(demo_form(crn="Z111111", raised_on="2026-12-01")), "after-go-live")

    run = run_tracker(TODAY, out_dir=tmp_path / "trackers", workers=1)

    folder = next((tmp_path / "trackers").iterdir())
    for workbook in (folder / "national.xlsx", folder / "N07.xlsx"):
        imported = measures(workbook, ("Imported: met", "Imported: applicable"))
        assert {m: imported[m] for m in APPENDIX_2} == APPENDIX_2 == expected("All"), workbook.name
        for group in ("Case transfers", "Temporary moves"):
            apart = measures(workbook, ("Imported: met", "Imported: applicable"), group)
            assert {m: apart[m] for m in APPENDIX_2} == expected(group), (workbook.name, group)
        here = measures(workbook, ("Raised here: met", "Raised here: applicable"))
        assert here["Diversity recorded"][1] == 1
        whole = measures(workbook, ("Met in time", "Due in period / applicable"))
        assert whole["Diversity recorded"] == (APPENDIX_2["Diversity recorded"][0] + here["Diversity recorded"][0], 81)
    assert run is not None
