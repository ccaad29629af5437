"""The slim, nationally standardised transfer form (DOMAIN.md) and its validation.

A bad form is refused whole: FormError lists every bad field with the rule it broke, and
nothing is stored. Every problem is reported at once: a field that fails its own rule does not
hide the cross-field rules on the fields that did parse, nor the profile's rules (parse_form).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from enum import Enum
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_validator

from tasks.domain.licence_conditions import Curfew, ExclusionZone, NonContact
from tasks.domain.policy import Policy, get_policy
from tasks.domain.transfer_in import TransferInSummary
from tasks.limits import OutOfBounds, check_date
from tasks.settings import get_settings

CRN_PATTERN = re.compile(r"^[A-Z][0-9]{6}$")
REFERENCE_PATTERN = re.compile(r"^(CT|TM)[0-9]{6,}$")
# UK postcode, outward + inward, after removing spaces and upper-casing.
POSTCODE_PATTERN = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")


class FormError(ValueError):
    """Bad input: one line per field, naming the field and the rule."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{field}: {msg}" for field, msg in problems))

    @classmethod
    def from_validation_error(cls, exc: ValidationError, prefix: str = "") -> FormError:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "form"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((f"{prefix}{loc}", msg))
        return cls(problems)


def normalise_postcode(value: str) -> str:
    """'sw1a1aa', ' SW1A  1AA ' -> 'SW1A 1AA'; raises ValueError when malformed."""
    compact = re.sub(r"\s+", "", str(value)).upper()
    m = POSTCODE_PATTERN.match(compact)
    if not m:
        raise ValueError(f"{value!r} is not a UK postcode (like 'SW1A 1AA')")
    return f"{m.group(1)} {m.group(2)}"


class NsiType(str, Enum):
    case_transfer = "case_transfer"
    temporary_move = "temporary_move"


class Rosh(str, Enum):
    low = "Low"
    medium = "Medium"
    high = "High"
    very_high = "Very High"


class Gender(str, Enum):
    male = "Male"
    female = "Female"
    other = "Other"
    not_stated = "Not stated"


class GenderIdentity(str, Enum):
    """How the young person identifies, for allocation (004 2.2, 2.3): not the sex recorded at birth."""

    girl_or_young_woman = "Girl or young woman"
    boy_or_young_man = "Boy or young man"
    other = "Other"
    not_stated = "Not stated"


class ParentingOrder(BaseModel):
    """A parent's Parenting Order that moves with the young person's order (004 12.9-12.11)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    parent: str = Field(
        ..., min_length=1, max_length=100, description="Which parent, as their relationship (Mother, Father), not a name"
    )
    lives_with_young_person: bool = Field(..., description="Does this parent live with the young person after the move?")
    made_on: dt.date | None = Field(None, description="The day the Parenting Order was made")


class SentenceType(str, Enum):
    community_order = "Community Order"
    suspended_sentence_order = "Suspended Sentence Order"
    licence = "Licence"
    post_sentence_supervision = "Post Sentence Supervision"
    youth_rehabilitation_order = "Youth Rehabilitation Order"
    referral_order = "Referral Order"
    detention_and_training_order = "Detention and Training Order"


COURT_ORDERS = {
    SentenceType.community_order,
    SentenceType.suspended_sentence_order,
    SentenceType.youth_rehabilitation_order,
    SentenceType.referral_order,
}


class AccommodationType(str, Enum):
    owner_occupied = "Owner occupied"
    private_rented = "Private rented"
    social_housing = "Social housing"
    family_or_friends = "Family or friends"
    approved_premises = "Approved premises"
    hostel = "Hostel or supported housing"
    temporary = "Temporary accommodation"
    other = "Other"


class Documents(BaseModel):
    """The documents checklist (002 App. 2 lists what went missing most)."""

    model_config = ConfigDict(extra="forbid")
    assessment: bool = False
    supervision_plan: bool = False
    order_or_licence: bool = False
    contact_log: bool = False
    absences_and_enforcement: bool = False
    mappa_notes: bool = False
    vlo_information: bool = False
    programme_reports: bool = False

    def missing(self) -> list[str]:
        return [name for name, sent in self.model_dump().items() if not sent]

    def none_marked(self) -> bool:
        """No item marked: nothing to chase item by item (tasks/domain/documents.py)."""
        return not any(self.model_dump().values())


# Each date on the form and its window of config/limits.yaml (dates.NAME), checked before any rule.
DATE_WINDOWS = {
    "date_of_birth": "date_of_birth",
    "sentence_end_date": "sentence_day",
    "move_date": "transfer_day",
    "last_oasys_date": "transfer_day",
    "raised_on": "transfer_day",
    "received_on": "transfer_day",
    "expected_return_date": "transfer_day",
}


class TransferForm(BaseModel):
    """Raise a Case Transfer or Temporary Move NSI."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, use_enum_values=False)

    nsi_type: NsiType = Field(NsiType.case_transfer, description="Case Transfer or Temporary Move")
    crn: str = Field(..., description="Case reference number: one letter and six digits, e.g. X123456")
    name: str = Field(..., min_length=1, max_length=200, description="Person on probation: full name")
    date_of_birth: dt.date
    gender: Gender
    diversity_needs: str | None = Field(None, max_length=2000, description="Diversity needs; 'None' if none")
    lao: bool = Field(False, description="Limited access offender: restricted case")
    sentence_type: SentenceType
    sentence_end_date: dt.date
    current_address: str = Field(..., min_length=1, max_length=500)
    current_postcode: str
    proposed_address: str = Field(..., min_length=1, max_length=500)
    proposed_postcode: str
    household: str = Field("", max_length=2000, description="Who else lives at the proposed address")
    accommodation_type: AccommodationType
    reason_for_move: str = Field(..., min_length=1, max_length=2000)
    move_date: dt.date | None = Field(None, description="Proposed move date")
    rosh: Rosh = Field(..., description="Risk of serious harm level")
    mappa_category: int | None = Field(None, ge=1, le=3)
    mappa_level: int | None = Field(None, ge=1, le=3)
    last_oasys_date: dt.date | None = None
    restrictive_conditions: str | None = Field(None, max_length=2000)
    # Restrictive conditions as data (the free text above may still say more): each exclusion
    # zone is checked against the proposed address at raising and at any change of address.
    exclusion_zones: list[ExclusionZone] = Field(
        default_factory=list, max_length=20, description="Exclusion zones: postcode districts or sectors, or a local authority or PDU"
    )
    non_contact: list[NonContact] = Field(default_factory=list, max_length=20, description="Non-contact conditions")
    curfew: Curfew | None = Field(None, description="Curfew hours at the address")
    victim_contact: bool = Field(False, description="Victim contact scheme (VLO) involved")
    safeguarding_concerns: bool = Field(False, description="Safeguarding or child protection flags")
    transferring_practitioner: str = Field(..., min_length=1, max_length=200)
    transferring_team_code: str = Field(..., description="nDelius team code, e.g. N07NCL")
    transferring_spo: str = Field(..., min_length=1, max_length=200)
    receiving_pdu_code: str | None = Field(None, description="Leave empty for the PDU locator to decide")
    receiving_pdu_reason: str | None = Field(
        None, max_length=2000, description="Why the case goes to the PDU named above when the locator places the address in another"
    )
    supersedes: str | None = Field(
        None, description="Moving again: the open NSI of this person this one replaces (closed as superseded), e.g. CT000123"
    )
    re_request_of: str | None = Field(
        None, description="Youth justice 12.4: the request rejected for its information that this one asks again, e.g. CT000123"
    )
    documents: Documents = Field(default_factory=Documents)
    raised_by: str = Field(..., min_length=1, max_length=200)
    raised_on: dt.date | None = Field(None, description="Defaults to today (Europe/London)")
    received_on: dt.date | None = Field(None, description="Defaults to the day raised")
    # Temporary Move only
    temporary_reason: str | None = Field(None, max_length=2000, description="Temporary Move: why temporary")
    expected_return_date: dt.date | None = Field(None, description="Temporary Move: expected return")
    released_from_custody: bool = Field(False, description="Moving on release from custody")
    post_release_accommodation_temporary: bool = Field(False)
    # Where the profile allows it (youth justice), a move between teams of one PDU.
    internal_transfer: bool = Field(False, description="Case Transfer between teams of the same PDU (where the policy allows)")
    transfer_in: TransferInSummary | None = Field(None, description="Transfer-in summary and documents checklist (youth justice)")
    # Youth justice (004): the profile says which are required (config/profiles/youth.yaml).
    saw_level: Rosh | None = Field(None, description="Safety and wellbeing (SaW) level from AssetPlus (youth justice)")
    looked_after: bool = Field(False, description="Looked after by their local authority (youth justice: caretaking, 12.2)")
    gender_identity: GenderIdentity | None = Field(None, description="The gender the young person identifies as, for allocation")
    parenting_orders: list[ParentingOrder] = Field(
        default_factory=list, max_length=2, description="Parents' Parenting Orders that transfer with this order (youth justice)"
    )

    @field_validator("parenting_orders")
    @classmethod
    def _one_order_per_parent(cls, v: list[ParentingOrder]) -> list[ParentingOrder]:
        parents = [o.parent.lower() for o in v]
        if len(set(parents)) != len(parents):
            raise ValueError("one Parenting Order per parent: the same parent is given twice")
        return v

    @field_validator(*DATE_WINDOWS, mode="before")
    @classmethod
    def _date_written(cls, v: Any, info: ValidationInfo) -> Any:
        # YAML reads 19900412 as a number, which pydantic would take as seconds since 1970.
        if isinstance(v, int | float) and not isinstance(v, bool):
            raise ValueError(f"{v!r} is a number, not a date: write it YYYY-MM-DD")
        return v

    @field_validator(*DATE_WINDOWS)
    @classmethod
    def _date_in_window(cls, v: dt.date | None, info: ValidationInfo) -> dt.date | None:
        if v is None:
            return v
        try:
            return check_date(info.field_name or "date", v, DATE_WINDOWS[info.field_name or ""])
        except OutOfBounds as exc:
            raise ValueError(exc.rule) from None

    @field_validator("crn", mode="before")
    @classmethod
    def _crn(cls, v: Any) -> str:
        v = str(v).strip().upper()
        if not CRN_PATTERN.match(v):
            raise ValueError("must be one letter and six digits, like X123456")
        return v

    @field_validator("supersedes", "re_request_of", mode="before")
    @classmethod
    def _reference(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        v = str(v).strip().upper()
        if not REFERENCE_PATTERN.match(v):
            raise ValueError("must be an NSI reference, like CT000123 or TM000123")
        return v

    @field_validator("current_postcode", "proposed_postcode", mode="before")
    @classmethod
    def _postcode(cls, v: Any) -> str:
        return normalise_postcode(v)

    @field_validator("transferring_team_code", "receiving_pdu_code", mode="before")
    @classmethod
    def _code(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) and v.strip() else (None if v == "" else v)

    @model_validator(mode="after")
    def _cross_field(self) -> TransferForm:
        problems = cross_field_problems(self.__dict__, get_settings().current_date())
        if problems:
            raise ValueError("; ".join(f"{field}: {rule}" for field, rule in problems))
        return self

    @property
    def high_rosh(self) -> bool:
        return self.rosh in (Rosh.high, Rosh.very_high)

    @property
    def high_rosh_or_saw(self) -> bool:
        return self.high_rosh or self.saw_level in (Rosh.high, Rosh.very_high)

    @property
    def court_order(self) -> bool:
        return self.sentence_type in COURT_ORDERS


# The fields the cross-field and profile rules read (all plain values, no field validators).
RULE_FIELDS = (
    "nsi_type",
    "date_of_birth",
    "sentence_end_date",
    "mappa_category",
    "mappa_level",
    "last_oasys_date",
    "raised_on",
    "received_on",
    "temporary_reason",
    "expected_return_date",
    "released_from_custody",
    "post_release_accommodation_temporary",
    "internal_transfer",
    "saw_level",
    "gender_identity",
    "looked_after",
)


def cross_field_problems(values: Mapping[str, Any], today: dt.date) -> list[tuple[str, str]]:
    """The rules that hold whatever the profile, as (field, rule). `values` holds the fields that
    parsed; a rule whose fields are not all there is not checked (their own errors say why)."""

    def have(*names: str) -> bool:
        return all(n in values for n in names)

    v = values
    problems: list[tuple[str, str]] = []
    dob_known = have("date_of_birth") and v["date_of_birth"] <= today
    if have("date_of_birth") and not dob_known:
        problems.append(("date_of_birth", f"cannot be in the future (today is {today})"))
    if dob_known and have("sentence_end_date") and v["sentence_end_date"] <= v["date_of_birth"]:
        problems.append(("sentence_end_date", "must be after date_of_birth"))
    if have("mappa_level", "mappa_category") and v["mappa_level"] is not None and v["mappa_category"] is None:
        problems.append(("mappa_category", "required when mappa_level is given"))
    if dob_known and have("last_oasys_date") and v["last_oasys_date"] and v["last_oasys_date"] < v["date_of_birth"]:
        problems.append(("last_oasys_date", "must be after date_of_birth"))
    if have("received_on", "raised_on") and v["received_on"] and v["raised_on"] and v["received_on"] < v["raised_on"]:
        problems.append(("received_on", "cannot be before raised_on"))
    if have("nsi_type") and v["nsi_type"] is NsiType.temporary_move:
        if have("temporary_reason") and not v["temporary_reason"]:
            problems.append(("temporary_reason", "required for a Temporary Move"))
        if have("expected_return_date") and v["expected_return_date"] is None:
            problems.append(("expected_return_date", "required for a Temporary Move"))
        if (
            have("released_from_custody", "post_release_accommodation_temporary")
            and v["released_from_custody"]
            and not v["post_release_accommodation_temporary"]
        ):
            problems.append(
                (
                    "nsi_type",
                    "a person released to live in the receiving area is a Case Transfer, "
                    "not a Temporary Move, unless the post-release accommodation is temporary",
                )
            )
    if have("internal_transfer", "nsi_type") and v["internal_transfer"] and v["nsi_type"] is not NsiType.case_transfer:
        problems.append(("internal_transfer", "only a Case Transfer can be an internal transfer"))
    return problems


def age_on(date_of_birth: dt.date, day: dt.date) -> int:
    """Age in completed years on `day` (a 29 February birthday comes on 1 March in other years)."""
    return day.year - date_of_birth.year - ((day.month, day.day) < (date_of_birth.month, date_of_birth.day))


def profile_problems(values: Mapping[str, Any], policy: Policy, today: dt.date) -> list[tuple[str, str]]:
    """The rules that count from the day raised (raised_on, else today) and the profile's age
    range, as (field, rule); like cross_field_problems, only on the fields that parsed."""
    if "raised_on" not in values:  # given but unreadable: no day to count from
        return []
    day = values["raised_on"] or today
    problems: list[tuple[str, str]] = []
    dob = values.get("date_of_birth")
    if dob is not None and dob <= today:  # a future date of birth is refused as such
        if dob > day:
            problems.append(("date_of_birth", f"is after the day raised ({day})"))
        elif not policy.min_age <= (age := age_on(dob, day)) <= policy.max_age:
            problems.append(
                (
                    "date_of_birth",
                    f"aged {age} on the day raised ({day}); the {policy.profile} profile takes ages "
                    f"{policy.min_age} to {policy.max_age}",
                )
            )
    for name, rule in policy.required_form_fields.items():
        if name in values and values[name] in (None, ""):
            problems.append((name, f"required by the {policy.profile} profile: {rule}"))
    end = values.get("sentence_end_date")
    if end is not None and end < day:
        problems.append(("sentence_end_date", f"the sentence or licence ended on {end}, before the day raised ({day})"))
    return problems


@lru_cache(maxsize=len(RULE_FIELDS))
def _field_adapter(name: str) -> TypeAdapter:
    info = TransferForm.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info], config=ConfigDict(str_strip_whitespace=True))


def _parsed_rule_fields(data: Any, bad: set[str]) -> dict[str, Any]:
    """The rule fields that parsed: given and valid, or left out and defaulted."""
    if not isinstance(data, Mapping):
        return {}
    parsed: dict[str, Any] = {}
    for name in RULE_FIELDS:
        info = TransferForm.model_fields[name]
        if name in bad:
            continue
        if name in data:
            try:
                parsed[name] = _field_adapter(name).validate_python(data[name])
            except ValidationError:
                continue
        elif not info.is_required():
            parsed[name] = info.get_default(call_default_factory=True)
    return parsed


def parse_form(data: dict[str, Any], profile: str | None = None) -> TransferForm:
    """Validate a form dict under a profile (default: the settings' profile). FormError names
    every bad field: its own rule, the cross-field rules and the profile's rules, all at once."""
    policy = get_policy(profile)
    today = get_settings().current_date()
    try:
        form = TransferForm.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        bad: set[str] = set()
        for err in exc.errors():
            if not err["loc"] and err["type"] == "value_error":
                continue  # the cross-field rules: checked again below on what parsed
            loc = ".".join(str(p) for p in err["loc"]) or "form"
            bad.add(str(err["loc"][0]) if err["loc"] else "form")
            problems.append((loc, err["msg"].removeprefix("Value error, ")))
        parsed = _parsed_rule_fields(data, bad)
        problems += cross_field_problems(parsed, today) + profile_problems(parsed, policy, today)
        raise FormError(list(dict.fromkeys(problems))) from None
    problems = profile_problems(form.__dict__, policy, today)
    if problems:
        raise FormError(problems)
    return form
