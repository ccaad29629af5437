"""The nightly MIS tracker: one Excel workbook per region and a national summary.

Reading: a few SQL queries into pandas (no ORM objects: 100k NSIs and their actions would take
minutes that way). Working days are counted with numpy over whole columns, once, before the
data are split by region. Writing: XlsxWriter in constant_memory mode (the fastest writer
measured, shared/NOTES.md); that mode forbids add_table, so each list gets an autofilter, and
column widths are computed here. XlsxWriter writes every sheet's structure, formats, header
and first data row; the other rows of the long lists are generated as the same worksheet XML
and spliced in (Book, fast_rows), which cuts the CPU of a night several times over. Regions
are written by a small process pool: the work is CPU-bound and the machine has two cores.

Safety: every piece of text is a string cell (XlsxWriter's write_string, or an inline string
in the generated rows), so a name like '=HYPERLINK("http://x","y")' is stored as text, never as
a formula. A limited access offender's name is replaced before any sheet is built, so it cannot
leak into one.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import re
import tempfile
import textwrap
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xlsxwriter
from dateutil.relativedelta import relativedelta
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import String, and_, or_, select, type_coerce
from xlsxwriter.utility import _preserve_whitespace, _utf16_len, _utf16_truncate
from xlsxwriter.xmlwriter import XMLwriter

from tasks.calendar import get_calendar
from tasks.config_files import read_yaml
from tasks.domain.policy import Policy, get_policy
from tasks.notify.handover_reminders import report_records
from tasks.places.estate import load_estate
from tasks.reports.youth_measures import youth_sheet
from tasks.settings import get_settings
from tasks.store.models import Action, Nsi
from tasks.store.session import get_engine

NAT = np.datetime64("NaT", "D")
EXCEL_EPOCH = np.datetime64("1899-12-30", "D")
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


# --------------------------------------------------------------------------- configuration


class PoliceRule(BaseModel):
    slow_median_working_days: float
    slow_min_cases: int
    percentile: float = 90


class MeasureConfig(BaseModel):
    measure: str
    action: str | None = None
    completion: bool = False
    diversity: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> MeasureConfig:
        if sum([self.action is not None, self.completion, self.diversity]) != 1:
            raise ValueError(f"compliance: {self.measure!r} needs exactly one of action, completion, diversity")
        return self


class Layout(BaseModel):
    max_column_width: int = 60
    date_format: str = "dd/mm/yyyy"
    overdue_fill: str = "#FFC7CE"
    overdue_font: str = "#9C0006"
    header_fill: str = "#1F4E78"
    lao_name: str = "Restricted (LAO)"


class TrackerConfig(BaseModel):
    reporting_window_months: int = Field(..., ge=1)
    national_workbook: str = "national"
    workers: int = Field(2, ge=1)
    police_checks: PoliceRule
    compliance: list[MeasureConfig]
    layout: Layout = Field(default_factory=Layout)


@lru_cache(maxsize=2)
def load_tracker_config(path: Path | None = None) -> TrackerConfig:
    path = path or get_settings().config_dir / "tracker.yaml"
    return TrackerConfig.model_validate(read_yaml(path))


@dataclass(frozen=True)
class Measure:
    """One inspection measure, resolved against the policy in force."""

    label: str
    kind: Literal["action", "completion", "diversity"]
    code: str | None = None


def _limit(rule_units: dict[str, int | None]) -> str:
    for unit, name in (("working_days", "working days"), ("days", "days"), ("weeks", "weeks"), ("months", "months")):
        value = rule_units.get(unit)
        if value is not None:
            return f"{value} {name[:-1] if value == 1 else name}"
    return ""


def resolve_measures(cfg: TrackerConfig, policy: Policy) -> list[Measure]:
    """Labels carry the deadline from config/timescales.yaml ('Documents received within 10 days')."""
    measures = []
    for m in cfg.compliance:
        if m.action is not None:
            try:
                rule = policy.rule(m.action)
            except KeyError:
                raise ValueError(
                    f"config/tracker.yaml: compliance measure {m.measure!r} names unknown action {m.action!r}"
                ) from None
            units = {"working_days": rule.working_days, "days": rule.days, "weeks": rule.weeks, "months": rule.months}
            measures.append(Measure(f"{m.measure} within {_limit(units)}", "action", m.action))
        elif m.completion:
            measures.append(Measure(f"{m.measure} within {_limit({'working_days': policy.transfer_working_days})}", "completion"))
        else:
            measures.append(Measure(m.measure, "diversity"))
    return measures


# --------------------------------------------------------------------------- reading the store


@dataclass
class TrackerData:
    """Everything the workbooks need, one row per NSI in scope and one per action of those NSIs."""

    as_of: dt.date
    window_start: dt.date
    nsis: pd.DataFrame
    actions: pd.DataFrame
    regions: dict[str, str]  # code -> name, every region in the estate
    measures: list[Measure]
    transfer_working_days: int
    caretaking_months: int
    # POM-COM handovers in their report window (tasks/handover_reminders.report_records), LAO already redacted.
    handovers: list[dict[str, Any]] = field(default_factory=list)
    # Challenges and refusals, and escalations (tasks/reports/tracker_outcomes.py), LAO already redacted.
    challenges: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    youth: list[dict[str, Any]] = field(default_factory=list)  # tasks/reports/youth_measures.py


def _d(col: Any) -> Any:
    # Dates come back as ISO strings on SQLite: skipping SQLAlchemy's per-row date parsing and
    # converting whole columns with numpy is ~10x faster. PostgreSQL returns date objects,
    # which the same numpy conversion accepts.
    return type_coerce(col, String).label(col.name)


def _dates(s: pd.Series) -> np.ndarray:
    values = s.to_numpy(dtype=object)
    values = np.where(pd.isna(values), None, values)
    return values.astype("datetime64[D]")


def _wd_between(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Working days from start to end per row (float, NaN where either date is missing)."""
    cal = get_calendar(get_settings().calendar)
    out = np.full(len(start), np.nan)
    ok = ~(np.isnat(start) | np.isnat(end))
    if ok.any():
        out[ok] = cal.working_days_between_many(start[ok], end[ok])
    return out


def _add_months(days: np.ndarray, months: int) -> np.ndarray:
    """relativedelta(months=...) per row, as tasks.domain.actions.transfer_due does (month ends clamp)."""
    out = np.full(len(days), NAT)
    ok = ~np.isnat(days)
    if ok.any():
        uniq, inv = np.unique(days[ok], return_inverse=True)
        shifted = np.array([d + relativedelta(months=months) for d in uniq.astype(object)], dtype="datetime64[D]")
        out[ok] = shifted[inv.reshape(-1)]
    return out


ACTION_CHUNK = 100_000


def _read_actions(conn: Any, query: Any) -> pd.DataFrame:
    """The actions in chunks, each shrunk at once (dates to datetime64, repeated text to
    categories): read whole, the row tuples and their string objects cost ~0.5 GB at 100k NSIs."""
    from pandas.api.types import union_categoricals

    parts: list[pd.DataFrame] = []
    for chunk in pd.read_sql(query, conn, chunksize=ACTION_CHUNK):
        chunk["due_on"], chunk["done_on"] = _dates(chunk["due_on"]), _dates(chunk["done_on"])
        for c in ("code", "title", "owner_role", "status"):
            chunk[c] = chunk[c].astype("category")
        parts.append(chunk)
    if not parts:
        return pd.read_sql(query.limit(0), conn)
    out = pd.DataFrame({c: np.concatenate([p[c].to_numpy() for p in parts]) for c in ("id", "nsi_id", "due_on", "done_on")})
    for c in ("code", "title", "owner_role", "status"):
        out[c] = union_categoricals([p[c] for p in parts])
    return out


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM); the benchmark reports it per worker."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_data(as_of: dt.date, url: str | None = None, config: TrackerConfig | None = None) -> TrackerData:
    """Read the NSIs in scope (open on the as-of day, or closed within the reporting window) and
    their actions, and compute every per-row figure the sheets show."""
    cfg = config or load_tracker_config()
    settings = get_settings()
    policy = get_policy(settings.profile)
    estate = load_estate()
    window_start = as_of - relativedelta(months=cfg.reporting_window_months)
    today = np.datetime64(as_of, "D")
    n, a = Nsi.__table__, Action.__table__
    scope = and_(n.c.raised_on <= as_of, or_(n.c.closed_on.is_(None), n.c.closed_on >= window_start))
    nsi_q = select(
        n.c.id, n.c.reference, n.c.crn, n.c.name, n.c.lao, n.c.nsi_type, n.c.status, n.c.diversity_recorded,
        _d(n.c.raised_on), _d(n.c.received_on), _d(n.c.move_on), _d(n.c.due_on), _d(n.c.allocated_on), _d(n.c.closed_on),
        n.c.transferring_region_code, n.c.transferring_pdu_code, n.c.transferring_team_code,
        n.c.receiving_region_code, n.c.receiving_pdu_code, n.c.receiving_team_code,
        n.c.rosh, n.c.mappa_level, _d(n.c.imported_on),  # the inspection measures' groups (tasks/reports/compliance.py)
    ).where(scope)  # fmt: skip
    act_q = (
        select(a.c.id, a.c.nsi_id, a.c.code, a.c.title, a.c.owner_role, _d(a.c.due_on), _d(a.c.done_on), a.c.status)
        .select_from(a.join(n, a.c.nsi_id == n.c.id))
        .where(scope)
    )
    tm_q = select(n.c.id, n.c.form["expected_return_date"].as_string().label("expected_return")).where(
        scope, n.c.nsi_type == "temporary_move"
    )
    engine = get_engine(url or settings.effective_database_url)
    with engine.connect() as conn:
        nsis = pd.read_sql(nsi_q, conn)
        actions = _read_actions(conn, act_q)
        returns = pd.read_sql(tm_q, conn)

    nsis = nsis.rename(
        columns={
            "transferring_region_code": "t_region",
            "transferring_pdu_code": "t_pdu",
            "transferring_team_code": "t_team",
            "receiving_region_code": "r_region",
            "receiving_pdu_code": "r_pdu",
            "receiving_team_code": "r_team",
        }
    )
    nsis = nsis.sort_values("reference", kind="stable").reset_index(drop=True)
    d = {c: _dates(nsis[c]) for c in ("raised_on", "received_on", "move_on", "due_on", "allocated_on", "closed_on")}
    for c, v in d.items():
        nsis[c] = v
    nsis["imported_on"] = _dates(nsis["imported_on"])
    nsis["lao"] = nsis["lao"].astype(bool)
    nsis["diversity_recorded"] = nsis["diversity_recorded"].astype(bool)
    # The name of a limited access offender never leaves this function.
    nsis["name"] = np.where(nsis["lao"].to_numpy(), cfg.layout.lao_name, nsis["name"].to_numpy(dtype=object))
    pdu_names = {p.code: p.name for p in estate.pdus.values()}
    team_names = {t.code: t.name for t in estate.teams.values()}
    for side in ("t", "r"):
        nsis[f"{side}_pdu_name"] = nsis[f"{side}_pdu"].map(pdu_names).fillna(nsis[f"{side}_pdu"])
        nsis[f"{side}_team_name"] = nsis[f"{side}_team"].map(team_names).fillna(nsis[f"{side}_team"])
    # Few distinct values repeated 100k times: categories compare fast, take little memory and
    # pickle small when a region's slice goes to a worker process.
    for c in (
        "nsi_type",
        "status",
        "t_region",
        "t_pdu",
        "t_team",
        "r_region",
        "r_pdu",
        "r_team",
        *(f"{x}_{y}_name" for x in "tr" for y in ("pdu", "team")),
    ):
        nsis[c] = nsis[c].astype("category")
    closed = d["closed_on"]
    is_open = np.isnat(closed) | (closed > today)
    nsis["is_open"] = is_open
    nsis["is_ct"] = (nsis["nsi_type"] == "case_transfer").to_numpy()
    nsis["wd_to_allocation"] = _wd_between(d["received_on"], d["allocated_on"])
    completed = (nsis["status"] == "completed").to_numpy() & ~is_open
    nsis["completed"] = completed
    nsis["wd_to_completion"] = np.where(completed, _wd_between(d["raised_on"], closed), np.nan)
    nsis["completed_in_time"] = completed & (closed <= d["due_on"])
    returns["expected_return"] = _dates(returns["expected_return"])
    if returns.empty:  # a store with no temporary moves: an empty map would come back as floats
        nsis["expected_return"] = np.full(len(nsis), NAT, dtype="datetime64[D]")
    else:
        nsis["expected_return"] = nsis["id"].map(returns.set_index("id")["expected_return"]).to_numpy(dtype="datetime64[D]")
    # Temporary moves: caretaking should not normally last beyond policy.caretaking_months.
    tm = ~nsis["is_ct"].to_numpy()
    start = np.where(np.isnat(d["move_on"]), d["received_on"], d["move_on"])
    limit_on = _add_months(np.where(tm, start, NAT), policy.caretaking_months)
    ended = np.where(is_open, today, closed)
    nsis["tm_start"] = start
    nsis["tm_limit_on"] = limit_on
    nsis["tm_days"] = np.where(tm, (ended - start).astype("timedelta64[D]").astype(np.int64), 0)
    nsis["tm_past_limit"] = tm & (ended > limit_on)

    # Actions: their state on the as-of day, and working days overdue.
    pos = pd.Index(nsis["id"].to_numpy()).get_indexer(actions["nsi_id"].to_numpy())
    due, done = actions["due_on"].to_numpy(dtype="datetime64[D]"), actions["done_on"].to_numpy(dtype="datetime64[D]")
    # An NSI raised between the two queries has actions but no row here: leave them for tomorrow.
    order = np.lexsort((actions["id"].to_numpy(), due, pos))
    order = order[pos[order] >= 0]
    actions = actions.iloc[order].reset_index(drop=True)
    pos, due, done = pos[order], due[order], done[order]
    actions["pos"] = pos
    actions["due_on"], actions["done_on"] = due, done
    for c in ("reference", "t_region", "r_region", "r_pdu"):
        actions[c] = (
            nsis[c].to_numpy()[pos]
            if c != "reference"
            else pd.Categorical.from_codes(pos, nsis["reference"].to_numpy(dtype=object))
        )
        if c != "reference":
            actions[c] = actions[c].astype("category")
    actions["received_on"] = d["received_on"][pos]
    stored = actions["status"].to_numpy(dtype=object)
    done_by_then = ~np.isnat(done) & (done <= today)
    state = np.where(stored == "cancelled", "cancelled", np.where(done_by_then, "done", "open"))
    actions["state"] = pd.Categorical(state, categories=["open", "done", "cancelled"])
    overdue = np.zeros(len(actions))
    late = (state == "open") & (due < today)
    if late.any():
        overdue[late] = _wd_between(due[late], np.full(int(late.sum()), today))
    actions["days_overdue"] = overdue.astype(np.int64)
    actions["done_late"] = (state == "done") & (done > due)
    actions = actions.drop(columns=["status"])

    # Per NSI: the next open action (earliest due: actions are in due order per NSI) and the
    # worst overdue, counting the NSI's own due date.
    is_open_action = state == "open"
    open_pos = pos[is_open_action]
    first_idx = np.flatnonzero(is_open_action)[np.unique(open_pos, return_index=True)[1]]
    next_title = np.full(len(nsis), None, dtype=object)
    next_due = np.full(len(nsis), NAT)
    next_title[pos[first_idx]] = actions["title"].to_numpy(dtype=object)[first_idx]
    next_due[pos[first_idx]] = due[first_idx]
    nsis["next_action"] = next_title
    nsis["next_action_due"] = next_due
    action_overdue = np.zeros(len(nsis))
    np.maximum.at(action_overdue, open_pos, actions["days_overdue"].to_numpy()[is_open_action])
    own = np.zeros(len(nsis))
    own_late = is_open & (d["due_on"] < today)
    if own_late.any():
        own[own_late] = _wd_between(d["due_on"][own_late], np.full(int(own_late.sum()), today))
    nsis["days_overdue"] = np.where(is_open, np.maximum(action_overdue, own), 0).astype(np.int64)

    assessed = ((actions["code"] == "address_assessment").to_numpy()) & (state == "done")
    assessed_on = np.full(len(nsis), NAT)
    assessed_on[pos[assessed]] = done[assessed]
    nsis["wd_to_assessment"] = _wd_between(d["received_on"], assessed_on)
    return TrackerData(
        as_of=as_of,
        window_start=window_start,
        nsis=nsis,
        actions=actions,
        regions={r.code: r.name for r in estate.regions.values()},
        measures=resolve_measures(cfg, policy),
        transfer_working_days=policy.transfer_working_days,
        caretaking_months=policy.caretaking_months,
        handovers=report_records(as_of, url),
        **_outcomes(as_of, nsis["id"].to_numpy().tolist(), url, cfg),
    )


def _outcomes(as_of: dt.date, nsi_ids: list[int], url: str | None, cfg: TrackerConfig) -> dict[str, Any]:
    """Challenges, refusals and escalations of the NSIs in scope (tasks/reports/tracker_outcomes.py)."""
    from tasks.reports.tracker_outcomes import challenge_records, escalation_records
    from tasks.reports.youth_measures import youth_records

    ids = set(nsi_ids)
    return {
        "challenges": challenge_records(as_of, ids, url, cfg.layout.lao_name),
        "escalations": escalation_records(as_of, ids, url, cfg.layout.lao_name),
        "youth": youth_records(as_of, ids, url, cfg.layout.lao_name),
    }


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
    ct_live = nsis["is_ct"].to_numpy() & (n_due >= start) & (n_due <= today) & ~np.isin(n_status, ["refused", "withdrawn"])
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


# --------------------------------------------------------------------------- writing


Kind = Literal["text", "date", "int", "num", "pct", "month"]


@dataclass
class Col:
    header: str
    kind: Kind
    values: list[Any]
    width: int = 0


def text_col(header: str, values: Any) -> Col:
    """Text values as a list of str or None (pandas 3 gives NaN for missing strings)."""
    arr = np.asarray(values, dtype=object)
    missing = pd.isna(arr)
    if missing.any():
        arr = np.where(missing, None, arr)
    return Col(header, "text", arr.tolist())


def date_col(header: str, values: Any, kind: Kind = "date") -> Col:
    """Dates as Excel serial numbers written with a date format (no per-cell datetime conversion)."""
    days = np.asarray(values).astype("datetime64[D]")
    serial = (days - EXCEL_EPOCH).astype(np.int64).astype(object)
    return Col(header, kind, np.where(np.isnat(days), None, serial).tolist())


def num_col(header: str, values: Any, kind: Kind = "int", blank_zero: bool = False) -> Col:
    """Numbers; NaN is a blank cell. blank_zero: 0 is blank too ('not overdue' reads better
    empty, and most actions are not overdue, so fewer cells to write)."""
    arr = np.asarray(values, dtype=float)
    if blank_zero:
        arr = np.where(arr == 0, np.nan, arr)
    if kind == "int":
        out = np.where(np.isnan(arr), None, np.nan_to_num(arr).astype(np.int64).astype(object))
    else:
        out = np.where(np.isnan(arr), None, arr.astype(object))
    return Col(header, kind, out.tolist())


@dataclass
class _Table:
    """A list sheet made an Excel table when the file is finished (see `_append_rows`)."""

    sheet: str
    headers: list[str]
    last_row: int  # 1-based: the header and every data row (at least one, as Excel requires)


TABLE_STYLE = "TableStyleMedium2"  # Excel's default: blue header, banded rows
TABLE_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/table"
TABLE_CONTENT = "application/vnd.openxmlformats-officedocument.spreadsheetml.table+xml"


def _table_xml(t: _Table, table_id: int) -> str:
    """The table part: a name Excel accepts, one column per header (names unique, as Excel needs)."""
    ref = f"A1:{_letter(len(t.headers) - 1)}{t.last_row}"
    seen: dict[str, int] = {}
    cols = []
    for i, h in enumerate(t.headers, start=1):
        seen[h] = seen.get(h, 0) + 1
        name = h if seen[h] == 1 else f"{h} {seen[h]}"
        cols.append(f'<tableColumn id="{i}" name="{html.escape(name, quote=True)}"/>')
    name = "T_" + re.sub(r"\W", "_", t.sheet)
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<table xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        f'id="{table_id}" name="{name}" displayName="{name}" ref="{ref}" totalsRowShown="0">'
        f'<autoFilter ref="{ref}"/><tableColumns count="{len(cols)}">{"".join(cols)}</tableColumns>'
        f'<tableStyleInfo name="{TABLE_STYLE}" showFirstColumn="0" showLastColumn="0" showRowStripes="1" showColumnStripes="0"/>'
        "</table>"
    )


def _with_table_part(xml_tail: str, rel_id: str) -> str:
    """The sheet's autofilter gives way to the table's (Excel reports overlapping ones as damage), and
    the table part is referenced where the schema puts it: last, before any extLst."""
    xml_tail = re.sub(r"<autoFilter [^>]*/>", "", xml_tail, count=1)
    part = f'<tableParts count="1"><tablePart r:id="{rel_id}"/></tableParts>'
    at = xml_tail.find("<extLst>")
    if at < 0:
        at = xml_tail.rindex("</worksheet>")
    return xml_tail[:at] + part + xml_tail[at:]


def _rels_path(sheet_part: str) -> str:
    folder, _, name = sheet_part.rpartition("/")
    return f"{folder}/_rels/{name}.rels"


@dataclass
class _Rows:
    """A list sheet's data rows after the first, appended to the finished file by `_append_rows`."""

    sheet: str
    cols: list[Col]
    n: int
    last_row: int  # 1-based, the sheet's last used row (a note sits below the list)


class Book:
    """An XlsxWriter workbook in constant_memory mode with the tracker's formats.

    fast_rows: XlsxWriter writes each list's header and first data row (so every cell format is
    registered and its style index is in the file), and the remaining rows are generated here as
    worksheet XML and spliced into the finished file. XlsxWriter spends ~4 microseconds a cell
    in Python; the generator ~0.5, which is most of a night's CPU at 100k NSIs. The cells are
    the ones XlsxWriter writes (inline strings, escaped the same way); a test checks that both
    ways give the same workbook cell for cell.
    """

    def __init__(self, path: Path, layout: Layout, fast_rows: bool = True):
        self.layout = layout
        self.path = path
        self.fast_rows = fast_rows
        self._pending: list[_Rows] = []
        self._tables: list[_Table] = []
        # strings_to_*: False so that even write() could never turn user text into a formula or link.
        self.wb = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "tmpdir": str(path.parent),
            },
        )
        wb = self.wb
        self.header = wb.add_format(
            {"bold": True, "font_color": "#FFFFFF", "bg_color": layout.header_fill, "text_wrap": True, "valign": "top"}
        )
        self.title = wb.add_format({"bold": True, "font_size": 14})
        self.bold = wb.add_format({"bold": True})
        self.note = wb.add_format({"italic": True, "font_color": "#595959"})
        self.formats: dict[Kind, Any] = {
            "text": None,
            "date": wb.add_format({"num_format": layout.date_format}),
            "month": wb.add_format({"num_format": "mmm yyyy"}),
            "int": None,
            "num": wb.add_format({"num_format": "0.0"}),
            "pct": wb.add_format({"num_format": "0.0%"}),
        }
        self.highlight = wb.add_format({"bg_color": layout.overdue_fill, "font_color": layout.overdue_font})

    def width(self, col: Col) -> int:
        if col.width:
            return col.width
        if col.kind in ("date", "month"):
            content = 11
        elif col.kind == "text":
            lengths = [len(v) for v in col.values if v is not None]
            content = max(lengths, default=0)
        else:
            content = max(
                (len(f"{v:,.1f}" if isinstance(v, float) else str(v)) for v in col.values[:5000] if v is not None), default=0
            )
        header = max((len(w) for w in col.header.split()), default=0)
        return max(8, min(self.layout.max_column_width, max(content, header) + 2))

    def list_sheet(
        self,
        name: str,
        cols: list[Col],
        highlight: tuple[str, str] | None = None,
        note: str | None = None,
        below: Sequence[Sequence[Any]] = (),
    ) -> None:
        """A list: header row frozen, autofilter, widths that fit, and one conditional-format
        rule for the whole range. `highlight` is (a column's header, a condition on its value),
        e.g. ("Days overdue (working)", ">0"): looked up by name, so adding a column moves it along."""
        ws = self.wb.add_worksheet(name)
        n = len(cols[0].values) if cols else 0
        widths = [self.width(col) for col in cols]
        # The header row is as tall as its most wrapped header: a viewer may grow it on opening, but
        # a printout or PDF (LibreOffice) keeps the default height and shows only a header's first line.
        lines = max((len(textwrap.wrap(col.header, max(w - 1, 1))) for col, w in zip(cols, widths, strict=True)), default=1)
        ws.set_row(0, 15 * max(lines, 1))
        for c, col in enumerate(cols):
            ws.set_column(c, c, widths[c])
            ws.write_string(0, c, col.header, self.header)
        writers = [
            (c, ws.write_string if col.kind == "text" else ws.write_number, col.values, self.formats[col.kind])
            for c, col in enumerate(cols)
        ]
        by_xlsxwriter = min(n, 1) if self.fast_rows else n
        for r in range(by_xlsxwriter):
            row = r + 1
            for c, write, values, fmt in writers:
                v = values[r]
                if v is not None and v != "":
                    write(row, c, v, fmt)
                elif fmt is not None and self.fast_rows:
                    ws.write_blank(row, c, None, fmt)  # registers the format: its style index is read back
        last = len(cols) - 1
        ws.freeze_panes(1, 1)
        # An Excel table (banded rows, its own filter buttons) is added when the file is finished:
        # XlsxWriter has no tables in constant_memory mode. The autofilter is its stand-in until then.
        ws.autofilter(0, 0, max(n, 1), last)
        self._tables.append(_Table(name, [c.header for c in cols], max(n, 1) + 1))
        page_setup(ws)
        if highlight and n:
            ws.conditional_format(
                1, 0, n, last, {"type": "formula", "criteria": highlight_formula(cols, *highlight), "format": self.highlight}
            )
        last_written = n  # 0-based
        if note:
            # Below the list, so that filtering and sorting the list leave it alone.
            last_written = n + 2
            ws.write_string(last_written, 0, note, self.note)
        for i, values in enumerate(below):
            # Rows under the list (e.g. a count by reason): a title row in bold, then values.
            last_written += 2 if i == 0 else 1
            for c, v in enumerate(values):
                if isinstance(v, str):
                    ws.write_string(last_written, c, v, self.bold if i == 0 else None)
                elif v is not None:
                    ws.write_number(last_written, c, v)
        if n > by_xlsxwriter:
            self._pending.append(_Rows(name, cols, n, last_written + 1))

    def close(self) -> None:
        self.wb.close()
        if self._pending or self._tables:
            _append_rows(self.path, self._pending, self._tables)


def highlight_formula(cols: Sequence[Col], header: str, condition: str) -> str:
    """The conditional format's formula for data row 2 of the column headed `header`."""
    headers = [c.header for c in cols]
    if headers.count(header) != 1:
        raise ValueError(f"highlight: no single column headed {header!r} (headers: {', '.join(headers)})")
    return f"=${_letter(headers.index(header))}2{condition}"


def page_setup(ws: Any, header_row: int = 0) -> None:
    """How every sheet prints (issue 16), set in this one place: landscape A4, every column on the
    page width (as many pages down as it takes), the header row on every page, the marking and
    page numbers in the footer. Without it a printout or PDF cut each sheet after a few columns."""
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(header_row)
    ws.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.6)
    ws.set_footer("&LOFFICIAL-SENSITIVE&C&A&RPage &P of &N")


# Cells as XlsxWriter writes inline strings (worksheet._write_cell in constant_memory mode): a
# string longer than Excel's 32,767 UTF-16 units is cut there (write_string), control characters
# become _xHHHH_ and a typed "_xHHHH_" is escaped as _x005F_xHHHH_ so that Excel shows it as typed,
# then &, < and > are escaped. XlsxWriter's own functions do it, so the two ways cannot drift apart
# for the version pinned in pyproject.toml (tests/unit/test_tracker_writer.py feeds both the same
# hostile strings). Most strings need none of it: one search decides.
XLSX_MAX_STRING = 32767  # Excel's cell limit; XlsxWriter's Worksheet.xls_strmax
_NEEDS_ESCAPE = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]|_x[0-9a-fA-F]{4}_")
_xml = XMLwriter()


def cell_text(text: str) -> str:
    """What XlsxWriter keeps of a string written to a cell: at most Excel's limit."""
    if len(text) > XLSX_MAX_STRING // 2 and _utf16_len(text) > XLSX_MAX_STRING:
        return _utf16_truncate(text, XLSX_MAX_STRING)
    return text


def _inline(text: str) -> str:
    """The <is> part of an inline string cell."""
    text = cell_text(text)
    if _NEEDS_ESCAPE.search(text):
        text = _xml._escape_data(XMLwriter._escape_control_characters(text))
    if _preserve_whitespace(text):
        return f'<is><t xml:space="preserve">{text}</t></is>'
    return f"<is><t>{text}</t></is>"


def _sheet_parts(z: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> its part in the package (from workbook.xml and its relationships)."""
    rels = {
        m.group("id"): m.group("target")
        for m in re.finditer(
            r'<Relationship Id="(?P<id>[^"]+)" Type="[^"]+/worksheet" Target="(?P<target>[^"]+)"',
            z.read("xl/_rels/workbook.xml.rels").decode(),
        )
    }
    parts = {}
    for m in re.finditer(r'<sheet name="(?P<name>[^"]+)" sheetId="\d+" r:id="(?P<id>[^"]+)"', z.read("xl/workbook.xml").decode()):
        target = rels[m.group("id")]
        parts[html.unescape(m.group("name"))] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return parts


def _row_xml(rows: _Rows, styles: dict[int, str], start: int, stop: int) -> str:
    """Rows start..stop-1 (0-based data rows) as worksheet XML, column by column then joined."""
    numbers = range(start + 2, stop + 2)
    columns = []
    for c, col in enumerate(rows.cols):
        letter = _letter(c)
        style = f' s="{styles[c]}"' if c in styles else ""
        values = col.values[start:stop]
        if col.kind == "text":
            cache: dict[str, str] = {}
            cells = []
            for rn, v in zip(numbers, values, strict=True):
                if v is None or v == "":
                    cells.append("")
                    continue
                inner = cache.get(v)
                if inner is None:
                    inner = cache[v] = _inline(v)
                cells.append(f'<c r="{letter}{rn}"{style} t="inlineStr">{inner}</c>')
        else:
            # %.16G: the digits XlsxWriter writes (Python's repr would give 17: 54.400000000000006).
            cells = [
                "" if v is None else f'<c r="{letter}{rn}"{style}><v>{v:.16G}</v></c>'
                for rn, v in zip(numbers, values, strict=True)
            ]
        columns.append(cells)
    return "".join(f'<row r="{rn}">{"".join(cells)}</row>' for rn, *cells in zip(numbers, *columns, strict=True))


ROWS_PER_CHUNK = 20_000  # of XML built at once: bounds a worker's memory on the biggest region


def _append_rows(path: Path, pending: list[_Rows], tables: Sequence[_Table] = ()) -> None:
    """Finish the file in one pass: splice each pending list's remaining rows into its sheet, after
    data row 1, and make each list sheet an Excel table (its part, relationship and content type)."""
    tmp = path.with_name(f"{path.name}.rows")
    with zipfile.ZipFile(path) as zin:
        parts = _sheet_parts(zin)
        todo = {parts[p.sheet]: p for p in pending}
        tabled = {parts[t.sheet]: (n, t) for n, t in enumerate(tables, start=1)}
        names = set(zin.namelist())
        rel_id = "rIdTable1"
        # Level 1: most of the file is these rows; 6 (XlsxWriter's) costs 3x the time for ~15% less.
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zout:

            def put(name: str, text: str) -> None:
                zout.writestr(name, text.encode("utf-8"), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)

            for info in zin.infolist():
                data = zin.read(info.filename)
                rows = todo.get(info.filename)
                table = tabled.get(info.filename)
                if info.filename == "[Content_Types].xml" and tables:
                    overrides = "".join(
                        f'<Override PartName="/xl/tables/table{n}.xml" ContentType="{TABLE_CONTENT}"/>'
                        for n in range(1, len(tables) + 1)
                    )
                    put(info.filename, data.decode("utf-8").replace("</Types>", overrides + "</Types>"))
                    continue
                if info.filename.endswith(".rels") and info.filename.startswith("xl/worksheets/_rels/"):
                    sheet = info.filename.replace("_rels/", "").removesuffix(".rels")
                    if sheet in tabled:
                        n, _ = tabled[sheet]
                        rel = f'<Relationship Id="{rel_id}" Type="{TABLE_TYPE}" Target="../tables/table{n}.xml"/>'
                        put(info.filename, data.decode("utf-8").replace("</Relationships>", rel + "</Relationships>"))
                        continue
                if rows is None and table is None:
                    zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
                    continue
                xml = data.decode("utf-8")
                if rows is None:
                    put(info.filename, _with_table_part(xml, rel_id) if table else xml)
                    continue
                first = xml.index('<row r="2"')
                cut = xml.index("</row>", first) + len("</row>")
                styles = {}
                for cell in re.finditer(r"<c ([^>]*?)/?>", xml[first:cut]):
                    ref = re.search(r'r="([A-Z]+)2"', cell.group(1))
                    style = re.search(r's="(\d+)"', cell.group(1))
                    if ref and style:
                        styles[_column_index(ref.group(1))] = style.group(1)
                last = _letter(len(rows.cols) - 1)
                head = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="A1:{last}{rows.last_row}"/>', xml[:cut], count=1)
                tail = _with_table_part(xml[cut:], rel_id) if table else xml[cut:]
                with zout.open(info.filename, "w", force_zip64=True) as fh:  # a name: the archive's compression applies
                    fh.write(head.encode("utf-8"))
                    for start in range(1, rows.n, ROWS_PER_CHUNK):
                        fh.write(_row_xml(rows, styles, start, min(rows.n, start + ROWS_PER_CHUNK)).encode("utf-8"))
                    fh.write(tail.encode("utf-8"))
            for sheet, (n, t) in tabled.items():
                put(f"xl/tables/table{n}.xml", _table_xml(t, n))
                rels = _rels_path(sheet)
                if rels not in names:
                    put(
                        rels,
                        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                        f'<Relationship Id="{rel_id}" Type="{TABLE_TYPE}" Target="../tables/table{n}.xml"/></Relationships>',
                    )
    os.replace(tmp, path)


def _column_index(letters: str) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + ord(ch) - 64
    return index - 1


def _letter(index: int) -> str:
    s = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        s = chr(65 + rem) + s
    return s


class SummaryWriter:
    """Blocks written top to bottom (constant_memory needs rows in order)."""

    def __init__(self, book: Book, name: str, widths: Sequence[int]):
        self.book = book
        self.ws = book.wb.add_worksheet(name)
        self.row = 0
        for c, w in enumerate(widths):
            self.ws.set_column(c, c, w)
        page_setup(self.ws)  # the title row repeats: a printed page says which workbook it is from

    def line(self, text: str, fmt: Any = None) -> None:
        self.ws.write_string(self.row, 0, text, fmt)
        self.row += 1

    def skip(self, rows: int = 1) -> None:
        self.row += rows

    def table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], kinds: Sequence[Kind]) -> tuple[int, int]:
        """Writes a titled block; returns (first data row, last data row), 0-based."""
        ws, book = self.ws, self.book
        ws.write_string(self.row, 0, title, book.bold)
        self.row += 1
        for c, h in enumerate(headers):
            ws.write_string(self.row, c, h, book.header)
        self.row += 1
        first = self.row
        for values in rows:
            for c, (v, kind) in enumerate(zip(values, kinds, strict=True)):
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    continue
                if kind == "text":
                    ws.write_string(self.row, c, str(v), book.bold if values[0] == "All" else None)
                else:
                    ws.write_number(self.row, c, v, book.formats[kind])
            self.row += 1
        return first, self.row - 1


# --------------------------------------------------------------------------- one region


@dataclass
class RegionInput:
    """A region's slice of the data: everything a worker process needs to write its workbook."""

    code: str
    name: str
    as_of: dt.date
    window_start: dt.date
    nsis: pd.DataFrame
    actions: pd.DataFrame
    pdu_names: dict[str, str]
    region_of_pdu: dict[str, str]
    measures: list[Measure]
    transfer_working_days: int
    caretaking_months: int
    config: TrackerConfig
    handovers: list[dict[str, Any]] = field(default_factory=list)
    # Challenges and refusals, and escalations (tasks/reports/tracker_outcomes.py), LAO already redacted.
    challenges: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    youth: list[dict[str, Any]] = field(default_factory=list)  # tasks/reports/youth_measures.py


def region_input(data: TrackerData, code: str, config: TrackerConfig | None = None) -> RegionInput:
    """Only NSIs this region transfers or receives, and only their actions."""
    keep = (data.nsis["t_region"] == code).to_numpy() | (data.nsis["r_region"] == code).to_numpy()
    nsis = data.nsis[keep].reset_index(drop=True)
    actions = data.actions[keep[data.actions["pos"].to_numpy()]].reset_index(drop=True)
    # Positions into the region's own NSI rows.
    actions["pos"] = (np.cumsum(keep) - 1)[actions["pos"].to_numpy()]
    estate = load_estate()
    return RegionInput(
        code=code,
        name=data.regions[code],
        as_of=data.as_of,
        window_start=data.window_start,
        nsis=nsis,
        actions=actions,
        pdu_names={p.code: p.name for p in estate.pdus.values()},
        region_of_pdu={p.code: p.region_code for p in estate.pdus.values()},
        measures=data.measures,
        transfer_working_days=data.transfer_working_days,
        caretaking_months=data.caretaking_months,
        config=config or load_tracker_config(),
        # A handover belongs to the region of the COM's PDU: that is where the case is going.
        handovers=[h for h in data.handovers if h["region_code"] == code],
        challenges=[c for c in data.challenges if code in (c["t_region"], c["r_region"])],
        escalations=[e for e in data.escalations if code in (e["t_region"], e["r_region"])],
        youth=[y for y in data.youth if code in (y["t_region"], y["r_region"])],
    )


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


def write_region(inp: RegionInput, path: Path, fast_rows: bool = True) -> RegionResult:
    """Build and write one region's workbook; atomic (written beside, then renamed), so a reader
    never opens a half-written file."""
    import time

    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".xlsx", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    book = Book(tmp, inp.config.layout, fast_rows=fast_rows)
    try:
        result = build_region_sheets(book, inp)
        book.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    result.path = str(path)
    result.seconds = time.perf_counter() - started
    result.peak_rss_mb = _peak_rss_mb()
    return result


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
        [
            text_col("Receiving PDU", police["r_pdu"].map(inp.pdu_names).fillna(police["r_pdu"])),
            text_col("Receiving region", police["r_pdu"].map(inp.region_of_pdu)),
            num_col("Checks", police["checks"]),
            num_col("Returned", police["returned"]),
            num_col("Outstanding", police["outstanding"]),
            num_col("Median working days to return", police["median"], "num"),
            num_col(f"{pct} working days to return", police["p90"], "num"),
            num_col("Share overdue", police["overdue_share"], "pct"),
            text_col("Consistently slow", np.where(police["slow"].to_numpy(dtype=bool), "Yes", "")),
        ],
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
            [
                text_col(
                    "Receiving PDU", police["r_pdu"].map({p.code: p.name for p in estate.pdus.values()}).fillna(police["r_pdu"])
                ),
                text_col(
                    "Receiving region",
                    police["r_pdu"].map({p.code: estate.regions[p.region_code].name for p in estate.pdus.values()}),
                ),
                num_col("Checks", police["checks"]),
                num_col("Returned", police["returned"]),
                num_col("Outstanding", police["outstanding"]),
                num_col("Median working days to return", police["median"], "num"),
                num_col(f"P{rule.percentile:g} working days to return", police["p90"], "num"),
                num_col("Share overdue", police["overdue_share"], "pct"),
                text_col("Consistently slow", np.where(police["slow"].to_numpy(dtype=bool), "Yes", "")),
            ],
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


def _national_row(data: TrackerData, code: str, cfg: TrackerConfig) -> RegionResult:
    """A region whose workbook was not written this run (--region): its figures, no path."""
    inp = region_input(data, code, cfg)
    return region_figures(inp, _direction(inp.nsis, code), police_checks(inp.nsis, inp.actions, cfg))


# --------------------------------------------------------------------------- a whole night


@dataclass
class TrackerRun:
    as_of: dt.date
    folder: Path
    regions: list[RegionResult]
    national: Path
    seconds: float


def output_folder(out_dir: Path | None, as_of: dt.date) -> Path:
    return Path(out_dir or get_settings().effective_tracker_dir) / as_of.isoformat()


def check_region(code: str | None) -> str | None:
    """The region code upper-cased, or ValueError naming the known codes."""
    if code is None:
        return None
    regions = load_estate().regions
    code = code.strip().upper()
    if code not in regions:
        raise ValueError(f"region: {code!r} is not a region; regions: {', '.join(sorted(regions))}")
    return code


def region_order(data: TrackerData, only: str | None = None) -> list[str]:
    """Largest first, so that the last region to finish is a small one (better packing)."""
    codes = [only] if only else sorted(data.regions)
    size = {c: int(((data.actions["t_region"] == c) | (data.actions["r_region"] == c)).sum()) for c in codes}
    return sorted(codes, key=lambda c: -size[c])


def _write_region_job(inp: RegionInput, path: str) -> RegionResult:
    return write_region(inp, Path(path))


def make_pool(workers: int) -> Executor | None:
    # spawn, not fork: the flow runs inside Prefect's threads, and forking a threaded process can
    # deadlock on a lock some other thread held. The region slices are pickled to the workers.
    if workers <= 1:
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


def submit_region(
    pool: Executor | None, data: TrackerData, code: str, folder: Path, config: TrackerConfig | None = None
) -> Future[RegionResult]:
    inp = region_input(data, code, config)
    path = folder / f"{code}.xlsx"
    if pool is None:
        fut: Future[RegionResult] = Future()
        try:
            fut.set_result(write_region(inp, path))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)
        return fut
    return pool.submit(_write_region_job, inp, str(path))


def run_tracker(
    as_of: dt.date,
    out_dir: Path | None = None,
    region: str | None = None,
    url: str | None = None,
    workers: int | None = None,
    progress: Callable[[RegionResult], None] | None = None,
    on_loaded: Callable[[TrackerData, list[str]], None] | None = None,
) -> TrackerRun:
    """The whole night without Prefect: read, write every region's workbook, the national one."""
    import time
    from concurrent.futures import as_completed

    started = time.perf_counter()
    cfg = load_tracker_config()
    only = check_region(region)
    data = load_data(as_of, url, cfg)
    codes = region_order(data, only)
    if on_loaded is not None:
        on_loaded(data, codes)
    folder = output_folder(out_dir, as_of)
    folder.mkdir(parents=True, exist_ok=True)
    n_workers = min(workers or cfg.workers, os.cpu_count() or 1, len(codes))
    pool = make_pool(n_workers)
    results: list[RegionResult] = []
    try:
        futures = [submit_region(pool, data, code, folder, cfg) for code in codes]
        for fut in as_completed(futures):
            res = fut.result()
            results.append(res)
            if progress is not None:
                progress(res)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    results.sort(key=lambda r: r.region_code)
    national = write_national(data, results, folder / f"{cfg.national_workbook}.xlsx", cfg)
    return TrackerRun(as_of, folder, results, national, time.perf_counter() - started)


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


def artifact_table(run_results: Sequence[RegionResult], national: Path, total_nsis: int) -> list[dict[str, Any]]:
    """Rows for the Prefect table artifact: counts per region with the workbook paths. A transfer
    between two regions is in both regions' rows, so the national row takes the distinct total."""
    rows = [
        {
            "region": f"{r.region_name} ({r.region_code})",
            "nsis": r.nsis,
            "open": r.open,
            "open_overdue": r.open_overdue,
            "overdue_actions": r.overdue_actions,
            "slow_police_pdus": ", ".join(r.slow_police_pdus),
            "workbook": r.path,
        }
        for r in run_results
    ]
    rows.append(
        {
            "region": "National summary",
            "nsis": total_nsis,
            "open": "",
            "open_overdue": "",
            "overdue_actions": "",
            "slow_police_pdus": "",
            "workbook": str(national),
        }
    )
    return rows
