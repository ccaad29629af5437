import pytest

from flows.steps import validate_step
from tasks.domain.decisions import RefusalReason, RuleBroken, check_decision
from tasks.domain.form import FormError

WEAK = [RefusalReason.no_local_connection, RefusalReason.partner_objection, RefusalReason.temporary_accommodation]


@pytest.mark.parametrize("reason", WEAK)
def test_refusal_for_a_weak_reason_alone_is_rejected(reason):
    with pytest.raises(RuleBroken) as exc:
        check_decision("refuse", [reason], "")
    assert exc.value.field == "reasons"
    assert "not enough by themselves to refuse transfer" in str(exc.value)


def test_refusal_for_all_the_weak_reasons_together_is_still_rejected():
    with pytest.raises(RuleBroken):
        check_decision("refuse", WEAK, "they all apply")


def test_refusal_for_no_local_connection_alone_is_rejected_through_the_step_form():
    with pytest.raises(FormError) as exc:
        validate_step("decision", {"recorded_by": "Kim", "outcome": "refuse", "reasons": ["No local connection"]})
    assert exc.value.problems[0][0] == "reasons"


def test_refusal_for_evidenced_unmanageable_risk_is_accepted():
    reasons = [RefusalReason.risk_unmanageable, RefusalReason.no_local_connection]
    answer = validate_step(
        "decision",
        {"recorded_by": "Kim", "outcome": "refuse", "reasons": [r.value for r in reasons], "evidence": "Victim lives two streets away"},
    )
    assert (answer.outcome, list(answer.reasons), answer.evidence) == ("refuse", reasons, "Victim lives two streets away")


def test_refusal_for_risk_without_evidence_is_rejected():
    with pytest.raises(RuleBroken) as exc:
        check_decision("refuse", [RefusalReason.risk_unmanageable], "  ")
    assert exc.value.field == "evidence"


def test_refusal_with_no_reason_is_rejected():
    with pytest.raises(RuleBroken):
        check_decision("refuse", [], "")


def test_acceptance_needs_no_reasons():
    answer = validate_step("decision", {"recorded_by": "Kim", "outcome": "accept"})
    assert (answer.outcome, list(answer.reasons)) == ("accept", [])
