"""The step registry: for every waiting step or task, its fields, its owner, its done date and the
rules its answer must keep. Prefect-free: the flows wrap these forms in RunInput (flows/steps.py),
the CLI validates with them before sending, the store (tasks/domain/transfers.py) applies their effects,
and the seeder builds its answers from them.

A task of the concurrent shape is a step (allocation, police checks...), an action of the Action
List that has no step of its own (documents, VLO liaison...: the generic `ActionDone`), a
challenge about risk (`challenge-N`) or a dispute of a refusal (`dispute-N`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Literal

from pydantic import Field, ValidationError

from tasks.domain import action_forms, youth_steps
from tasks.domain.appointment_forms import ACTION_FORMS
from tasks.domain.decisions import RefusalReason, RuleBroken, check_decision
from tasks.domain.form import FormError
from tasks.domain.policy import Policy
from tasks.domain.profile_rules import (
    accepted_as_caretaking,
    allocation_notes,
    check_allocation,
    check_contact_frequency,
    check_home_visit,
    check_staff_ids,
    decision_detail,
    not_final,
)
from tasks.domain.step_answer import StepAnswer
from tasks.domain.temporary_moves import (
    CONVERTING,
    OUTCOMES,
    SUPPORTING,
    agreement_detail,
    check_caretaking_agreement,
    conversion_form,
)
from tasks.places.estate import load_estate
from tasks.places.placement import Placement, check_placement

YouthAllocation = youth_steps.YouthAllocation


class Allocation(StepAnswer):
    """Receiving SPO/SPOC: allocate the case to a practitioner."""

    practitioner: str = Field(..., min_length=1, max_length=200, description="Receiving practitioner")
    team_code: str = Field(..., min_length=1, max_length=20, description="Receiving team code (nDelius), e.g. N07NCL")


class AssessmentMethod(str, Enum):
    home_visit = "home_visit"
    desktop = "desktop"


class AddressAssessment(StepAnswer):
    """Receiving practitioner: the address assessment."""

    method: AssessmentMethod = Field(..., description="Home visit or desktop")
    suitable: bool = Field(..., description="Is the proposed address suitable?")
    notes: str = Field("", max_length=4000)


class PoliceChecks(StepAnswer):
    """Case admin: police checks returned. The return date is the checks' done date."""

    returned_on: dt.date | None = Field(None, description="Date the checks came back (the done date; or give done_on)")
    concerns: bool = Field(False, description="Did the checks raise concerns?")
    notes: str = Field("", max_length=4000)


class SafeguardingChecks(StepAnswer):
    """Case admin: safeguarding and child protection checks returned."""

    returned_on: dt.date | None = Field(None, description="Date the checks came back (the done date; or give done_on)")
    concerns: bool = False
    notes: str = Field("", max_length=4000)


class Handover(StepAnswer):
    """Transferring practitioner: the three-way handover (transferring PP, receiving PP, PoP)."""

    held_on: dt.date | None = Field(None, description="Date the meeting was held (or was planned for); or give done_on")
    held: bool = Field(True, description="Did the meeting take place?")
    pop_attended: bool = Field(True, description="Did the person on probation attend?")
    notes: str = Field("", max_length=4000)


class Decision(StepAnswer):
    """Receiving SPO: accept, or refuse with reasons and evidence. The presumption is to accept.
    Where the policy allows it, stay or refuse a request for missing information or poor-quality
    assessments, saying what is missing."""

    outcome: Literal["accept", "refuse", "stay"]
    reasons: list[RefusalReason] = Field(default_factory=list, description="Refusal or stay reasons (not for accept)")
    evidence: str = Field(
        "", max_length=4000, description="Evidence that risk would increase and could not be managed; or what is missing"
    )


class Completion(StepAnswer):
    """Receiving SPO: management responsibility passes to a named responsible officer."""

    responsible_officer: str = Field(..., min_length=1, max_length=200)
    completed_on: dt.date | None = Field(None, description="The day responsibility passed (the done date; or give done_on)")


class SupportAllocation(StepAnswer):
    """Receiving SPO/SPOC: name the support contact for the temporary move. The transferring
    practitioner stays responsible for the case; the receiving team supports with appointments.
    Caretaking: record which side does what, and a review date within the caretaking limit."""

    support_contact: str = Field(..., min_length=1, max_length=200, description="Receiving practitioner who supports")
    team_code: str = Field(..., min_length=1, max_length=20, description="Receiving team code (nDelius), e.g. N55SS1")
    caretaking_from: dt.date | None = Field(None, description="Caretaking agreement: the day the receiving side takes it on")
    receiving_responsibilities: str = Field("", max_length=4000, description="Caretaking agreement: what the receiving side does")
    home_responsibilities: str = Field("", max_length=4000, description="Caretaking agreement: what the home side keeps")
    review_date: dt.date | None = Field(None, description="Caretaking agreement: review, within the caretaking limit")
    contact_frequency_weeks: int | None = Field(
        None, ge=1, le=52, description="Caretaking agreement: weeks between the host's records of contacts (youth justice 12.8)"
    )


class MoveOutcome(StepAnswer):
    """Transferring practitioner: how the temporary move ended. Returned: the case is reviewed.
    Converted: it becomes a Case Transfer (full transfer). Ended: closed with no further move."""

    outcome: Literal["returned", "converted", "ended"]
    on: dt.date | None = Field(None, description="The day it ended (the done date; or give done_on)")
    notes: str = Field("", max_length=4000)


class ActionDone(StepAnswer):
    """The action is done: say when, and anything the next person should know."""

    notes: str = Field("", max_length=4000)


class ChallengeOutcome(StepAnswer):
    """Receiving SPO: settle the challenge about risk. Uphold it (a refusal: only evidence that risk
    would increase and could not be managed at the new address is enough) or withdraw it (the
    transfer carries on)."""

    outcome: Literal["uphold", "withdraw"]
    reasons: list[RefusalReason] = Field(default_factory=list, description="Refusal reasons (uphold only)")
    evidence: str = Field("", max_length=4000, description="Evidence that risk would increase and could not be managed")
    notes: str = Field("", max_length=4000)


class DisputeOutcome(StepAnswer):
    """Head of the receiving PDU: settle the transferring SPO's dispute of a refusal. Confirm the
    refusal, or overturn it (the transfer proceeds and its tasks reopen as they stood)."""

    outcome: Literal["confirm", "overturn"]
    notes: str = Field(..., min_length=1, max_length=4000, description="Why: the record of the decision")


@dataclass(frozen=True)
class StepSpec:
    """One waiting step: its form, its words, and which field (if any) dates the work."""

    name: str
    form: type[StepAnswer]
    title: str
    date_field: str | None = None  # a field of the form that, when given, is the done date
    kind: Literal["step", "action", "challenge", "dispute"] = "step"

    @property
    def run_slug(self) -> str:
        """For run names and suspend keys: police_checks -> police-checks."""
        return self.name.replace("_", "-")


STEPS: dict[str, StepSpec] = {
    s.name: s
    for s in (
        StepSpec("allocation", Allocation, "allocation"),
        StepSpec("address_assessment", AddressAssessment, "address assessment"),
        StepSpec("police_checks", PoliceChecks, "police checks", "returned_on"),
        StepSpec("safeguarding_checks", SafeguardingChecks, "safeguarding checks", "returned_on"),
        StepSpec("handover", Handover, "three-way handover", "held_on"),
        StepSpec("decision", Decision, "decision"),
        StepSpec("completion", Completion, "completion", "completed_on"),
        StepSpec("support_allocation", SupportAllocation, "support allocation"),
        StepSpec("outcome", MoveOutcome, "outcome", "on"),
        *(StepSpec(name, form, title) for name, (form, title) in youth_steps.FORMS.items()),
    )
}

# Where the policy has allocation rules (youth justice), allocation asks for a case manager's staff id.
YOUTH_ALLOCATION = StepSpec("allocation", YouthAllocation, "allocation")

# The sequential shape (1): a Case Transfer's steps in the order they are asked.
SEQUENTIAL_STEPS = [
    "allocation",
    "address_assessment",
    "police_checks",
    "safeguarding_checks",
    "handover",
    "decision",
    "completion",
]
TEMPORARY_MOVE_STEPS = ["support_allocation", "outcome"]

_NUMBERED = re.compile(r"^(challenge|dispute)-(\d+)$")


def spec_for(task: str, policy: Policy | None = None) -> StepSpec:
    """The spec of a step, a numbered challenge or dispute, or (with the policy) an action's task.
    FormError names the field when there is none."""
    if task == "allocation" and policy is not None and policy.allocation is not None:
        return YOUTH_ALLOCATION
    if task in STEPS:
        return STEPS[task]
    if m := _NUMBERED.match(task):
        kind = m.group(1)
        if kind == "challenge":
            return StepSpec(task, ChallengeOutcome, f"challenge {m.group(2)} about risk", kind="challenge")
        return StepSpec(task, DisputeOutcome, f"dispute {m.group(2)} of the refusal", kind="dispute")
    if policy is not None:
        rule = next((r for r in policy.actions if r.code == task and r.step is None), None)
        if rule is not None:
            # "Receive the documents" reads "receive the documents" mid-sentence; "ACO..." stays "ACO...".
            title = rule.title if rule.title[:2].isupper() else rule.title[0].lower() + rule.title[1:]
            if task in action_forms.ACTION_FORMS:
                return StepSpec(task, action_forms.ACTION_FORMS[task], title, kind="action")
            form, date_field = ACTION_FORMS.get(task, (ActionDone, None))
            return StepSpec(task, form, title, date_field, kind="action")
    known = ", ".join(STEPS)
    raise FormError([("step", f"unknown step {task!r}; steps: {known}, an action code, challenge-N or dispute-N")])


def wait_key(task: str, round_: int | None = None) -> str:
    """The suspend key of a step's waits, before `-<attempt>`: `police-checks` on the sequential
    shape (the transfer's run waits there), `police-checks-r1` for a concurrent task's own run.
    The flows suspend with it and the CLI checks a run waits for the step it answers by it."""
    slug = task.replace("_", "-")
    return slug if round_ is None else f"{slug}-r{round_}"


def owner_of(task: str, policy: Policy) -> str:
    """Who a task waits for (config): its action's owner, or the challenge's and dispute's."""
    spec = spec_for(task, policy)
    if spec.kind == "challenge":
        return policy.challenge_owner
    if spec.kind == "dispute":
        return policy.dispute_owner
    rule = next((r for r in policy.actions if r.task == task), None)
    return rule.owner if rule is not None else "receiving_spo"


def done_date(task: str, answer: dict[str, Any], today: dt.date, policy: Policy | None = None) -> dt.date:
    """The day the work was done: the step's own date field, else done_on, else today."""
    spec = spec_for(task, policy)
    for key in (spec.date_field, "done_on"):
        if key and answer.get(key):
            value = answer[key]
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    return today


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in e["loc"]) or "answer", e["msg"].removeprefix("Value error, ")) for e in exc.errors()]


def _parsed_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)) if value not in (None, "") else None
    except ValueError:
        return None  # the form's own validation names it


def date_problems(spec: StepSpec, data: dict[str, Any], today: dt.date, raised_on: dt.date | None) -> list[tuple[str, str]]:
    """The done date may not be in the future, nor before the NSI was raised. A handover that did
    not take place is dated by its plan, which may be ahead."""
    problems = []
    planned = spec.name == "handover" and str(data.get("held", True)).lower() in ("false", "0", "no")
    given = {k: _parsed_date(data.get(k)) for k in (spec.date_field, "done_on") if k and data.get(k) not in (None, "")}
    if len({v for v in given.values() if v}) > 1:
        a, b = list(given)
        problems.append((a, f"{given[a]} differs from {b} {given[b]}: give the day the work was done once"))
    for key, day in given.items():
        if day is None:
            continue
        if day > today and not planned:
            problems.append((key, f"{day} is in the future: record work on or after the day it was done"))
        if raised_on is not None and day < raised_on:
            problems.append((key, f"{day} is before the NSI was raised ({raised_on})"))
    return problems


def validate_answer(
    task: str,
    data: dict[str, Any],
    policy: Policy,
    today: dt.date,
    raised_on: dt.date | None = None,
) -> StepAnswer:
    """Validate an answer as the flow will: FormError lists every bad field with its rule, all at once."""
    spec = spec_for(task, policy)
    problems: list[tuple[str, str]] = []
    answer: StepAnswer | None = None
    try:
        answer = spec.form.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems(exc))
    named = {field for field, _ in problems}
    problems.extend(p for p in date_problems(spec, data, today, raised_on) if p[0] not in named)
    if answer is not None:
        try:
            check_form_rules(spec, answer, policy, today)
        except RuleBroken as exc:
            problems.append((exc.field, str(exc).removeprefix(f"{exc.field}: ")))
    if problems or answer is None:
        raise FormError(problems)
    return answer


def check_form_rules(spec: StepSpec, answer: StepAnswer, policy: Policy, today: dt.date) -> None:
    """The policy's rules for an answer that need no store (the refusal rules, the caretaking agreement)."""
    if isinstance(answer, YouthAllocation) and policy.allocation is not None:
        check_staff_ids(answer.model_dump(), policy.allocation)
    elif isinstance(answer, AddressAssessment):
        check_home_visit(policy, answer.model_dump(mode="json"))
    elif isinstance(answer, SupportAllocation):
        check_caretaking_agreement(policy, answer.model_dump(), today)
    elif isinstance(answer, Decision):
        check_decision(answer.outcome, answer.reasons, answer.evidence, policy.information_refusals)
    elif isinstance(answer, ChallengeOutcome):
        if answer.outcome == "uphold":
            check_decision("refuse", answer.reasons, answer.evidence, policy.information_refusals)
        elif answer.reasons:
            raise RuleBroken("reasons", "give refusal reasons only when the challenge is upheld")


def field_help(task: str, policy: Policy | None = None) -> list[tuple[str, str, bool]]:
    """(--field, description, required) for a task's form: what `record REF STEP --help` lists."""
    spec = spec_for(task, policy)
    rows = []
    for name, info in spec.form.model_fields.items():
        annotation = getattr(info.annotation, "__name__", str(info.annotation)).replace("typing.", "")
        desc = info.description or ""
        rows.append((f"--{name.replace('_', '-')}", f"{annotation}. {desc}".strip(), info.is_required()))
    return rows


# ---- What an answer does: its checks against the NSI and its effects, step by step ----

# The concurrent shape's statuses while open: waiting for allocation, tasks under way, a challenge
# about risk waiting for the receiving SPO, a refusal disputed and waiting for the head of PDU.
AWAITING_ALLOCATION, IN_PROGRESS, CHALLENGED, DISPUTED = "awaiting_allocation", "in_progress", "challenged", "disputed"


@dataclass(frozen=True)
class Situation:
    """What a step's checks and effects read from its NSI. The store (tasks/domain/transfers.py) fills it
    in; the seeder builds one for its synthetic NSIs, so both word the history alike."""

    reference: str
    status: str
    concurrent: bool
    receiving_pdu_code: str
    transferring_team_code: str
    transferring_pdu_code: str
    transferring_practitioner: str
    form: dict[str, Any] | None = None  # the transfer form as stored (a conversion re-checks it)
    distance_km: float | None = None
    open_challenge: int | None = None  # the open challenge's number
    disputed: int | None = None  # the number of the challenge whose refusal is under dispute
    handover_held_on: dt.date | None = None  # the valid three-way meeting's date, once recorded

    @property
    def transferring(self) -> str:
        """Who a stayed or refused request goes back to."""
        return f"{self.transferring_practitioner} ({self.transferring_team_code})"


@dataclass(frozen=True)
class Effect:
    """What recording an answer does to its NSI. The store applies it in the answer's transaction."""

    detail: str  # the history line
    on: dt.date  # the day the work was done (completion may date from the three-way meeting)
    answer: dict[str, Any]  # the answer as stored
    status: str | None = None  # the NSI's status after, when it stays open
    closes: str | None = None  # close the NSI with this status on `on`
    finishes: tuple[str, ...] = ()  # Action List codes done by it
    sets: dict[str, Any] = field(default_factory=dict)  # NSI fields the answer fills in
    plans: Literal["allocation", "returned"] | None = None  # Action List entries that start from `on`
    # The recurring caretaking checks (12.8) start one agreed period after this day: a caretaking
    # agreement's start, or a transfer in's allocation (accepted on a caretaking basis, 12.5).
    caretaking_from: dt.date | None = None
    challenge: Literal["upheld", "withdrawn"] | None = None  # settles the open challenge
    dispute: Literal["overturned", "confirmed"] | None = None  # settles the dispute
    # An answer the policy records without completing its step (a handover that did not transfer
    # the case, a stayed decision): the history's event; the step stays waiting.
    pending: str | None = None


def check_situation(task: str, answer: dict[str, Any], situation: Situation, policy: Policy, today: dt.date) -> None:
    """The step's rules that need its NSI (the receiving PDU, the meeting, the open challenge).
    RuleBroken names the field. The shape's rules (gates, completion waiting) are the store's."""
    spec = spec_for(task, policy)
    if task in ("allocation", "support_allocation"):
        team = load_estate().teams.get(str(answer["team_code"]).strip().upper())
        if team is None:
            raise RuleBroken("team_code", f"{answer['team_code']!r} is not a team in the estate")
        if team.pdu_code != situation.receiving_pdu_code:
            raise RuleBroken("team_code", f"{team.code} ({team.name}) is not in the receiving PDU {situation.receiving_pdu_code}")
        if team.code == situation.transferring_team_code and situation.receiving_pdu_code == situation.transferring_pdu_code:
            raise RuleBroken("team_code", f"{team.code} is the transferring team; an internal transfer moves to another team")
        if task == "support_allocation":
            check_caretaking_agreement(policy, answer, today)
            check_contact_frequency(policy, answer, situation.form or {})
        elif policy.allocation is not None:
            check_allocation(situation.form or {}, answer, policy.allocation)
            youth_steps.check_secondary(situation.form or {}, answer, policy.allocation)
            youth_steps.check_absence(answer, policy.allocation, done_date(task, answer, today, policy))
        if task == "allocation" and accepted_as_caretaking(policy, situation.concurrent):
            check_contact_frequency(policy, answer, situation.form or {})
    elif task == "address_assessment":
        check_home_visit(policy, answer)
    elif task in youth_steps.FORMS:
        youth_steps.check(task, answer, situation.form or {}, policy, done_date(task, answer, today, policy))
    elif task == "decision":
        reasons = [RefusalReason(r) for r in answer.get("reasons", [])]
        check_decision(answer["outcome"], reasons, answer.get("evidence", ""), policy.information_refusals)
    elif task == "completion" and policy.handover_requires_attendance and situation.handover_held_on is None:
        raise RuleBroken(
            "step",
            f"the case has not transferred: no three-way meeting with the {policy.person} is recorded, so the "
            "transferring team keeps case management responsibility",
        )
    elif task == "outcome" and answer.get("outcome") == "converted":
        on = done_date(task, answer, today, policy)
        try:
            form = conversion_form(situation.form or {}, on, str(answer.get("recorded_by")), situation.receiving_pdu_code)
            check_placement(form, Placement(situation.receiving_pdu_code, situation.distance_km), policy)
        except FormError as exc:
            raise RuleBroken("outcome", f"cannot convert to a Case Transfer: {exc}") from None
    elif spec.kind == "challenge":
        if situation.open_challenge is None or f"challenge-{situation.open_challenge}" != task:
            raise RuleBroken("step", f"{situation.reference} has no open {spec.title}")
        check_form_rules(spec, ChallengeOutcome.model_validate(answer), policy, today)
    elif spec.kind == "dispute" and (situation.disputed is None or f"dispute-{situation.disputed}" != task):
        raise RuleBroken("step", f"{situation.reference} has no open {spec.title}")


def effect_of(task: str, answer: dict[str, Any], situation: Situation, policy: Policy, today: dt.date) -> Effect:
    """What recording this answer does: the history's words, the status, the actions it finishes,
    the fields it fills in. Pure: the same answer and situation give the same effect."""
    spec = spec_for(task, policy)
    on = done_date(task, answer, today, policy)
    finishes = tuple(r.code for r in policy.rules_for_step(task, 2 if situation.concurrent else 1))
    base = Effect(
        detail=f"{spec.title} recorded",
        on=on,
        answer=answer,
        status="completed" if situation.status == "completed" else IN_PROGRESS if situation.concurrent else f"{task}_recorded",
        finishes=finishes + ((task,) if spec.kind == "action" else ()),
    )
    if (unfinished := not_final(policy, task, answer, situation.transferring)) is not None:
        return replace(base, detail=unfinished.detail, pending=unfinished.event, finishes=())
    if task in ("allocation", "support_allocation"):
        team = load_estate().teams[str(answer["team_code"]).strip().upper()]
        sets = {"receiving_team_code": team.code, "allocated_on": on}
        if task == "allocation" and policy.allocation is not None:
            sets["receiving_practitioner"] = str(answer["case_manager"]).strip().upper()
            detail = f"allocated to case manager {sets['receiving_practitioner']} ({team.name})" + allocation_notes(answer)
            detail += youth_steps.allocation_words(answer)
            if accepted_as_caretaking(policy, situation.concurrent):
                detail += (
                    f"; accepted on a caretaking basis until the transfer completes, the host's record of contacts every "
                    f"{answer['contact_frequency_weeks']} weeks. {policy.transfer_in_caretaking_message.strip()}"
                )
                return replace(base, detail=detail, sets=sets, plans="allocation", caretaking_from=on)
            return replace(base, detail=detail, sets=sets, plans="allocation")
        if task == "allocation":
            sets["receiving_practitioner"] = answer["practitioner"]
            return replace(base, detail=f"allocated to {answer['practitioner']} ({team.name})", sets=sets, plans="allocation")
        sets["receiving_practitioner"] = answer["support_contact"]
        words = f"support contact {answer['support_contact']} ({team.name}); {situation.transferring_practitioner} stays the responsible practitioner"
        detail = "; ".join(part for part in (words, agreement_detail(answer)) if part)
        start = _parsed_date(answer.get("caretaking_from")) or on
        return replace(base, detail=detail, status=SUPPORTING, sets=sets, caretaking_from=start if answer.get("contact_frequency_weeks") else None)
    if task in youth_steps.FORMS:
        detail, closes, pending = youth_steps.effect(task, answer, situation.transferring)
        if pending is not None:
            return replace(base, detail=detail, pending=pending, finishes=())
        return replace(base, detail=detail, closes=closes)
    if task == "handover" and policy.handover_is_transfer_date:
        return replace(base, detail=f"three-way meeting held on {answer['held_on']}: the formal transfer date")
    if task == "decision":
        closes = "refused" if answer["outcome"] == "refuse" else None
        return replace(base, detail=decision_detail(answer, situation.transferring), closes=closes)
    if task == "completion":
        given = answer.get("completed_on") or answer.get("done_on")
        # Where the handover is the formal transfer date, completion dates from it.
        if not given and policy.handover_is_transfer_date and situation.handover_held_on is not None:
            on = situation.handover_held_on
        detail = f"completed: responsible officer {answer['responsible_officer']}"
        if accepted_as_caretaking(policy, situation.concurrent):
            detail += "; caretaking ends: responsibility passes in full (12.5)"
        return replace(
            base, detail=detail, on=on, closes="completed", sets={"responsible_officer": answer["responsible_officer"]}
        )
    if task == "outcome":
        outcome = answer["outcome"]
        stored = {**answer, "on": on.isoformat()}  # stored resolved: a conversion re-run uses the same day
        if outcome == "converted":
            return replace(base, answer=stored, detail="converting to a Case Transfer (full transfer)", status=CONVERTING)
        detail = f"temporary move {outcome}" + (f": {answer['notes']}" if answer.get("notes") else "")
        return replace(
            base, answer=stored, detail=detail, closes=OUTCOMES[outcome], plans="returned" if outcome == "returned" else None
        )
    if spec.kind == "challenge":
        seq = situation.open_challenge
        if answer["outcome"] == "uphold":
            reasons = "; ".join(RefusalReason(r).value for r in answer.get("reasons", []))
            return replace(base, detail=f"challenge {seq} upheld: refused: {reasons}", closes="refused", challenge="upheld")
        return replace(base, detail=f"challenge {seq} withdrawn: the transfer carries on", challenge="withdrawn")
    if spec.kind == "dispute":
        notes = answer.get("notes", "")
        if answer["outcome"] == "overturn":
            return replace(
                base, detail=f"refusal overturned on dispute: the transfer proceeds. {notes}".strip(), dispute="overturned"
            )
        return replace(base, detail=f"refusal confirmed on dispute. {notes}".strip(), status="refused", dispute="confirmed")
    if spec.kind == "action":
        if task in ACTION_FORMS:
            return replace(base, detail=f"{spec.title}: done" + ACTION_FORMS[task][0].model_validate(answer).words())
        return replace(base, detail=f"{spec.title}: done" + (f". {answer['notes']}" if answer.get("notes") else ""))
    return base
