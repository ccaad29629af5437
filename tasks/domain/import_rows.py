"""Go-live import: one row of a legacy tracker checked. Every rule it breaks is reported at once,
naming the field (a bad row); a row that breaks none becomes the transfer form it would have been
raised with, its work already done on its own dates and the tasks it marks "N/A" (a good row)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dateutil.relativedelta import relativedelta

from tasks.domain.form import CRN_PATTERN, POSTCODE_PATTERN, FormError, NsiType, TransferForm, parse_form
from tasks.domain.import_mapping import REQUIRED, TrackerMapping, norm
from tasks.domain.legacy_tracker import RawRow, cell_text, parse_date
from tasks.domain.policy import get_policy
from tasks.places.estate import Estate
from tasks.places.placement import Placement, check_placement
from tasks.settings import get_settings

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


@dataclass(frozen=True)
class Place:
    pdu_code: str
    team_code: str | None


def resolve_place(value: Any, estate: Estate, region: str | None) -> Place:
    """A PDU or team, by code or by name, or a postcode through the locator. ValueError otherwise."""
    text = cell_text(value)
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
    # Cells the NSI has no field for, kept as history lines ("imported, column not mapped: ...").
    kept: list[str] = field(default_factory=list)
    # A caretaking row: the case transfer's actions it also carries (config caretaking_actions).
    caretaking_actions: tuple[str, ...] = ()


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
    crn = cell_text(v.get("crn")).upper().replace(" ", "")
    if not CRN_PATTERN.match(crn):
        problems.append(f"crn: {cell_text(v.get('crn'))!r} is not a CRN (one letter and six digits)")
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
        if cell_text(v.get(side)) == "" or norm(v.get(side)) in mapping.not_applicable:
            problems.append(f"{side}: missing")
            continue
        try:
            places[side] = resolve_place(v[side], estate, region)
        except ValueError as exc:
            problems.append(f"{side}: unknown PDU or team: {exc}")
    nsi_type = _nsi_type(v.get("nsi_type"), mapping, problems)
    kept: list[str] = []
    sentence = _sentence(v.get("sentence_type"), mapping, problems, kept)
    rosh, mappa_level = _risk(v, mapping, problems)
    if problems or nsi_type is None:
        return BadRow(row.number, crn or cell_text(v.get("crn")), problems, row.raw)
    assert notified is not None
    frm, to = places["from"], places["to"]
    name = cell_text(v.get("name")) or " ".join(x for x in (cell_text(v.get("first_name")), cell_text(v.get("last_name"))) if x)
    ethnicity = _text_or_none(v.get("ethnicity"), mapping)
    unknown = mapping.unknown_text
    data: dict[str, Any] = {
        "nsi_type": nsi_type.value,
        "crn": crn,
        "name": name,
        "date_of_birth": dates["date_of_birth"],
        "gender": _gender(v.get("gender"), mapping, kept),
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
        "mappa_category": _mappa_category(v.get("mappa_category"), mapping, kept) if mappa_level else None,
        "lao": norm(v.get("lao")) in mapping.yes,
        "victim_contact": norm(v.get("victim_contact")) in mapping.yes or dates.get("vlo_on") is not None,
        "transferring_practitioner": _text_or_none(v.get("transferring_practitioner"), mapping) or unknown,
        "transferring_team_code": frm.team_code or first_team(estate, frm.pdu_code),
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
    if nsi_type is NsiType.case_transfer and (back := dates.get("expected_return_on")) is not None:
        kept.append(f"imported, not applicable to a case transfer: expected return {back:%d/%m/%Y}")
    if mappa_level is None and cell_text(v.get("mappa_category")) and norm(v.get("mappa_category")) not in mapping.not_applicable:
        kept.append(f"imported, no MAPPA level: MAPPA category {cell_text(v.get('mappa_category'))}")
    for header, value in row.unmapped.items():
        kept.append(f"imported, column not mapped: {header}: {cell_text(value)}")
    done = {DONE_FIELDS[f]: d for f in DONE_FIELDS if (d := dates.get(f)) is not None}
    blank_na = {DONE_FIELDS[f] for f in DONE_FIELDS if cell_text(v.get(f)) and norm(v.get(f)) in mapping.not_applicable}
    return GoodRow(
        number=row.number,
        form=form,
        key=request_key(crn, notified, nsi_type),
        receiving_team=to.team_code,
        allocated_to=_text_or_none(v.get("allocated_to"), mapping) or unknown,
        allocated_on=dates.get("allocated_on"),
        done=done,
        notes=cell_text(v.get("notes")),
        ethnicity=ethnicity,
        not_applicable=blank_na,
        kept=kept,
        caretaking_actions=mapping.caretaking_actions if nsi_type is NsiType.temporary_move else (),
    )


def form_profile() -> str:
    return get_settings().profile


def _text_or_none(value: Any, mapping: TrackerMapping) -> str | None:
    text = cell_text(value)
    return None if norm(text) in mapping.not_applicable else text


def _gender(value: Any, mapping: TrackerMapping, kept: list[str]) -> str:
    gender = {"m": "Male", "male": "Male", "f": "Female", "female": "Female", "other": "Other"}.get(norm(value))
    if gender is None and norm(value) not in mapping.not_applicable:
        kept.append(f"imported, gender as written: {cell_text(value)}")
    return gender or "Not stated"


def _nsi_type(value: Any, mapping: TrackerMapping, problems: list[str]) -> NsiType | None:
    """Transfer or caretaking as written; anything else is a bad row unless the mapping names a default."""
    key = norm(value)
    if key in mapping.caretaking:
        return NsiType.temporary_move
    if key in mapping.transfer:
        return NsiType.case_transfer
    if mapping.nsi_type_when_not_given is not None and key in mapping.not_applicable:
        return NsiType.temporary_move if mapping.nsi_type_when_not_given == "caretaking" else NsiType.case_transfer
    typed = f" ({cell_text(value)!r} is neither)" if cell_text(value) else ""
    problems.append(f"nsi_type: Transfer or caretaking not given{typed} (config/import_mapping.yaml: transfer, caretaking)")
    return None


def _postcode(value: Any, mapping: TrackerMapping) -> str:
    text = cell_text(value)
    return text if POSTCODE_PATTERN.match(text.upper().replace(" ", "")) else mapping.unknown_postcode


def first_team(estate: Estate, pdu_code: str) -> str:
    # The form needs a transferring team; a tracker that names only the PDU gets its first team.
    return min(t.code for t in estate.teams.values() if t.pdu_code == pdu_code)


def _sentence(value: Any, mapping: TrackerMapping, problems: list[str], kept: list[str]) -> str:
    key = norm(value)
    if key in mapping.not_applicable:
        # A blank optional field never rejects a row: the mapping's stand-in, said in the history.
        kept.append(f"imported, order or licence type not recorded on the legacy tracker: taken as {mapping.sentence_type_when_not_given}")
        return mapping.sentence_type_when_not_given
    if key not in mapping.sentence_types:
        problems.append(f"sentence_type: {cell_text(value)!r} is not an order or licence type (config/import_mapping.yaml)")
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
        problems.append(f"rosh: {cell_text(v.get('rosh'))!r} is not a RoSH level or yes/no")
        rosh = mapping.rosh_when_not_high
    level_text = norm(v.get("mappa_level"))
    level: int | None = None
    if level_text not in mapping.not_applicable and level_text not in {"no", "n", "0"}:
        m = re.fullmatch(r"(?:level|l|lvl)?([123])", level_text)
        if m is None:
            problems.append(f"mappa_level: {cell_text(v.get('mappa_level'))!r} is not a MAPPA level (1, 2 or 3)")
        else:
            level = int(m.group(1))
    return rosh, level


def _mappa_category(value: Any, mapping: TrackerMapping, kept: list[str]) -> int:
    m = re.search(r"[123]", cell_text(value))
    if m is None and norm(value) not in mapping.not_applicable:
        kept.append(f"imported, MAPPA category as written: {cell_text(value)}")
    return int(m.group(0)) if m else mapping.mappa_category_when_unknown
