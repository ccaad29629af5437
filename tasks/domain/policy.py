"""The policy in force: timescales from config/timescales.yaml, adjusted by the profile."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from tasks.config_files import read_yaml
from tasks.settings import get_settings

# information: all requested information received (youth 12.4, Appendix A); reassessed: a new
# RoSH or SaW level recorded (youth 5.1). Both are started by tasks/domain/youth.py, not at raising.
Clock = Literal["raised", "received", "move", "reallocation", "returned", "caretaking", "concerns", "absence", "information", "reassessed"]
OwnerRole = Literal[
    "transferring_pp", "transferring_spo", "receiving_spo", "receiving_pp", "admin", "receiving_head", "service_manager"
]


class ActionRule(BaseModel):
    code: str
    title: str
    owner: OwnerRole
    clock: Clock
    working_days: int | None = None
    days: int | None = None
    weeks: int | None = None
    months: int | None = None
    when: str | None = None
    step: str | None = None
    nsi_types: list[str] = Field(default_factory=lambda: ["case_transfer"])
    opens_after: list[str] = Field(default_factory=list)  # concurrent shape: steps/actions done before its task opens
    shapes: list[int] = Field(default_factory=lambda: [1, 2])
    # Done again and again at the frequency a caretaking agreement sets (12.8): each check moves
    # its due date on by that frequency; it closes with the NSI.
    recurring: bool = False

    @property
    def task(self) -> str:
        """The waiting task that completes this action: its step, or the action itself."""
        return self.step or self.code

    @model_validator(mode="after")
    def _one_deadline(self) -> ActionRule:
        given = [u for u in ("working_days", "days", "weeks", "months") if getattr(self, u) is not None]
        if len(given) != 1:
            raise ValueError(f"action {self.code}: give exactly one of working_days, days, weeks, months")
        return self


class Absence(BaseModel):
    """A time a worker is away (2.1): from and to, both days included; no end while not known."""

    start: dt.date = Field(alias="from")
    end: dt.date | None = Field(None, alias="to")

    def words(self) -> str:
        return f"from {self.start.isoformat()}" + (f" to {self.end.isoformat()}" if self.end else ", return not known")


class StaffMember(BaseModel):
    """A case manager as allocation rules see them (config/staff/<profile>.yaml): an id, never a name."""

    id: str
    band: str
    gender: Literal["female", "male"]
    absences: list[Absence] = Field(default_factory=list)  # 2.1: not allocated while absent

    def absent_on(self, day: dt.date) -> Absence | None:
        return next((a for a in self.absences if a.start <= day and (a.end is None or day <= a.end)), None)


class AllocationRules(BaseModel):
    """Who may be allocated what (youth justice, 004 2.2, 4.1, 5.1): read by tasks/domain/steps.py."""

    staff: list[StaffMember] = Field(default_factory=list)
    senior_bands: list[str] = Field(default_factory=list)  # 4.1: High/Very High RoSH or SaW goes to these bands
    high_levels: list[str] = Field(default_factory=list)  # RoSH/SaW levels that count as high (4.1, 5.1)
    female_identities: list[str] = Field(default_factory=list)  # 2.2: allocated to a case manager identifying as female
    co_allocation_agreement_days: int | None = None  # 5.3: recorded within this many days
    max_caseload: int | None = None  # 2.1: open youth cases a case manager holds before allocating more needs a rationale

    def member(self, staff_id: str) -> StaffMember | None:
        key = staff_id.strip().upper()
        return next((m for m in self.staff if m.id.upper() == key), None)


class YouthProcess(BaseModel):
    """The youth justice service's concurrent-shape rules read by tasks/domain/youth.py (004)."""

    # 12.4, Appendix A: the information is all received when these actions (those the NSI has) are done.
    information_actions: list[str] = Field(default_factory=list)
    # 12.4: a stay reopens these (those the NSI has), due this many working days from the stay.
    stay_reopens: list[str] = Field(default_factory=list)
    stay_documents_working_days: int = 2
    # 12.4: while stayed, these owners' open deadlines stand still until the missing items arrive.
    paused_roles: list[str] = Field(default_factory=list)
    # 12.7: the caretaking agreement, confirmed in writing by each area: the actions, one per area.
    caretaking_confirmations: list[str] = Field(default_factory=list)


class Policy(BaseModel):
    profile: str
    transfer_working_days: int
    suspend_timeout_days: int
    nearby_pdu_km: float
    caretaking_months: int = 3
    reminder_warning_working_days: int = 2
    escalation_working_days: int = 3
    # What differs between services (config/profiles/<profile>.yaml `settings`), read by the
    # rules in tasks/domain/profile_rules.py; the defaults are the adult Probation Service's.
    person: str = "person on probation"  # how messages name the person
    handover_requires_attendance: bool = False  # a handover not held, or missed by the person, does not transfer the case
    handover_is_transfer_date: bool = False  # the valid handover's date is the formal transfer (completion) date
    information_refusals: bool = False  # missing information / poor-quality assessment: stay or refuse the request
    internal_transfers: bool = False  # a move between teams of one PDU may be a transfer when the form says so
    caretaking_agreement_required: bool = False  # a temporary move's support allocation records who does what
    step_requires_actions: dict[str, list[str]] = Field(default_factory=dict)  # step -> actions done before it
    # The concurrent shape (config/timescales.yaml explains each).
    shape_version: int = 1
    completion_requires: list[str] = Field(default_factory=list)
    challenge_raisers: list[OwnerRole] = Field(default_factory=lambda: ["receiving_pp", "receiving_spo"])
    challenge_owner: OwnerRole = "receiving_spo"
    dispute_raiser: OwnerRole = "transferring_spo"
    dispute_owner: OwnerRole = "receiving_head"
    dispute_working_days: int = 5
    # Age in completed years on the day the NSI is raised (parse_form refuses a form outside it);
    # the defaults are the adult Probation Service's: 18 and over, 110 as a typing-error bound.
    min_age: int = 18
    max_age: int = 110
    # Youth justice (004), each off by default: fields the transfer form must give; the address
    # assessment must be a home visit (11.3); a looked-after child's request becomes caretaking
    # (12.2); a caretaking agreement sets how often the host sends its record of contacts, at most
    # these weeks apart for the higher of RoSH and SaW (12.5, 12.8); the allocation rules.
    required_form_fields: dict[str, str] = Field(default_factory=dict)  # field -> the rule that needs it
    home_visit_required: bool = False
    looked_after_caretaking: bool = False
    looked_after_message: str = ""
    contact_record_max_weeks: dict[str, int] = Field(default_factory=dict)
    # 12.5: a transfer in is accepted at allocation on a caretaking basis until it completes: the
    # allocation agrees the contact frequency (as a caretaking agreement does) and the recurring
    # caretaking checks run from allocation to completion. The history quotes the message.
    transfer_in_caretaking: bool = False
    transfer_in_caretaking_message: str = ""
    allocation: AllocationRules | None = None
    youth_process: YouthProcess | None = None
    actions: list[ActionRule] = Field(default_factory=list)

    def rule(self, code: str) -> ActionRule:
        for r in self.actions:
            if r.code == code:
                return r
        raise KeyError(code)

    def recurs(self, code: str) -> bool:
        """Whether the action `code` is a recurring check (recorded again and again with action-done)."""
        return any(r.recurring and r.code == code for r in self.actions)

    def rules_for_step(self, step: str, shape: int | None = None) -> list[ActionRule]:
        return [r for r in self.actions if r.step == step and (shape is None or shape in r.shapes)]

    def rule_for_task(self, task: str) -> ActionRule | None:
        """The action rule a concurrent-shape task completes (its step's, or the action's own)."""
        return next((r for r in self.actions if r.task == task and 2 in r.shapes), None)


def load_policy(profile: str | None = None, config_dir: Path | None = None) -> Policy:
    settings = get_settings()
    config_dir = config_dir or settings.config_dir
    profile = profile or settings.profile
    base = read_yaml(config_dir / "timescales.yaml")
    profile_path = config_dir / "profiles" / f"{profile}.yaml"
    if not profile_path.exists():
        raise ValueError(f"profile: no config/profiles/{profile}.yaml")
    prof = read_yaml(profile_path) or {}
    overrides: dict[str, dict] = prof.get("overrides") or {}
    actions = []
    for raw in base.get("actions", []):
        raw = dict(raw)
        over = overrides.get(raw["code"], {})
        if over and any(k in over for k in ("working_days", "days", "weeks", "months")):
            for unit in ("working_days", "days", "weeks", "months"):
                raw.pop(unit, None)
        raw.update(over)
        actions.append(raw)
    actions.extend(prof.get("extra_actions") or [])
    settings_part = {k: v for k, v in base.items() if k != "actions"}
    settings_part.update(prof.get("settings") or {})
    if isinstance(settings_part.get("allocation"), dict) and (staff_file := settings_part["allocation"].get("staff_file")):
        # The staff list is its own file: it changes with the team, not with the policy.
        allocation = {k: v for k, v in settings_part["allocation"].items() if k != "staff_file"}
        allocation["staff"] = (read_yaml(config_dir / staff_file) or {}).get("staff", [])
        settings_part["allocation"] = allocation
    return Policy(profile=profile, actions=actions, **settings_part)


@lru_cache(maxsize=4)
def get_policy(profile: str | None = None) -> Policy:
    return load_policy(profile)
