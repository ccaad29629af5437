"""The youth justice service's own waiting steps (004_b0433574f6005d61.txt): the allocation by staff
id (2.2, 4.1, 5.1), the review of the information received (12.4) and the co-allocation a
re-assessment needs (5.1). Forms and pure rules; the step registry (tasks/domain/steps.py) lists
them and the store (tasks/domain/youth.py) applies what they do to the NSI.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any, Literal

from pydantic import Field

from tasks.domain.decisions import RuleBroken
from tasks.domain.policy import AllocationRules, Policy
from tasks.domain.step_answer import StepAnswer
from tasks.domain.transfer_in import TransferInDocuments

INFORMATION_REVIEW, CO_ALLOCATION = "information_review", "co_allocation"

# Appendix A's documents, by the checklist's field names: what a stay says is still missing.
MissingDocument = Enum("MissingDocument", {name: name for name in TransferInDocuments.model_fields}, type=str)  # type: ignore[misc]


class YouthAllocation(StepAnswer):
    """Receiving team manager: allocate the case to a case manager, by their staff id. Their band
    and gender come from the staff list (config/staff): 4.1 High or Very High RoSH or SaW goes to
    a Band B Senior Case Manager, or is co-allocated to one (5.1); 2.2 a girl or young woman goes
    to a case manager identifying as female. Departing from either, or allocating to someone over
    the caseload limit (2.1), needs a recorded rationale; nobody absent is allocated (2.1)."""

    case_manager: str = Field(..., min_length=1, max_length=20, description="The case manager chosen: their staff id")
    team_code: str = Field(..., min_length=1, max_length=20, description="Receiving team code (nDelius), e.g. N07NCL")
    co_allocated_to: str | None = Field(
        None, max_length=20, description="Co-allocated Band B worker or Advanced Practitioner (5.1): their staff id"
    )
    rationale: str = Field(
        "", max_length=4000,
        description="Why, where the allocation departs from 4.1 (band), 2.2 (gender) or 2.1 (caseload): the recorded rationale",
    )  # fmt: skip
    contact_frequency_weeks: int | None = Field(
        None, ge=1, le=52, description="Accepted on a caretaking basis (12.5): weeks between the host's records of contacts (12.8)"
    )
    secondary_co_worker: str | None = Field(
        None, max_length=20, description="2.2: a male co-worker as a role model for a girl or young woman: their staff id"
    )
    secondary_reason: str = Field(
        "", max_length=4000, description="2.2: agreed in advance with the child: the child's wish, recorded"
    )


class InformationReview(StepAnswer):
    """Receiving Team Manager or Advanced Practitioner (12.4): is there enough information, of
    sufficient quality, to decide the transfer arrangements? Sufficient: the home service is then
    contacted within 2 working days to confirm supervision requirements (Appendix A). Stay: name
    the documents still missing; the documents task reopens and the receiving deadlines stand
    still until they arrive. Reject: give the reasons. A stay or a rejection goes to the requesting
    service at once with the reasons, so it can address them and re-request."""

    outcome: Literal["sufficient", "stay", "reject"]
    missing: list[MissingDocument] = Field(  # type: ignore[valid-type]
        default_factory=list, description="Stay: the Appendix A documents still missing"
    )
    reasons: str = Field(
        "", max_length=4000, description="Stay or reject: what is missing or not of sufficient quality, for the requesting service"
    )


class CoAllocation(StepAnswer):
    """Receiving team manager (5.1): the case was re-assessed as High or Very High RoSH or SaW and
    is held by a worker who is not Band B or above. Co-allocate it to a Band B worker or Advanced
    Practitioner, who acts as practice supervisor; their agreement follows within 5 days (5.3)."""

    co_allocated_to: str = Field(..., min_length=1, max_length=20, description="The Band B worker or Advanced Practitioner: staff id")


FORMS: dict[str, tuple[type[StepAnswer], str]] = {
    INFORMATION_REVIEW: (InformationReview, "information review (12.4)"),
    CO_ALLOCATION: (CoAllocation, "co-allocation (5.1)"),
}


def check_secondary(form: dict[str, Any], answer: dict[str, Any], rules: AllocationRules) -> None:
    """2.2: a male co-worker beside a female case manager, for a girl or young woman, agreed with the child."""
    worker = str(answer.get("secondary_co_worker") or "").strip()
    if not worker:
        return
    member = rules.member(worker)
    if member is None:
        raise RuleBroken("secondary_co_worker", f"{worker!r} is not on the staff list (config/staff)")
    if member.gender != "male":
        raise RuleBroken("secondary_co_worker", f"2.2: the secondary co-worker is a male role model; {member.id} identifies as {member.gender}")
    if form.get("gender_identity") not in rules.female_identities:
        raise RuleBroken("secondary_co_worker", "2.2: a male role model as secondary co-worker is for a girl or young woman")
    if member.id.upper() == str(answer.get("case_manager", "")).strip().upper():
        raise RuleBroken("secondary_co_worker", "the secondary co-worker is someone other than the case manager")
    if not str(answer.get("secondary_reason") or "").strip():
        raise RuleBroken("secondary_reason", "2.2: agreed in advance with the child: record the child's wish")


def check_absence(answer: dict[str, Any], rules: AllocationRules, on: dt.date) -> None:
    """2.1: cases are not allocated to those absent from work."""
    for field in ("case_manager", "co_allocated_to", "secondary_co_worker"):
        member = rules.member(str(answer.get(field) or ""))
        if member is not None and (away := member.absent_on(on)) is not None:
            raise RuleBroken(
                field, f"2.1: cases are not allocated to those absent from work; {member.id} is absent {away.words()}"
            )


def check_capacity(answer: dict[str, Any], rules: AllocationRules, caseload: int) -> None:
    """2.1: regard to capacity: a case manager already holding the configured caseload needs a rationale."""
    if rules.max_caseload is None or caseload < rules.max_caseload or str(answer.get("rationale") or "").strip():
        return
    raise RuleBroken(
        "case_manager",
        f"2.1: {str(answer['case_manager']).strip().upper()} already holds {caseload} open youth cases (the limit is "
        f"{rules.max_caseload}): record the rationale to allocate to them",
    )


def check(task: str, answer: dict[str, Any], form: dict[str, Any], policy: Policy, today: dt.date) -> None:
    """The rules of a youth step's answer against its NSI's form."""
    if task == INFORMATION_REVIEW:
        if not policy.information_refusals:
            raise RuleBroken("step", "12.4: this policy has no review of the information received")
        outcome, reasons = answer.get("outcome"), str(answer.get("reasons") or "").strip()
        if outcome == "stay" and not answer.get("missing"):
            raise RuleBroken("missing", "12.4: a stay names the documents still missing, so the requesting service can send them")
        if outcome in ("stay", "reject") and not reasons:
            raise RuleBroken("reasons", "12.4: the reasons are clearly recorded and communicated to the requesting service")
        if outcome == "sufficient" and answer.get("missing"):
            raise RuleBroken("missing", "name missing documents only when staying the request")
    elif task == CO_ALLOCATION and policy.allocation is not None:
        rules = policy.allocation
        member = rules.member(str(answer.get("co_allocated_to", "")))
        if member is None:
            raise RuleBroken("co_allocated_to", f"{answer.get('co_allocated_to')!r} is not on the staff list (config/staff)")
        if member.band not in rules.senior_bands:
            raise RuleBroken("co_allocated_to", f"5.1: co-allocation is to a Band {'/'.join(rules.senior_bands)} worker; {member.id} is Band {member.band}")
        check_absence(answer, rules, today)


def effect(task: str, answer: dict[str, Any], transferring: str) -> tuple[str, str | None, str | None]:
    """(history words, the status it closes the NSI with, the event of an answer that leaves the step waiting)."""
    if task == INFORMATION_REVIEW:
        reasons = str(answer.get("reasons") or "").strip()
        if answer["outcome"] == "stay":
            missing = ", ".join(str(getattr(m, "value", m)).replace("_", " ") for m in answer.get("missing", []))
            return (f"request stayed (12.4): missing {missing}: {reasons}. Sent to {transferring} to send what is missing", None, "stayed")
        if answer["outcome"] == "reject":
            return (f"request rejected (12.4): {reasons}. Sent to {transferring} to address and re-request", "refused", None)
        return ("enough information, of sufficient quality, to decide the transfer arrangements (12.4)", None, None)
    co = str(answer["co_allocated_to"]).strip().upper()
    return (f"co-allocated to {co} as practice supervisor after the re-assessment (5.1)", None, None)


def allocation_words(answer: dict[str, Any]) -> str:
    """The history's words for a secondary co-worker (2.2)."""
    if worker := str(answer.get("secondary_co_worker") or "").strip():
        return f"; secondary co-worker {worker.upper()} as a male role model (2.2), agreed with the child: {answer.get('secondary_reason', '').strip()}"
    return ""
