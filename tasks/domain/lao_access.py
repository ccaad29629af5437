"""Limited access (LAO) cases and the command line's own writes (issue 28): pure rules over the
staff list and config/access.yaml (`commands`, `lao`). No store here (tasks/domain/access_log.py
reads and writes), no printing (ops/actor.py).

Who sees an LAO NSI whole: the staff it names (its practitioners and SPOs, matched by name), the
staff holding one of `lao.pdu_roles` in either side's PDU (the SPOs of both sides), and anyone
granted a look with `casetransfer grant`. Everyone else, ops included, sees the restricted view;
ops may grant themselves a look, which the history records with the reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from tasks.config_files import read_yaml
from tasks.domain.staff import ACCESS_FILE, Decision, Role, StaffError, StaffList, StaffMember

if TYPE_CHECKING:
    from tasks.domain.transfer_views import StatusView


class LaoRules(BaseModel):
    named: list[str] = Field(min_length=1)
    pdu_roles: list[Role] = Field(default_factory=list)
    restricted_words: str = Field(min_length=1)


class CommandRules(BaseModel):
    commands: dict[str, list[str]] = Field(default_factory=dict)
    lao: LaoRules


@lru_cache(maxsize=4)
def _command_rules(path: Path) -> CommandRules:
    doc = read_yaml(path) or {}
    try:
        return CommandRules.model_validate({"commands": doc.get("commands") or {}, "lao": doc.get("lao")})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise StaffError(f"{path.name}: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None


def command_rules(path: Path | None = None) -> CommandRules:
    return _command_rules(path or ACCESS_FILE)


def command_owners(command: str, rules: CommandRules | None = None) -> list[str]:
    """The task owners one of whose people may run `command` (config/access.yaml `commands`)."""
    rules = rules or command_rules()
    if command not in rules.commands:
        raise StaffError(f"access.yaml: commands: {command!r} is not listed, so no one may run it as themselves")
    return rules.commands[command]


@dataclass(frozen=True)
class Parties:
    """What the access rules read of one NSI: its sides' PDUs and the staff it names."""

    reference: str
    lao: bool
    transferring_pdu: str
    receiving_pdu: str
    named: Mapping[str, str | None]  # NSI field (transferring_practitioner...) -> the name it holds


def default_list(parties: Parties, staff: StaffList, rules: LaoRules | None = None) -> list[StaffMember]:
    """The staff who may see an LAO NSI without a grant, in the staff list's order."""
    rules = rules or command_rules().lao
    names = {" ".join(n.split()).lower() for f in rules.named if (n := parties.named.get(f))}
    pdus = {parties.transferring_pdu, parties.receiving_pdu}
    return [
        p
        for p in staff.people
        if p.name.lower() in names or (any(r in rules.pdu_roles for r in p.roles) and pdus & set(p.pdus))
    ]


def may_see(
    person: StaffMember | None, parties: Parties, granted: Collection[str], staff: StaffList, rules: LaoRules | None = None
) -> Decision:
    """May this person (None: nobody on the staff list) see the NSI's details whole?"""
    if not parties.lao:
        return Decision(True, f"{parties.reference} is not a limited access case")
    if person is None:
        return Decision(False, f"{parties.reference} is a limited access case and whoever looked is not on the staff list")
    if person.signin.lower() in {g.lower() for g in granted}:
        return Decision(True, f"{person.name} was granted access to {parties.reference}")
    if any(p.signin == person.signin for p in default_list(parties, staff, rules)):
        return Decision(True, f"{person.name} is on {parties.reference}'s access list (named, or an SPO of either side)")
    return Decision(False, f"{person.name} is not on {parties.reference}'s access list (casetransfer grant adds a person)")


def restricted(view: StatusView, words: str | None = None) -> StatusView:
    """The status of an LAO NSI for someone not on its list: the work (dates, tasks, actions,
    who did what) without the person's details or any free text."""
    words = words or command_rules().lao.restricted_words
    history = [dataclasses.replace(h, detail=words if h.detail else "") for h in view.history]
    earlier = [dataclasses.replace(h, detail=words if h.detail else "") for h in view.earlier_history]
    contacts = [{**c, "notes": words if c.get("notes") else ""} for c in view.contacts]
    return dataclasses.replace(
        view,
        name=words,
        history=history,
        earlier_history=earlier,
        contacts=contacts,
        notes=[words] if view.notes else [],
        conditions=[words] if view.conditions else [],
        flags=[words] if view.flags else [],
    )
