"""Who may Resume a waiting step or Run an admin deployment from the Prefect UI, and the name the
record keeps for it (issue 28). The people's API server's middleware (prefect_runs/people_api.py)
asks these functions; the decisions themselves are tasks/domain/staff.py's, the deployments'
owners are config/access.yaml `deployments`.

The store is read here (which task a flow run waits for, which PDUs an NSI is between) and never
written: the answer itself is recorded by the flow run, as from the command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from tasks.config_files import read_yaml
from tasks.domain.staff import ACCESS_FILE, Decision, StaffError, StaffMember, access_rules, may_answer, recorded_words
from tasks.store.models import Nsi, WaitingTask
from tasks.store.unit_of_work import UnitOfWork

_NUMBERED = re.compile(r"^(challenge|dispute)-\d+$")


@dataclass(frozen=True)
class Owned:
    """A transfer's waiting step: the NSI, the step, whose it is and between which PDUs."""

    reference: str
    task: str
    owner_role: str
    transferring_pdu: str
    receiving_pdu: str


class DeploymentRule(BaseModel):
    """Who may Run one deployment from the UI. `owners`: owner roles (as a task's) of the NSI its
    `reference` parameter names, any one of which will do; `roles`: staff roles, in any PDU, for a
    deployment with no NSI yet (raise-transfer). `by`: the parameter that names who did it,
    dotted for one inside another (form.raised_by)."""

    owners: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    by: str


def deployment_rules(path: Path | None = None) -> dict[str, DeploymentRule]:
    """config/access.yaml `deployments`, by deployment name. A deployment not named is ops' only."""
    path = path or ACCESS_FILE
    found = {}
    for name, row in ((read_yaml(path) or {}).get("deployments") or {}).items():
        try:
            found[str(name)] = DeploymentRule.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise StaffError(
                f"{path.name}: deployments.{name}.{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
            ) from None
    unknown = sorted({o for r in found.values() for o in r.owners} - set(access_rules().owners))
    if unknown:
        raise StaffError(f"{path.name}: deployments: owner roles {unknown} are not in owners")
    return found


def owner_of_step(policy: Any, step: str) -> str | None:
    """The owner role of a step the transfer waits at: a challenge's, a dispute's, or its action's."""
    if m := _NUMBERED.match(step):
        return policy.challenge_owner if m.group(1) == "challenge" else policy.dispute_owner
    return next((r.owner for r in policy.actions if r.task == step or (r.step is None and r.code == step)), None)


def waiting_for(flow_run_id: str, url: str | None = None) -> Owned | None:
    """The step the flow run waits for, or None when it is no transfer's waiting step (or is closed)."""
    from tasks.domain.transfer_views import policy_of

    with UnitOfWork(url) as uow:
        session = uow.session
        row = session.execute(
            select(WaitingTask.task, WaitingTask.owner_role, Nsi.reference, Nsi.transferring_pdu_code, Nsi.receiving_pdu_code)
            .join(Nsi, WaitingTask.nsi_id == Nsi.id)
            .where(WaitingTask.flow_run_id == flow_run_id, WaitingTask.status == "open")
        ).first()
        if row is not None:
            return Owned(row.reference, row.task, row.owner_role, row.transferring_pdu_code, row.receiving_pdu_code)
        nsi = session.execute(
            select(Nsi.reference, Nsi.waiting_step, Nsi.transferring_pdu_code, Nsi.receiving_pdu_code).where(
                Nsi.flow_run_id == flow_run_id, Nsi.waiting_step.is_not(None)
            )
        ).first()
    if nsi is None:
        return None
    owner = owner_of_step(policy_of(nsi.reference, url), nsi.waiting_step)
    if owner is None:
        return None
    return Owned(nsi.reference, nsi.waiting_step, owner, nsi.transferring_pdu_code, nsi.receiving_pdu_code)


def pdus_of(reference: str, url: str | None = None) -> tuple[str, str] | None:
    """(transferring, receiving) PDU codes of an NSI, or None when there is no such NSI."""
    with UnitOfWork(url) as uow:
        row = uow.session.execute(
            select(Nsi.transferring_pdu_code, Nsi.receiving_pdu_code).where(Nsi.reference == reference.strip().upper())
        ).first()
    return (row[0], row[1]) if row is not None else None


def _is_ops(person: StaffMember) -> bool:
    return any(r in access_rules().all_powerful for r in person.roles)


# A refused call in a person's words: the UI shows the reason in its error toast, under the
# button they pressed. The call itself follows, for ops reading the logs.
_CALL_WORDS = (
    (re.compile(r"^POST /flow_runs/[^/]+/set_state$"), "cancel a run or change its state"),
    (re.compile(r"^DELETE /flow_runs/"), "delete a run"),
    (re.compile(r"^POST /flow_runs/?$"), "start a run directly"),
    (re.compile(r"^POST /flow_runs/[^/]+/input"), "give a run its input directly"),
    (re.compile(r"^(POST|PATCH|DELETE) /deployments/"), "change a deployment or run it in bulk"),
)


def _in_words(call: str) -> str:
    return next((words for pattern, words in _CALL_WORDS if pattern.match(call)), "make this change to Prefect")


def may_change_engine(person: StaffMember, call: str) -> Decision:
    """Any other change to Prefect (cancelling or re-scheduling a run, creating one directly,
    writing a run's input, editing a deployment, emitting events): ops only. A person acts on a
    transfer through its task's form or a deployment's Run, both checked above; a cancelled or
    moved run would leave a transfer silently stalled."""
    if _is_ops(person):
        return Decision(True, f"{person.name} acted as ops", as_ops=True)
    return Decision(
        False,
        f"Only operations staff may {_in_words(call)}. Answer a task with its Resume form; "
        f"end a transfer by running withdraw-transfer. ({call})",
    )


def may_resume(person: StaffMember, owned: Owned | None) -> Decision:
    """May the person answer this waiting step? A run that is no transfer's waiting step: ops only."""
    if owned is None:
        if _is_ops(person):
            return Decision(True, f"{person.name} acted as ops", as_ops=True)
        return Decision(False, "this run waits for no open task of a transfer: only ops may resume it")
    decision = may_answer(person, owned.owner_role, owned.transferring_pdu, owned.receiving_pdu)
    if not decision.allowed:
        return Decision(False, f"{owned.reference} {owned.task.replace('_', ' ')}: {decision.reason}")
    return decision


def may_run(
    person: StaffMember, deployment: str, parameters: dict[str, Any], rules: dict[str, DeploymentRule] | None = None
) -> Decision:
    """May the person Run this deployment with these parameters (its `reference` names the NSI)?"""
    rules = deployment_rules() if rules is None else rules
    if _is_ops(person):
        return Decision(True, f"{person.name} acted as ops", as_ops=True)
    rule = rules.get(deployment)
    if rule is None:
        return Decision(False, f"only ops may run {deployment} (config/access.yaml deployments)")
    if rule.roles:
        if any(r in rule.roles for r in person.roles):
            return Decision(True, f"{person.name} may run {deployment}")
        return Decision(False, f"{deployment} needs a {' or '.join(r.replace('_', ' ') for r in rule.roles)}")
    reference = str(parameters.get("reference") or "")
    pdus = pdus_of(reference) if reference else None
    if pdus is None:
        return Decision(False, f"{deployment}: reference: no NSI {reference!r}")
    refusals = []
    for owner in rule.owners:
        decision = may_answer(person, owner, *pdus)
        if decision.allowed:
            return decision
        refusals.append(decision.reason)
    return Decision(False, f"{reference} {deployment}: " + "; or ".join(refusals))


def actor_words(person: StaffMember, typed: str | None, decision: Decision) -> str:
    """What the record keeps as who did it: the signed-in person, "(ops)" when ops acted, and the
    typed name as "on behalf of" only where config/access.yaml `on_behalf_of` lets them."""
    return recorded_words(person, typed, decision.as_ops)


def get_dotted(values: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(values, dict):
            return None
        values = values.get(part)  # type: ignore[assignment]
    return values


def set_dotted(values: dict[str, Any], dotted: str, value: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        child = values.get(part)
        if not isinstance(child, dict):
            return  # nothing typed there: the flow's own validation says what is missing
        values = child
    values[last] = value
