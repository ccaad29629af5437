"""The nightly MIS tracker, sheets: what each region's workbook and the national one hold, in
order (Summary, Transfers, Actions, Police checks, Compliance, Temporary moves, POM-COM handovers,
Challenges and refusals, Escalations), built from a region's slice and its figures."""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.calendar import get_calendar
from tasks.places.estate import load_estate
from tasks.reports.tracker_figures import (
    RegionResult,
    _direction,
    _median,
    _months,
    _national_row,
    _share,
    compliance,
    police_checks,
    region_figures,
)
from tasks.reports.tracker_read import NAT, RegionInput, TrackerConfig, TrackerData, load_tracker_config
from tasks.reports.workbook import EXCEL_EPOCH, Book, Col, SummaryWriter, date_col, num_col, text_col
from tasks.reports.youth_measures import youth_sheet
from tasks.settings import get_settings

NSI_TYPES = {"case_transfer": "Case Transfer", "temporary_move": "Temporary Move"}
OWNERS = {
    "transferring_pp": "Transferring practitioner",
    "transferring_spo": "Transferring SPO",
    "receiving_spo": "Receiving SPO",
    "receiving_pp": "Receiving practitioner",
    "admin": "Case admin",
    "receiving_head": "Head of the receiving PDU",
    "service_manager": "Service Manager (youth justice)",
}
# Statuses whose plain words are not just the code with spaces (see plain_words).
STATUS_WORDS = {"lao": "Limited access", "tm_supporting": "Supporting (temporary move)"}
DIRECTION_WORDS = {"out": "Outgoing", "in": "Incoming", "within": "Within the region"}


def plain_words(values: Any, words: Mapping[str, str] = STATUS_WORDS) -> list[Any]:
    """Codes as a manager reads them: 'awaiting_address_assessment' -> 'Awaiting address assessment'.

    Worked out once per distinct code, not per cell (a region has tens of thousands of rows)."""
    arr = np.asarray(values, dtype=object)
    out = {}
    for code in pd.unique(arr):
        if code is None or (isinstance(code, float) and math.isnan(code)):
            out[code] = None
        else:
            text = str(code)
            out[code] = words.get(text) or text.replace("_", " ").strip().capitalize()
    return [out[v] for v in arr]


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


def build_region_sheets(book: Book, inp: RegionInput) -> RegionResult:
    """Every sheet of a region's workbook, in order, into `book`."""
    nsis, actions, code, cfg = inp.nsis, inp.actions, inp.code, inp.config
    direction = _direction(nsis, code)
    outgoing = direction != "in"
    incoming = direction != "out"
    ct = nsis["is_ct"].to_numpy()
    tm = ~ct
    act_dir = direction[actions["pos"].to_numpy()]
    police = police_checks(nsis, actions, cfg)
    result = region_figures(inp, direction, police)

    # Summary ------------------------------------------------------------------------------
    s = SummaryWriter(book, "Summary", [46, 26, 13, 13, 13, 15])
    s.line(f"Case transfers MIS tracker: {inp.name} ({code})", book.title)
    s.line(
        f"As of {inp.as_of:%d %B %Y}. NSIs open on that day or closed since {inp.window_start:%d %B %Y}. "
        "Outgoing: this region transfers the case; incoming: it receives it (a move within the region counts as both).",
        book.note,
    )
    s.skip()
    counts = pd.DataFrame(
        {
            "type": nsis["nsi_type"].to_numpy(dtype=object),
            "status": nsis["status"].to_numpy(dtype=object),
            "out": outgoing,
            "in": incoming,
        }
    )
    g = (
        counts.groupby(["type", "status"], sort=True, observed=True)
        .agg(out=("out", "sum"), inc=("in", "sum"), total=("out", "size"))
        .reset_index()
    )
    rows: list[list[Any]] = [
        [NSI_TYPES.get(r.type, r.type), plain_words([r.status])[0], int(r.out), int(r.inc), int(r.total)] for r in g.itertuples()
    ]
    rows.append(["All", "", int(outgoing.sum()), int(incoming.sum()), len(nsis)])
    s.table(
        "NSIs by type and status",
        ["Type", "Status", "Outgoing", "Incoming", "Total"],
        rows,
        ["text", "text", "int", "int", "int"],
    )
    s.skip()

    od = actions[(actions["days_overdue"] > 0).to_numpy()]
    od_dir = act_dir[(actions["days_overdue"] > 0).to_numpy()]
    frame = pd.DataFrame(
        {
            "title": od["title"].to_numpy(dtype=object),
            "owner": od["owner_role"].to_numpy(dtype=object),
            "out": od_dir != "in",
            "in": od_dir != "out",
            "days": od["days_overdue"].to_numpy(),
        }
    )
    g = (
        frame.groupby(["title", "owner"], sort=True, observed=True)
        .agg(out=("out", "sum"), inc=("in", "sum"), total=("days", "size"), median=("days", "median"))
        .reset_index()
    )
    g = g.sort_values("total", ascending=False, kind="stable")
    rows = [
        [r.title, OWNERS.get(r.owner, r.owner), int(r.out), int(r.inc), int(r.total), float(r.median)] for r in g.itertuples()
    ]
    rows.append(
        [
            "All",
            "",
            int((od_dir != "in").sum()),
            int((od_dir != "out").sum()),
            len(od),
            _median(od["days_overdue"].to_numpy(dtype=float)),
        ]
    )
    s.table(
        "Overdue actions (open past their due date on the as-of day)",
        ["Action", "Owner", "Outgoing", "Incoming", "Total", "Median working days overdue"],
        rows,
        ["text", "text", "int", "int", "int", "num"],
    )
    s.skip()

    def timeliness(mask: np.ndarray) -> list[Any]:
        m = mask & ct
        done = int(nsis["completed"].to_numpy()[m].sum())
        return [
            _median(nsis["wd_to_allocation"].to_numpy()[m]),
            _median(nsis["wd_to_assessment"].to_numpy()[m]),
            _median(nsis["wd_to_completion"].to_numpy()[m]),
            _share(int(nsis["completed_in_time"].to_numpy()[m].sum()), done),
            done,
        ]

    t_out, t_in, t_all = timeliness(outgoing), timeliness(incoming), timeliness(np.ones(len(nsis), dtype=bool))
    labels = [
        ("Median working days, received to allocation", "num"),
        ("Median working days, received to address assessment", "num"),
        ("Median working days, raised to completion", "num"),
        (f"Completed within {inp.transfer_working_days} working days (share of completed)", "pct"),
        ("Completed", "int"),
    ]
    s.ws.write_string(s.row, 0, "Timeliness (Case Transfers)", book.bold)
    s.row += 1
    for c, h in enumerate(["Measure", "Outgoing", "Incoming", "All"]):
        s.ws.write_string(s.row, c, h, book.header)
    s.row += 1
    for i, (label, kind) in enumerate(labels):
        s.ws.write_string(s.row, 0, label)
        for c, v in enumerate((t_out[i], t_in[i], t_all[i]), start=1):
            if v is not None:
                s.ws.write_number(s.row, c, v, book.formats[kind])
        s.row += 1
    s.skip()

    months = _months(inp.window_start, inp.as_of)
    month_of = lambda days: days.astype("datetime64[M]")  # noqa: E731
    raised_m = month_of(nsis["raised_on"].to_numpy(dtype="datetime64[D]"))
    closed_m = month_of(nsis["closed_on"].to_numpy(dtype="datetime64[D]"))
    completed = nsis["completed"].to_numpy()
    rows = []
    for m in months:
        key = np.datetime64(m, "M")
        rows.append(
            [
                np.datetime64(m, "D"),
                int((outgoing & (raised_m == key)).sum()),
                int((incoming & (raised_m == key)).sum()),
                int((completed & (closed_m == key)).sum()),
            ]
        )
    month_rows = [[int((r[0] - EXCEL_EPOCH).astype(np.int64)), *r[1:]] for r in rows]
    first, last = s.table(
        "NSIs raised and transfers completed per month",
        ["Month", "Raised, outgoing", "Raised, incoming", "Completed"],
        month_rows,
        ["month", "int", "int", "int"],
    )
    chart = book.wb.add_chart({"type": "column"})
    for c, colour in ((1, "#1F4E78"), (2, "#70AD47"), (3, "#ED7D31")):
        chart.add_series(
            {
                "name": ["Summary", first - 1, c],
                "categories": ["Summary", first, 0, last, 0],
                "values": ["Summary", first, c, last, c],
                "fill": {"color": colour},
            }
        )
    chart.set_title({"name": f"{inp.name}: raised and completed per month"})
    chart.set_x_axis({"num_format": "mmm yy", "date_axis": False})
    chart.set_y_axis({"name": "NSIs"})
    chart.set_size({"width": 720, "height": 320})
    s.ws.insert_chart(3, 7, chart)

    # Transfers ----------------------------------------------------------------------------
    book.list_sheet(
        "Transfers",
        [
            text_col("Reference", nsis["reference"]),
            text_col("CRN", nsis["crn"]),
            text_col("Name", nsis["name"]),
            text_col("Type", nsis["nsi_type"].map(NSI_TYPES)),
            text_col("Direction", plain_words(direction, DIRECTION_WORDS)),
            text_col("Transferring PDU", nsis["t_pdu_name"]),
            text_col("Transferring team", nsis["t_team_name"]),
            text_col("Receiving PDU", nsis["r_pdu_name"]),
            text_col("Receiving team", nsis["r_team_name"]),
            text_col("Status", plain_words(nsis["status"])),
            date_col("Raised", nsis["raised_on"]),
            date_col("Due", nsis["due_on"]),
            text_col("Next action", nsis["next_action"]),
            date_col("Next action due", nsis["next_action_due"]),
            num_col("Days overdue (working)", nsis["days_overdue"], blank_zero=True),
        ],
        highlight=("Days overdue (working)", ">0"),
    )

    # Actions ------------------------------------------------------------------------------
    book.list_sheet(
        "Actions",
        [
            text_col("NSI", actions["reference"]),
            text_col("Action", actions["title"]),
            text_col("Owner role", actions["owner_role"].map(OWNERS).fillna(actions["owner_role"])),
            date_col("Due", actions["due_on"]),
            date_col("Done", actions["done_on"]),
            text_col("Status", plain_words(actions["state"])),
            num_col("Days overdue (working)", actions["days_overdue"], blank_zero=True),
        ],
        highlight=("Days overdue (working)", ">0"),
    )

    # Police checks ------------------------------------------------------------------------
    rule = cfg.police_checks
    pct = f"P{rule.percentile:g}"
    book.list_sheet(
        "Police checks",
        police_checks_cols(police, inp.pdu_names, inp.region_of_pdu, pct),
        highlight=("Consistently slow", '="Yes"'),
        note=(
            f"Working days from NSI received to police checks returned. Consistently slow: median above "
            f"{rule.slow_median_working_days:g} working days over at least {rule.slow_min_cases} returned checks (config/tracker.yaml)."
        ),
    )

    # Compliance ---------------------------------------------------------------------------
    scopes: list[tuple[str, np.ndarray]] = [
        ("All", np.ones(len(nsis), dtype=bool)),
        ("Outgoing", outgoing),
        ("Incoming", incoming),
    ]
    r_pdu = nsis["r_pdu"].to_numpy(dtype=object)
    for pdu in sorted({p for p, reg in inp.region_of_pdu.items() if reg == code} & set(r_pdu[incoming])):
        scopes.append((f"Incoming: {inp.pdu_names.get(pdu, pdu)}", incoming & (r_pdu == pdu)))
    comp = compliance(nsis, actions, inp.measures, scopes, inp.as_of, inp.window_start)
    compliance_sheet(
        book,
        comp,
        nsis,
        actions,
        inp.as_of,
        note=(
            f"Due in period: the deadline fell between {inp.window_start:%d/%m/%Y} and {inp.as_of:%d/%m/%Y}. "
            "Deadlines are those in config/timescales.yaml. Diversity: NSIs raised in the period with diversity needs recorded."
        ),
    )

    # Temporary moves ----------------------------------------------------------------------
    t = nsis[tm]
    past = t["tm_past_limit"].to_numpy(dtype=bool)
    book.list_sheet(
        "Temporary moves",
        [
            text_col("Reference", t["reference"]),
            text_col("CRN", t["crn"]),
            text_col("Name", t["name"]),
            text_col("Direction", plain_words(direction[tm], DIRECTION_WORDS)),
            text_col("Transferring PDU", t["t_pdu_name"]),
            text_col("Receiving PDU", t["r_pdu_name"]),
            text_col("Status", plain_words(t["status"])),
            date_col("Moved", t["tm_start"]),
            date_col("Expected return", t["expected_return"]),
            date_col("Ended", np.where(t["is_open"].to_numpy(), NAT, t["closed_on"].to_numpy(dtype="datetime64[D]"))),
            num_col("Days so far", t["tm_days"]),
            date_col(f"{inp.caretaking_months} months on", t["tm_limit_on"]),
            text_col(f"Past {inp.caretaking_months} months", np.where(past, "Yes", "")),
        ],
        highlight=(f"Past {inp.caretaking_months} months", '="Yes"'),
        note=f"Caretaking should not normally last beyond {inp.caretaking_months} months (004 12.1); past that, full transfer is presumed.",
    )
    handover_sheet(book, inp)
    challenges_sheet(book, inp)
    escalations_sheet(book, inp)
    youth_sheet(book, inp.youth)
    return result


def compliance_sheet(
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


def handover_sheet(book: Book, inp: RegionInput) -> None:
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
            f"until they are due. Qualifying sentences need an in-person session in the final "
            f"{rules.session_final_months} months before the handover (seed 003)."
        ),
    )


def _case_cols(rows: list[dict[str, Any]], inp: RegionInput) -> list[Col]:
    """The transfer each row is about: reference, CRN, name (already restricted for LAO), route."""
    return [
        text_col("Reference", [r["reference"] for r in rows]),
        text_col("CRN", [r["crn"] for r in rows]),
        text_col("Name", [r["name"] for r in rows]),
        text_col("Transferring PDU", [inp.pdu_names.get(r["t_pdu"], r["t_pdu"]) for r in rows]),
        text_col("Receiving PDU", [inp.pdu_names.get(r["r_pdu"], r["r_pdu"]) for r in rows]),
    ]


def challenges_sheet(book: Book, inp: RegionInput) -> None:
    """'Challenges and refusals': each challenge about risk or refusal of a transfer in or out of the
    region, with its reasons, outcome and the working days it took; under it, refusal reasons counted."""
    from tasks.reports.tracker_outcomes import refusal_reason_counts

    rows = inp.challenges
    cols = [
        *_case_cols(rows, inp),
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


def escalations_sheet(book: Book, inp: RegionInput) -> None:
    """'Escalations': concerns escalated to an SPO and actions escalated for being overdue, open and
    closed, with their age in working days."""
    rows = inp.escalations
    cols = [
        *_case_cols(rows, inp),
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


# --------------------------------------------------------------------------- national summary


def write_national(data: TrackerData, results: Sequence[RegionResult], path: Path, config: TrackerConfig | None = None) -> Path:
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
        compliance_sheet(book, comp, nsis, actions, data.as_of)
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
