"""The youth justice rules of 004 (Nottinghamshire YJS) one by one, as pure rules: the step
registry and the profile rules, with no store and no Prefect. Each test is named after its rule."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import TODAY, demo_form

from flows.steps import form_for
from tasks.calendar import get_calendar
from tasks.domain import steps as registry
from tasks.domain.actions import CONDITIONS, Clocks, Facts, plan_actions
from tasks.domain.decisions import RuleBroken
from tasks.domain.form import FormError, NsiType, parse_form
from tasks.domain.policy import get_policy
from tasks.domain.profile_rules import check_allocation, check_contact_frequency, looked_after_caretaking
from tasks.domain.temporary_moves import looked_after_as_caretaking

YOUTH_FIELDS = {"saw_level": "Low", "gender_identity": "Boy or young man", "date_of_birth": "2010-05-17"}


def youth_form(**changes):
    return parse_form(demo_form(**{**YOUTH_FIELDS, **changes}), "youth")


def allocation(case_manager: str, **more) -> dict:
    return {"recorded_by": "Kim TM", "case_manager": case_manager, "team_code": "N50CAD", **more}


def rules():
    allocation_rules = get_policy("youth").allocation
    assert allocation_rules is not None
    return allocation_rules


def test_the_youth_form_asks_for_saw_and_gender_identity_naming_each_field():
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(date_of_birth="2010-05-17"), "youth")
    fields = {field for field, _ in exc.value.problems}
    assert fields == {"saw_level", "gender_identity"}
    assert "4.1" in str(exc.value) and "2.2" in str(exc.value)
    assert parse_form(demo_form(), "adult").saw_level is None  # the adult form does not ask


def test_a_bad_saw_level_and_a_parent_given_twice_are_named_field_by_field():
    orders = [{"parent": "Mother", "lives_with_young_person": True}, {"parent": "mother", "lives_with_young_person": False}]
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(**{**YOUTH_FIELDS, "saw_level": "Severe", "parenting_orders": orders}), "youth")
    fields = {field for field, _ in exc.value.problems}
    assert "saw_level" in fields and "parenting_orders" in fields
    assert "same parent is given twice" in str(exc.value)


def test_4_1_a_high_saw_case_is_refused_for_a_band_a_case_manager_and_the_refusal_names_the_rule():
    form = youth_form(saw_level="High").model_dump(mode="json")
    with pytest.raises(RuleBroken) as exc:
        check_allocation(form, allocation("CM101"), rules())
    assert exc.value.field == "case_manager" and str(exc.value).startswith("case_manager: 4.1:")
    assert "SaW High" in str(exc.value) and "Band A" in str(exc.value)
    check_allocation(form, allocation("CM202"), rules())  # Band B
    check_allocation(form, allocation("CM101", rationale="Knows the family; senior oversight agreed"), rules())


def test_4_1_high_rosh_counts_as_high_saw_does():
    form = youth_form(rosh="Very High").model_dump(mode="json")
    with pytest.raises(RuleBroken, match="RoSH Very High"):
        check_allocation(form, allocation("CM101"), rules())


def test_5_1_a_high_saw_case_co_allocated_to_a_band_b_worker_stands_and_a_band_a_co_worker_does_not():
    form = youth_form(saw_level="Very High").model_dump(mode="json")
    check_allocation(form, allocation("CM101", co_allocated_to="CM201"), rules())
    with pytest.raises(RuleBroken) as exc:
        check_allocation(form, allocation("CM101", co_allocated_to="CM102"), rules())
    assert exc.value.field == "co_allocated_to" and "5.1" in str(exc.value)


def test_2_2_a_girl_goes_to_a_case_manager_identifying_as_female_unless_a_rationale_is_recorded():
    form = youth_form(gender="Female", gender_identity="Girl or young woman").model_dump(mode="json")
    with pytest.raises(RuleBroken) as exc:
        check_allocation(form, allocation("CM202"), rules())
    assert str(exc.value).startswith("case_manager: 2.2:") and "identifies as male" in str(exc.value)
    check_allocation(form, allocation("CM201"), rules())
    check_allocation(form, allocation("CM202", rationale="She asked for a male case manager; consulted 20/12"), rules())


def test_2_3_allocation_follows_the_gender_the_child_identifies_as_not_the_one_recorded_at_birth():
    form = youth_form(gender="Male", gender_identity="Girl or young woman").model_dump(mode="json")
    with pytest.raises(RuleBroken, match="2.2"):
        check_allocation(form, allocation("CM101"), rules())


def test_4_1_and_2_2_broken_together_are_named_together():
    form = youth_form(saw_level="High", gender_identity="Girl or young woman").model_dump(mode="json")
    with pytest.raises(RuleBroken) as exc:
        check_allocation(form, allocation("CM101"), rules())
    assert "4.1:" in str(exc.value) and "2.2:" in str(exc.value)


def test_the_allocation_form_asks_for_a_staff_id_and_shows_no_band_gender_or_name():
    form = form_for("allocation", get_policy("youth"))
    schema = str(form.model_json_schema())
    assert "case_manager" in schema and "practitioner" not in form.model_fields
    for staff in rules().staff:
        assert staff.id not in schema
    assert "female" not in schema.lower().replace("identifying as female", "")
    with pytest.raises(FormError) as exc:
        registry.validate_answer("allocation", allocation("CM999"), get_policy("youth"), TODAY)
    assert exc.value.problems[0][0] == "case_manager" and "staff list" in exc.value.problems[0][1]
    assert form_for("allocation", get_policy("adult")).model_fields.keys() >= {"practitioner"}


def test_11_3_desktop_assessment_is_not_enough():
    desktop = {"recorded_by": "Pat", "method": "desktop", "suitable": True}
    with pytest.raises(FormError) as exc:
        registry.validate_answer("address_assessment", desktop, get_policy("youth"), TODAY)
    assert exc.value.problems == [("method", "11.3: every change of address is confirmed by a home visit; a desktop assessment is not enough")]
    registry.validate_answer("address_assessment", {**desktop, "method": "home_visit"}, get_policy("youth"), TODAY)
    registry.validate_answer("address_assessment", desktop, get_policy("adult"), TODAY)  # the adult rule stands


def test_11_3_the_review_assessment_is_assetplus_and_opens_after_the_home_visit():
    policy = get_policy("youth")
    review = policy.rule("review_assessment")
    assert "AssetPlus" in review.title and review.opens_after == ["address_assessment"]
    codes = {p.code for p in plan_actions(Facts(youth_form()), _clocks(), policy, get_calendar(), 2)}
    assert "review_assessment" in codes and "oasys_reassessment" not in codes
    assert "address_assessment" in policy.completion_requires


def _clocks() -> Clocks:
    return Clocks(raised=TODAY, received=TODAY, move=TODAY, reallocation=TODAY)


def test_5_3_co_allocation_has_its_agreement_task_due_in_5_days():
    policy = get_policy("youth")
    form = youth_form(saw_level="High")
    facts = Facts(form, allocation=allocation("CM101", co_allocated_to="CM201"))
    planned = {p.code: p for p in plan_actions(facts, _clocks(), policy, get_calendar(), 2)}
    assert planned["co_allocation_agreement"].due_on == TODAY + dt.timedelta(days=5)
    assert planned["co_allocation_agreement"].owner_role == "receiving_spo"
    alone = {p.code for p in plan_actions(Facts(form, allocation=allocation("CM201")), _clocks(), policy, get_calendar(), 2)}
    assert "co_allocation_agreement" not in alone


def test_12_2_a_looked_after_childs_request_becomes_caretaking_quoting_the_rule():
    policy = get_policy("youth")
    form = youth_form(looked_after=True)
    message = looked_after_caretaking(policy, form.model_dump(mode="json"))
    assert message and message.startswith("12.2: Children and young people who are looked after")
    assert "remain the case management responsibility of the home YOT" in message
    caretaking = looked_after_as_caretaking(form, policy)
    assert caretaking.nsi_type is NsiType.temporary_move and caretaking.expected_return_date == form.sentence_end_date
    assert looked_after_as_caretaking(form, get_policy("adult")).nsi_type is NsiType.case_transfer
    assert looked_after_as_caretaking(youth_form(), policy).nsi_type is NsiType.case_transfer


def test_12_5_the_contact_frequency_is_agreed_and_proportionate_to_rosh_and_saw():
    policy = get_policy("youth")
    form = youth_form(rosh="Medium", saw_level="High").model_dump(mode="json")
    with pytest.raises(RuleBroken) as exc:
        check_contact_frequency(policy, {}, form)
    assert exc.value.field == "contact_frequency_weeks" and "12.5, 12.8" in str(exc.value)
    with pytest.raises(RuleBroken) as exc:
        check_contact_frequency(policy, {"contact_frequency_weeks": 4}, form)
    assert "12.5" in str(exc.value) and "at High" in str(exc.value) and "every 2 weeks" in str(exc.value)
    check_contact_frequency(policy, {"contact_frequency_weeks": 2}, form)
    check_contact_frequency(get_policy("adult"), {}, form)  # the adult caretaking agreement does not ask


def test_12_9_a_parenting_order_brings_its_transfer_tasks_required_before_completion():
    policy = get_policy("youth")
    orders = [{"parent": "Mother", "lives_with_young_person": True}, {"parent": "Father", "lives_with_young_person": False}]
    planned = {p.code for p in plan_actions(Facts(youth_form(parenting_orders=orders)), _clocks(), policy, get_calendar(), 2)}
    assert {"parenting_order_transfer", "parenting_order_papers"} <= planned
    assert {"parenting_order_transfer", "parenting_order_papers"} <= set(policy.completion_requires)
    assert "both to the area where the young person lives" in policy.rule("parenting_order_transfer").title  # 12.10
    assert "written transfer summary" in policy.rule("parenting_order_papers").title  # 12.11
    none = {p.code for p in plan_actions(Facts(youth_form()), _clocks(), policy, get_calendar(), 2)}
    assert not {"parenting_order_transfer", "parenting_order_papers"} & none


def test_transfer_in_documents_marked_missing_bring_a_task_to_send_them():
    summary = {
        "parental_responsibility": "Mother", "offence_details": "Robbery", "order_summary": "Engaging",
        "documents": {"asset_plus": "no"}, "missing_reasons": "AssetPlus being updated",
    }  # fmt: skip
    form = youth_form(transfer_in=summary)
    assert CONDITIONS["transfer_in_documents_missing"](Facts(form))
    planned = {p.code for p in plan_actions(Facts(form), _clocks(), get_policy("youth"), get_calendar(), 2)}
    assert "transfer_documents" not in planned and "transfer_in_documents" in planned
    assert "transfer_in_documents" in get_policy("youth").completion_requires


def test_11_4_a_disputed_refusal_is_settled_by_the_service_manager():
    policy = get_policy("youth")
    assert policy.dispute_owner == "service_manager" and registry.owner_of("dispute-1", policy) == "service_manager"
    assert get_policy("adult").dispute_owner == "receiving_head"


def test_the_youth_profile_follows_the_concurrent_shape():
    assert get_policy("youth").shape_version == 2


def transfer_in(concurrent: bool = True) -> registry.Situation:
    """A youth Case Transfer into the Manchester teams, as the store would describe it."""
    team = registry.load_estate().teams["N50CAD"]
    form = youth_form(rosh="Medium", saw_level="High").model_dump(mode="json")
    return registry.Situation(
        reference="CT0001", status="awaiting_allocation", concurrent=concurrent, receiving_pdu_code=team.pdu_code,
        transferring_team_code="N07NCL", transferring_pdu_code="N07", transferring_practitioner="Jo Home", form=form,
    )  # fmt: skip


def test_12_5_a_transfer_in_is_first_accepted_on_a_caretaking_basis():
    policy = get_policy("youth")
    answer = allocation("CM201", contact_frequency_weeks=2)
    registry.check_situation("allocation", answer, transfer_in(), policy, TODAY)
    effect = registry.effect_of("allocation", answer, transfer_in(), policy, TODAY)
    assert effect.plans == "allocation" and effect.caretaking_from == TODAY  # the checks run from allocation
    assert "accepted on a caretaking basis until the transfer completes" in effect.detail
    assert "every 2 weeks" in effect.detail and "12.5: The case will be accepted on a 'caretaking' basis" in effect.detail
    with pytest.raises(RuleBroken) as exc:
        registry.check_situation("allocation", allocation("CM201"), transfer_in(), policy, TODAY)
    assert exc.value.field == "contact_frequency_weeks" and "12.5" in str(exc.value)
    completion = {"recorded_by": "Kim TM", "responsible_officer": "CM201"}
    ended = registry.effect_of("completion", completion, transfer_in(), policy, TODAY)
    assert ended.closes == "completed" and "caretaking ends: responsibility passes in full (12.5)" in ended.detail
    # The sequential shape and the adult profile do not ask.
    registry.check_situation("allocation", allocation("CM201"), transfer_in(concurrent=False), policy, TODAY)
    assert registry.effect_of("allocation", allocation("CM201"), transfer_in(concurrent=False), policy, TODAY).caretaking_from is None


def test_12_5_a_transfer_in_is_refused_a_contact_frequency_too_long_for_its_rosh_and_saw():
    with pytest.raises(RuleBroken) as exc:
        registry.check_situation("allocation", allocation("CM201", contact_frequency_weeks=4), transfer_in(), get_policy("youth"), TODAY)
    assert exc.value.field == "contact_frequency_weeks"
    assert "12.5" in str(exc.value) and "at High" in str(exc.value) and "every 2 weeks" in str(exc.value)
