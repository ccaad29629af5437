"""Temporary Move rules: its Action List, the caretaking agreement, conversion to a Case Transfer,
the release rule at the CLI. Pure: no store, no Prefect."""

import datetime as dt

import pytest
import yaml
from conftest import demo_form
from typer.testing import CliRunner

from flows.steps import STEP_FORMS, TEMPORARY_MOVE_STEPS, validate_step
from tasks.calendar import get_calendar
from tasks.domain.actions import Clocks, Facts, plan_actions, transfer_due
from tasks.domain.decisions import RuleBroken
from tasks.domain.form import FormError, NsiType, TransferForm, parse_form
from tasks.domain.policy import load_policy
from tasks.domain.temporary_moves import AGREEMENT_FIELDS, as_temporary_move, check_caretaking_agreement, conversion_form

D = dt.date
TM = {"nsi_type": "temporary_move", "temporary_reason": "Caring for a parent after surgery", "expected_return_date": "2027-02-26"}


def tm_form(**changes) -> TransferForm:
    return parse_form(demo_form(**{**TM, **changes}))


def plan(profile: str = "adult", returned: dt.date | None = None, **changes):
    clocks = Clocks(raised=D(2026, 12, 21), received=D(2026, 12, 21), move=D(2026, 12, 21), returned=returned)
    return {a.code: a for a in plan_actions(Facts(tm_form(**changes)), clocks, load_policy(profile), get_calendar())}


def test_a_temporary_move_gets_its_own_actions_and_none_of_a_transfers():
    actions = plan()
    assert set(actions) == {"support_contact", "full_transfer_review"}


def test_the_support_contact_is_due_in_two_working_days_from_receipt():
    assert plan()["support_contact"].due_on == D(2026, 12, 23)
    assert plan()["support_contact"].owner_role == "receiving_spo"


@pytest.mark.parametrize("profile", ["adult", "youth"])
def test_full_transfer_is_reviewed_by_the_transferring_spo_at_the_caretaking_limit(profile):
    review = plan(profile)["full_transfer_review"]
    assert review.owner_role == "transferring_spo"
    assert review.title.startswith("Review: full transfer presumed")
    assert review.due_on == D(2027, 3, 21)
    policy = load_policy(profile)
    assert policy.rule("full_transfer_review").months == policy.caretaking_months == 3


def test_the_case_review_waits_for_the_return_then_is_the_transferring_practitioners():
    assert "case_review" not in plan()
    review = plan(returned=D(2027, 1, 29))["case_review"]
    assert review.owner_role == "transferring_pp"
    assert review.due_on == D(2027, 2, 5)


def test_a_temporary_move_is_due_at_the_caretaking_limit():
    policy = load_policy("adult")
    assert transfer_due(D(2026, 11, 30), policy, get_calendar(), NsiType.temporary_move) == D(2027, 2, 28)


def test_the_temporary_move_steps_are_answerable_by_name():
    assert list(TEMPORARY_MOVE_STEPS) == ["support_allocation", "outcome"]
    assert set(TEMPORARY_MOVE_STEPS) <= set(STEP_FORMS)
    answer = validate_step("outcome", {"recorded_by": "Sam", "outcome": "returned"})
    assert answer.outcome == "returned"
    with pytest.raises(FormError) as exc:
        validate_step("outcome", {"recorded_by": "Sam", "outcome": "vanished"})
    assert exc.value.problems[0][0] == "outcome"


def test_without_a_required_agreement_a_support_allocation_needs_only_the_contact():
    assert check_caretaking_agreement(load_policy("adult"), {"support_contact": "Pat"}, D(2026, 12, 21)) is None
    answer = validate_step(
        "support_allocation", {"recorded_by": "Kim", "support_contact": "Pat", "team_code": "N55SS1"}, load_policy("adult")
    )
    assert (answer.support_contact, answer.team_code) == ("Pat", "N55SS1")
    # The same answer where the policy requires the agreement is refused, naming its first field.
    with pytest.raises(RuleBroken) as exc:
        check_caretaking_agreement(load_policy("youth"), {"support_contact": "Pat"}, D(2026, 12, 21))
    assert exc.value.field == AGREEMENT_FIELDS[0]


def test_where_required_the_caretaking_agreement_names_who_does_what_and_when_it_is_reviewed():
    with pytest.raises(RuleBroken) as exc:
        check_caretaking_agreement(load_policy("youth"), {"support_contact": "Pat"}, D(2026, 12, 21))
    assert exc.value.field == "caretaking_from"
    with pytest.raises(FormError) as form_exc:
        validate_step(
            "support_allocation", {"recorded_by": "Kim", "support_contact": "Pat", "team_code": "N55SS1"}, load_policy("youth")
        )
    assert form_exc.value.problems[0][0] == "caretaking_from"


AGREEMENT = {
    "caretaking_from": "2026-12-21",
    "receiving_responsibilities": "Appointments, updates to the home service",
    "home_responsibilities": "Sentence planning, breach",
}


@pytest.mark.parametrize("profile", ["adult", "youth"])
def test_the_review_date_is_at_most_three_months_after_acceptance(profile):
    policy = load_policy(profile)
    check_caretaking_agreement(policy, {**AGREEMENT, "review_date": "2027-03-21"}, D(2026, 12, 21))
    with pytest.raises(RuleBroken) as exc:
        check_caretaking_agreement(policy, {**AGREEMENT, "review_date": "2027-03-22"}, D(2026, 12, 21))
    assert exc.value.field == "review_date" and "21 March 2027" in str(exc.value)
    with pytest.raises(RuleBroken):
        check_caretaking_agreement(policy, {**AGREEMENT, "review_date": "2026-12-20"}, D(2026, 12, 21))


def test_acceptance_defaults_to_today_when_not_given():
    with pytest.raises(RuleBroken):
        check_caretaking_agreement(load_policy("adult"), {"review_date": "2027-04-01"}, D(2026, 12, 21))
    check_caretaking_agreement(load_policy("adult"), {"review_date": "2027-04-01"}, D(2027, 1, 5))


def test_a_converted_move_becomes_a_case_transfer_with_the_same_person_raised_on_the_day():
    form = conversion_form(tm_form().model_dump(mode="json"), D(2027, 3, 1), "Sam Practitioner", "N50GMS")
    assert form.nsi_type is NsiType.case_transfer
    assert (form.crn, form.name, form.rosh) == ("X123456", "Jordan Example", tm_form().rosh)
    assert form.temporary_reason is None and form.expected_return_date is None
    assert form.raised_on == form.move_date == D(2027, 3, 1) and form.received_on is None
    assert form.receiving_pdu_code == "N50GMS" and form.raised_by == "Sam Practitioner"


def test_the_temporary_move_flow_reads_a_form_left_at_the_default_type_as_a_temporary_move():
    form = parse_form(demo_form(temporary_reason="Hospital stay nearby", expected_return_date="2027-01-31"))
    assert form.nsi_type is NsiType.case_transfer
    assert as_temporary_move(form).nsi_type is NsiType.temporary_move
    with pytest.raises(ValueError, match="temporary_reason"):
        as_temporary_move(parse_form(demo_form()))


def test_raise_refuses_a_temporary_move_on_release_to_live_in_the_receiving_area(tmp_path):
    from ops.cli import app

    path = tmp_path / "move.yaml"
    path.write_text(yaml.safe_dump(demo_form(**TM, released_from_custody=True)))
    result = CliRunner().invoke(app, ["raise", str(path)])
    assert result.exit_code == 2
    assert "nsi_type: a person released to live in the receiving area is a Case Transfer" in result.output
    assert "nothing was stored" in result.output


def test_a_temporary_move_on_release_to_temporary_accommodation_is_valid():
    form = tm_form(released_from_custody=True, post_release_accommodation_temporary=True)
    assert form.nsi_type is NsiType.temporary_move
