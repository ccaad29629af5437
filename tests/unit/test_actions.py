import datetime as dt

from conftest import demo_form

from tasks.calendar import get_calendar
from tasks.domain.actions import Clocks, Facts, plan_actions
from tasks.domain.form import parse_form
from tasks.domain.policy import load_policy

D = dt.date


def plan(nearby: bool = False, reallocation: dt.date | None = None, profile: str = "adult", **changes):
    form = parse_form(demo_form(**changes))
    clocks = Clocks(raised=D(2026, 12, 21), received=D(2026, 12, 21), move=D(2026, 12, 21), reallocation=reallocation)
    return {a.code: a for a in plan_actions(Facts(form, nearby_pdu=nearby), clocks, load_policy(profile), get_calendar())}


def test_address_assessment_received_before_christmas_is_due_after_new_year():
    actions = plan()
    assert actions["address_assessment"].due_on == D(2027, 1, 7)
    assert actions["complete"].due_on == D(2027, 1, 21)
    assert actions["allocate"].due_on == D(2026, 12, 23)


def test_every_action_has_an_owner_and_a_due_date():
    for action in plan().values():
        assert action.owner_role in {"transferring_pp", "transferring_spo", "receiving_spo", "receiving_pp", "admin"}
        assert action.due_on >= D(2026, 12, 21)


def test_a_medium_rosh_case_has_no_high_rosh_actions():
    actions = plan()
    assert "transfer_report" not in actions and "full_information" not in actions and "aco_involvement" not in actions


def test_high_rosh_adds_a_same_day_report_and_full_information_in_five_working_days():
    actions = plan(rosh="High")
    assert actions["transfer_report"].due_on == D(2026, 12, 21)
    assert actions["full_information"].due_on == D(2026, 12, 30)
    assert "aco_involvement" in actions


def test_mappa_level_two_needs_endorsement_brokering_and_aco():
    actions = plan(mappa_category=1, mappa_level=2)
    assert {"mappa_endorsement", "mappa_brokering", "aco_involvement"} <= actions.keys()


def test_mappa_level_one_needs_no_endorsement():
    actions = plan(mappa_category=1, mappa_level=1)
    assert "mappa_endorsement" not in actions


def test_victim_contact_adds_vlo_liaison():
    assert "vlo_liaison" in plan(victim_contact=True)
    assert "vlo_liaison" not in plan()


def test_a_nearby_pdu_adds_the_partly_completed_intervention_action():
    assert "intervention_plan" in plan(nearby=True)
    assert "intervention_plan" not in plan()


def test_a_licence_case_needs_no_court_application():
    assert "court_application" in plan()
    assert "court_application" not in plan(sentence_type="Licence")


def test_risk_reassessment_is_four_calendar_weeks_from_the_move():
    assert plan()["oasys_reassessment"].due_on == D(2027, 1, 18)


def test_youth_handover_waits_for_reallocation_then_five_working_days():
    assert "three_way_handover" not in plan(profile="youth")
    actions = plan(profile="youth", reallocation=D(2026, 12, 23))
    assert actions["three_way_handover"].due_on == D(2027, 1, 4)
