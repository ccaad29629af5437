"""Rules that differ between services, driven by the policy's flags (config/profiles/*.yaml).

Pure functions: a policy and an answer in, a verdict out. The store (tasks/domain/transfers.py) and
the step forms (flows/steps.py) apply them, so the CLI, the Prefect UI and the flow agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from tasks.domain.decisions import INFORMATION_REASONS, RefusalReason, RuleBroken
from tasks.domain.policy import AllocationRules, Policy


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


# ---- Youth justice (004): allocation, the home visit, caretaking contact records, looked-after children ----

LEVELS = ("Low", "Medium", "High", "Very High")  # RoSH and SaW, lowest first


def check_staff_ids(answer: dict[str, Any], rules: AllocationRules) -> None:
    """The case manager (and any co-allocated worker) is on the staff list; a co-allocated worker
    is senior (5.1: a Band B worker or Advanced Practitioner) and not the case manager."""
    if rules.member(str(answer.get("case_manager", ""))) is None:
        raise RuleBroken("case_manager", f"{answer.get('case_manager')!r} is not on the staff list (config/staff)")
    co = str(answer.get("co_allocated_to") or "").strip()
    if not co:
        return
    member = rules.member(co)
    if member is None:
        raise RuleBroken("co_allocated_to", f"{co!r} is not on the staff list (config/staff)")
    if member.band not in rules.senior_bands:
        raise RuleBroken("co_allocated_to", f"5.1: co-allocation is to a Band {'/'.join(rules.senior_bands)} worker; {member.id} is Band {member.band}")
    if member.id.upper() == str(answer["case_manager"]).strip().upper():
        raise RuleBroken("co_allocated_to", "the co-allocated worker is someone other than the case manager")


def allocation_breaches(form: dict[str, Any], answer: dict[str, Any], rules: AllocationRules) -> list[tuple[str, str]]:
    """The allocation rules (004 4.1, 5.1, 2.2) an allocation departs from, as (rule, why)."""
    manager = rules.member(str(answer.get("case_manager", "")))
    if manager is None:
        return []
    breaches = []
    levels = {"RoSH": form.get("rosh"), "SaW": form.get("saw_level")}
    high = [f"{name} {level}" for name, level in levels.items() if level in rules.high_levels]
    co = rules.member(str(answer.get("co_allocated_to") or ""))
    if high and manager.band not in rules.senior_bands and (co is None or co.band not in rules.senior_bands):
        breaches.append((
            "4.1",
            f"4.1: a case assessed {' and '.join(high)} is allocated to a Band {'/'.join(rules.senior_bands)} senior case "
            f"manager; {manager.id} is Band {manager.band}. Allocate a senior case manager, co-allocate one "
            "(co_allocated_to, 5.1), or record the rationale",
        ))  # fmt: skip
    if form.get("gender_identity") in rules.female_identities and manager.gender != "female":
        breaches.append((
            "2.2",
            f"2.2: a child identifying as a girl or young woman is allocated to a case manager identifying as female; "
            f"{manager.id} identifies as {manager.gender}. Record the rationale (after consulting the child) to allocate otherwise",
        ))  # fmt: skip
    return breaches


def check_allocation(form: dict[str, Any], answer: dict[str, Any], rules: AllocationRules) -> None:
    """Refuse an allocation that departs from 4.1 or 2.2 without a recorded rationale; the refusal names the rule."""
    check_staff_ids(answer, rules)
    breaches = allocation_breaches(form, answer, rules)
    if breaches and not str(answer.get("rationale") or "").strip():
        raise RuleBroken("case_manager", "; ".join(why for _, why in breaches))


def allocation_notes(answer: dict[str, Any]) -> str:
    """The history's words for a co-allocation and a recorded rationale."""
    notes = ""
    if co := str(answer.get("co_allocated_to") or "").strip():
        notes += f"; co-allocated to {co.upper()} as practice supervisor (5.1)"
    if rationale := str(answer.get("rationale") or "").strip():
        notes += f"; rationale recorded: {rationale}"
    return notes


def check_home_visit(policy: Policy, answer: dict[str, Any]) -> None:
    """11.3: every change of address is confirmed by a home visit."""
    if policy.home_visit_required and str(answer.get("method", "")) == "desktop":
        raise RuleBroken(
            "method", "11.3: every change of address is confirmed by a home visit; a desktop assessment is not enough"
        )


def contact_limit_weeks(policy: Policy, form: dict[str, Any]) -> tuple[int, str] | None:
    """The longest the host's records of contacts may be apart, for the higher of RoSH and SaW (12.5, 12.8)."""
    given = [level for level in (form.get("rosh"), form.get("saw_level")) if level in policy.contact_record_max_weeks]
    if not given:
        return None
    level = max(given, key=LEVELS.index)
    return policy.contact_record_max_weeks[level], level


def check_contact_frequency(policy: Policy, answer: dict[str, Any], form: dict[str, Any]) -> None:
    """12.5, 12.8: the caretaking agreement sets how often the host sends its record of contacts,
    proportionate to RoSH and SaW."""
    if not policy.contact_record_max_weeks:
        return
    weeks = answer.get("contact_frequency_weeks")
    if weeks in (None, ""):
        raise RuleBroken("contact_frequency_weeks", "required: 12.5, 12.8: agree how often the host sends its record of contacts")
    limit = contact_limit_weeks(policy, form)
    if limit is not None and int(weeks) > limit[0]:
        raise RuleBroken(
            "contact_frequency_weeks",
            f"12.5: proportionate to RoSH and SaW: at {limit[1]} the record of contacts comes at least every {limit[0]} weeks",
        )


def accepted_as_caretaking(policy: Policy, concurrent: bool) -> bool:
    """12.5: a transfer in (the concurrent shape) is accepted at allocation on a caretaking basis
    until it completes, so its allocation agrees the contact frequency."""
    return policy.transfer_in_caretaking and concurrent


def looked_after_caretaking(policy: Policy, form: dict[str, Any]) -> str | None:
    """12.2: a looked-after child's transfer request becomes caretaking: the message why, or None."""
    if policy.looked_after_caretaking and form.get("looked_after") and form.get("nsi_type", "case_transfer") == "case_transfer":
        return policy.looked_after_message.strip()
    return None
