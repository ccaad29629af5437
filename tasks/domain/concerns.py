"""Concerns hold completion (DOMAIN.md "Information that drives the work").

Police or safeguarding checks recorded with concerns, or an address assessed as unsuitable, open
a decision for the receiving SPO (the action on the `concerns` clock, config/timescales.yaml):
proceed with a plan, ask for another address, or raise a challenge about risk. The action is in
`completion_requires`, so completion is refused, naming it, until it is answered; the answer and
its reasons are in the history. Concurrent shape only: the sequential shape's decision step
weighs the checks itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tasks.calendar import get_calendar
from tasks.domain import challenges
from tasks.domain.actions import Clocks, Facts, due_date, plan_actions
from tasks.domain.changes import supersede_step
from tasks.domain.form import TransferForm
from tasks.domain.transfer import Transfer
from tasks.settings import get_settings

OUTCOME_WORDS = {
    "proceed_with_plan": "proceed with a plan",
    "another_address": "another address: the transferring practitioner proposes one (casetransfer amend REF --postcode ...)",
    "raise_challenge": "raise a challenge about risk",
}


def concern_in(step: str, answer: dict[str, Any]) -> str | None:
    """What about this recorded answer needs the SPO's decision, in words; None when nothing."""
    if step in ("police_checks", "safeguarding_checks") and answer.get("concerns") is True:
        return f"{step.replace('_', ' ')} returned with concerns"
    if step == "address_assessment" and answer.get("suitable") is False:
        return "the address was assessed as unsuitable"
    return None


def decision_codes(t: Transfer) -> list[str]:
    return [r.code for r in t.policy.actions if r.clock == "concerns" and t.shape in r.shapes]


def follow(t: Transfer, step: str) -> None:
    """After an answer to `step` was recorded (in the same unit of work): open the decision for
    the concerns it raised, or carry out the decision it gave. Idempotent."""
    record = t.recorded(step)
    if record is None or not t.concurrent:
        return
    if step in decision_codes(t):
        _carry_out(t, step, record.answer, record.recorded_by)
        return
    words = concern_in(step, record.answer)
    if words is None or t.closed:
        return
    key = f"concerns:{step}:{sum(1 for s in t.nsi.steps if s.step.startswith(f'{step}~')) + 1}"  # a step done again
    for code in decision_codes(t):
        action = next((a for a in t.nsi.actions if a.code == code), None)
        if action is not None and action.status == "open":
            t.note(key, "concerns raised", f"{words}: the receiving SPO's open decision ({code}) weighs it too", record.recorded_by)
            continue
        if action is not None and action.status == "done":
            # Decided before these concerns came in: the decision is asked again, the first kept.
            supersede_step(t, code, words, record.recorded_by)
            action.due_on = _due(t, code, record.done_on)
        else:
            form = TransferForm.model_validate(t.nsi.form)
            nsi = t.nsi
            clocks = Clocks(raised=nsi.raised_on, received=nsi.received_on, move=nsi.move_on or nsi.received_on, concerns=record.done_on)
            t.plan(p for p in plan_actions(Facts(form), clocks, t.policy, get_calendar(get_settings().calendar), t.shape) if p.code == code)
            action = next(a for a in t.nsi.actions if a.code == code)
        t.note(
            key,
            "concerns raised",
            f"{words}: the receiving SPO decides ({code}) by {action.due_on.isoformat()}; completion waits for the decision",
            record.recorded_by,
        )
    t.wake()


def _due(t: Transfer, code: str, on: dt.date) -> dt.date:
    return due_date(t.policy.rule(code), on, get_calendar(get_settings().calendar))


def _carry_out(t: Transfer, code: str, answer: dict[str, Any], by: str) -> None:
    outcome, reasons = answer["outcome"], answer["reasons"].strip()
    n = 1 + sum(1 for s in t.nsi.steps if s.step.startswith(f"{code}~"))
    t.note(f"concerns_decided:{n}", "concerns decided", f"{OUTCOME_WORDS[outcome]}: {reasons}", by)
    if outcome == "raise_challenge" and t.open_challenge() is None and not t.closed:
        raisers = t.policy.challenge_raisers
        role = t.policy.challenge_owner if t.policy.challenge_owner in raisers else raisers[0]
        challenges.raise_challenge(t, f"on the concerns the checks raised: {reasons}", by, role)
