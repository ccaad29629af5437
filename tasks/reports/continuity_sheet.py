"""The tracker's Record of absences sheet (issue 26): the rows tasks/reports/continuity_records.py
reads from the store, each with the transfer it is about."""

from __future__ import annotations

import numpy as np

from tasks.reports.outcome_sheets import case_columns
from tasks.reports.tracker_read import RegionInput
from tasks.reports.tracker_words import OWNERS
from tasks.reports.workbook import Book, date_col, text_col


def write_absences(book: Book, inp: RegionInput) -> None:
    """'Record of absences': each missed appointment, acceptable or not, and the enforcement review."""
    rows = inp.absences
    cols = [
        *case_columns(rows, inp),
        date_col("Missed appointment", np.array([r["on"] for r in rows], dtype="datetime64[D]")),
        text_col("Acceptable", ["Yes" if r["acceptable"] else "No" for r in rows]),
        text_col("First appointment", ["Yes" if r["first_appointment"] else "" for r in rows]),
        text_col("Recorded by", [OWNERS.get(r["recorded_by"], r["recorded_by"]) for r in rows]),
        text_col("Enforcement review", [r["enforcement"] for r in rows]),
        text_col("Notes", [r["notes"] for r in rows]),
    ]
    book.list_sheet(
        "Record of absences",
        cols,
        highlight=("Enforcement review", '="Open"'),
        note=(
            "Missed appointments recorded by either side before completion: the record handed over. Until completion the "
            "transferring practitioner owns enforcement (config/timescales.yaml enforcement_review)."
        ),
    )
