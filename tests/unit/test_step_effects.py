"""The step registry decides what an answer does (history words, status, actions finished, fields
filled in); the store applies it and the seeder words its synthetic history with it. Pure: no store."""

import datetime as dt

import pytest

from tasks.domain import steps
from tasks.domain.decisions import RefusalReason, RuleBroken
from tasks.domain.policy import load_policy

D = dt.date
ADULT, YOUTH = load_policy("adult"), load_policy("youth")
TODAY = D(2026, 12, 3)


def situation(**changes) -> steps.Situation:
    values = dict(
        reference="CT000001",
        status="in_progress",
        concurrent=True,
        receiving_pdu_code="N50GMS",
        transferring_team_code="N03BST",
        transferring_pdu_code="N03CTM",
        transferring_practitioner="Priya Shah",
    )
    return steps.Situation(**{**values, **changes})


def test_police_checks_are_done_on_their_return_date_and_finish_their_action():
    answer = {"recorded_by": "Case admin", "returned_on": "2026-11-30"}
    effect = steps.effect_of("police_checks", answer, situation(), ADULT, TODAY)
    assert effect.on == D(2026, 11, 30)
    assert "police_checks" in effect.finishes and effect.status == steps.IN_PROGRESS and effect.closes is None
    assert effect.detail == "police checks recorded"


def test_an_upheld_challenge_closes_the_transfer_as_refused_naming_its_reasons():
    answer = {
        "recorded_by": "Receiving SPO",
        "outcome": "uphold",
        "reasons": [RefusalReason.risk_unmanageable.value],
        "evidence": "Police intelligence: the victim lives two streets away",
    }
    effect = steps.effect_of("challenge-1", answer, situation(open_challenge=1), ADULT, TODAY)
    assert (effect.closes, effect.challenge) == ("refused", "upheld")
    assert effect.detail.startswith("challenge 1 upheld: refused: ")


def test_a_withdrawn_challenge_lets_the_transfer_carry_on():
    effect = steps.effect_of("challenge-2", {"recorded_by": "SPO", "outcome": "withdraw"}, situation(open_challenge=2), ADULT, TODAY)
    assert (effect.closes, effect.challenge, effect.status) == (None, "withdrawn", steps.IN_PROGRESS)


def test_an_answer_to_a_challenge_that_is_not_open_is_refused_naming_the_step():
    with pytest.raises(RuleBroken, match="step: CT000001 has no open challenge 1"):
        steps.check_situation("challenge-1", {"recorded_by": "SPO", "outcome": "withdraw"}, situation(), ADULT, TODAY)


def test_allocation_to_a_team_outside_the_receiving_pdu_is_refused_naming_the_team_code():
    answer = {"recorded_by": "SPO", "practitioner": "Sam Lee", "team_code": "N03BST"}
    with pytest.raises(RuleBroken, match="team_code: .* is not in the receiving PDU N50GMS"):
        steps.check_situation("allocation", answer, situation(), ADULT, TODAY)


def test_allocation_fills_in_the_receiving_practitioner_and_plans_the_action_list_from_its_date():
    answer = {"recorded_by": "SPO", "practitioner": "Sam Lee", "team_code": "N50CAD", "done_on": "2026-12-01"}
    effect = steps.effect_of("allocation", answer, situation(status="awaiting_allocation"), ADULT, TODAY)
    assert effect.sets["receiving_practitioner"] == "Sam Lee" and effect.sets["allocated_on"] == D(2026, 12, 1)
    assert effect.plans == "allocation" and effect.detail.startswith("allocated to Sam Lee (")


def test_youth_completion_dates_from_the_three_way_meeting_the_formal_transfer_date():
    answer = {"recorded_by": "SPO", "responsible_officer": "Sam Lee"}
    effect = steps.effect_of("completion", answer, situation(concurrent=False, handover_held_on=D(2026, 11, 27)), YOUTH, TODAY)
    assert (effect.on, effect.closes) == (D(2026, 11, 27), "completed")
    assert effect.sets == {"responsible_officer": "Sam Lee"}


def test_a_youth_handover_the_young_person_missed_is_recorded_but_leaves_the_step_waiting():
    answer = {"recorded_by": "PP", "held_on": "2026-12-01", "held": True, "pop_attended": False}
    effect = steps.effect_of("handover", answer, situation(concurrent=False), YOUTH, TODAY)
    assert effect.pending == "not transferred" and effect.finishes == ()
    assert "the young person did not attend" in effect.detail


def test_an_overturned_dispute_reopens_the_transfer():
    answer = {"recorded_by": "Head of PDU", "outcome": "overturn", "notes": "Risk can be managed with a curfew"}
    effect = steps.effect_of("dispute-1", answer, situation(status="disputed", disputed=1), ADULT, TODAY)
    assert effect.dispute == "overturned" and effect.closes is None
    assert effect.detail == "refusal overturned on dispute: the transfer proceeds. Risk can be managed with a curfew"
