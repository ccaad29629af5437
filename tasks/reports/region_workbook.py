"""A region's MIS tracker workbook, sheet by sheet in order: Summary, Transfers, Actions, Police
checks, Compliance, Temporary moves, POM-COM handovers, Challenges and refusals, Escalations,
Record of absences (and Youth measures under the youth profile), built from the region's slice and its figures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.domain.moving_again import load_rule
from tasks.reports.continuity_sheet import write_absences
from tasks.reports.handover_sheet import write_handovers
from tasks.reports.outcome_sheets import write_challenges, write_escalations
from tasks.reports.timeliness_sheets import police_checks_cols, write_compliance
from tasks.reports.tracker_figures import (
    RegionResult,
    _direction,
    _median,
    _months,
    _share,
    compliance,
    police_checks,
    region_figures,
)
from tasks.reports.tracker_read import NAT, RegionInput
from tasks.reports.tracker_words import DIRECTION_WORDS, NSI_TYPES, OWNERS, plain_words
from tasks.reports.workbook import EXCEL_EPOCH, Book, SummaryWriter, date_col, num_col, text_col
from tasks.reports.youth_measures import youth_sheet


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
    mover_rule = load_rule()  # moving again: who has moved `transfers` times or more in `months` months
    movers = f"Repeat mover ({mover_rule.transfers}+ in {mover_rule.months} months)"
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
            text_col("Clock", clock_words(nsis)),
            text_col(movers, np.where(nsis["repeat_mover"].to_numpy() > 0, "Yes", "")),
            text_col("Notes", nsis["notes"]),
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
    write_compliance(
        book,
        comp,
        nsis,
        actions,
        inp.as_of,
        note=(
            f"Due in period: the deadline fell between {inp.window_start:%d/%m/%Y} and {inp.as_of:%d/%m/%Y}. "
            "Deadlines are those in config/timescales.yaml. Diversity: NSIs raised in the period with diversity needs recorded. "
            f"Clock stops: {int((nsis['clock_stops'].fillna(0) > 0).sum())} of these NSIs had their clock stopped (custody, "
            "recall, remand, hospital); the time stopped is out of every measure: their deadlines moved on by it."
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
            num_col("Host contacts recorded", t["host_contacts"], blank_zero=True),
            date_col("Last host contact", t["last_host_contact"]),
        ],
        highlight=(f"Past {inp.caretaking_months} months", '="Yes"'),
        note=f"Caretaking should not normally last beyond {inp.caretaking_months} months (004 12.1); past that, full transfer is presumed.",
    )
    write_handovers(book, inp)
    write_challenges(book, inp)
    write_escalations(book, inp)
    write_absences(book, inp)
    youth_sheet(book, inp.youth)
    return result


def clock_words(nsis: pd.DataFrame) -> np.ndarray:
    """The Transfers sheet's Clock column: "Stopped (recalled to custody) since 16/12/2026", else
    how often it stopped before ("Stopped twice before"), else blank."""
    from tasks.domain.changes import change_rules

    labels = change_rules().clock_stop.reasons
    out = np.full(len(nsis), "", dtype=object)
    stopped = nsis["clock_stopped_on"].to_numpy(dtype="datetime64[D]")
    reasons = nsis["clock_stop_reason"].to_numpy(dtype=object)
    stops = nsis["clock_stops"].fillna(0).to_numpy(dtype=np.int64)
    for i in np.flatnonzero(~np.isnat(stopped)):
        day = pd.Timestamp(stopped[i])
        out[i] = f"Stopped ({labels.get(reasons[i], reasons[i])}) since {day:%d/%m/%Y}"
    for i in np.flatnonzero(np.isnat(stopped) & (stops > 0)):
        out[i] = "Stopped once before" if stops[i] == 1 else f"Stopped {stops[i]} times before"
    return out
