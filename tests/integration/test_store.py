"""The store on SQLite and PostgreSQL: raising, steps, withdrawal, history exactly once."""

import datetime as dt

import pytest
from conftest import demo_form
from sqlalchemy import func, select

from tasks.domain import transfer_views, transfers
from tasks.domain.form import FormError, parse_form
from tasks.store.models import Action, HistoryEntry, Nsi, StepRecord
from tasks.store.unit_of_work import UnitOfWork


def counts() -> tuple[int, int, int, int]:
    with UnitOfWork() as uow:
        s = uow.session
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Nsi, Action, StepRecord, HistoryEntry))  # type: ignore[return-value]


def raise_demo(key: str = "key-1", **changes) -> str:
    return transfers.register_nsi(parse_form(demo_form(**changes)), key)


def test_raising_stores_the_nsi_its_actions_and_one_history_entry(store_url):
    ref = raise_demo()
    view = transfer_views.status_of(ref)
    assert ref == "CT000001"
    assert view.receiving.startswith("Manchester South")
    assert {a.code for a in view.actions} >= {"allocate", "address_assessment", "complete"}
    assert [h.event for h in view.history] == ["raised"]


def test_the_locator_places_the_transfer_and_stores_the_distance(store_url):
    ref = raise_demo()
    with UnitOfWork() as uow:
        nsi = uow.session.scalars(select(Nsi).where(Nsi.reference == ref)).one()
        assert nsi.receiving_pdu_code == "N50GMS"
        assert nsi.receiving_region_code == "N50" and nsi.transferring_region_code == "N07"
        assert 250 < nsi.distance_km < 300


def test_raising_twice_with_the_same_key_stores_one_nsi(store_url):
    first = raise_demo("same")
    second = raise_demo("same")
    assert first == second
    assert counts()[0] == 1


def test_a_transfer_received_on_21_december_is_due_after_the_bank_holidays(store_url):
    view = transfer_views.status_of(raise_demo(raised_on="2026-12-21"))
    due = {a.code: a.due_on for a in view.actions}
    assert due["address_assessment"] == dt.date(2027, 1, 7)
    assert view.due_on == dt.date(2027, 1, 21)


def test_a_move_inside_the_same_pdu_is_refused_as_an_internal_move(store_url):
    with pytest.raises(FormError) as exc:
        raise_demo(proposed_postcode="DA6 8DS")
    assert exc.value.problems[0][0] == "proposed_postcode"
    assert "internal move" in str(exc.value)
    assert counts() == (0, 0, 0, 0)


def test_an_unknown_transferring_team_is_refused_and_nothing_is_stored(store_url):
    with pytest.raises(FormError) as exc:
        raise_demo(transferring_team_code="N07NOPE")
    assert exc.value.problems[0][0] == "transferring_team_code"
    assert counts() == (0, 0, 0, 0)


def test_a_step_recorded_twice_is_stored_once(store_url):
    ref = raise_demo()
    answer = {"recorded_by": "Kim SPO", "practitioner": "Pat", "team_code": "N50CAD"}
    transfers.mark_waiting(ref, "allocation")
    transfers.mark_waiting(ref, "allocation")
    transfers.apply_step(ref, "allocation", answer)
    before = counts()
    transfers.apply_step(ref, "allocation", answer)
    assert counts() == before
    view = transfer_views.status_of(ref)
    assert [h.event for h in view.history] == ["raised", "waiting", "allocation"]
    assert next(a for a in view.actions if a.code == "allocate").status == "done"


def test_allocation_to_a_team_outside_the_receiving_pdu_is_refused(store_url):
    ref = raise_demo()
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "allocation", {"recorded_by": "Kim", "practitioner": "Pat", "team_code": "N07515"})
    assert exc.value.field == "team_code"
    assert counts()[2] == 0


def test_a_refusal_closes_the_nsi_and_cancels_open_actions(store_url, sequential_shape):
    ref = raise_demo()
    transfers.apply_step(
        ref,
        "decision",
        {
            "recorded_by": "Kim",
            "outcome": "refuse",
            "reasons": ["Risk of harm would increase and could not be managed at the new address"],
            "evidence": "Victim nearby",
        },
    )
    view = transfer_views.status_of(ref)
    assert view.status == "refused"
    assert {a.code: a.status for a in view.actions}["decision"] == "done"
    assert {a.status for a in view.actions if a.code != "decision"} == {"cancelled"}


def test_completion_names_the_responsible_officer(store_url, sequential_shape):
    ref = raise_demo()
    transfers.apply_step(ref, "completion", {"recorded_by": "Kim", "responsible_officer": "Pat Receiver", "completed_on": None})
    view = transfer_views.status_of(ref)
    assert view.status == "completed"
    assert view.responsible_officer == "Pat Receiver"
    assert next(a for a in view.actions if a.code == "complete").status == "done"
    with pytest.raises(transfers.StepRefused):
        transfers.apply_step(ref, "handover", {"recorded_by": "Kim", "held_on": "2027-01-05"})


def test_withdrawal_at_any_step_closes_the_nsi_once(store_url):
    ref = raise_demo()
    transfers.withdraw(ref, "PoP no longer moving", "Sam")
    with pytest.raises(transfers.StepRefused):
        transfers.withdraw(ref, "again", "Sam")
    view = transfer_views.status_of(ref)
    assert view.status == "withdrawn"
    assert [h.event for h in view.history].count("withdrawn") == 1


def test_escalation_is_recorded_in_the_history(store_url):
    ref = raise_demo()
    assert transfers.escalate(ref, "No allocation after a week", "Sam") == 1
    assert transfers.escalate(ref, "Still nothing", "Sam") == 2
    assert [h.event for h in transfer_views.status_of(ref).history].count("escalated") == 2


def test_overdue_actions_are_counted_in_working_days(store_url, monkeypatch):
    ref = raise_demo()
    view = transfer_views.status_of(ref, as_of=dt.date(2026, 12, 29))
    allocate = next(a for a in view.actions if a.code == "allocate")
    assert allocate.due_on == dt.date(2026, 12, 23)
    assert allocate.days_overdue == 2  # 24 and 29 December: 25, 28 are bank holidays


def test_an_action_with_a_waiting_step_of_its_own_is_refused_naming_the_record_command(store_url, sequential_shape):
    ref = transfers.register_nsi(parse_form(demo_form()), "own-step")
    transfers.mark_waiting(ref, "allocation")
    with pytest.raises(transfers.StepRefused, match=f"casetransfer record {ref} police_checks") as refused:
        transfers.mark_action_done(ref, "police_checks", "Sam")
    assert refused.value.field == "action"
    assert next(a.status for a in transfer_views.status_of(ref).actions if a.code == "police_checks") == "open"
