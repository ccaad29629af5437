"""Refusal rules, withdrawal and escalation (000_bfcbb998dd8c1214.txt)."""

from __future__ import annotations

from enum import Enum


class RefusalReason(str, Enum):
    risk_unmanageable = "Risk of harm would increase and could not be managed at the new address"
    sentence_outcomes_undermined = "Sentence or licence interventions not available in the receiving area"
    no_local_connection = "No local connection"
    partner_objection = "Partner organisation objection"
    temporary_accommodation = "Temporary accommodation"
    # Only where the policy has information_refusals (youth justice): stay or reject the request.
    missing_information = "Missing information"
    poor_quality_assessment = "Assessments not of sufficient quality"


# Reasons the framework says are "not enough by themselves to refuse transfer".
NOT_ENOUGH_BY_THEMSELVES = {
    RefusalReason.no_local_connection,
    RefusalReason.partner_objection,
    RefusalReason.temporary_accommodation,
}

# Reasons about the request rather than the risk: the requesting service can put them right
# and ask again, so they are given back with what is missing.
INFORMATION_REASONS = {RefusalReason.missing_information, RefusalReason.poor_quality_assessment}

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


def check_decision(outcome: str, reasons: list[RefusalReason], evidence: str, information_refusals: bool = False) -> None:
    """Presumption to accept: a refusal needs evidenced risk, not only the weak reasons.

    With `information_refusals` (a policy flag) the request may also be stayed or refused for
    missing information or poor-quality assessments, saying what is missing.
    """
    if outcome == "accept":
        if reasons:
            raise RuleBroken("reasons", "give refusal reasons only when the outcome is refuse")
        return
    information = set(reasons) & INFORMATION_REASONS
    if (outcome == "stay" or information) and not information_refusals:
        field = "outcome" if outcome == "stay" else "reasons"
        what = (
            "a stay"
            if outcome == "stay"
            else ", ".join(r.value.lower() for r in sorted(information, key=list(RefusalReason).index))
        )
        raise RuleBroken(field, f"{what} is not available under this policy: accept, or refuse with evidence of risk")
    if outcome == "stay" and (not reasons or set(reasons) - INFORMATION_REASONS):
        raise RuleBroken(
            "reasons", "a stay is for missing information or assessments not of sufficient quality only; give those reasons"
        )
    if information:
        if not evidence.strip():
            raise RuleBroken(
                "evidence",
                "say what is missing or not of sufficient quality, so the requesting service can put it right and ask again",
            )
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
