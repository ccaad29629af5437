"""Go-live: import the transfers in flight on a region's legacy spreadsheet tracker (issue 13).

Read a workbook (columns found by header through config/import_mapping.yaml, or a region's own
mapping on top of it), check every row, and store each good row as an NSI marked imported, with
the work already done recorded on its own dates. Every bad row is reported (row number, CRN,
reason, the raw values) in a report workbook beside the input; a bad row stores nothing.

Each good row is one transaction. A row stored before (the same CRN, date notified and kind) is
recognised by its request key and skipped, so importing a file twice creates nothing new. Flow
runs for the imported NSIs are started afterwards (`services.start_imported_runs`), apart from the store
work, at a rate the stack can take.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tasks.calendar import get_calendar
from tasks.config_files import read_yaml
from tasks.domain import steps as registry
from tasks.domain import transfers
from tasks.domain.actions import Clocks, Facts, plan_actions, transfer_due
from tasks.domain.form import CRN_PATTERN, POSTCODE_PATTERN, FormError, NsiType, TransferForm, parse_form
from tasks.domain.policy import Policy, get_policy
from tasks.domain.temporary_moves import SUPPORTING
from tasks.places.estate import Estate, load_estate
from tasks.places.placement import Placement, check_placement
from tasks.settings import get_settings
from tasks.store.models import Action, HistoryEntry, Nsi, StepRecord
from tasks.store.unit_of_work import UnitOfWork

ACTOR = "tracker import"
# The dated work a tracker may hold: field -> the step (or action task) it records.
DONE_FIELDS: dict[str, str] = {
    "documents_on": "documents",
    "address_assessment_on": "address_assessment",
    "police_checks_on": "police_checks",
    "safeguarding_checks_on": "safeguarding_checks",
    "oasys_on": "oasys_reassessment",
    "plan_review_on": "plan_review",
    "court_application_on": "court_application",
    "handover_on": "handover",
    "completed_on": "completion",
    # The high-RoSH, MAPPA and victim actions, where a tracker dates them.
    "transfer_report_on": "transfer_report",
    "full_information_on": "full_information",
    "aco_on": "aco_involvement",
    "mappa_brokering_on": "mappa_brokering",
    "vlo_on": "vlo_liaison",
}
DATE_FIELDS = ("date_of_birth", "notified_on", "move_on", "expected_return_on", "allocated_on", *DONE_FIELDS)
REQUIRED = ("crn", "date_of_birth", "from", "to", "notified_on")
EXCEL_EPOCH = dt.date(1899, 12, 30)


class UnreadableTracker(ValueError):
    """The file cannot be read as a tracker at all (no such sheet, no header row)."""


def norm(value: Any) -> str:
    """Headers and words compared with case, spaces and punctuation ignored."""
    return re.sub(r"[^a-z0-9]", "", str(value or "").lower())


# --------------------------------------------------------------------------- the mapping


@dataclass(frozen=True)
class TrackerMapping:
    spellings: dict[str, str]  # normalised header -> field
    min_header_matches: int
    not_applicable: frozenset[str]
    yes: frozenset[str]
    caretaking: frozenset[str]
    sentence_types: dict[str, str]  # normalised -> SentenceType value
    rosh_levels: dict[str, str]
    rosh_when_not_high: str
    unknown_text: str
    unknown_postcode: str
    sentence_end_months: int
    mappa_category_when_unknown: int
    move_clock: str


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if key == "columns":
            cols = {k: list(v) for k, v in base.get("columns", {}).items()}
            for f, spellings in (value or {}).items():
                cols.setdefault(f, []).extend(spellings or [])
            out["columns"] = cols
        else:
            out[key] = value
    return out


def _table(groups: Mapping[str, Iterable[str]]) -> dict[str, str]:
    return {norm(s): target for target, spellings in groups.items() for s in [target, *spellings]}


@lru_cache(maxsize=8)
def load_mapping(path: Path | None = None) -> TrackerMapping:
    """The default mapping, with a region's file (same keys) added on top."""
    raw = read_yaml(get_settings().config_dir / "import_mapping.yaml")
    if path is not None:
        extra = read_yaml(path)
        if not isinstance(extra, dict):
            raise UnreadableTracker(f"{path}: a mapping file is a YAML mapping (see config/import_mapping.yaml)")
        unknown = set(extra.get("columns") or {}) - set(raw["columns"])
        if unknown:
            raise UnreadableTracker(
                f"{path}: columns: unknown fields {', '.join(sorted(unknown))}; fields: {', '.join(raw['columns'])}"
            )
        raw = _merge(raw, extra)
    if raw["move_clock_without_move_date"] != "notified":
        raise UnreadableTracker("move_clock_without_move_date: only 'notified' is supported")
    return TrackerMapping(
        spellings=_table(raw["columns"]) | {norm(f): f for f in raw["columns"]},
        min_header_matches=int(raw["min_header_matches"]),
        not_applicable=frozenset(norm(v) for v in raw["not_applicable"]) | {""},
        yes=frozenset(norm(v) for v in raw["yes_values"]),
        caretaking=frozenset(norm(v) for v in raw["caretaking"]),
        sentence_types=_table(raw["sentence_types"]),
        rosh_levels=_table(raw["rosh_levels"]),
        rosh_when_not_high=raw["rosh_when_not_high"],
        unknown_text=raw["unknown_text"],
        unknown_postcode=raw["unknown_postcode"],
        sentence_end_months=int(raw["sentence_end_months_when_unknown"]),
        mappa_category_when_unknown=int(raw["mappa_category_when_unknown"]),
        move_clock=raw["move_clock_without_move_date"],
    )


# --------------------------------------------------------------------------- reading the sheet


@dataclass
class RawRow:
    number: int  # the row number Excel shows
    values: dict[str, Any]  # field -> cell value
    raw: dict[str, Any]  # header as written -> cell value (for the report)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_sheet(path: Path, mapping: TrackerMapping, sheet: str | None = None) -> tuple[list[str], list[RawRow]]:
    """(the headers as written, the non-blank rows below the header row)."""
    from openpyxl import load_workbook

    # Not data_only: a cell holding a formula gives its text ("=HYPERLINK(...)"), stored as text.
    wb = load_workbook(path, read_only=True, data_only=False)
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise UnreadableTracker(f"--sheet: {path.name} has no sheet {sheet!r}; it has: {', '.join(wb.sheetnames)}")
        ws = wb[sheet] if sheet else wb.worksheets[0]
        table = [list(r) for r in ws.iter_rows(values_only=True)]
    finally:
        wb.close()
    header_at, columns = None, {}
    for i, row in enumerate(table[:50]):
        found = {c: mapping.spellings[norm(v)] for c, v in enumerate(row) if norm(v) in mapping.spellings}
        if len(set(found.values())) >= mapping.min_header_matches:
            header_at, columns = i, found
            break
    if header_at is None:
        raise UnreadableTracker(
            f"{path.name}: no header row: no row in the first 50 names {mapping.min_header_matches} known columns "
            "(config/import_mapping.yaml; give a region's own spellings with --mapping)"
        )
    taken: dict[str, int] = {}
    for c, f in list(columns.items()):
        if f in taken:  # the same field twice: the first column wins, the other is kept as raw only
            del columns[c]
        else:
            taken[f] = c
    missing = [f for f in REQUIRED if f not in taken]
    if "name" not in taken and not {"first_name", "last_name"} <= set(taken):
        missing.append("name")
    if missing:
        raise UnreadableTracker(f"{path.name} row {header_at + 1}: no column for {', '.join(missing)} (config/import_mapping.yaml)")
    headers = [_cell_text(h) for h in table[header_at]]
    rows = []
    for number, row in enumerate(table[header_at + 1 :], start=header_at + 2):
        if all(_cell_text(v) == "" for v in row):
            continue  # blank rows between blocks are not bad rows
        values = {f: row[c] if c < len(row) else None for c, f in columns.items()}
        raw = {headers[c] or f"column {c + 1}": row[c] for c in range(min(len(headers), len(row))) if _cell_text(row[c]) != ""}
        rows.append(RawRow(number, values, raw))
    return headers, rows


# --------------------------------------------------------------------------- one row, checked


def parse_date(value: Any, mapping: TrackerMapping) -> dt.date | None:
    """A date cell, an Excel serial, or text as trackers write it: 21/05/2026, 21/05/26, 23.06.26,
    2026-05-21, 21 May 2026, 21-May-26. Blank or "N/A" is None; anything else is ValueError."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 1 <= value < 2958466:  # Excel's serial range (to 9999-12-31)
            return EXCEL_EPOCH + dt.timedelta(days=int(value))
        raise ValueError(f"{value!r} is not a date")
    text = re.sub(r"\s+", " ", str(value or "")).strip()
    if norm(text) in mapping.not_applicable:
        return None
    if re.fullmatch(r"\d{5}", text):
        return EXCEL_EPOCH + dt.timedelta(days=int(text))
    for fmt in ("%d/%m/%Y", "%d/%m/%y", "%d.%m.%Y", "%d.%m.%y", "%d-%m-%Y", "%d-%m-%y", "%Y-%m-%d", "%d %B %Y", "%d %b %Y",
                "%d-%b-%y", "%d-%b-%Y", "%d %b %y"):  # fmt: skip
        try:
            day = dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if "%y" in fmt and day > get_settings().current_date() + dt.timedelta(days=366):
            day = day.replace(year=day.year - 100)  # 23.06.65 is a date of birth in 1965, not 2065
        return day
    raise ValueError(f"{text!r} is not a date (like 21/05/2026)")


@dataclass(frozen=True)
class Place:
    pdu_code: str
    team_code: str | None


def resolve_place(value: Any, estate: Estate, region: str | None) -> Place:
    """A PDU or team, by code or by name, or a postcode through the locator. ValueError otherwise."""
    text = _cell_text(value)
    code = text.upper().replace(" ", "")
    if code in estate.teams:
        t = estate.teams[code]
        return Place(t.pdu_code, t.code)
    if code in estate.pdus:
        return Place(code, None)
    key = norm(text)
    pdus = [p for p in estate.pdus.values() if norm(p.name) == key]
    teams = [t for t in estate.teams.values() if norm(t.name) == key]
    for found, make in ((pdus, lambda p: Place(p.code, None)), (teams, lambda t: Place(t.pdu_code, t.code))):
        if region and len(found) > 1:
            found = [x for x in found if x.region_code == region] or found
        if len(found) == 1:
            return make(found[0])
        if len(found) > 1:
            raise ValueError(f"{text!r} names {len(found)} places; give the code")
    if POSTCODE_PATTERN.match(code):
        from tasks.places.locator import LocatorError, get_locator

        try:
            return Place(get_locator().locate(text).pdu_code, None)
        except LocatorError as exc:
            raise ValueError(str(exc)) from None
    raise ValueError(f"{text!r} is not a PDU or team (code or name) or a postcode in England and Wales")


@dataclass
class GoodRow:
    number: int
    form: TransferForm
    key: str
    receiving_team: str | None
    allocated_to: str
    allocated_on: dt.date | None
    done: dict[str, dt.date]  # step or action task -> done on
    not_applicable: set[str]  # tasks the tracker marks "N/A": their actions are cancelled
    notes: str
    ethnicity: str | None


@dataclass
class BadRow:
    number: int
    crn: str
    reasons: list[str]
    raw: dict[str, Any]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def request_key(crn: str, notified: dt.date, nsi_type: NsiType) -> str:
    """The same row imported again finds its NSI: CRN, date notified and kind, whichever file it comes in."""
    return f"import:{crn}:{notified:%Y%m%d}:{'TM' if nsi_type is NsiType.temporary_move else 'CT'}"


def check_row(row: RawRow, mapping: TrackerMapping, estate: Estate, region: str | None, today: dt.date) -> GoodRow | BadRow:
    """Every rule a row can break, all reported at once, naming the field."""
    v = row.values
    problems: list[str] = []
    crn = _cell_text(v.get("crn")).upper().replace(" ", "")
    if not CRN_PATTERN.match(crn):
        problems.append(f"crn: {_cell_text(v.get('crn'))!r} is not a CRN (one letter and six digits)")
    dates: dict[str, dt.date | None] = {}
    for f in DATE_FIELDS:
        if f not in v:
            continue
        try:
            dates[f] = parse_date(v[f], mapping)
        except ValueError as exc:
            problems.append(f"{f}: {exc}")
    notified = dates.get("notified_on")
    for f in REQUIRED:
        if f in DATE_FIELDS and f in v and f not in [p.split(":")[0] for p in problems] and dates.get(f) is None:
            problems.append(f"{f}: missing")
    if notified and notified > today:
        problems.append(f"notified_on: {notified:%d/%m/%Y} is in the future")
    for f in (*DONE_FIELDS, "allocated_on"):
        d = dates.get(f)
        if d is None:
            continue
        if notified and d < notified:
            problems.append(f"{f}: {d:%d/%m/%Y} is before the date notified ({notified:%d/%m/%Y})")
        if d > today:
            problems.append(f"{f}: {d:%d/%m/%Y} is in the future")
    places: dict[str, Place] = {}
    for side in ("from", "to"):
        if _cell_text(v.get(side)) == "" or norm(v.get(side)) in mapping.not_applicable:
            problems.append(f"{side}: missing")
            continue
        try:
            places[side] = resolve_place(v[side], estate, region)
        except ValueError as exc:
            problems.append(f"{side}: unknown PDU or team: {exc}")
    kind = norm(v.get("nsi_type"))
    nsi_type = NsiType.temporary_move if kind in mapping.caretaking else NsiType.case_transfer
    sentence = _sentence(v.get("sentence_type"), mapping, problems)
    rosh, mappa_level = _risk(v, mapping, problems)
    if problems:
        return BadRow(row.number, crn or _cell_text(v.get("crn")), problems, row.raw)
    assert notified is not None
    frm, to = places["from"], places["to"]
    name = _cell_text(v.get("name")) or " ".join(
        x for x in (_cell_text(v.get("first_name")), _cell_text(v.get("last_name"))) if x
    )
    ethnicity = _text_or_none(v.get("ethnicity"), mapping)
    unknown = mapping.unknown_text
    data: dict[str, Any] = {
        "nsi_type": nsi_type.value,
        "crn": crn,
        "name": name,
        "date_of_birth": dates["date_of_birth"],
        "gender": _gender(v.get("gender")),
        "diversity_needs": f"Ethnicity: {ethnicity}" if ethnicity else None,
        "sentence_type": sentence,
        "sentence_end_date": notified + relativedelta(months=mapping.sentence_end_months),
        "current_address": unknown,
        "current_postcode": _postcode(v.get("from_postcode"), mapping),
        "proposed_address": unknown,
        "proposed_postcode": _postcode(v.get("to_postcode"), mapping),
        "accommodation_type": "Other",
        "reason_for_move": unknown,
        "move_date": dates.get("move_on"),
        "rosh": rosh,
        "mappa_level": mappa_level,
        "mappa_category": _mappa_category(v.get("mappa_category"), mapping) if mappa_level else None,
        "lao": norm(v.get("lao")) in mapping.yes,
        "victim_contact": norm(v.get("victim_contact")) in mapping.yes or dates.get("vlo_on") is not None,
        "transferring_practitioner": _text_or_none(v.get("transferring_practitioner"), mapping) or unknown,
        "transferring_team_code": frm.team_code or _first_team(estate, frm.pdu_code),
        "transferring_spo": unknown,
        "receiving_pdu_code": to.pdu_code,
        "raised_by": ACTOR,
        "raised_on": notified,
        "received_on": notified,
    }
    if nsi_type is NsiType.temporary_move:
        start = dates.get("move_on") or notified
        data["temporary_reason"] = "Caretaking on the legacy tracker"
        months = get_policy(form_profile()).caretaking_months  # no return date: the caretaking limit
        data["expected_return_date"] = dates.get("expected_return_on") or start + relativedelta(months=months)
    try:
        form = parse_form(data)
        check_placement(form, Placement(to.pdu_code), get_policy(form_profile()))
    except FormError as exc:
        return BadRow(row.number, crn, [f"{f}: {m}" for f, m in exc.problems], row.raw)
    done = {DONE_FIELDS[f]: d for f in DONE_FIELDS if (d := dates.get(f)) is not None}
    blank_na = {DONE_FIELDS[f] for f in DONE_FIELDS if _cell_text(v.get(f)) and norm(v.get(f)) in mapping.not_applicable}
    return GoodRow(
        number=row.number,
        form=form,
        key=request_key(crn, notified, nsi_type),
        receiving_team=to.team_code,
        allocated_to=_text_or_none(v.get("allocated_to"), mapping) or unknown,
        allocated_on=dates.get("allocated_on"),
        done=done,
        notes=_cell_text(v.get("notes")),
        ethnicity=ethnicity,
        not_applicable=blank_na,
    )


def form_profile() -> str:
    return get_settings().profile


def _text_or_none(value: Any, mapping: TrackerMapping) -> str | None:
    text = _cell_text(value)
    return None if norm(text) in mapping.not_applicable else text


def _gender(value: Any) -> str:
    return {"m": "Male", "male": "Male", "f": "Female", "female": "Female", "other": "Other"}.get(norm(value), "Not stated")


def _postcode(value: Any, mapping: TrackerMapping) -> str:
    text = _cell_text(value)
    return text if POSTCODE_PATTERN.match(text.upper().replace(" ", "")) else mapping.unknown_postcode


def _first_team(estate: Estate, pdu_code: str) -> str:
    # The form needs a transferring team; a tracker that names only the PDU gets its first team.
    return min(t.code for t in estate.teams.values() if t.pdu_code == pdu_code)


def _sentence(value: Any, mapping: TrackerMapping, problems: list[str]) -> str:
    key = norm(value)
    if key in mapping.not_applicable:
        problems.append("sentence_type: missing (the order or licence type)")
        return ""
    if key not in mapping.sentence_types:
        problems.append(f"sentence_type: {_cell_text(value)!r} is not an order or licence type (config/import_mapping.yaml)")
        return ""
    return mapping.sentence_types[key]


def _risk(v: Mapping[str, Any], mapping: TrackerMapping, problems: list[str]) -> tuple[str, int | None]:
    key = norm(v.get("rosh"))
    if key in mapping.rosh_levels:
        rosh = mapping.rosh_levels[key]
    elif key in mapping.yes:
        rosh = "High"
    elif key in mapping.not_applicable or key in {"no", "n", "false", "0"}:
        rosh = mapping.rosh_when_not_high
    else:
        problems.append(f"rosh: {_cell_text(v.get('rosh'))!r} is not a RoSH level or yes/no")
        rosh = mapping.rosh_when_not_high
    level_text = norm(v.get("mappa_level"))
    level: int | None = None
    if level_text not in mapping.not_applicable and level_text not in {"no", "n", "0"}:
        m = re.fullmatch(r"(?:level|l|lvl)?([123])", level_text)
        if m is None:
            problems.append(f"mappa_level: {_cell_text(v.get('mappa_level'))!r} is not a MAPPA level (1, 2 or 3)")
        else:
            level = int(m.group(1))
    return rosh, level


def _mappa_category(value: Any, mapping: TrackerMapping) -> int:
    m = re.search(r"[123]", _cell_text(value))
    return int(m.group(0)) if m else mapping.mappa_category_when_unknown


# --------------------------------------------------------------------------- storing a row


def _answer(task: str, on: dt.date, good: GoodRow, team: str, policy: Policy) -> dict[str, Any]:
    """The step's answer as its own form takes it: the registry validates what is stored."""
    base: dict[str, Any] = {"recorded_by": ACTOR, "done_on": on.isoformat()}
    extra: dict[str, Any] = {
        "allocation": {"practitioner": good.allocated_to, "team_code": team},
        "support_allocation": {"support_contact": good.allocated_to, "team_code": team},
        "address_assessment": {"method": "home_visit", "suitable": True, "notes": "imported: the tracker dates it"},
        "police_checks": {"returned_on": on.isoformat()},
        "safeguarding_checks": {"returned_on": on.isoformat()},
        "handover": {"held_on": on.isoformat()},
        "completion": {"responsible_officer": good.allocated_to, "completed_on": on.isoformat()},
        "outcome": {"outcome": "ended", "on": on.isoformat(), "notes": "caretaking ended (legacy tracker)"},
    }.get(task, {"notes": "imported from the legacy tracker"})
    spec = registry.spec_for(task, policy)
    return spec.form.model_validate(base | extra).model_dump(mode="json")


def store_row(session: Session, good: GoodRow, source: str, today: dt.date, estate: Estate) -> str:
    """One NSI with its Action List, its done work and its history, in the caller's transaction.
    Returns its reference."""
    form = good.form
    policy = get_policy(form_profile())
    calendar = get_calendar(get_settings().calendar)
    placed = check_placement(form, Placement(form.receiving_pdu_code or ""), policy)
    is_tm = form.nsi_type is NsiType.temporary_move
    shape = transfers.shape_for(form.nsi_type, policy)
    notified = form.raised_on or today
    move = form.move_date or notified  # move_clock_without_move_date: notified
    first_step = "support_allocation" if is_tm else "allocation"
    if is_tm:
        # A caretaking row: support allocation, then (a completion date) its end; nothing else is its work.
        done = {"outcome": good.done["completion"]} if "completion" in good.done else {}
    else:
        done = dict(good.done)
    team = good.receiving_team
    # Work after allocation means it was allocated: on its own date, else on the first later work
    # (a caretaking row naming the receiving team: supported from the date notified).
    allocated_on = good.allocated_on or (min(done.values()) if done else None)
    if allocated_on is None and is_tm and team:
        allocated_on = notified
    if allocated_on is not None:
        team = team or _first_team(estate, form.receiving_pdu_code or "")
        done[first_step] = allocated_on
    clocks = Clocks(raised=notified, received=notified, move=move, reallocation=allocated_on)
    planned = plan_actions(Facts(form), clocks, policy, calendar, shape)
    nsi = transfers.new_nsi(
        form,
        good.key,
        policy,
        shape,
        raised=notified,
        received=notified,
        move=move,
        due=transfer_due(notified, policy, calendar, form.nsi_type),
        placed=placed,
        placement=Placement(form.receiving_pdu_code or ""),
        imported_on=today,
    )
    session.add(nsi)
    session.flush()
    nsi.reference = f"{transfers.REFERENCE_PREFIX[form.nsi_type]}{nsi.id:06d}"
    actions = {
        p.code: Action(nsi_id=nsi.id, code=p.code, title=p.title, owner_role=p.owner_role, due_on=p.due_on, status="open")
        for p in planned
    }
    session.add_all(actions.values())
    history = [
        HistoryEntry(nsi_id=nsi.id, key="raised", event="raised",
                     detail=transfers.raised_detail(form.nsi_type.value, estate.pdus[form.receiving_pdu_code or ''].name), actor=ACTOR),
        HistoryEntry(nsi_id=nsi.id, key="imported", event="imported",
                     detail=f"imported on {today.isoformat()} from {source} row {good.number}", actor=ACTOR),
    ]  # fmt: skip
    if good.notes:
        history.append(HistoryEntry(nsi_id=nsi.id, key="imported:notes", event="note", detail=good.notes, actor=ACTOR))
    order = [first_step, *(t for t in done if t not in (first_step, "completion", "outcome")), "completion", "outcome"]
    for task in order:
        if task not in done:
            continue
        on = done[task]
        spec = registry.spec_for(task, policy)
        if spec.kind == "action" and task not in actions:
            continue  # work this NSI does not call for (an ACO date on a case that is not high RoSH)
        answer = _answer(task, on, good, team or "", policy)
        session.add(StepRecord(nsi_id=nsi.id, step=task, answer=answer, recorded_by=ACTOR, done_on=on))
        codes = [r.code for r in policy.rules_for_step(task, shape)] + ([task] if spec.kind == "action" else [])
        for code in codes:
            if (a := actions.get(code)) is not None:
                a.status, a.done_on = "done", on
        history.append(HistoryEntry(nsi_id=nsi.id, key=f"step:{task}", event=task,
                                    detail=f"{spec.title} done on {on.isoformat()} (imported)", actor=ACTOR))  # fmt: skip
    for task in sorted(good.not_applicable - set(done)):
        for code in [r.code for r in policy.rules_for_step(task, shape)] + [task]:
            if (a := actions.get(code)) is not None and a.status == "open":
                a.status = "cancelled"
                history.append(HistoryEntry(nsi_id=nsi.id, key=f"not-applicable:{code}", event="not applicable",
                                            detail=f"{a.title}: N/A on the legacy tracker", actor=ACTOR))  # fmt: skip
    if first_step in done:
        nsi.allocated_on = done[first_step]
        nsi.receiving_team_code = team
        nsi.receiving_practitioner = good.allocated_to
        nsi.status = _status_after_allocation(is_tm, shape)
    if is_tm and "outcome" in done:
        _finish(nsi, actions.values(), "ended", done["outcome"])
    elif "completion" in done:
        nsi.responsible_officer = good.allocated_to
        # What the tracker never dated before completion no longer applies; the after-the-move
        # actions (reassessment, plan review, court application) stay open with their real dates.
        required = set(policy.completion_requires)
        _finish(nsi, [a for a in actions.values() if a.code in required], "completed", done["completion"])
    session.add_all(history)
    return nsi.reference


def _status_after_allocation(is_tm: bool, shape: int) -> str:
    if is_tm:
        return SUPPORTING
    return transfers.IN_PROGRESS if shape >= 2 else "allocation_recorded"


def _finish(nsi: Nsi, actions: Iterable[Action], status: str, on: dt.date) -> None:
    """Closed on the tracker's date; `actions` still open no longer apply."""
    nsi.status, nsi.closed_on, nsi.waiting_step = status, on, None
    for a in actions:
        if a.status == "open":
            a.status = "cancelled"


# --------------------------------------------------------------------------- a whole file


@dataclass
class ImportResult:
    source: str
    rows: int = 0
    created: list[str] = field(default_factory=list)  # references
    skipped: list[str] = field(default_factory=list)  # references imported before
    bad: list[BadRow] = field(default_factory=list)
    report: Path | None = None
    seconds: float = 0.0
    dry_run: bool = False

    def line(self) -> str:
        verb = "would be created" if self.dry_run else "created"
        return (
            f"{self.source}: {self.rows} rows; {len(self.created)} NSIs {verb}, {len(self.skipped)} imported before "
            f"(skipped), {len(self.bad)} bad" + (f"; report: {self.report}" if self.report else "")
        )


def _existing(session: Session, crns: Sequence[str]) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """(request key -> reference of NSIs already imported, CRN -> open NSIs as (reference, request key))."""
    keys: dict[str, str] = {}
    open_by_crn: dict[str, list[tuple[str, str]]] = {}
    for i in range(0, len(crns), 500):
        chunk = crns[i : i + 500]
        for ref, key, crn, status in session.execute(
            select(Nsi.reference, Nsi.request_key, Nsi.crn, Nsi.status).where(Nsi.crn.in_(chunk))
        ):
            if key.startswith("import:"):
                keys[key] = ref
            if status not in transfers.CLOSED:
                open_by_crn.setdefault(crn, []).append((ref, key))
    return keys, open_by_crn


def import_tracker(
    path: Path,
    *,
    sheet: str | None = None,
    mapping_path: Path | None = None,
    region: str | None = None,
    dry_run: bool = False,
    url: str | None = None,
    progress: Callable[[int], None] | None = None,
    on_count: Callable[[int], None] | None = None,
) -> ImportResult:
    """Check every row, store the good ones (one transaction each), report the bad ones beside the input."""
    started = time.perf_counter()
    mapping = load_mapping(mapping_path)
    estate = load_estate()
    if region is not None and region.upper() not in estate.regions:
        raise UnreadableTracker(f"--region: {region!r} is not a region code; regions: {', '.join(sorted(estate.regions))}")
    region = region.upper() if region else None
    today = get_settings().current_date()
    _, rows = read_sheet(path, mapping, sheet)
    result = ImportResult(source=path.name, rows=len(rows), dry_run=dry_run)
    checked = [check_row(r, mapping, estate, region, today) for r in rows]
    goods = [c for c in checked if isinstance(c, GoodRow)]
    result.bad = [c for c in checked if isinstance(c, BadRow)]
    with UnitOfWork(url) as uow:
        imported, open_by_crn = _existing(uow.session, sorted({g.form.crn for g in goods}))
    seen: dict[str, int] = {}
    to_store: list[GoodRow] = []
    for g in goods:
        crn = g.form.crn
        if crn in seen:
            result.bad.append(BadRow(g.number, crn, [f"crn: {crn} is also on row {seen[crn]}; one in-flight transfer per CRN"],
                                     next(r.raw for r in rows if r.number == g.number)))  # fmt: skip
            continue
        seen[crn] = g.number
        if g.key in imported:
            result.skipped.append(imported[g.key])
            continue
        others = [ref for ref, key in open_by_crn.get(crn, []) if key != g.key]
        if others:
            result.bad.append(BadRow(g.number, crn, [f"crn: {crn} has an open NSI ({', '.join(others)}) that this file did not create"],
                                     next(r.raw for r in rows if r.number == g.number)))  # fmt: skip
            continue
        to_store.append(g)
    result.bad.sort(key=lambda b: b.number)
    if on_count is not None:
        on_count(len(to_store))
    if dry_run:
        result.created = [g.key for g in to_store]
    else:
        from tasks.store.session import session_factory

        make = session_factory(url)
        for g in to_store:
            session = make()
            try:
                ref = store_row(session, g, path.name, today, estate)
                session.commit()
                result.created.append(ref)
            except IntegrityError:
                # The same row stored by another import meanwhile: the first one stands.
                session.rollback()
                result.skipped.append(g.key)
            finally:
                session.close()
            if progress is not None:
                progress(1)
    result.report = write_report(path, result) if result.bad or dry_run else None
    result.seconds = time.perf_counter() - started
    return result


def report_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.import-report.xlsx")


def write_report(path: Path, result: ImportResult) -> Path:
    """Beside the input: every bad row (row number, CRN, reason, the raw values), and a summary.
    Written with strings kept as strings: nothing a tracker held becomes a formula."""
    import xlsxwriter

    out = report_path(path)
    tmp = out.with_suffix(".tmp.xlsx")
    book = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False})
    bold = book.add_format({"bold": True})
    ws = book.add_worksheet("Bad rows")
    raw_headers: list[str] = []
    for b in result.bad:
        raw_headers += [h for h in b.raw if h not in raw_headers]
    for c, h in enumerate(["Row", "CRN", "Reason", *raw_headers]):
        ws.write_string(0, c, h, bold)
    for r, b in enumerate(result.bad, start=1):
        ws.write_number(r, 0, b.number)
        ws.write_string(r, 1, b.crn)
        ws.write_string(r, 2, b.reason)
        for c, h in enumerate(raw_headers, start=3):
            if h in b.raw:
                ws.write_string(r, c, _cell_text(b.raw[h]))
    ws.set_column(2, 2, 80)
    ws.freeze_panes(1, 0)
    s = book.add_worksheet("Summary")
    verb = "To create (dry run)" if result.dry_run else "Created"
    for r, (label, value) in enumerate(
        [
            ("File", result.source),
            ("Rows", result.rows),
            (verb, len(result.created)),
            ("Imported before (skipped)", len(result.skipped)),
            ("Bad", len(result.bad)),
        ]  # fmt: skip
    ):
        s.write_string(r, 0, label, bold)
        s.write(r, 1, value) if isinstance(value, int) else s.write_string(r, 1, value)
    book.close()
    tmp.replace(out)
    return out


# --------------------------------------------------------------------------- flow runs, afterwards


def imported_without_run(url: str | None = None, limit: int | None = None) -> list[tuple[str, str, str]]:
    """(reference, nsi_type, request key) of imported NSIs with work open whose flow run has not started yet."""
    with UnitOfWork(url) as uow:
        q = (
            select(Nsi.reference, Nsi.nsi_type, Nsi.request_key)
            .where(
                Nsi.imported_on.is_not(None),
                Nsi.flow_run_id.is_(None),
                # A completed transfer still has a run while its after-the-move actions are open.
                or_(
                    Nsi.status.not_in(transfers.CLOSED),
                    and_(Nsi.status == "completed", exists().where(Action.nsi_id == Nsi.id, Action.status == "open")),
                ),
            )
            .order_by(Nsi.id)
        )
        if limit:
            q = q.limit(limit)
        return [tuple(r) for r in uow.session.execute(q)]  # type: ignore[misc]
