"""The rules of 004 that the concurrent shape gained (issue 29), as pure rules and config: no
store, no Prefect. Each test is named after its rule."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import TODAY

from flows.steps import form_for
from tasks.domain import steps as registry
from tasks.domain import youth_steps
from tasks.domain.decisions import RuleBroken
from tasks.domain.form import FormError
from tasks.domain.policy import get_policy
from tasks.notify.notices import event_kind

FORM = {"gender_identity": "Girl or young woman"}


def rules():
    allocation = get_policy("youth").allocation
    assert allocation is not None
    return allocation


def test_every_youth_action_title_fits_the_store_and_every_required_action_exists():
    policy = get_policy("youth")
    assert all(len(r.title) <= 200 for r in policy.actions), [r.code for r in policy.actions if len(r.title) > 200]
    codes = {r.code for r in policy.actions}
    assert set(policy.completion_requires) <= codes
    assert policy.youth_process is not None
    assert set(policy.youth_process.caretaking_confirmations) | set(policy.youth_process.information_actions) <= codes


def test_no_youth_rule_of_004_about_transfers_is_reachable_only_in_the_sequential_shape():
    policy = get_policy("youth")
    only_sequential = [r.code for r in policy.actions if r.shapes == [1]]
    # Shape 1's decision step (and Appendix A's confirmation at it) each have their concurrent twin.
    assert sorted(only_sequential) == ["confirm_supervision", "decision"]
    concurrent = {r.code for r in policy.actions if 2 in r.shapes}
    assert {"information_review", "supervision_requirements"} <= concurrent
    assert policy.rule("supervision_requirements").working_days == policy.rule("confirm_supervision").working_days == 2


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        ({"outcome": "stay", "reasons": "No AssetPlus"}, "missing"),
        ({"outcome": "stay", "missing": ["asset_plus"]}, "reasons"),
        ({"outcome": "reject"}, "reasons"),
        ({"outcome": "sufficient", "missing": ["asset_plus"]}, "missing"),
    ],
)
def test_12_4_a_stay_names_what_is_missing_and_a_stay_or_rejection_gives_its_reasons(answer, field):
    with pytest.raises(RuleBroken) as exc:
        youth_steps.check("information_review", answer, {}, get_policy("youth"), TODAY)
    assert exc.value.field == field


def test_12_4_the_review_form_offers_appendix_a_documents_only():
    with pytest.raises(FormError) as exc:
        registry.validate_answer("information_review", {"recorded_by": "Kim", "outcome": "stay", "missing": ["passport"],
                                                        "reasons": "x"}, get_policy("youth"), TODAY)  # fmt: skip
    assert "missing" in str(exc.value)
    schema = str(form_for("information_review", get_policy("youth")).model_json_schema())
    assert "asset_plus" in schema and "special_educational_needs" in schema


def test_12_4_the_adult_policy_has_no_information_review():
    with pytest.raises(RuleBroken) as exc:
        youth_steps.check("information_review", {"outcome": "sufficient"}, {}, get_policy("adult"), TODAY)
    assert "12.4" in str(exc.value)


def test_12_4_a_stay_and_a_rejection_are_told_to_the_requesting_service():
    assert event_kind("attempt:information_review:3") == "stayed"
    assert event_kind("step:information_review") == "rejected"
    stay = youth_steps.effect("information_review", {"outcome": "stay", "missing": ["asset_plus"], "reasons": "June"}, "Sam (N07515)")
    assert stay == ("request stayed (12.4): missing asset plus: June. Sent to Sam (N07515) to send what is missing", None, "stayed")
    assert youth_steps.effect("information_review", {"outcome": "reject", "reasons": "Blank"}, "Sam")[1] == "refused"


def test_2_1_absence_counts_both_days_and_an_open_ended_absence_runs_on():
    member = rules().member("CM203")
    assert member is not None
    assert member.absent_on(dt.date(2026, 12, 14)) and member.absent_on(dt.date(2027, 1, 29))
    assert member.absent_on(dt.date(2027, 1, 30)) is None
    with pytest.raises(RuleBroken) as exc:
        youth_steps.check_absence({"case_manager": "CM101", "co_allocated_to": "cm203"}, rules(), dt.date(2027, 1, 4))
    assert exc.value.field == "co_allocated_to" and "2.1" in str(exc.value)


def test_2_1_at_the_caseload_limit_a_rationale_is_needed():
    limit = rules().max_caseload
    assert limit is not None
    youth_steps.check_capacity({"case_manager": "CM201"}, rules(), limit - 1)
    with pytest.raises(RuleBroken):
        youth_steps.check_capacity({"case_manager": "CM201"}, rules(), limit)
    youth_steps.check_capacity({"case_manager": "CM201", "rationale": "Reviewed in supervision"}, rules(), limit)


def test_2_2_a_band_a_male_co_worker_is_a_secondary_role_model_not_a_co_allocation():
    youth_steps.check_secondary(FORM, {"case_manager": "CM201", "secondary_co_worker": "CM101", "secondary_reason": "Her wish"}, rules())
    with pytest.raises(RuleBroken) as exc:
        youth_steps.check_secondary(FORM, {"case_manager": "CM201", "secondary_co_worker": "CM101"}, rules())
    assert exc.value.field == "secondary_reason"


def test_5_1_the_co_allocation_form_takes_a_senior_worker_only():
    with pytest.raises(RuleBroken) as exc:
        youth_steps.check("co_allocation", {"co_allocated_to": "CM102"}, {}, get_policy("youth"), TODAY)
    assert "5.1" in str(exc.value)
    youth_steps.check("co_allocation", {"co_allocated_to": "CM301"}, {}, get_policy("youth"), TODAY)
