"""Temporary Moves in the store on SQLite and PostgreSQL: supporting, returned, ended, and
converted to a linked Case Transfer, each exactly once however often it is run."""

import datetime as dt

import pytest
from conftest import demo_form, pin_today
from sqlalchemy import func, select

from tasks.domain import conversion, transfer_views, transfers
from tasks.domain.form import parse_form
from tasks.store.models import Nsi
from tasks.store.unit_of_work import UnitOfWork

TM = {"nsi_type": "temporary_move", "temporary_reason": "Caring for a parent after surgery", "expected_return_date": "2027-02-26"}
SUPPORT = {"recorded_by": "Kim SPO", "support_contact": "Pat Receiver", "team_code": "N50CAD"}
AGREEMENT = {
    "caretaking_from": "2026-12-21",
    "receiving_responsibilities": "Appointments; updates to the home team",
    "home_responsibilities": "Planning and enforcement",
    "review_date": "2027-03-19",
}


def raise_move(key: str = "tm-1", profile: str | None = None, **changes) -> str:
    return transfers.register_nsi(parse_form(demo_form(**{**TM, **changes})), key, profile=profile)


def supported(ref: str, **answer) -> None:
    transfers.mark_waiting(ref, "support_allocation")
    transfers.apply_step(ref, "support_allocation", {**SUPPORT, **answer})
    transfers.mark_waiting(ref, "outcome", status="supporting")


def actions(ref: str) -> dict[str, transfer_views.ActionView]:
    return {a.code: a for a in transfer_views.status_of(ref).actions}


def test_a_temporary_move_keeps_the_transferring_practitioner_responsible(store_url):
    ref = raise_move()
    view = transfer_views.status_of(ref)
    assert ref == "TM000001" and view.nsi_type == "temporary_move"
    assert view.responsible_officer == "Sam Practitioner"
    assert view.due_on == dt.date(2027, 3, 21)
    assert set(actions(ref)) == {"support_contact", "full_transfer_review"}
    assert actions(ref)["full_transfer_review"].owner_role == "transferring_spo"


def test_the_support_allocation_starts_the_supporting_period(store_url):
    ref = raise_move()
    supported(ref)
    view = transfer_views.status_of(ref)
    assert (view.status, view.waiting_step) == ("supporting", "outcome")
    assert view.receiving_practitioner == "Pat Receiver" and view.responsible_officer == "Sam Practitioner"
    assert actions(ref)["support_contact"].status == "done"
    detail = next(h.detail for h in view.history if h.event == "support_allocation")
    assert "Sam Practitioner stays the responsible practitioner" in detail


def test_a_support_contact_outside_the_receiving_pdu_is_refused(store_url):
    ref = raise_move()
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "support_allocation", {**SUPPORT, "team_code": "N07515"})
    assert exc.value.field == "team_code"


def test_a_return_closes_the_move_and_opens_the_case_review(store_url, monkeypatch):
    ref = raise_move()
    supported(ref)
    pin_today(monkeypatch, dt.date(2027, 2, 1))  # the return is recorded after it happened
    status = transfers.apply_step(ref, "outcome", {"recorded_by": "Sam", "outcome": "returned", "on": "2027-01-29"})
    assert status == "returned"
    view = transfer_views.status_of(ref)
    acts = actions(ref)
    assert acts["case_review"].status == "open" and acts["case_review"].owner_role == "transferring_pp"
    assert acts["case_review"].due_on == dt.date(2027, 2, 5)
    assert acts["full_transfer_review"].status == "done"
    assert view.waiting_step is None and [h.event for h in view.history][-1] == "outcome"
    with UnitOfWork() as uow:
        assert uow.session.scalars(select(Nsi.closed_on).where(Nsi.reference == ref)).one() == dt.date(2027, 1, 29)


def test_an_ended_move_closes_with_its_open_actions_cancelled(store_url):
    ref = raise_move()
    assert transfers.apply_step(ref, "outcome", {"recorded_by": "Sam", "outcome": "ended", "notes": "Order ended"}) == "ended"
    acts = actions(ref)
    assert acts["support_contact"].status == "cancelled" and "case_review" not in acts


def test_a_conversion_registers_one_linked_case_transfer_and_closes_the_move_once(store_url):
    ref = raise_move()
    supported(ref)
    assert transfers.apply_step(ref, "outcome", {"recorded_by": "Sam", "outcome": "converted"}) == "converting"
    assert conversion.pending_conversion(ref)
    first = conversion.prepare(ref)
    again = conversion.prepare(ref)  # a re-run flow
    assert first == again and first.request_key == f"convert-{ref}"
    new = transfer_views.status_of(first.new_reference)
    assert new.nsi_type == "case_transfer" and new.parent_reference == ref and new.crn == "X123456"
    assert new.receiving.startswith("Manchester South") and new.raised_on == dt.date(2026, 12, 21)
    assert f"converted from Temporary Move {ref}" in new.history[0].detail
    assert {"allocate", "complete"} <= {a.code for a in new.actions}
    assert conversion.finish(ref, first.new_reference, "Sam") == "converted"
    assert conversion.finish(ref, first.new_reference, "Sam") == "converted"
    old = transfer_views.status_of(ref)
    assert old.converted_to == first.new_reference and not conversion.pending_conversion(ref)
    assert [h.detail for h in old.history if h.event == "converted"] == [f"converted to Case Transfer {first.new_reference}"]
    with UnitOfWork() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Nsi)) == 2


def test_a_conversion_within_the_transferring_pdu_is_refused_before_anything_is_recorded(store_url):
    ref = raise_move(proposed_postcode="DA6 8DS")
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "outcome", {"recorded_by": "Sam", "outcome": "converted"})
    assert exc.value.field == "outcome" and "internal move" in str(exc.value)
    assert "outcome" not in transfer_views.recorded_steps(ref)


def test_a_youth_support_allocation_records_the_caretaking_agreement(store_url):
    ref = raise_move(profile="youth")
    assert transfer_views.policy_of(ref).caretaking_agreement_required
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "support_allocation", SUPPORT)
    assert exc.value.field == "caretaking_from"
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "support_allocation", {**SUPPORT, **AGREEMENT, "review_date": "2027-03-22"})
    assert exc.value.field == "review_date"
    with pytest.raises(transfers.StepRefused) as exc:
        supported(ref, **AGREEMENT)
    assert exc.value.field == "contact_frequency_weeks" and "12.8" in str(exc.value)
    supported(ref, **AGREEMENT, contact_frequency_weeks=4)
    detail = next(h.detail for h in transfer_views.status_of(ref).history if h.event == "support_allocation")
    assert "caretaking agreement" in detail and "review by 2027-03-19" in detail
    assert "record of contacts every 4 weeks" in detail
    assert transfer_views.recorded_steps(ref)["support_allocation"]["home_responsibilities"] == "Planning and enforcement"


def test_a_youth_conversion_stays_youth(store_url):
    ref = raise_move(profile="youth")
    transfers.apply_step(ref, "outcome", {"recorded_by": "Sam", "outcome": "converted"})
    c = conversion.prepare(ref)
    assert c.profile == "youth" and transfer_views.status_of(c.new_reference).profile == "youth"


def test_the_full_transfer_review_reaches_the_transferring_spos_reminders_at_the_caretaking_limit(store_url):
    from tasks.calendar import get_calendar
    from tasks.notify import reminders
    from tasks.notify.outstanding import open_actions

    ref = raise_move()
    rules, calendar = reminders.load_rules(), get_calendar()

    def due(day: dt.date) -> set[tuple[str, str, str]]:
        return {(a.reference, a.code, a.owner_role) for a in open_actions(day, rules, calendar)}

    assert (ref, "full_transfer_review", "transferring_spo") not in due(dt.date(2027, 3, 1))
    assert (ref, "full_transfer_review", "transferring_spo") in due(dt.date(2027, 3, 18))
