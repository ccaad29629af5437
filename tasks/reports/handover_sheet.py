"""The tracker's POM-COM handovers sheet: the case admins' report (seed 003) of the handovers whose
COM is in a region, from tasks/notify/handover_report.py's records."""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.reports.tracker_read import NAT, RegionInput
from tasks.reports.workbook import Book, date_col, num_col, text_col


def write_handovers(book: Book, inp: RegionInput) -> None:
    """'POM-COM handovers': the case admins' report (seed 003) of each handover whose COM is in this
    region, from 28 days before it until it is due. A limited access case shows its CRN only."""
    from tasks.domain.handovers import load_rules

    rules = load_rules()
    rows = sorted(inp.handovers, key=lambda h: (h["handover_by"], h["crn"]))
    lao_name = inp.config.layout.lao_name

    def dates(key: str) -> np.ndarray:
        return np.array([h[key] if h[key] is not None else NAT for h in rows], dtype="datetime64[D]")

    def texts(key: str) -> list[Any]:
        return [h[key] for h in rows]

    alert_cols = [
        date_col(f"{label.capitalize()} alert", np.array([h["alerts"][label] for h in rows], dtype="datetime64[D]"))
        for label in [a.label for a in rules.alerts]
    ]
    flag_header = f"No session in final {rules.session_final_months} months"
    cols = [
        text_col("CRN", texts("crn")),
        text_col("Name", [lao_name if h["lao"] else h["name"] for h in rows]),
        text_col("Prison", [None if h["lao"] else h["prison"] for h in rows]),
        date_col("Handover by", dates("handover_by")),
        date_col("Report day", dates("report_on")),
        *alert_cols,
        date_col("Release date", dates("release_date")),
        text_col("POM", texts("pom_name")),
        text_col("POM email", texts("pom_email")),
        text_col("COM", texts("com_name")),
        text_col("COM email", texts("com_email")),
        text_col("COM team", texts("com_team_code")),
        text_col("COM PDU", texts("com_pdu")),
        text_col("Prison OMU mailbox", texts("omu_mailbox")),
        text_col("Sentence", texts("sentence")),
        num_col("Sentence (months)", [h["sentence_length_months"] for h in rows]),
        text_col("Qualifies for in-person session", ["Yes" if h["qualifies"] else "" for h in rows]),
        date_col("Last in-person session", dates("last_session_on")),
        text_col(flag_header, ["Yes" if h["session_missing"] else "" for h in rows]),
    ]
    book.list_sheet(
        "POM-COM handovers",
        cols,
        highlight=(flag_header, '="Yes"'),
        note=(
            f"Handovers from the report day ({rules.report_days_before} days before, or the working day before that) "
            f"until they are due. Qualifying sentences (standard determinate, more than {rules.qualifying_more_than_months} "
            f"months to serve from the sentence date to release) need an in-person session in the final "
            f"{rules.session_final_months} months before the handover (seed 003)."
        ),
    )
