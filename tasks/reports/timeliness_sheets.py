"""The sheets both tracker workbooks show, a region's and the national one: Police checks (working
days from an NSI received to its police checks returned, by receiving PDU) and Compliance (the
policy's timescales met in the period, then the 2004 inspection's measures)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tasks.calendar import get_calendar
from tasks.reports.workbook import Book, Col, num_col, text_col
from tasks.settings import get_settings


def police_checks_cols(police: Any, pdu_names: Mapping[str, str], region_of_pdu: Mapping[str, str], pct: str) -> list[Col]:
    """The Police checks sheet's columns, the same in a region's workbook and the national one."""
    return [
        text_col("Receiving PDU", police["r_pdu"].map(pdu_names).fillna(police["r_pdu"])),
        text_col("Receiving region", police["r_pdu"].map(region_of_pdu)),
        num_col("Checks", police["checks"]),
        num_col("Returned", police["returned"]),
        num_col("Outstanding", police["outstanding"]),
        num_col("Median working days to return", police["median"], "num"),
        num_col(f"{pct} working days to return", police["p90"], "num"),
        num_col("Share overdue", police["overdue_share"], "pct"),
        text_col("Consistently slow", np.where(police["slow"].to_numpy(dtype=bool), "Yes", "")),
    ]


def write_compliance(
    book: Book, comp: pd.DataFrame, nsis: pd.DataFrame, actions: pd.DataFrame, as_of: dt.date, note: str | None = None
) -> None:
    """'Compliance': the policy's timescales in the reporting period (`comp`), then the 2004
    inspection's measures (tasks/reports/compliance.py, config/tracker.yaml `inspection`) over every NSI,
    with those imported from a legacy tracker apart so a region can compare before and after go-live."""
    from tasks.reports.compliance import inspection

    table = inspection(nsis, actions, as_of, get_calendar(get_settings().calendar))
    k, m = len(comp), len(table)

    def both(ours: Any, theirs: Any) -> list[Any]:
        ours = [None] * k if ours is None else list(ours)
        theirs = [None] * m if theirs is None else list(theirs)
        return ours + theirs

    standard = ["Policy timescales, due in the period"] * k + ["2004 inspection (Appendix 2), all NSIs"] * m
    book.list_sheet(
        "Compliance",
        [
            text_col("Measure", both(comp["measure"], table["measure"])),
            text_col("Scope", both(comp["scope"], table["group"])),
            num_col("Due in period / applicable", both(comp["due"], table["applicable"])),
            num_col("Met in time", both(comp["met"], table["met"])),
            num_col("Share met", both(comp["share"], table["share"]), "pct"),
            num_col("Done late", both(comp["late"], None)),
            num_col("Not done, past due", both(comp["not_done"], None)),
            text_col("Standard", standard),
            num_col("Raised here: applicable", both(None, table["applicable_here"])),
            num_col("Raised here: met", both(None, table["met_here"])),
            num_col("Raised here: share", both(None, table["share_here"]), "pct"),
            num_col("Imported: applicable", both(None, table["applicable_imported"])),
            num_col("Imported: met", both(None, table["met_imported"])),
            num_col("Imported: share", both(None, table["share_imported"]), "pct"),
        ],
        highlight=("Not done, past due", ">0"),
        note=" ".join(
            part
            for part in (
                note,
                "2004 inspection rows: applicable when the NSI has the work (N/A on an imported tracker takes it out) "
                "and it is done or its deadline has passed. Imported: NSIs brought in from a legacy tracker at go-live; "
                "'Raised here' leaves them out. Their deadlines: config/tracker.yaml.",
            )
            if part
        ),
    )
