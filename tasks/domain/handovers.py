"""POM-COM handover records: the rules from config/handovers.yaml, validation, import and the store.

Seed 003: people in prison on a qualifying sentence get an in-person supervision session in the
final months before their case passes from the prison offender manager (POM) to the community
offender manager (COM); the case admins report each handover 28 days before it, email the POM,
the COM and the prison OMU mailbox, and send the COM diary alerts before the deadline. What is
sent when is in tasks/notify/handover_reminders.py; this module holds the records.

Safety, as everywhere in the store:
- **Nothing half-stored.** An import is one transaction: every row is checked first, and a file
  with any bad row stores nothing; the error names each bad row (its spreadsheet row number),
  the field and the rule. A repeat import of the same file changes nothing.
- **One record per CRN.** A row for a CRN already stored corrects it in place (revision + 1);
  an identical row is "unchanged".
- **Text stays text.** Values are stored as typed; the tracker writes them as string cells and
  the emails escape them, so a name like '=HYPERLINK(...)' or '<b>' is never a formula or markup.
  Control characters (a newline in a name) are refused: every field is one line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tasks.config_files import read_yaml
from tasks.limits import OutOfBounds, check_count, check_date
from tasks.settings import get_settings
from tasks.store.models import PomComHandover, PomComSession
from tasks.store.unit_of_work import UnitOfWork

CRN_PATTERN = re.compile(r"^[A-Z][0-9]{6}$")
# Deliberately loose: one @, a dot in the domain, no spaces. Real checking is the mail server's.
EMAIL_PATTERN = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CHUNK = 5000
ACTOR = "casetransfer handovers"

# The record's fields, in the order of an import file's columns (and of `add-handover`).
FIELDS: tuple[str, ...] = (
    "crn",
    "name",
    "prison",
    "pom_name",
    "pom_email",
    "com_name",
    "com_email",
    "com_team_code",
    "com_pdu_code",
    "omu_mailbox",
    "sentence_type",
    "sentence_length_months",
    "sentence_date",
    "release_date",
    "handover_date",
    "lao",
)
# Columns an import file may leave out: a team (the PDU is enough), LAO (blank is "no").
# The sentence date (or custody start) may be left out too: time to serve then falls back on the length.
OPTIONAL_COLUMNS = frozenset({"com_team_code", "com_pdu_code", "lao", "sentence_date"})


# --- the rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """A diary alert to the COM, `months` or `weeks` before the handover deadline."""

    name: str
    label: str
    months: int = 0
    weeks: int = 0

    def nominal_day(self, deadline: dt.date) -> dt.date:
        return deadline - relativedelta(months=self.months) - dt.timedelta(weeks=self.weeks)


@dataclass(frozen=True)
class HandoverRules:
    report_days_before: int
    alerts: tuple[Alert, ...]
    session_final_months: int
    qualifying_types: frozenset[str]
    qualifying_more_than_months: int
    sentence_types: Mapping[str, str]
    sentence_type_names: Mapping[str, str] = field(default_factory=dict)  # normalised code, label or name -> code
    held_domains: frozenset[str] = frozenset()
    demo_records: int = 0
    demo_spread_days: int = 0

    def qualifies(
        self, sentence_type: str, sentence_length_months: int, sentence_date: dt.date | None = None, release_date: dt.date | None = None
    ) -> bool:
        """Seed 003: a standard determinate sentence with more than 10 months to serve (both in config):
        the release date more than 10 months after the sentence date (or custody start). A record
        without that date (stored before it was asked for) is judged on its sentence length, which
        can only over-flag: a session is asked for where time to serve may be shorter."""
        if sentence_type not in self.qualifying_types:
            return False
        if sentence_date is not None and release_date is not None:
            return release_date > sentence_date + relativedelta(months=self.qualifying_more_than_months)
        return sentence_length_months > self.qualifying_more_than_months

    def session_window_start(self, deadline: dt.date) -> dt.date:
        """The first day of 'the final three months' before the handover."""
        return deadline - relativedelta(months=self.session_final_months)

    @property
    def max_lead_days(self) -> int:
        """The most calendar days any send can come before its deadline (before working-day moves)."""
        leads = [self.report_days_before] + [a.months * 31 + a.weeks * 7 for a in self.alerts]
        return max(leads)


def _sentence_type_names(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Each sentence type by its code, its label and the names in sentence_type_names, compared as
    headers are (case, spaces and punctuation ignored)."""
    from tasks.domain.import_mapping import norm

    out: dict[str, str] = {}
    for code, label in cfg["sentence_types"].items():
        names = (cfg.get("sentence_type_names") or {}).get(code) or []
        for name in [code, label, *([names] if isinstance(names, str) else names)]:
            out[norm(name)] = str(code)
    return out


def load_rules(path: Path | None = None) -> HandoverRules:
    path = path or get_settings().config_dir / "handovers.yaml"
    cfg = read_yaml(path) or {}
    try:
        alerts = []
        for a in cfg["alerts"]:
            months, weeks = int(a.get("months_before", 0)), int(a.get("weeks_before", 0))
            if bool(months) == bool(weeks):
                raise ValueError(f"alert {a.get('name')!r}: give months_before or weeks_before, not both or neither")
            alerts.append(Alert(str(a["name"]), str(a["label"]), months, weeks))
        rules = HandoverRules(
            report_days_before=int(cfg["report_days_before"]),
            alerts=tuple(alerts),
            session_final_months=int(cfg["session"]["final_months"]),
            qualifying_types=frozenset(str(t) for t in cfg["qualifying"]["sentence_types"]),
            qualifying_more_than_months=int(cfg["qualifying"]["more_than_months"]),
            sentence_types={str(k): str(v) for k, v in cfg["sentence_types"].items()},
            sentence_type_names=_sentence_type_names(cfg),
            held_domains=frozenset(str(d).lower() for d in cfg.get("held_domains", [])),
            demo_records=int(cfg.get("demo", {}).get("records", 0)),
            demo_spread_days=int(cfg.get("demo", {}).get("spread_days", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    unknown = rules.qualifying_types - set(rules.sentence_types)
    if unknown:
        raise ValueError(f"{path}: qualifying.sentence_types {sorted(unknown)} are not in sentence_types")
    return rules


# --- one record, checked ----------------------------------------------------------------------------


def parse_date(value: Any) -> dt.date:
    """A date from a form, a CSV (YYYY-MM-DD or DD/MM/YYYY, as UK spreadsheets write it) or an .xlsx cell."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")


_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0", ""}


class HandoverRecord(BaseModel):
    """One handover as a person gives it: every rule a bad row can break is checked here."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    crn: str
    name: str
    prison: str
    pom_name: str
    pom_email: str
    com_name: str
    com_email: str
    com_team_code: str | None = None
    com_pdu_code: str | None = None
    omu_mailbox: str
    sentence_type: str
    sentence_length_months: int
    sentence_date: dt.date | None = None  # or the custody start: time to serve runs from it
    release_date: dt.date
    handover_date: dt.date
    lao: bool = False

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, data: Any) -> Any:
        # An empty cell is a missing value, so a required field says "required", not "too short".
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if not (v is None or (isinstance(v, str) and not v.strip()))}
        return data

    @field_validator("crn", mode="before")
    @classmethod
    def _crn(cls, v: Any) -> str:
        text = str(v).strip().upper()
        if not CRN_PATTERN.match(text):
            raise ValueError("must be a CRN: one letter and six digits, e.g. X123456")
        return text

    @field_validator("name", "prison", "pom_name", "com_name")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v:
            raise ValueError("is required")
        if CONTROL.search(v):
            raise ValueError("must be one line of text (no line breaks or control characters)")
        if len(v) > 200:
            raise ValueError("must be at most 200 characters")
        return v

    @field_validator("pom_email", "com_email", "omu_mailbox")
    @classmethod
    def _email(cls, v: str) -> str:
        if len(v) > 320 or not EMAIL_PATTERN.match(v):
            raise ValueError(f"{v!r} is not an email address")
        return v

    @field_validator("com_team_code", "com_pdu_code", mode="before")
    @classmethod
    def _code(cls, v: Any) -> str | None:
        return str(v).strip().upper() or None if v is not None else None

    @field_validator("sentence_type", mode="before")
    @classmethod
    def _sentence_type(cls, v: Any) -> str:
        from tasks.domain.import_mapping import norm

        rules = load_rules()
        code = rules.sentence_type_names.get(norm(v))
        if code is None:
            known = "; ".join(f"{c} ({label})" for c, label in rules.sentence_types.items())
            raise ValueError(f"{str(v).strip()!r} is not a sentence type; known (config/handovers.yaml), by code or name: {known}")
        return code

    @field_validator("sentence_length_months", mode="before")
    @classmethod
    def _months(cls, v: Any) -> int:
        try:
            number = float(str(v).strip())
        except ValueError:
            raise ValueError(f"{v!r} is not a whole number of months") from None
        if number != number or number in (float("inf"), float("-inf")) or number != int(number) or number < 1:
            raise ValueError(f"{v!r} is not a whole number of months (1 or more)")
        try:
            return check_count("sentence_length_months", int(number), "sentence_length_months")
        except OutOfBounds as exc:
            raise ValueError(exc.rule) from None

    @field_validator("sentence_date", "release_date", "handover_date", mode="before")
    @classmethod
    def _date(cls, v: Any, info: ValidationInfo) -> dt.date:
        day = parse_date(v)
        try:
            return check_date(info.field_name or "date", day, "sentence_day")
        except OutOfBounds as exc:
            raise ValueError(exc.rule) from None

    @field_validator("lao", mode="before")
    @classmethod
    def _lao(cls, v: Any) -> bool:
        if isinstance(v, bool):
            return v
        text = str(v).strip().lower()
        if text in _YES:
            return True
        if text in _NO:
            return False
        raise ValueError(f"{v!r} is not yes or no")

    @model_validator(mode="after")
    def _team_and_dates(self) -> HandoverRecord:
        problems, pdu = cross_field_problems(self.com_team_code, self.com_pdu_code, self.sentence_date, self.release_date, self.handover_date)
        if problems:
            raise ValueError("; ".join(problems))
        self.com_pdu_code = pdu
        return self

    @property
    def region_code(self) -> str:
        from tasks.places.estate import load_estate

        return load_estate().pdus[str(self.com_pdu_code)].region_code

    def stored_values(self) -> dict[str, Any]:
        return {**self.model_dump(), "com_region_code": self.region_code}


def cross_field_problems(
    team: str | None, pdu: str | None, sentence_date: dt.date | None, release: dt.date | None, handover: dt.date | None
) -> tuple[list[str], str | None]:
    """The rules between fields, each checked once its own fields are readable: (problems, the COM's PDU)."""
    from tasks.places.estate import load_estate

    estate = load_estate()
    problems = []
    if team is None and pdu is None:
        problems.append("com_pdu_code: is required (or com_team_code, whose PDU it is)")
    elif team is not None:
        if team not in estate.teams:
            problems.append(f"com_team_code: {team!r} is not a team in the estate ({estate.version})")
        else:
            team_pdu = estate.teams[team].pdu_code
            if pdu is not None and pdu != team_pdu:
                problems.append(f"com_pdu_code: {pdu!r} is not the PDU of team {team} ({team_pdu})")
            pdu = team_pdu
    elif pdu not in estate.pdus:
        problems.append(f"com_pdu_code: {pdu!r} is not a PDU in the estate ({estate.version})")
    if sentence_date is not None and release is not None and sentence_date >= release:
        problems.append(f"sentence_date: {sentence_date} is not before the release date {release}")
    # The handover passes the case to the community before release, never after.
    if handover is not None and release is not None and handover > release:
        problems.append(f"handover_date: {handover} is after the release date {release}; the handover must happen on or before release")
    return problems, pdu


def _readable_cross_problems(values: Mapping[str, Any], errors: Sequence[str]) -> list[str]:
    """After field errors (pydantic then skips the rules between fields): the rules between the
    fields that were readable, so every problem of a row is said in one pass."""
    at_fault = {e.split(":", 1)[0] for e in errors}

    def day(name: str) -> dt.date | None:
        v = values.get(name)
        if name in at_fault or v is None or not str(v).strip():
            return None
        try:
            return parse_date(v)
        except ValueError:
            return None

    def code(name: str) -> str | None:
        v = values.get(name)
        return None if v is None or not str(v).strip() else str(v).strip().upper()

    places = {"com_team_code", "com_pdu_code"}
    skip = at_fault | (places if at_fault & places else set())
    problems, _ = cross_field_problems(code("com_team_code"), code("com_pdu_code"), day("sentence_date"), day("release_date"),
                                       day("handover_date"))  # fmt: skip
    return [p for p in problems if p.split(":", 1)[0] not in skip]


def record_errors(exc: ValidationError) -> list[str]:
    """'field: rule' for each error pydantic found (a model-level error already names its field)."""
    out = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "missing":
            message = "is required"
        elif e["type"] == "extra_forbidden":
            message = "is not a field of a handover record"
        out.append(f"{where}: {message}" if where else message)
    return out


class HandoverInputError(ValueError):
    """Bad input: each line names the row (if any), the field and the rule. Nothing was stored."""

    def __init__(self, errors: Sequence[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


def check_record(values: Mapping[str, Any], where: str = "") -> HandoverRecord:
    try:
        return HandoverRecord.model_validate(dict(values))
    except ValidationError as exc:
        errors = record_errors(exc)
        if all(e["loc"] for e in exc.errors()):  # field errors: pydantic skipped the rules between fields
            errors += _readable_cross_problems(values, errors)
        raise HandoverInputError([f"{where}{e}" for e in errors]) from None


# --- reading an import file ---------------------------------------------------------------------------


def read_rows(path: Path, mapping: Path | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(spreadsheet row number, values by field) for each non-blank row of a .csv or .xlsx file
    (tasks/domain/handover_files.py: headers by their spellings, encodings detected).

    Row numbers are what the admin sees in Excel: the header is row 1.
    """
    problems, rows = _read(path, mapping)
    if problems:
        raise HandoverInputError(problems)
    return rows


def _read(path: Path, mapping: Path | None) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    from tasks.domain.handover_files import read_file

    try:
        return read_file(path, FIELDS, OPTIONAL_COLUMNS, mapping)
    except ValueError as exc:
        raise HandoverInputError([str(exc)]) from None


def check_rows(rows: Iterable[tuple[int, Mapping[str, Any]]], source: str) -> list[HandoverRecord]:
    """Every row checked; HandoverInputError listing every bad row if any is bad."""
    records: list[HandoverRecord] = []
    errors: list[str] = []
    first_row: dict[str, int] = {}
    for number, values in rows:
        try:
            record = check_record(values, f"{source} row {number}: ")
        except HandoverInputError as exc:
            errors.extend(exc.errors)
            continue
        if record.crn in first_row:
            errors.append(f"{source} row {number}: crn: {record.crn} is also on row {first_row[record.crn]}; one row per CRN")
            continue
        first_row[record.crn] = number
        records.append(record)
    if errors:
        raise HandoverInputError(errors)
    return records


# --- the store ----------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)  # CRNs
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{len(self.created)} created, {len(self.updated)} corrected, {len(self.unchanged)} unchanged"


_COMPARED = (*FIELDS, "com_region_code")


def save_records(records: Sequence[HandoverRecord], by: str, url: str | None = None, *, create: bool = True) -> ImportResult:
    """Store the records in one transaction: new CRNs created, changed ones corrected, the same unchanged.

    create=False: only corrections (a CRN not stored is an error). Retries once if another
    import created one of the same CRNs between the read and the write.
    """
    for attempt in range(2):
        result = ImportResult()
        with UnitOfWork(url) as uow:
            session = uow.session
            crns = [r.crn for r in records]
            existing: dict[str, PomComHandover] = {}
            for i in range(0, len(crns), _CHUNK):
                for h in session.scalars(select(PomComHandover).where(PomComHandover.crn.in_(crns[i : i + _CHUNK]))):
                    existing[h.crn] = h
            now = dt.datetime.now(dt.UTC)
            for record in records:
                values = record.stored_values()
                row = existing.get(record.crn)
                if row is None:
                    if not create:
                        raise HandoverInputError([f"crn: no handover stored for {record.crn}; add it with add-handover"])
                    session.add(PomComHandover(**values, revision=1, updated_by=by, created_at=now, updated_at=now))
                    result.created.append(record.crn)
                elif all(getattr(row, k) == values[k] for k in _COMPARED):
                    result.unchanged.append(record.crn)
                else:
                    for k, v in values.items():
                        setattr(row, k, v)
                    row.revision += 1
                    row.updated_by, row.updated_at = by, now
                    result.updated.append(record.crn)
            try:
                uow.commit()
                return result
            except IntegrityError:
                uow.rollback()
                if attempt:
                    raise
    raise AssertionError("unreachable")


def import_file(path: Path, by: str, url: str | None = None, mapping: Path | None = None) -> ImportResult:
    """Check every row of a .csv or .xlsx file, then store them all or (any problem) nothing. Every
    problem of the header and of every row is said at once."""
    problems, rows = _read(path, mapping)
    try:
        records = check_rows(rows, path.name) if not any("missing columns" in p for p in problems) else []
    except HandoverInputError as exc:
        problems += exc.errors
    if problems:
        raise HandoverInputError(problems)
    return save_records(records, by, url)


def get_record(crn: str, url: str | None = None) -> HandoverRecord | None:
    with UnitOfWork(url) as uow:
        row = uow.session.scalars(select(PomComHandover).where(PomComHandover.crn == crn.strip().upper())).one_or_none()
        if row is None:
            return None
        return HandoverRecord.model_construct(**{k: getattr(row, k) for k in FIELDS})


def correct_record(crn: str, changes: Mapping[str, Any], by: str, url: str | None = None) -> ImportResult:
    """Apply some fields' new values to a stored record, checking the whole record again."""
    current = get_record(crn, url)
    if current is None:
        raise HandoverInputError([f"crn: no handover stored for {crn.strip().upper()}; add it with add-handover"])
    values = {k: getattr(current, k) for k in FIELDS}
    if changes.get("com_team_code") is not None and "com_pdu_code" not in changes:
        values["com_pdu_code"] = None  # a new team brings its own PDU
    values.update(changes)
    return save_records([check_record(values)], by, url, create=False)


def record_session(crn: str, on: dt.date, by: str, url: str | None = None, today: dt.date | None = None) -> bool:
    """Record an in-person session. True if new, False if that day was already recorded."""
    crn = crn.strip().upper()
    today = today or get_settings().current_date()
    if on > today:
        raise HandoverInputError([f"--on: {on} is in the future; record a session once it has happened"])
    with UnitOfWork(url) as uow:
        handover = uow.session.scalars(select(PomComHandover).where(PomComHandover.crn == crn)).one_or_none()
        if handover is None:
            raise LookupError(f"crn: no handover stored for {crn}")
        if any(s.held_on == on for s in handover.sessions):
            return False
        uow.session.add(PomComSession(handover_id=handover.id, held_on=on, recorded_by=by))
        try:
            uow.commit()
        except IntegrityError:
            return False  # recorded by someone else at the same moment: stored once
    return True
