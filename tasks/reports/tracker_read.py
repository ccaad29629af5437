"""The nightly MIS tracker, reading: its configuration (config/tracker.yaml), the store read
into pandas with a few SQL queries (no ORM objects: 100k NSIs and their actions would take minutes
that way), working days counted with numpy over whole columns once, and each region's slice.
A limited access offender's name is replaced here, before any sheet is built, so it cannot leak
into one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from dateutil.relativedelta import relativedelta
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import String, and_, or_, select, type_coerce

from tasks.calendar import get_calendar
from tasks.config_files import read_yaml
from tasks.domain import moving_again
from tasks.domain.policy import Policy, get_policy
from tasks.notify.handover_report import report_records
from tasks.places.estate import load_estate
from tasks.reports.continuity_records import host_contacts
from tasks.reports.workbook import Layout
from tasks.settings import get_settings
from tasks.store.models import Action, HistoryEntry, Nsi
from tasks.store.session import get_engine

NAT = np.datetime64("NaT", "D")


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
    # POM-COM handovers in their report window (tasks/notify/handover_report.py: report_records), LAO already redacted.
    handovers: list[dict[str, Any]] = field(default_factory=list)
    # Challenges and refusals, and escalations (tasks/reports/tracker_outcomes.py), LAO already redacted.
    challenges: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    youth: list[dict[str, Any]] = field(default_factory=list)  # tasks/reports/youth_measures.py
    absences: list[dict[str, Any]] = field(default_factory=list)  # tasks/reports/continuity_records.py


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


def load_data(as_of: dt.date, url: str | None = None, config: TrackerConfig | None = None, whole: Collection[int] = ()) -> TrackerData:
    """Read the NSIs in scope (open on the as-of day, or closed within the reporting window) and
    their actions, and compute every per-row figure the sheets show. `whole`: the limited access
    NSIs (ids) a person reading their own copy is on the access list of (`tracker --as`); the
    nightly workbooks, read by a region's mailbox, show none of them whole."""
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
        _d(n.c.clock_stopped_on), n.c.clock_stop_reason, n.c.clock_stops,  # a stopped clock counts no days overdue
    ).where(scope)  # fmt: skip
    act_q = (
        select(a.c.id, a.c.nsi_id, a.c.code, a.c.title, a.c.owner_role, _d(a.c.due_on), _d(a.c.done_on), a.c.status)
        .select_from(a.join(n, a.c.nsi_id == n.c.id))
        .where(scope)
    )
    tm_q = select(n.c.id, n.c.form["expected_return_date"].as_string().label("expected_return")).where(
        scope, n.c.nsi_type == "temporary_move"
    )
    h = HistoryEntry.__table__
    # Notes (a legacy tracker's Notes column): shown on the Transfers sheet, as text cells.
    notes_q = (
        select(h.c.nsi_id, h.c.detail).select_from(h.join(n, h.c.nsi_id == n.c.id)).where(scope, h.c.event == "note").order_by(h.c.id)
    )
    engine = get_engine(url or settings.effective_database_url)
    with engine.connect() as conn:
        nsis = pd.read_sql(nsi_q, conn)
        actions = _read_actions(conn, act_q)
        returns = pd.read_sql(tm_q, conn)
        movers = moving_again.repeat_movers(conn, as_of)  # every repeat mover in one grouped query
        notes: dict[int, list[str]] = {}
        for nsi_id, detail in conn.execute(notes_q):
            notes.setdefault(nsi_id, []).append(detail)

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
    d = {c: _dates(nsis[c]) for c in ("raised_on", "received_on", "move_on", "due_on", "allocated_on", "closed_on", "clock_stopped_on")}
    # While a transfer's clock is stopped no day counts against anyone: overdue is counted to the stop.
    counted_to = np.where(np.isnat(d["clock_stopped_on"]), today, np.minimum(d["clock_stopped_on"], today))
    for c, v in d.items():
        nsis[c] = v
    nsis["imported_on"] = _dates(nsis["imported_on"])
    nsis["lao"] = nsis["lao"].astype(bool)
    nsis["repeat_mover"] = nsis["crn"].map(movers).fillna(0).astype(np.int64) if movers else np.zeros(len(nsis), dtype=np.int64)
    nsis["diversity_recorded"] = nsis["diversity_recorded"].astype(bool)
    # The name of a limited access offender never leaves this function, but for its access list.
    hidden = nsis["lao"].to_numpy() & ~nsis["id"].isin(list(whole)).to_numpy()
    nsis["name"] = np.where(hidden, cfg.layout.lao_name, nsis["name"].to_numpy(dtype=object))
    # ... nor do its notes, which may name people.
    joined = np.array([" | ".join(notes.get(i, [])) or None for i in nsis["id"].to_numpy()], dtype=object)
    nsis["notes"] = np.where(hidden, None, joined)
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
    # Closed as no longer required (the risk changed) counts as cancelled: never due, never late.
    state = np.where(np.isin(stored, ["cancelled", "not_required"]), "cancelled", np.where(done_by_then, "done", "open"))
    actions["state"] = pd.Categorical(state, categories=["open", "done", "cancelled"])
    overdue = np.zeros(len(actions))
    until = counted_to[pos]
    late = (state == "open") & (due < until)
    if late.any():
        overdue[late] = _wd_between(due[late], until[late])
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
    own_late = is_open & (d["due_on"] < counted_to)
    if own_late.any():
        own[own_late] = _wd_between(d["due_on"][own_late], counted_to[own_late])
    nsis["days_overdue"] = np.where(is_open, np.maximum(action_overdue, own), 0).astype(np.int64)

    assessed = ((actions["code"] == "address_assessment").to_numpy()) & (state == "done")
    assessed_on = np.full(len(nsis), NAT)
    assessed_on[pos[assessed]] = done[assessed]
    nsis["wd_to_assessment"] = _wd_between(d["received_on"], assessed_on)
    outcomes = _outcomes(as_of, nsis["id"].to_numpy().tolist(), url, cfg, whole)
    missed = {r["reference"] for r in outcomes["absences"] if r["first_appointment"]}
    nsis["first_appointment_missed"] = nsis["reference"].isin(missed).to_numpy()  # the inspection's "kept" measure
    contacts = host_contacts(as_of, set(nsis["id"].tolist()), url)  # what a temporary move's supervising practitioner sees
    nsis["host_contacts"] = np.array([contacts.get(i, (0, None))[0] for i in nsis["id"].to_numpy()], dtype=np.int64)
    nsis["last_host_contact"] = np.array([contacts[i][1] if i in contacts else NAT for i in nsis["id"].to_numpy()], dtype="datetime64[D]")
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
        **outcomes,
    )


def _outcomes(as_of: dt.date, nsi_ids: list[int], url: str | None, cfg: TrackerConfig, whole: Collection[int] = ()) -> dict[str, Any]:
    """Challenges, refusals and escalations of the NSIs in scope (tasks/reports/tracker_outcomes.py)."""
    from tasks.reports.continuity_records import absence_records
    from tasks.reports.tracker_outcomes import challenge_records, escalation_records
    from tasks.reports.youth_measures import youth_records

    ids = set(nsi_ids)
    return {
        "challenges": challenge_records(as_of, ids, url, cfg.layout.lao_name, whole),
        "escalations": escalation_records(as_of, ids, url, cfg.layout.lao_name, whole),
        "youth": youth_records(as_of, ids, url, cfg.layout.lao_name, whole),
        "absences": absence_records(as_of, ids, url, cfg.layout.lao_name, whole),
    }


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
    absences: list[dict[str, Any]] = field(default_factory=list)  # tasks/reports/continuity_records.py


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
        absences=[r for r in data.absences if code in (r["t_region"], r["r_region"])],
    )
