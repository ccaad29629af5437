"""The national MIS tracker workbook: each region's headline figures (and a chart of open and
overdue NSIs), then Police checks and Compliance over England and Wales, Youth measures, and the
regions' workbooks listed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tasks.places.estate import load_estate
from tasks.reports.timeliness_sheets import police_checks_cols, write_compliance
from tasks.reports.tracker_figures import RegionResult, _national_row, compliance, police_checks
from tasks.reports.tracker_read import TrackerConfig, TrackerData, load_tracker_config
from tasks.reports.workbook import Book, SummaryWriter, num_col, text_col
from tasks.reports.youth_measures import youth_sheet


def write_national(data: TrackerData, results: Sequence[RegionResult], path: Path, config: TrackerConfig | None = None) -> Path:
    """The national workbook at `path`; atomic (written beside, then renamed), like a region's."""
    cfg = config or load_tracker_config()
    estate = load_estate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".national-", suffix=".xlsx", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    book = Book(tmp, cfg.layout)
    try:
        nsis, actions = data.nsis, data.actions
        by_code = {r.region_code: r for r in results}
        codes = sorted(data.regions)
        s = SummaryWriter(book, "Summary", [30, 12, 12, 12, 12, 12, 14, 14, 14, 14, 14, 12, 12])
        s.line("Case transfers MIS tracker: national summary", book.title)
        s.line(
            f"As of {data.as_of:%d %B %Y}. NSIs open on that day or closed since {data.window_start:%d %B %Y}. Timeliness is for incoming Case Transfers.",
            book.note,
        )
        s.skip()
        rows = []
        for code in codes:
            r = by_code.get(code) or _national_row(data, code, cfg)
            rows.append(
                [
                    f"{r.region_name} ({code})",
                    r.nsis,
                    r.outgoing,
                    r.incoming,
                    r.open,
                    r.open_overdue,
                    r.overdue_actions,
                    r.median_wd_allocation,
                    r.median_wd_assessment,
                    r.median_wd_completion,
                    r.completed_in_time_share,
                    len(r.slow_police_pdus),
                    r.temporary_moves_past_limit,
                ]
            )
        first, last = s.table(
            "Regions",
            [
                "Region",
                "NSIs",
                "Outgoing",
                "Incoming",
                "Open",
                "Open and overdue",
                "Overdue actions",
                "Median wd to allocation",
                "Median wd to address assessment",
                "Median wd to completion",
                f"Completed within {data.transfer_working_days} wd",
                "Slow police PDUs",
                f"Temporary moves past {data.caretaking_months} months",
            ],
            rows,
            ["text", "int", "int", "int", "int", "int", "int", "num", "num", "num", "pct", "int", "int"],
        )
        total_open = int(nsis["is_open"].sum())
        s.skip()
        s.line(
            f"England and Wales: {len(nsis)} NSIs, {total_open} open, {int((actions['days_overdue'] > 0).sum())} overdue actions.",
            book.bold,
        )
        chart = book.wb.add_chart({"type": "bar"})
        for c, colour in ((4, "#1F4E78"), (5, "#C00000")):
            chart.add_series(
                {
                    "name": ["Summary", first - 1, c],
                    "categories": ["Summary", first, 0, last, 0],
                    "values": ["Summary", first, c, last, c],
                    "fill": {"color": colour},
                }
            )
        chart.set_title({"name": "Open NSIs and open overdue, by region"})
        chart.set_size({"width": 720, "height": 420})
        s.ws.insert_chart(s.row + 1, 0, chart)

        police = police_checks(nsis, actions, cfg)
        rule = cfg.police_checks
        book.list_sheet(
            "Police checks",
            police_checks_cols(
                police,
                {p.code: p.name for p in estate.pdus.values()},
                {p.code: estate.regions[p.region_code].name for p in estate.pdus.values()},
                f"P{rule.percentile:g}",
            ),
            highlight=("Consistently slow", '="Yes"'),
        )
        r_region = nsis["r_region"].to_numpy(dtype=object)
        scopes = [("England and Wales", np.ones(len(nsis), dtype=bool))] + [
            (f"{data.regions[c]} (incoming)", r_region == c) for c in codes
        ]
        comp = compliance(nsis, actions, data.measures, scopes, data.as_of, data.window_start)
        write_compliance(book, comp, nsis, actions, data.as_of)
        youth_sheet(book, data.youth)
        book.list_sheet(
            "Workbooks",
            [
                text_col("Region", [f"{r.region_name} ({r.region_code})" for r in results]),
                # The file's name only: where it sits on the server is no business of the reader's,
                # and build timings belong in the logs and the Prefect artifact.
                text_col("Workbook", [Path(r.path).name for r in results]),
                num_col("NSIs", [r.nsis for r in results]),
                num_col("Open", [r.open for r in results]),
            ],
        )
        book.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
