"""The youth justice profile in the store on SQLite and PostgreSQL: a handover that did not
transfer the case, stays for missing information, actions required before a step, internal
transfers. The adult profile, raised beside it, keeps its own rules."""

import datetime as dt

import pytest
from conftest import TODAY, demo_form, pin_today
from sqlalchemy import select

from tasks.domain import transfer_views, transfers
from tasks.domain.form import FormError, parse_form
from tasks.store.models import Nsi, StepRecord
from tasks.store.unit_of_work import UnitOfWork

ALLOCATION = {"recorded_by": "Kim TM", "case_manager": "CM202", "team_code": "N50CAD"}
YOUTH_FIELDS = {"saw_level": "Low", "gender_identity": "Boy or young man"}
MISSED = {"recorded_by": "Sam", "held_on": "2027-01-04", "pop_attended": False}
NOT_HELD = {"recorded_by": "Sam", "held_on": "2027-01-05", "held": False}
HELD = {"recorded_by": "Sam", "held_on": "2027-01-06", "pop_attended": True}
COMPLETION = {"recorded_by": "Kim TM", "responsible_officer": "Pat Receiver", "completed_on": None}
STAY = {"recorded_by": "Kim TM", "outcome": "stay", "reasons": ["Missing information"], "evidence": "No AssetPlus since June"}


@pytest.fixture(autouse=True)
def _meetings_already_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transfers raised on TODAY; the meetings below are recorded once held, in January."""
    pin_today(monkeypatch, dt.date(2027, 1, 8))


def raise_transfer(profile: str, key: str = "ct-1", **changes) -> str:
    changes.setdefault("raised_on", TODAY.isoformat())
    if profile == "youth":
        changes = {**YOUTH_FIELDS, **changes}
    return transfers.register_nsi(parse_form(demo_form(**changes)), key, profile=profile)


def events(ref: str) -> list[str]:
    return [h.event for h in transfer_views.status_of(ref).history]


def allocated(ref: str) -> None:
    transfers.apply_step(ref, "allocation", ALLOCATION)


def test_the_nsi_keeps_the_profile_it_was_raised_under(store_url):
    youth, adult = raise_transfer("youth", "y"), raise_transfer("adult", "a", crn="A000002")
    assert transfer_views.policy_of(youth).profile == "youth" and transfer_views.policy_of(adult).profile == "adult"
    assert "transfer_in_summary" in {a.code for a in transfer_views.status_of(youth).actions}
    assert "transfer_in_summary" not in {a.code for a in transfer_views.status_of(adult).actions}


def test_a_youth_meeting_the_young_person_missed_is_recorded_but_does_not_transfer_the_case(store_url, sequential_shape):
    ref = raise_transfer("youth")
    allocated(ref)
    transfers.mark_waiting(ref, "handover")
    transfers.apply_step(ref, "handover", MISSED, attempt=0)
    transfers.apply_step(ref, "handover", MISSED, attempt=0)  # a re-run: stored once
    assert "handover" not in transfer_views.recorded_steps(ref)
    assert transfer_views.nsi_status(ref) == ("awaiting_handover", "handover")
    assert transfer_views.step_attempts(ref, "handover") == 1 and transfer_views.rejected_attempts(ref, "handover") == 0
    event, detail = transfer_views.last_attempt(ref, "handover") or ("", "")
    assert event == "not transferred" and "the young person did not attend" in detail and "has not transferred" in detail
    transfers.apply_step(ref, "handover", NOT_HELD, attempt=1)
    assert events(ref).count("not transferred") == 2
    assert next(a for a in transfer_views.status_of(ref).actions if a.code == "three_way_handover").status == "open"
    transfers.apply_step(ref, "handover", HELD, attempt=2)
    assert transfer_views.recorded_steps(ref)["handover"]["held_on"] == "2027-01-06"
    detail = [h.detail for h in transfer_views.status_of(ref).history if h.event == "handover"][0]
    assert "formal transfer date" in detail


def test_youth_completion_needs_a_valid_meeting_and_dates_from_it(store_url, sequential_shape):
    ref = raise_transfer("youth")
    allocated(ref)
    transfers.mark_action_done(ref, "enforcement_complete", "Sam")
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "completion", COMPLETION)
    assert "has not transferred" in str(exc.value) and "transferring team keeps case management" in str(exc.value)
    transfers.apply_step(ref, "handover", MISSED)
    with pytest.raises(transfers.StepRefused):
        transfers.apply_step(ref, "completion", COMPLETION)
    transfers.apply_step(ref, "handover", HELD, attempt=1)
    assert transfers.apply_step(ref, "completion", COMPLETION) == "completed"
    with UnitOfWork() as uow:
        assert uow.session.scalars(select(Nsi.closed_on).where(Nsi.reference == ref)).one() == dt.date(2027, 1, 6)


def test_youth_enforcement_is_done_before_completion(store_url, sequential_shape):
    ref = raise_transfer("youth")
    allocated(ref)
    transfers.apply_step(ref, "handover", HELD)
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.check_answer(ref, "completion", COMPLETION)
    assert "enforcement_complete" in str(exc.value) and "action-done" in str(exc.value)
    transfers.mark_action_done(ref, "enforcement_complete", "Sam")
    assert transfers.apply_step(ref, "completion", COMPLETION) == "completed"


def test_the_adult_handover_is_recorded_as_given(store_url, sequential_shape):
    ref = raise_transfer("adult")
    transfers.apply_step(ref, "handover", MISSED)
    assert "handover" in transfer_views.recorded_steps(ref) and "not transferred" not in events(ref)
    assert transfers.apply_step(ref, "completion", COMPLETION) == "completed"


def test_a_youth_request_stayed_for_missing_information_goes_back_and_waits(store_url, sequential_shape):
    ref = raise_transfer("youth")
    transfers.mark_waiting(ref, "decision")
    transfers.apply_step(ref, "decision", STAY)
    assert "decision" not in transfer_views.recorded_steps(ref) and transfer_views.nsi_status(ref)[0] == "awaiting_decision"
    event, detail = transfer_views.last_attempt(ref, "decision") or ("", "")
    assert event == "stayed" and "Sent back to Sam Practitioner (N07515)" in detail and "No AssetPlus" in detail
    transfers.apply_step(ref, "decision", {"recorded_by": "Kim TM", "outcome": "accept"}, attempt=1)
    assert transfer_views.recorded_steps(ref)["decision"]["outcome"] == "accept"
    codes = {a.code: a.status for a in transfer_views.status_of(ref).actions}
    assert codes["decision"] == codes["confirm_supervision"] == "done"


def test_a_youth_refusal_for_poor_assessments_closes_with_the_reasons_sent_back(store_url, sequential_shape):
    ref = raise_transfer("youth")
    refusal = {
        "recorded_by": "Kim",
        "outcome": "refuse",
        "reasons": ["Assessments not of sufficient quality"],
        "evidence": "Stale",
    }
    assert transfers.apply_step(ref, "decision", refusal) == "refused"
    detail = next(h.detail for h in transfer_views.status_of(ref).history if h.event == "decision")
    assert "Assessments not of sufficient quality" in detail and "sent back to Sam Practitioner" in detail


def test_an_adult_stay_is_refused_and_nothing_is_stored(store_url):
    ref = raise_transfer("adult")
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "decision", STAY)
    assert exc.value.field == "outcome"
    assert transfer_views.step_attempts(ref, "decision") == 0 and events(ref) == ["raised"]


def test_a_youth_internal_transfer_is_endorsed_then_allocated_to_another_team(store_url, sequential_shape):
    ref = raise_transfer("youth", proposed_postcode="DA6 8DS", internal_transfer=True)
    view = transfer_views.status_of(ref)
    assert view.receiving.startswith("Greenwich and Bexley") and "internal transfer" in view.history[0].detail
    answer = {"recorded_by": "Kim TM", "case_manager": "CM201", "team_code": "N07518"}
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "allocation", answer)
    assert "internal_transfer_endorsement" in str(exc.value)
    transfers.mark_action_done(ref, "internal_transfer_endorsement", "Alex Senior")
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "allocation", {**answer, "team_code": "N07515"})
    assert exc.value.field == "team_code" and "transferring team" in str(exc.value)
    transfers.apply_step(ref, "allocation", answer)
    assert transfer_views.status_of(ref).receiving.endswith("(N07518)")


def test_an_adult_internal_transfer_is_refused_and_nothing_is_stored(store_url):
    with pytest.raises(FormError) as exc:
        raise_transfer("adult", proposed_postcode="DA6 8DS", internal_transfer=True)
    assert "internal move" in str(exc.value)
    with UnitOfWork() as uow:
        assert uow.session.scalars(select(Nsi.id)).all() == []
        assert uow.session.scalars(select(StepRecord.id)).all() == []
