"""The youth profile's concurrent tasks in the store, on SQLite and PostgreSQL: allocation checks
refused whole, the co-allocation agreement, the home visit before completion, the Service
Manager's escalation, looked-after caretaking and the host's contact records at the agreed
frequency, parenting-order tasks. Each test is named after its rule in 004."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import TODAY, demo_form, pin_today
from support.youth import everything_else

from tasks.domain import transfer_views, transfers
from tasks.domain.form import parse_form

YOUTH_FIELDS = {"saw_level": "Low", "gender_identity": "Boy or young man", "date_of_birth": "2010-05-17"}
ALLOCATED_ON = dt.date(2026, 12, 22)


@pytest.fixture(autouse=True)
def _work_recorded_after_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    pin_today(monkeypatch, dt.date(2027, 1, 8))


def raise_youth(key: str = "y-1", **changes) -> str:
    changes.setdefault("raised_on", TODAY.isoformat())
    form = parse_form(demo_form(**{**YOUTH_FIELDS, **changes}), "youth")
    return transfers.register_nsi(form, key, profile="youth")


def allocate(ref: str, case_manager: str = "CM201", **more) -> str:
    answer = {"recorded_by": "Kim TM", "case_manager": case_manager, "team_code": "N50CAD", "done_on": ALLOCATED_ON.isoformat(),
              "contact_frequency_weeks": 1}  # fmt: skip  (weekly suits every RoSH and SaW, 12.5)
    return transfers.apply_step(ref, "allocation", {**answer, **more})


def actions(ref: str) -> dict:
    return {a.code: a for a in transfer_views.status_of(ref).actions}


def test_4_1_an_allocation_against_the_rule_is_refused_and_nothing_is_stored(store_url):
    ref = raise_youth(saw_level="High")
    with pytest.raises(transfers.StepRefused) as exc:
        allocate(ref, "CM101")
    assert exc.value.field == "case_manager" and "4.1" in str(exc.value)
    assert "allocation" not in transfer_views.recorded_steps(ref) and [h.event for h in transfer_views.status_of(ref).history] == ["raised"]
    allocate(ref, "CM101", rationale="Continuity: worked with the family before; senior oversight agreed")
    detail = next(h.detail for h in transfer_views.status_of(ref).history if h.event == "allocation")
    assert "case manager CM101" in detail and "rationale recorded: Continuity" in detail
    assert transfer_views.status_of(ref).receiving.endswith("(N50CAD)")


def test_5_3_a_co_allocation_waits_for_its_agreement_within_5_days(store_url):
    ref = raise_youth(saw_level="Very High")
    allocate(ref, "CM102", co_allocated_to="CM201")
    agreement = actions(ref)["co_allocation_agreement"]
    assert agreement.due_on == ALLOCATED_ON + dt.timedelta(days=5) and agreement.owner_role == "receiving_spo"
    assert "co-allocated to CM201 as practice supervisor (5.1)" in transfer_views.status_of(ref).history[-1].detail
    progress = transfers.progress(ref)
    assert "co_allocation_agreement" in {t.task for t in progress.to_start}


def test_11_3_completion_waits_for_the_home_visit_and_the_review_assessment_follows_it(store_url):
    ref = raise_youth()
    allocate(ref)
    opened = {t.task for t in transfers.progress(ref).to_start}
    assert "address_assessment" in opened and "review_assessment" not in opened
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "address_assessment", {"recorded_by": "Pat", "method": "desktop", "suitable": True})
    assert exc.value.field == "method" and "11.3" in str(exc.value)
    for code in ("police_checks", "safeguarding_checks", "documents", "enforcement_complete", "asset_plus_transfer_request",
                 "caretaking_agreement_host", "caretaking_agreement_home"):  # fmt: skip
        transfers.apply_step(ref, code, {"recorded_by": "Admin"})
    transfers.apply_step(ref, "information_review", {"recorded_by": "Kim TM", "outcome": "sufficient"})
    transfers.apply_step(ref, "supervision_requirements", {"recorded_by": "Kim TM"})
    transfers.apply_step(ref, "handover", {"recorded_by": "Sam", "held_on": "2027-01-04"})
    completion = {"recorded_by": "Kim TM", "responsible_officer": "CM201"}
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "completion", completion)
    assert "Home visit to confirm the new address (address_assessment)" in str(exc.value)
    transfers.apply_step(ref, "address_assessment", {"recorded_by": "Pat", "method": "home_visit", "suitable": True})
    assert "review_assessment" in {t.task for t in transfers.progress(ref).to_start}
    assert transfers.apply_step(ref, "completion", completion) == "completed"
    assert actions(ref)["review_assessment"].status == "open"  # after the move: still open, still reminded


def test_11_4_a_transfer_the_managers_cannot_agree_is_escalated_to_the_service_manager(store_url):
    ref = raise_youth()
    allocate(ref)
    seq, _ = transfers.raise_challenge(ref, "Gang links near the new address", "Pat", "receiving_pp")
    uphold = {
        "recorded_by": "Kim TM", "outcome": "uphold",
        "reasons": ["Risk of harm would increase and could not be managed at the new address"], "evidence": "Police intelligence",
    }  # fmt: skip
    assert transfers.apply_step(ref, f"challenge-{seq}", uphold) == "refused"
    transfers.raise_dispute(ref, "The risk can be managed with a curfew", "Alex Senior")
    progress = transfers.progress(ref)
    assert [(t.task, t.owner_role) for t in progress.to_start] == [(f"dispute-{seq}", "service_manager")]


def test_12_2_a_looked_after_child_is_raised_as_caretaking_with_the_rule_quoted(store_url):
    ref = raise_youth(looked_after=True)
    view = transfer_views.status_of(ref)
    assert ref.startswith("TM") and view.history[0].detail.count("12.2: Children and young people who are looked after") == 1


def test_12_8_the_hosts_record_of_contacts_is_checked_at_the_agreed_frequency(store_url):
    ref = raise_youth(nsi_type="temporary_move", temporary_reason="Bail placement", expected_return_date="2027-03-01",
                      saw_level="High")  # fmt: skip
    support = {
        "recorded_by": "Kim TM", "support_contact": "Pat Host", "team_code": "N50CAD", "caretaking_from": "2026-12-21",
        "receiving_responsibilities": "Appointments", "home_responsibilities": "Planning", "review_date": "2027-03-19",
    }  # fmt: skip
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "support_allocation", {**support, "contact_frequency_weeks": 4})
    assert exc.value.field == "contact_frequency_weeks" and "12.5" in str(exc.value)
    transfers.apply_step(ref, "support_allocation", {**support, "contact_frequency_weeks": 2})
    assert actions(ref)["contact_records"].due_on == dt.date(2027, 1, 4)
    transfers.mark_action_done(ref, "contact_records", "Jo", on=dt.date(2027, 1, 4))
    assert actions(ref)["contact_records"].due_on == dt.date(2027, 1, 18)
    assert actions(ref)["contact_records"].status == "open"
    assert transfer_views.status_of(ref).history[-1].event == "contact records on time"
    transfers.mark_action_done(ref, "contact_records", "Jo", on=dt.date(2027, 1, 8))  # the next, early: on time
    assert actions(ref)["contact_records"].due_on == dt.date(2027, 2, 1)
    transfers.apply_step(ref, "outcome", {"recorded_by": "Jo", "outcome": "ended"})
    assert actions(ref)["contact_records"].status == "cancelled"


def test_12_5_a_transfer_in_is_caretaken_from_allocation_until_it_completes(store_url):
    ref = raise_youth(saw_level="High")
    with pytest.raises(transfers.StepRefused) as exc:
        allocate(ref, contact_frequency_weeks=4)
    assert exc.value.field == "contact_frequency_weeks" and "12.5" in str(exc.value)
    assert "contact_records" not in actions(ref)  # refused whole: nothing stored
    allocate(ref, contact_frequency_weeks=2)
    assert transfer_views.status_of(ref).history[-1].detail.count("accepted on a caretaking basis") == 1
    check = actions(ref)["contact_records"]
    assert (check.status, check.due_on, check.owner_role) == ("open", ALLOCATED_ON + dt.timedelta(weeks=2), "transferring_pp")
    assert "contact_records" not in {t.task for t in transfers.progress(ref).to_start}  # reminded, not a waiting task
    transfers.mark_action_done(ref, "contact_records", "Jo", on=dt.date(2027, 1, 5))
    assert actions(ref)["contact_records"].due_on == ALLOCATED_ON + dt.timedelta(weeks=4)
    assert transfer_views.status_of(ref).history[-1].event == "contact records on time"
    everything_else(ref)
    transfers.apply_step(ref, "completion", {"recorded_by": "Kim TM", "responsible_officer": "CM201"})
    assert actions(ref)["contact_records"].status == "cancelled"  # responsibility has passed in full
    assert "caretaking ends" in transfer_views.status_of(ref).history[-1].detail


def test_12_8_a_contact_record_recorded_as_a_step_is_refused_and_the_check_keeps_recurring(store_url):
    ref = raise_youth()
    allocate(ref)
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "contact_records", {"recorded_by": "Jo", "done_on": "2027-01-05"})
    assert exc.value.field == "step" and f"action-done {ref} contact_records" in str(exc.value)
    check = actions(ref)["contact_records"]
    assert (check.status, check.due_on) == ("open", ALLOCATED_ON + dt.timedelta(weeks=1))


def test_12_5_a_withdrawn_transfer_in_ends_its_caretaking_checks(store_url):
    ref = raise_youth()
    allocate(ref)
    assert actions(ref)["contact_records"].status == "open"
    transfers.withdraw(ref, "The family stayed at the old address", "Jo")
    assert actions(ref)["contact_records"].status == "cancelled"


def test_12_9_parenting_orders_transfer_with_the_young_persons_order_before_completion(store_url):
    orders = [{"parent": "Mother", "lives_with_young_person": True}, {"parent": "Father", "lives_with_young_person": False}]
    ref = raise_youth(parenting_orders=orders)
    allocate(ref)
    opened = {t.task: t.owner_role for t in transfers.progress(ref).to_start}
    assert opened["parenting_order_transfer"] == opened["parenting_order_papers"] == "transferring_pp"
    everything_else(ref)
    completion = {"recorded_by": "Kim TM", "responsible_officer": "CM201"}
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "completion", completion)
    assert "(parenting_order_transfer)" in str(exc.value) and "(parenting_order_papers)" in str(exc.value)
    transfers.apply_step(ref, "parenting_order_transfer", {"recorded_by": "Sam", "notes": "Both orders to Manchester (12.10)"})
    transfers.apply_step(ref, "parenting_order_papers", {"recorded_by": "Sam"})
    transfers.apply_step(ref, "parenting_orders_both", {"recorded_by": "Kim TM"})
    assert transfers.apply_step(ref, "completion", completion) == "completed"
