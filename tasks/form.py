"""The slim, nationally standardised transfer form (DOMAIN.md) and its validation.

A bad form is refused whole: FormError lists every bad field with the rule it broke, and
nothing is stored.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.transfer_in import TransferInSummary

CRN_PATTERN = re.compile(r"^[A-Z][0-9]{6}$")
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
    victim_contact: bool = Field(False, description="Victim contact scheme (VLO) involved")
    safeguarding_concerns: bool = Field(False, description="Safeguarding or child protection flags")
    transferring_practitioner: str = Field(..., min_length=1, max_length=200)
    transferring_team_code: str = Field(..., description="nDelius team code, e.g. N07NCL")
    transferring_spo: str = Field(..., min_length=1, max_length=200)
    receiving_pdu_code: str | None = Field(None, description="Leave empty for the PDU locator to decide")
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

    @field_validator("crn", mode="before")
    @classmethod
    def _crn(cls, v: Any) -> str:
        v = str(v).strip().upper()
        if not CRN_PATTERN.match(v):
            raise ValueError("must be one letter and six digits, like X123456")
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
        problems: list[str] = []
        if self.sentence_end_date <= self.date_of_birth:
            problems.append("sentence_end_date: must be after date_of_birth")
        if self.mappa_level is not None and self.mappa_category is None:
            problems.append("mappa_category: required when mappa_level is given")
        if self.last_oasys_date and self.last_oasys_date < self.date_of_birth:
            problems.append("last_oasys_date: must be after date_of_birth")
        if self.received_on and self.raised_on and self.received_on < self.raised_on:
            problems.append("received_on: cannot be before raised_on")
        if self.nsi_type is NsiType.temporary_move:
            if not self.temporary_reason:
                problems.append("temporary_reason: required for a Temporary Move")
            if self.expected_return_date is None:
                problems.append("expected_return_date: required for a Temporary Move")
            if self.released_from_custody and not self.post_release_accommodation_temporary:
                problems.append(
                    "nsi_type: a person released to live in the receiving area is a Case Transfer, "
                    "not a Temporary Move, unless the post-release accommodation is temporary"
                )
        if self.internal_transfer and self.nsi_type is not NsiType.case_transfer:
            problems.append("internal_transfer: only a Case Transfer can be an internal transfer")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def high_rosh(self) -> bool:
        return self.rosh in (Rosh.high, Rosh.very_high)

    @property
    def court_order(self) -> bool:
        return self.sentence_type in COURT_ORDERS


def parse_form(data: dict[str, Any]) -> TransferForm:
    """Validate a form dict; FormError names every bad field."""
    try:
        return TransferForm.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if not loc:
                # cross-field rules come as one "field: rule; field: rule" message
                for part in msg.split("; "):
                    field, _, rule = part.partition(": ")
                    problems.append((field, rule))
            else:
                problems.append((loc, msg))
        raise FormError(problems) from None
