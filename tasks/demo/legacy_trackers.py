"""Example legacy trackers, as regions kept them before go-live: for the tests, the benchmark and
the demo (`casetransfer up` imports one). Made by code, with the mess real ones have: a merged
title, blank rows, trailing spaces, dates as text (21/05/2026, 23.06.26), as Excel serials and as
date cells, "N/A", and notes that look like a formula or HTML.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.calendar import get_calendar
from tasks.domain.legacy_tracker import EXCEL_EPOCH
from tasks.places.estate import load_estate
from tasks.settings import get_settings

# Field -> header as the example region spells it (each one the default mapping knows).
HEADERS: dict[str, str] = {
    "crn": "Case Ref ",
    "name": "Offender Name",
    "date_of_birth": "D.O.B.",
    "gender": "Sex",
    "ethnicity": "Ethnicity",
    "sentence_type": "Order/Licence",
    "nsi_type": "Transfer or Caretaking",
    "from": "From PDU",
    "to": "To Team",
    "notified_on": "Date Notified",
    "move_on": "Move date",
    "documents_on": "Docs received",
    "address_assessment_on": "Home visit / address assessment",
    "police_checks_on": "Police checks",
    "safeguarding_checks_on": "Safeguarding",
    "handover_on": "3 way meeting",
    "oasys_on": "OASys",
    "plan_review_on": "Plan review",
    "court_application_on": "Court (LJA) application",
    "completed_on": "Completed",
    "rosh": "High RoSH",
    "mappa_level": "MAPPA",
    "notes": "Notes",
}
# The order work is usually done in, after notification (caretaking rows only end).
WORK = ["documents_on", "address_assessment_on", "police_checks_on", "safeguarding_checks_on", "handover_on",
        "oasys_on", "plan_review_on", "court_application_on", "completed_on"]  # fmt: skip
NOTES = [
    "",
    "Moving in with partner",
    '=HYPERLINK("http://example.invalid/x","click me")',
    "<b>Chased</b> <script>alert('x')</script> police twice",
    "N/A",
    "  waiting on docs  ",
]


@dataclass
class Example:
    path: Path
    good: list[str] = field(default_factory=list)  # CRNs that import
    bad: dict[str, str] = field(default_factory=dict)  # CRN -> the reason expected (a fragment)


def render_date(day: dt.date | None, style: int) -> Any:
    """One of the ways a tracker holds a date."""
    if day is None:
        # Not done yet: blank, or only spaces. ("N/A", given as text, says the work does not apply.)
        return ["", None, "  ", None, " "][style % 5]
    return [
        dt.datetime(day.year, day.month, day.day),
        f"{day:%d/%m/%Y} ",
        f"{day:%d.%m.%y}",
        (day - EXCEL_EPOCH).days,
        f"{day.day} {day:%b %Y}",
    ][style % 5]


def write_tracker(path: Path, rows: Sequence[Mapping[str, Any]], headers: Mapping[str, str] = HEADERS,
                  title: str = "Transfers in and out - DO NOT SORT", blank_every: int = 7) -> Path:  # fmt: skip
    """A workbook as a region kept it: dates in every style (rows give dt.date or None), a merged
    title over the header, blank rows between blocks."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Tracker"
    fields = list(headers)
    ws.cell(1, 1, title)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=min(8, len(fields)))
    ws.cell(2, 1, f"Updated {get_settings().current_date():%d/%m/%Y}")
    for c, f in enumerate(fields, start=1):
        ws.cell(4, c, headers[f])
    r = 5
    for i, row in enumerate(rows):
        if blank_every and i and i % blank_every == 0:
            r += 1  # a blank row between blocks
        for c, f in enumerate(fields, start=1):
            value = row.get(f)
            if f.endswith("_on") or f == "date_of_birth":
                value = value if isinstance(value, str) else render_date(value, i + c)
            if value is None or value == "":
                continue
            cell = ws.cell(r, c, value)
            if isinstance(value, dt.datetime):
                cell.number_format = "dd/mm/yyyy"
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # kept as typed: text that looks like a formula
        r += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def example_rows(n: int, seed: int = 0, as_of: dt.date | None = None, region: str = "N07") -> list[dict[str, Any]]:
    """n good in-flight rows from `region` to other regions, at every stage of the work."""
    rng = random.Random(seed)
    as_of = as_of or get_settings().current_date()
    cal = get_calendar(get_settings().calendar)
    estate = load_estate()
    ours = sorted(t.code for t in estate.teams.values() if t.region_code == region and estate.pdus[t.pdu_code].geographic)
    theirs = sorted(p.code for p in estate.pdus.values() if p.geographic and p.region_code != region)
    teams_of: dict[str, list[str]] = {}
    for t in estate.teams.values():
        teams_of.setdefault(t.pdu_code, []).append(t.code)
    rows = []
    for i in range(n):
        notified = as_of - dt.timedelta(days=rng.randint(1, 70))
        caretaking = rng.random() < 0.3
        to_pdu = rng.choice(theirs)
        to = [to_pdu, estate.pdus[to_pdu].name, sorted(teams_of.get(to_pdu, [to_pdu]))[0]][i % 3]
        row: dict[str, Any] = {
            "crn": f"{'ABCDEFGHJKLMNPRSTVWX'[seed % 20]}{(seed * 100_000 + i) % 1_000_000:06d}" + (" " if i % 4 == 0 else ""),
            "name": f"Person {seed}-{i} Example",
            "date_of_birth": dt.date(1960 + rng.randint(0, 40), rng.randint(1, 12), rng.randint(1, 28)),
            "gender": rng.choice(["M", "F", "Male", "Female", ""]),
            "ethnicity": rng.choice(["White British", "Black Caribbean", "Asian Indian", "Mixed", "N/A", "", "White"]),
            "sentence_type": rng.choice(["CRO", "Licence ", "SSO", "CO", "licence", "PSS"]),
            "nsi_type": "Caretaking" if caretaking else rng.choice(["Transfer", "transfer ", "T/F", "Case transfer"]),
            "from": rng.choice(ours),
            "to": to,
            "notified_on": notified,
            "move_on": None if rng.random() < 0.3 else notified + dt.timedelta(days=rng.randint(0, 10)),
            "rosh": rng.choice(["High", "Medium", "Low", "N/A", "Yes", "No", "Very High"]),
            "mappa_level": rng.choice(["N/A", "", "", "Level 2", "1", "3"]),
            "notes": NOTES[i % len(NOTES)],
        }
        # Work done in order, each on a working day after the last, never after as_of.
        if str(row["sentence_type"]).strip().lower() == "licence":
            row["court_application_on"] = "N/A"  # a licence is not transferred by a court
        if caretaking:
            work = ["completed_on"] if rng.random() < 0.3 else []
        else:
            work = WORK[: rng.randint(0, len(WORK))]
        day = notified
        for f in work:
            day = cal.add_working_days(day, rng.randint(0, 6))
            if day > as_of:
                break
            row[f] = day
        rows.append(row)
    return rows


def bad_rows(as_of: dt.date, region: str = "N07") -> list[tuple[dict[str, Any], str]]:
    """Rows the import must refuse, each with (a fragment of) the reason it gives."""
    estate = load_estate()
    ours = sorted(t.code for t in estate.teams.values() if t.region_code == region and estate.pdus[t.pdu_code].geographic)
    theirs = sorted(p.code for p in estate.pdus.values() if p.geographic and p.region_code != region)
    base = {"name": "Bad Row", "date_of_birth": dt.date(1980, 1, 1), "sentence_type": "CRO", "from": ours[0], "to": theirs[0],
            "notified_on": as_of - dt.timedelta(days=20), "rosh": "Low", "nsi_type": "Transfer"}  # fmt: skip
    return [
        ({**base, "crn": "X12345"}, "is not a CRN"),
        ({**base, "crn": "Z900001", "to": "Atlantis PDU"}, "unknown PDU or team"),
        ({**base, "crn": "Z900002", "police_checks_on": as_of - dt.timedelta(days=30)}, "before the date notified"),
        ({**base, "crn": "Z900003", "documents_on": as_of + dt.timedelta(days=3)}, "in the future"),
        ({**base, "crn": "Z900004", "address_assessment_on": "31/02/2026"}, "is not a date"),
        ({**base, "crn": "Z900005", "notified_on": None}, "notified_on: missing"),
        ({**base, "crn": "Z900006", "nsi_type": "?"}, "Transfer or caretaking not given"),
    ]


def write_example(path: Path, n: int = 20, seed: int = 0, as_of: dt.date | None = None, region: str = "N07",
                  bad: bool = True) -> Example:  # fmt: skip
    """A messy tracker of n good rows (and, with `bad`, the bad ones of `bad_rows` among them)."""
    as_of = as_of or get_settings().current_date()
    rows = example_rows(n, seed, as_of, region)
    example = Example(path, good=[str(r["crn"]).strip() for r in rows])
    if bad:
        for k, (row, reason) in enumerate(bad_rows(as_of, region)):
            rows.insert(min(len(rows), 3 + 4 * k), row)
            example.bad[row["crn"]] = reason
    write_tracker(path, rows)
    return example
