"""Who is acting, and what they may do: the staff list (config/staff/people.yaml) and the access
rules (config/access.yaml) as small typed models and pure decisions. No Prefect, no HTTP here:
the people's API server's middleware and the command line both ask these functions.

A task's owner role names a side of the transfer (config/email.yaml `reminders.sides`) and the
staff roles that may answer it; a person may answer when they hold such a role in that side's
PDU. Ops may do anything, and the record says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from tasks.config_files import read_yaml
from tasks.settings import CONFIG_DIR

Role = Literal["practitioner", "spo", "case_admin", "head_of_pdu", "service_manager", "ops"]
Side = Literal["transferring", "receiving"]

PEOPLE_FILE = CONFIG_DIR / "staff" / "people.yaml"
ACCESS_FILE = CONFIG_DIR / "access.yaml"
EMAIL_FILE = CONFIG_DIR / "email.yaml"


class StaffError(ValueError):
    """The staff list or the access rules are wrong: the message names the file and the field."""


class StaffMember(BaseModel):
    signin: str = Field(min_length=1)
    name: str = Field(min_length=1)
    staff_id: str = Field(min_length=1)
    roles: list[Role] = Field(min_length=1)
    pdus: list[str] = Field(default_factory=list)
    os_accounts: list[str] = Field(default_factory=list)
    example: bool = False

    def works_in(self, pdu_code: str) -> bool:
        return pdu_code in self.pdus


class AccessRules(BaseModel):
    owners: dict[str, list[Role]]
    sides: dict[str, Side]
    all_powerful: list[Role] = Field(default_factory=lambda: ["ops"])
    on_behalf_of: list[Role] = Field(default_factory=list)

    @model_validator(mode="after")
    def _every_owner_has_a_side(self) -> AccessRules:
        missing = sorted(set(self.owners) - set(self.sides))
        if missing:
            raise ValueError(f"owners {missing}: no side in config/email.yaml reminders.sides")
        return self


@dataclass(frozen=True)
class StaffList:
    people: tuple[StaffMember, ...]

    def by_signin(self, signin: str) -> StaffMember | None:
        wanted = signin.strip().lower()
        return next((p for p in self.people if p.signin.lower() == wanted), None)

    def by_os_account(self, account: str) -> StaffMember | None:
        return next((p for p in self.people if account in p.os_accounts), None)

    def by_name(self, name: str) -> StaffMember | None:
        wanted = " ".join(name.split()).lower()
        return next((p for p in self.people if p.name.lower() == wanted), None)


@dataclass(frozen=True)
class Decision:
    """May this person do this? `reason` is said to them when not, and kept when ops acted."""

    allowed: bool
    reason: str
    as_ops: bool = False


def load_staff(path: Path | None = None) -> StaffList:
    path = path or PEOPLE_FILE
    doc = read_yaml(path) or {}
    people = []
    for i, row in enumerate(doc.get("people") or []):
        try:
            people.append(StaffMember.model_validate(row))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(x) for x in first["loc"])
            raise StaffError(f"{path.name}: people[{i}].{field}: {first['msg']}") from None
    seen: set[str] = set()
    for p in people:
        if p.signin.lower() in seen:
            raise StaffError(f"{path.name}: signin {p.signin!r} is listed twice")
        seen.add(p.signin.lower())
    return StaffList(tuple(people))


@lru_cache(maxsize=4)
def _rules(access: Path, email: Path) -> AccessRules:
    doc = read_yaml(access) or {}
    sides = (read_yaml(email) or {}).get("reminders", {}).get("sides", {})
    try:
        return AccessRules.model_validate({**doc, "sides": sides})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise StaffError(f"{access.name}: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None


def access_rules(access: Path | None = None, email: Path | None = None) -> AccessRules:
    return _rules(access or ACCESS_FILE, email or EMAIL_FILE)


def may_answer(
    person: StaffMember, owner_role: str, transferring_pdu: str, receiving_pdu: str, rules: AccessRules | None = None
) -> Decision:
    """May `person` answer a task owned by `owner_role` on a transfer between these PDUs?"""
    rules = rules or access_rules()
    if any(r in rules.all_powerful for r in person.roles):
        return Decision(True, f"{person.name} acted as ops for the {owner_role.replace('_', ' ')}", as_ops=True)
    if owner_role not in rules.owners:
        return Decision(False, f"no one may answer a task owned by {owner_role!r} (config/access.yaml owners)")
    side = rules.sides[owner_role]
    pdu = transferring_pdu if side == "transferring" else receiving_pdu
    allowed_roles = rules.owners[owner_role]
    if not person.works_in(pdu):
        return Decision(False, f"{person.name} does not work in {pdu}, the {side} PDU, whose {_words(owner_role)} owns this task")
    if not any(r in allowed_roles for r in person.roles):
        wanted = " or ".join(_words(r) for r in allowed_roles)
        return Decision(False, f"this task is the {_words(owner_role)}'s: it needs a {wanted} of {pdu}")
    return Decision(True, f"{person.name} is a {' and '.join(_words(r) for r in person.roles)} of {pdu}")


def recorded_actor(person: StaffMember, typed: str | None, rules: AccessRules | None = None) -> tuple[str, str | None]:
    """The name the record keeps for an answer, and the "on behalf of" name when the policy lets
    this person record for someone else: (actor, on_behalf_of). A typed name is never the actor."""
    rules = rules or access_rules()
    typed = " ".join((typed or "").split())
    if not typed or typed.lower() == person.name.lower():
        return person.name, None
    if any(r in rules.on_behalf_of for r in person.roles):
        return person.name, typed
    return person.name, None


def recorded_words(person: StaffMember, typed: str | None, as_ops: bool = False, rules: AccessRules | None = None) -> str:
    """Who did it, in the record's words, the same from the UI and the command line: the person,
    "(ops)" when they acted as ops, then "on behalf of" the typed name where the policy lets them."""
    actor, behalf = recorded_actor(person, typed, rules)
    words = f"{actor} (ops)" if as_ops else actor
    return f"{words} on behalf of {behalf}" if behalf else words


def _words(code: str) -> str:
    return {
        "transferring_pp": "transferring practitioner",
        "receiving_pp": "receiving practitioner",
        "transferring_spo": "transferring SPO",
        "receiving_spo": "receiving SPO",
        "admin": "case admin",
        "receiving_head": "head of the receiving PDU",
        "spo": "SPO",
        "case_admin": "case admin",
        "head_of_pdu": "head of PDU",
    }.get(code, code.replace("_", " "))
