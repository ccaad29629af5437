"""The typed forms the waiting steps ask for: what the Prefect UI's Resume form shows and
what `casetransfer record NSI STEP --field value` takes. One form per step."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Literal

from prefect.input import RunInput
from pydantic import Field, ValidationError

from tasks.decisions import RefusalReason, RuleBroken, check_decision
from tasks.form import FormError
from tasks.policy import Policy, get_policy
from tasks.settings import get_settings
from tasks.temporary_moves import check_caretaking_agreement


class StepForm(RunInput):
    recorded_by: str = Field(..., min_length=1, max_length=200, description="Your name: who is answering this step")


class Allocation(StepForm):
    """Receiving SPO/SPOC: allocate the case to a practitioner."""

    practitioner: str = Field(..., min_length=1, max_length=200, description="Receiving practitioner")
    team_code: str = Field(..., min_length=1, max_length=20, description="Receiving team code (nDelius), e.g. N07NCL")


class AssessmentMethod(str, Enum):
    home_visit = "home_visit"
    desktop = "desktop"


class AddressAssessment(StepForm):
    """Receiving practitioner: the address assessment."""

    method: AssessmentMethod = Field(..., description="Home visit or desktop")
    suitable: bool = Field(..., description="Is the proposed address suitable?")
    notes: str = Field("", max_length=4000)


class PoliceChecks(StepForm):
    """Case admin: police checks returned."""

    returned_on: dt.date = Field(..., description="Date the checks came back")
    concerns: bool = Field(False, description="Did the checks raise concerns?")
    notes: str = Field("", max_length=4000)


class SafeguardingChecks(StepForm):
    """Case admin: safeguarding and child protection checks returned."""

    returned_on: dt.date
    concerns: bool = False
    notes: str = Field("", max_length=4000)


class Handover(StepForm):
    """Transferring practitioner: the three-way handover (transferring PP, receiving PP, PoP)."""

    held_on: dt.date = Field(..., description="Date the handover meeting was held (or was planned for)")
    held: bool = Field(True, description="Did the meeting take place?")
    pop_attended: bool = Field(True, description="Did the person on probation attend?")
    notes: str = Field("", max_length=4000)


class Decision(StepForm):
    """Receiving SPO: accept, or refuse with reasons and evidence. The presumption is to accept.
    Where the policy allows it, stay or refuse a request for missing information or poor-quality
    assessments, saying what is missing."""

    outcome: Literal["accept", "refuse", "stay"]
    reasons: list[RefusalReason] = Field(default_factory=list, description="Refusal or stay reasons (not for accept)")
    evidence: str = Field(
        "", max_length=4000, description="Evidence that risk would increase and could not be managed; or what is missing"
    )


class Completion(StepForm):
    """Receiving SPO: management responsibility passes to a named responsible officer."""

    responsible_officer: str = Field(..., min_length=1, max_length=200)
    completed_on: dt.date | None = Field(None, description="Defaults to today")


class SupportAllocation(StepForm):
    """Receiving SPO/SPOC: name the support contact for the temporary move. The transferring
    practitioner stays responsible for the case; the receiving team supports with appointments.
    Caretaking: record which side does what, and a review date within the caretaking limit."""

    support_contact: str = Field(..., min_length=1, max_length=200, description="Receiving practitioner who supports")
    team_code: str = Field(..., min_length=1, max_length=20, description="Receiving team code (nDelius), e.g. N55SS1")
    caretaking_from: dt.date | None = Field(None, description="Caretaking agreement: the day the receiving side takes it on")
    receiving_responsibilities: str = Field("", max_length=4000, description="Caretaking agreement: what the receiving side does")
    home_responsibilities: str = Field("", max_length=4000, description="Caretaking agreement: what the home side keeps")
    review_date: dt.date | None = Field(None, description="Caretaking agreement: review, within the caretaking limit")


class MoveOutcome(StepForm):
    """Transferring practitioner: how the temporary move ended. Returned: the case is reviewed.
    Converted: it becomes a Case Transfer (full transfer). Ended: closed with no further move."""

    outcome: Literal["returned", "converted", "ended"]
    on: dt.date | None = Field(None, description="Defaults to today")
    notes: str = Field("", max_length=4000)


CASE_TRANSFER_STEPS: dict[str, type[StepForm]] = {
    "allocation": Allocation,
    "address_assessment": AddressAssessment,
    "police_checks": PoliceChecks,
    "safeguarding_checks": SafeguardingChecks,
    "handover": Handover,
    "decision": Decision,
    "completion": Completion,
}

TEMPORARY_MOVE_STEPS: dict[str, type[StepForm]] = {
    "support_allocation": SupportAllocation,
    "outcome": MoveOutcome,
}

STEP_FORMS: dict[str, type[StepForm]] = {**CASE_TRANSFER_STEPS, **TEMPORARY_MOVE_STEPS}


def validate_step(step: str, data: dict, policy: Policy | None = None) -> StepForm:
    """Validate an answer as the flow will; FormError names each bad field and the rule.
    `policy` is the NSI's (its profile's rules); the process's own when not given."""
    form_cls = STEP_FORMS.get(step)
    if form_cls is None:
        raise FormError([("step", f"unknown step {step!r}; steps: {', '.join(STEP_FORMS)}")])
    try:
        answer = form_cls.model_validate(data)
    except ValidationError as exc:
        raise FormError.from_validation_error(exc) from None
    policy = policy or get_policy()
    try:
        if isinstance(answer, Decision):
            check_decision(answer.outcome, answer.reasons, answer.evidence, policy.information_refusals)
        elif isinstance(answer, SupportAllocation):
            check_caretaking_agreement(policy, answer.model_dump(), get_settings().current_date())
    except RuleBroken as exc:
        raise FormError([(exc.field, str(exc).removeprefix(f"{exc.field}: "))]) from None
    return answer
