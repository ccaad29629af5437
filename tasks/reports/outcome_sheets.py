"""The tracker's Challenges and refusals and Escalations sheets (issue 16), listing the records
tasks/reports/tracker_outcomes.py reads from the store: each row with the transfer it is about."""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.reports.tracker_outcomes import refusal_reason_counts
from tasks.reports.tracker_read import NAT, RegionInput
from tasks.reports.tracker_words import OWNERS
from tasks.reports.workbook import Book, Col, date_col, num_col, text_col


def case_columns(rows: list[dict[str, Any]], inp: RegionInput) -> list[Col]:
    """The transfer each row is about: reference, CRN, name (already restricted for LAO), route."""
    return [
        text_col("Reference", [r["reference"] for r in rows]),
        text_col("CRN", [r["crn"] for r in rows]),
        text_col("Name", [r["name"] for r in rows]),
        text_col("Transferring PDU", [inp.pdu_names.get(r["t_pdu"], r["t_pdu"]) for r in rows]),
        text_col("Receiving PDU", [inp.pdu_names.get(r["r_pdu"], r["r_pdu"]) for r in rows]),
    ]


def write_challenges(book: Book, inp: RegionInput) -> None:
    """'Challenges and refusals': each challenge about risk or refusal of a transfer in or out of the
    region, with its reasons, outcome and the working days it took; under it, refusal reasons counted."""
    rows = inp.challenges
    cols = [
        *case_columns(rows, inp),
        text_col("What", [r["kind"] for r in rows]),
        date_col("Raised", np.array([r["raised_on"] or NAT for r in rows], dtype="datetime64[D]")),
        text_col("Raised by", [OWNERS.get(r["raised_by"], r["raised_by"]) for r in rows]),
        text_col("Concern", [r["concern"] for r in rows]),
        text_col("Reasons", ["; ".join(r["reasons"]) or None for r in rows]),
        text_col("Outcome", [r["outcome"] for r in rows]),
        date_col("Settled", np.array([r["settled_on"] or NAT for r in rows], dtype="datetime64[D]")),
        num_col("Working days taken", [r["days"] for r in rows]),
        text_col("Still open", ["Yes" if r["open"] else "" for r in rows]),
    ]
    counts = refusal_reason_counts(rows)
    book.list_sheet(
        "Challenges and refusals",
        cols,
        highlight=("Still open", '="Yes"'),
        note="Working days taken: from raised to settled (to the dispute's settlement, if disputed), or to the report's day while open.",
        below=[["Refusals by reason (upheld, disputed or refused; not overturned)"], *[[n, reason] for reason, n in counts]]
        if counts
        else [],
    )


def write_escalations(book: Book, inp: RegionInput) -> None:
    """'Escalations': concerns escalated to an SPO and actions escalated for being overdue, open and
    closed, with their age in working days."""
    rows = inp.escalations
    cols = [
        *case_columns(rows, inp),
        text_col("What", [r["kind"] for r in rows]),
        text_col("Detail", [r["detail"] for r in rows]),
        text_col("Escalated by", [r["by"] for r in rows]),
        date_col("Escalated", np.array([r["escalated_on"] for r in rows], dtype="datetime64[D]")),
        text_col("Status", ["Open" if r["open"] else "Closed" for r in rows]),
        date_col("Closed", np.array([r["closed_on"] or NAT for r in rows], dtype="datetime64[D]")),
        num_col("Age (working days)", [r["age"] for r in rows]),
    ]
    book.list_sheet(
        "Escalations",
        cols,
        highlight=("Status", '="Open"'),
        note=(
            "An overdue action's escalation closes when the action is done; a concern's when its transfer closes. "
            "Age: working days from escalation to closing, or to the report's day while open."
        ),
    )
