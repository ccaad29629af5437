"""The nightly MIS tracker, figures: police checks, compliance with the timescales, and each
region's and the country's headline figures (the Summary sheet, the national workbook, the
Prefect artifact). Pure functions of the data read (tasks/reports/tracker_read.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from dateutil.relativedelta import relativedelta

from tasks.reports.tracker_read import Measure, RegionInput, TrackerConfig, TrackerData, _wd_between, region_input

# --------------------------------------------------------------------------- figures


def _median(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else None


def _share(num: int, den: int) -> float | None:
    return num / den if den else None


def police_checks(nsis: pd.DataFrame, actions: pd.DataFrame, cfg: TrackerConfig) -> pd.DataFrame:
    """By receiving PDU: checks outstanding, working days from NSI received to checks returned,
    share overdue, and the consistently-slow flag (config/tracker.yaml police_checks)."""
    rule = cfg.police_checks
    pc = actions[(actions["code"] == "police_checks") & (actions["state"] != "cancelled")]
    cols = ["r_pdu", "checks", "returned", "outstanding", "median", "p90", "overdue_share", "slow"]
    if pc.empty:
        return pd.DataFrame(columns=cols)
    done = (pc["state"] == "done").to_numpy()
    wd = np.where(
        done,
        _wd_between(pc["received_on"].to_numpy(dtype="datetime64[D]"), pc["done_on"].to_numpy(dtype="datetime64[D]")),
        np.nan,
    )
    frame = pd.DataFrame(
        {
            "r_pdu": pc["r_pdu"].to_numpy(dtype=object),
            "done": done,
            "open": ~done,
            "wd": wd,
            "overdue": (pc["done_late"] | (pc["days_overdue"] > 0)).to_numpy(),
        }
    )
    g = frame.groupby("r_pdu", sort=True, observed=True)
    out = pd.DataFrame(
        {
            "checks": g.size(),
            "returned": g["done"].sum(),
            "outstanding": g["open"].sum(),
            "median": g["wd"].median(),
            "p90": g["wd"].quantile(rule.percentile / 100),
            "overdue_share": g["overdue"].mean(),
        }
    ).reset_index()
    out["slow"] = (out["median"] > rule.slow_median_working_days) & (out["returned"] >= rule.slow_min_cases)
    return out.sort_values(["slow", "median"], ascending=[False, False], kind="stable").reset_index(drop=True)


def compliance(
    nsis: pd.DataFrame,
    actions: pd.DataFrame,
    measures: Sequence[Measure],
    scopes: Sequence[tuple[str, np.ndarray]],
    as_of: dt.date,
    window_start: dt.date,
) -> pd.DataFrame:
    """The inspection's measures per scope (a label and a mask over nsis).

    Due in period: the deadline fell within the reporting window, on or before the as-of day
    (cancelled actions, refused and withdrawn transfers are out). Met: done by the deadline.
    """
    today, start = np.datetime64(as_of, "D"), np.datetime64(window_start, "D")
    pos = actions["pos"].to_numpy()
    a_due = actions["due_on"].to_numpy(dtype="datetime64[D]")
    a_state = actions["state"].to_numpy(dtype=object)
    a_late = actions["done_late"].to_numpy()
    a_live = (a_state != "cancelled") & (a_due >= start) & (a_due <= today)
    a_code = actions["code"].to_numpy(dtype=object)
    n_due = nsis["due_on"].to_numpy(dtype="datetime64[D]")
    n_status = nsis["status"].to_numpy(dtype=object)
    ct_live = nsis["is_ct"].to_numpy() & (n_due >= start) & (n_due <= today) & ~np.isin(n_status, ["refused", "withdrawn", "superseded"])
    raised = nsis["raised_on"].to_numpy(dtype="datetime64[D]")
    raised_live = (raised >= start) & (raised <= today)
    in_time, completed, is_open = nsis["completed_in_time"].to_numpy(), nsis["completed"].to_numpy(), nsis["is_open"].to_numpy()
    diversity = nsis["diversity_recorded"].to_numpy()
    rows = []
    for measure in measures:
        of_code = a_live & (a_code == measure.code) if measure.kind == "action" else None
        for label, mask in scopes:
            if of_code is not None:
                live = of_code & mask[pos]
                state, late = a_state[live], a_late[live]
                due_n = int(live.sum())
                met = int(((state == "done") & ~late).sum())
                done_late = int(((state == "done") & late).sum())
                not_done = int((state == "open").sum())
            elif measure.kind == "completion":
                live = ct_live & mask
                due_n = int(live.sum())
                met = int(in_time[live].sum())
                done_late = int((completed & ~in_time)[live].sum())
                not_done = int(is_open[live].sum())
            else:
                live = raised_live & mask
                due_n = int(live.sum())
                met = int(diversity[live].sum())
                done_late, not_done = 0, due_n - met
            rows.append(
                {
                    "measure": measure.label,
                    "scope": label,
                    "due": due_n,
                    "met": met,
                    "share": _share(met, due_n),
                    "late": done_late,
                    "not_done": not_done,
                }
            )
    return pd.DataFrame(rows, columns=["measure", "scope", "due", "met", "share", "late", "not_done"])


@dataclass
class RegionResult:
    """What the national summary and the Prefect artifact show for one region."""

    region_code: str
    region_name: str
    path: str
    nsis: int
    outgoing: int
    incoming: int
    open: int
    open_overdue: int
    overdue_actions: int
    median_wd_allocation: float | None
    median_wd_assessment: float | None
    median_wd_completion: float | None
    completed_in_time_share: float | None
    slow_police_pdus: list[str] = field(default_factory=list)
    temporary_moves_past_limit: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0  # of the process that wrote it


def _direction(nsis: pd.DataFrame, code: str) -> np.ndarray:
    out = (nsis["t_region"] == code).to_numpy()
    inc = (nsis["r_region"] == code).to_numpy()
    return np.where(out & inc, "within", np.where(out, "out", "in"))


def _months(window_start: dt.date, as_of: dt.date) -> list[dt.date]:
    first = dt.date(window_start.year, window_start.month, 1)
    months = []
    while first <= as_of:
        months.append(first)
        first += relativedelta(months=1)
    return months


def region_figures(inp: RegionInput, direction: np.ndarray, police: pd.DataFrame) -> RegionResult:
    """The region's headline figures (national summary, artifact). Timeliness is for incoming
    Case Transfers: allocation and assessment are the receiving side's work."""
    nsis, code = inp.nsis, inp.code
    incoming = direction != "out"
    is_open = nsis["is_open"].to_numpy()
    inc_ct = incoming & nsis["is_ct"].to_numpy()
    return RegionResult(
        region_code=code,
        region_name=inp.name,
        path="",
        nsis=len(nsis),
        outgoing=int((direction != "in").sum()),
        incoming=int(incoming.sum()),
        open=int(is_open.sum()),
        open_overdue=int((is_open & (nsis["days_overdue"].to_numpy() > 0)).sum()),
        overdue_actions=int((inp.actions["days_overdue"] > 0).sum()),
        median_wd_allocation=_median(nsis["wd_to_allocation"].to_numpy()[inc_ct]),
        median_wd_assessment=_median(nsis["wd_to_assessment"].to_numpy()[inc_ct]),
        median_wd_completion=_median(nsis["wd_to_completion"].to_numpy()[inc_ct]),
        completed_in_time_share=_share(
            int(nsis["completed_in_time"].to_numpy()[inc_ct].sum()), int(nsis["completed"].to_numpy()[inc_ct].sum())
        ),
        slow_police_pdus=[p for p in police.loc[police["slow"], "r_pdu"] if inp.region_of_pdu.get(p) == code],
        temporary_moves_past_limit=int((nsis["tm_past_limit"].to_numpy() & is_open).sum()),
    )


def _national_row(data: TrackerData, code: str, cfg: TrackerConfig) -> RegionResult:
    """A region whose workbook was not written this run (--region): its figures, no path."""
    inp = region_input(data, code, cfg)
    return region_figures(inp, _direction(inp.nsis, code), police_checks(inp.nsis, inp.actions, cfg))


def headline(data: TrackerData, results: Sequence[RegionResult]) -> dict[str, Any]:
    """The day's national headline figures for the Prefect artifact: each NSI counted once (a
    transfer between regions is in both regions' rows)."""
    nsis = data.nsis
    is_open = nsis["is_open"].to_numpy()
    completed = nsis["completed"].to_numpy() & nsis["is_ct"].to_numpy()
    return {
        "open": int(is_open.sum()),
        "open_overdue": int((is_open & (nsis["days_overdue"].to_numpy() > 0)).sum()),
        "completed": int(completed.sum()),
        "completed_in_time_share": _share(int((nsis["completed_in_time"].to_numpy() & completed).sum()), int(completed.sum())),
        "slow_police": sorted({p for r in results for p in r.slow_police_pdus}),
    }
