"""Rules that differ between services, driven by the policy's flags (config/profiles/*.yaml).

Pure functions: a policy and an answer in, a verdict out. The store (tasks/transfers.py) and
the step forms (flows/steps.py) apply them, so the CLI, the Prefect UI and the flow agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from tasks.decisions import INFORMATION_REASONS, RefusalReason
from tasks.policy import Policy


class OpenAction(Protocol):
    code: str
    title: str
    status: str


@dataclass(frozen=True)
class NotFinal:
    """An answer recorded in the history that leaves its step waiting for another answer."""

    event: str
    detail: str


def handover_shortfall(policy: Policy, answer: dict[str, Any]) -> str | None:
    """Why a handover answer does not transfer the case, or None when it stands."""
    if not policy.handover_requires_attendance:
        return None
    if not answer.get("held", True):
        return "the three-way meeting did not take place"
    if not answer.get("pop_attended", True):
        return f"the {policy.person} did not attend the three-way meeting"
    return None


def not_final(policy: Policy, step: str, answer: dict[str, Any], transferring: str) -> NotFinal | None:
    """The answers that are recorded but ask the step again: a handover that did not transfer the
    case (a new meeting is needed), a decision stayed for missing information (asked again once
    the requesting side has put it right). `transferring` names who it goes back to."""
    if step == "handover" and (why := handover_shortfall(policy, answer)):
        return NotFinal(
            "not transferred",
            f"{why} (planned {answer.get('held_on')}): the case has not transferred and the transferring team keeps case "
            "management responsibility until a three-way meeting takes place; waiting for a new meeting",
        )
    if step == "decision" and answer.get("outcome") == "stay":
        reasons = "; ".join(RefusalReason(r).value.lower() for r in answer.get("reasons", []))
        return NotFinal(
            "stayed",
            f"request stayed: {reasons}. Sent back to {transferring} to put right and ask again: {answer.get('evidence', '').strip()}",
        )
    return None


def decision_detail(answer: dict[str, Any], transferring: str) -> str:
    """The history line for a recorded decision; reasons about the request go back to the requester."""
    if answer["outcome"] == "accept":
        return "accepted"
    reasons = [RefusalReason(r) for r in answer.get("reasons", [])]
    detail = "refused: " + "; ".join(r.value for r in reasons)
    if INFORMATION_REASONS & set(reasons):
        detail += (
            f". Reasons sent back to {transferring} so the request can be put right and made again: {answer.get('evidence', '')}"
        )
    return detail


def open_required_actions(policy: Policy, step: str, actions: Iterable[OpenAction]) -> list[OpenAction]:
    """Actions the policy says must be done before `step` is recorded and that are still open."""
    required = set(policy.step_requires_actions.get(step, []))
    return [a for a in actions if a.code in required and a.status == "open"]
