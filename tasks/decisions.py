"""Refusal rules, withdrawal and escalation (000_bfcbb998dd8c1214.txt)."""

from __future__ import annotations

from enum import Enum


class RefusalReason(str, Enum):
    risk_unmanageable = "Risk of harm would increase and could not be managed at the new address"
    sentence_outcomes_undermined = "Sentence or licence interventions not available in the receiving area"
    no_local_connection = "No local connection"
    partner_objection = "Partner organisation objection"
    temporary_accommodation = "Temporary accommodation"


# Reasons the framework says are "not enough by themselves to refuse transfer".
NOT_ENOUGH_BY_THEMSELVES = {
    RefusalReason.no_local_connection,
    RefusalReason.partner_objection,
    RefusalReason.temporary_accommodation,
}

POLICY_QUOTE = (
    "Refusal of a case transfer should only be made where there is evidence that the risk of harm "
    "would increase in the receiving area and could not be managed in the new address ... issues such "
    "as no local connection, partner organisation objection with no evidenced rationale pertinent to "
    "risk, or temporary accommodation are not enough by themselves to refuse transfer."
)


class RuleBroken(ValueError):
    """An answer that breaks a policy rule; `field` names what to change."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def check_decision(outcome: str, reasons: list[RefusalReason], evidence: str) -> None:
    """Presumption to accept: a refusal needs evidenced risk, not only the weak reasons."""
    if outcome == "accept":
        if reasons:
            raise RuleBroken("reasons", "give refusal reasons only when the outcome is refuse")
        return
    if not reasons:
        raise RuleBroken("reasons", "a refusal must give at least one reason")
    if set(reasons) <= NOT_ENOUGH_BY_THEMSELVES:
        named = ", ".join(r.value.lower() for r in reasons)
        raise RuleBroken(
            "reasons",
            f'refusal rejected: {named} is not enough by itself. The case transfer framework says: "{POLICY_QUOTE}"',
        )
    if not evidence.strip():
        raise RuleBroken("evidence", "a refusal must give the evidence that risk would increase and could not be managed")


def check_reason(field: str, text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise RuleBroken(field, "must not be empty")
    return text
