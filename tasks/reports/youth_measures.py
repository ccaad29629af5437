"""The tracker's Youth measures sheet (issue 18: 004_b0433574f6005d61.txt), read from the store.

One row per youth justice NSI in scope, and the count of each measure met under the list:

- **Home visit done** (11.3): the address confirmed by a home visit (the address assessment,
  which the youth profile records only as a home visit). Case Transfers only.
- **Allocated within 2 working days** (11.4) and **three-way meeting within 5 working days of
  reallocation** (11.7): the action done by its due date (config/profiles/youth.yaml sets both).
  "No" once it is done late or its due date has passed; blank while it can still be met.
- **Caretaking past 3 months** (12.1): a caretaking arrangement (Temporary Move) still open more
  than the caretaking limit after it was raised.
- **Contact records on time** (12.8): the host's records of contacts checked, on time and late.
- **Co-allocation reviews on time** (5.3): the co-allocated workers' reviews, at least every six
  weeks, recorded on time and late.
- **Stayed** (12.4): how often a transfer in was stayed for missing information.

Plain dicts, like tasks.reports.tracker_outcomes: the region slices are pickled to the workers. Limited
access cases carry their CRN only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from tasks.domain.policy import get_policy
from tasks.domain.transfer import recurring_events
from tasks.reports.tracker_outcomes import _NSI_COLUMNS, _case, _date
from tasks.store.models import Action, HistoryEntry, Nsi
from tasks.store.unit_of_work import UnitOfWork

YOUTH = "youth"
ON_TIME, LATE = "contact records on time", "contact records late"  # tasks/domain/transfers.py's history events
REVIEW_ON_TIME, REVIEW_LATE = recurring_events("co_allocation_review")  # 5.3
STAYED = "stayed"  # 12.4: tasks/domain/youth_steps.py's event (and the stay's own note: counted once, below)
SUMMARY_GAP = 4  # the empty cells between a measure and its counts
SHEET = "Youth measures"


def _met(action: dict[str, Any] | None, as_of: dt.date) -> str:
    """Yes: done by its due date; No: done late, or past due; blank: not applicable, or still in time."""
    if action is None or action["status"] == "cancelled":
        return ""
    done, due = _date(action["done_on"]), _date(action["due_on"])
    if done is not None:
        return "Yes" if due is None or done <= due else "No"
    return "No" if due is not None and as_of > due else ""


def youth_records(
    as_of: dt.date, nsi_ids: Collection[int] | None = None, url: str | None = None, lao_name: str = "Restricted (LAO)",
    whole: Collection[int] = (),
) -> list[dict[str, Any]]:
    """One row per youth NSI in scope (`nsi_ids`; None: all), by reference."""
    scope = set(nsi_ids) if nsi_ids is not None else None
    months = get_policy(YOUTH).caretaking_months
    with UnitOfWork(url) as uow:
        s = uow.session
        nsis = [
            n
            for n in s.execute(select(*_NSI_COLUMNS, Nsi.nsi_type, Nsi.status, Nsi.raised_on).where(Nsi.profile == YOUTH))
            if scope is None or n.id in scope
        ]
        ids = [n.id for n in nsis]
        actions: dict[tuple[int, str], dict[str, Any]] = {}
        counts: dict[tuple[int, str], int] = {}
        for chunk in (ids[i : i + 1000] for i in range(0, len(ids), 1000)):
            for a in s.execute(
                select(Action.nsi_id, Action.code, Action.status, Action.due_on, Action.done_on).where(Action.nsi_id.in_(chunk))
            ):
                actions[(a.nsi_id, a.code)] = {"status": a.status, "due_on": a.due_on, "done_on": a.done_on}
            for h in s.execute(
                select(HistoryEntry.nsi_id, HistoryEntry.event, HistoryEntry.key).where(
                    HistoryEntry.nsi_id.in_(chunk), HistoryEntry.event.in_((ON_TIME, LATE, REVIEW_ON_TIME, REVIEW_LATE, STAYED))
                )
            ):
                if h.event == STAYED and not h.key.startswith("attempt:"):
                    continue  # the stay's second line (what it reopened) is the same stay
                counts[(h.nsi_id, h.event)] = counts.get((h.nsi_id, h.event), 0) + 1
    rows = []
    for n in sorted(nsis, key=lambda n: n.reference):
        transfer = n.nsi_type == "case_transfer"
        visit = actions.get((n.id, "address_assessment"))
        past = not transfer and n.closed_on is None and as_of > _date(n.raised_on) + relativedelta(months=months)
        rows.append(
            {
                **_case(n, lao_name, whole),
                "nsi_type": "Case Transfer" if transfer else "Caretaking",
                "status": n.status.replace("_", " ").capitalize(),
                "home_visit": ("Yes" if visit and visit["status"] == "done" else "No") if transfer else "",
                "allocated_in_time": _met(actions.get((n.id, "allocate")), as_of) if transfer else "",
                "meeting_in_time": _met(actions.get((n.id, "three_way_handover")), as_of) if transfer else "",
                "caretaking_past_limit": "Yes" if past else "",
                "contacts_on_time": counts.get((n.id, ON_TIME), 0),
                "contacts_late": counts.get((n.id, LATE), 0),
                "reviews_on_time": counts.get((n.id, REVIEW_ON_TIME), 0),
                "reviews_late": counts.get((n.id, REVIEW_LATE), 0),
                "stays": counts.get((n.id, STAYED), 0),
            }
        )
    return rows


def summary(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The rows under the list: each measure, how many met it, of how many it applied to."""

    def met(key: str) -> list[int]:
        given = [r[key] for r in rows if r[key]]
        return [given.count("Yes"), len(given)]

    months = get_policy(YOUTH).caretaking_months
    on_time = sum(r["contacts_on_time"] for r in rows)
    reviews = sum(r["reviews_on_time"] for r in rows)
    measures = [
        ["Home visits done (11.3)", *met("home_visit")],
        ["Allocated within 2 working days (11.4)", *met("allocated_in_time")],
        ["Three-way meetings within 5 working days of reallocation (11.7)", *met("meeting_in_time")],
        [f"Caretaking past {months} months (12.1)", sum(1 for r in rows if r["caretaking_past_limit"]),
         sum(1 for r in rows if r["nsi_type"] == "Caretaking")],
        ["Contact records received on time (12.8)", on_time, on_time + sum(r["contacts_late"] for r in rows)],
        ["Co-allocation reviews on time, at least every six weeks (5.3)", reviews, reviews + sum(r["reviews_late"] for r in rows)],
        ["Transfers in stayed for missing information (12.4)", sum(1 for r in rows if r["stays"]),
         sum(1 for r in rows if r["nsi_type"] == "Case Transfer")],
    ]  # fmt: skip
    # The counts sit SUMMARY_GAP columns right of the label, so the label runs on across the empty
    # cells between (a spreadsheet shows text over empty neighbours) instead of being cut at column A.
    return [[label, *[None] * SUMMARY_GAP, *counts] for label, *counts in [["Measure", "Met", "Of"], *measures]]


def youth_sheet(book: Any, rows: list[dict[str, Any]]) -> None:
    """The Youth measures sheet of a tracker workbook (tasks/tracker.Book); none without youth NSIs."""
    from tasks.reports.workbook import num_col, text_col

    if not rows:
        return
    cols = [
        text_col("Reference", [r["reference"] for r in rows]),
        text_col("CRN", [r["crn"] for r in rows]),
        text_col("Name", [r["name"] for r in rows]),
        text_col("Type", [r["nsi_type"] for r in rows]),
        text_col("Status", [r["status"] for r in rows]),
        text_col("Home visit done (11.3)", [r["home_visit"] for r in rows]),
        text_col("Allocated within 2 working days (11.4)", [r["allocated_in_time"] for r in rows]),
        text_col("Three-way meeting within 5 working days (11.7)", [r["meeting_in_time"] for r in rows]),
        text_col("Caretaking past the limit (12.1)", [r["caretaking_past_limit"] for r in rows]),
        num_col("Contact records on time (12.8)", [r["contacts_on_time"] for r in rows]),
        num_col("Contact records late (12.8)", [r["contacts_late"] for r in rows]),
        num_col("Co-allocation reviews on time (5.3)", [r["reviews_on_time"] for r in rows]),
        num_col("Co-allocation reviews late (5.3)", [r["reviews_late"] for r in rows]),
        num_col("Times stayed (12.4)", [r["stays"] for r in rows]),
    ]
    book.list_sheet(
        SHEET,
        cols,
        note="Youth justice (004): blank where a measure does not apply or can still be met.",
        below=summary(rows),
    )
