"""004's rules that the sequential shape alone had, on the concurrent shape, in the store on SQLite
and PostgreSQL: the review of the information received (12.4) with its stay, rejection and
re-request, the supervision requirements within 2 working days (Appendix A), co-allocation on
re-assessment (5.1) and its six-weekly reviews (5.3), the caretaking agreement confirmed by both
areas (12.7), both parents' Parenting Orders (12.10), absence and caseload (2.1), a secondary
co-worker (2.2) and AssetPlus on a transfer out (12.6). Each test is named after its rule."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from conftest import pin_today
from support.smtp import FROM_PDU, TO_PDU, SmtpServer, mailbox, parts, smtp_on_loopback
from support.youth import actions, allocate, everything_else, history, opened, raise_youth

from tasks.domain import transfer_views, transfers
from tasks.domain.form import FormError
from tasks.domain.policy import get_policy
from tasks.notify import notices

DOCUMENTS_ON = "2027-01-05"
STAY = {"recorded_by": "Kim TM", "outcome": "stay", "missing": ["asset_plus"], "reasons": "AssetPlus last updated in June",
        "done_on": "2027-01-05"}  # fmt: skip
REJECT = {"recorded_by": "Kim TM", "outcome": "reject", "reasons": "Order summary and offence details are blank"}


@pytest.fixture(autouse=True)
def _work_recorded_after_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    pin_today(monkeypatch, dt.date(2027, 1, 8))


@pytest.fixture
def smtp(real_mailboxes: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # no Prefect server: notices are sent from this process
    with smtp_on_loopback(monkeypatch) as server:
        yield server


def documents_received(ref: str, on: str = DOCUMENTS_ON) -> None:
    transfers.apply_step(ref, "documents", {"recorded_by": "Admin", "done_on": on})


def test_12_4_the_review_opens_when_the_documents_arrive_and_appendix_a_supervision_follows_in_2_working_days(store_url):
    ref = raise_youth()
    allocate(ref)
    assert "information_review" not in actions(ref) and "information_review" not in opened(ref)
    documents_received(ref)
    review = actions(ref)["information_review"]
    assert (review.due_on, review.owner_role) == (dt.date(2027, 1, 7), "receiving_spo")
    assert opened(ref)["information_review"] == "receiving_spo"
    assert "supervision_requirements" not in opened(ref)  # once the information is judged sufficient
    transfers.apply_step(ref, "information_review", {"recorded_by": "Kim TM", "outcome": "sufficient"})
    supervision = actions(ref)["supervision_requirements"]
    assert supervision.due_on == dt.date(2027, 1, 7)  # Appendix A: 2 working days from receiving all information
    assert opened(ref)["supervision_requirements"] == "receiving_spo"
    assert "enough information, of sufficient quality" in next(h.detail for h in history(ref) if h.event == "information_review")


def test_12_4_a_stay_reopens_the_documents_and_the_receiving_deadlines_stand_still_until_they_arrive(store_url):
    ref = raise_youth()
    allocate(ref)
    documents_received(ref)
    assert actions(ref)["address_assessment"].due_on == dt.date(2027, 1, 7)
    transfers.progress(ref)
    assert transfers.apply_step(ref, "information_review", STAY) == "in_progress"
    assert "information_review" not in transfer_views.recorded_steps(ref)
    documents = actions(ref)["documents"]
    assert (documents.status, documents.due_on) == ("open", dt.date(2027, 1, 7))  # due again 2 working days from the stay
    stayed = [h for h in history(ref) if h.event == "stayed"]
    assert len(stayed) == 2 and "missing asset plus: AssetPlus last updated in June" in stayed[0].detail
    assert "stand still from 2027-01-05" in stayed[1].detail
    tasks = transfers.progress(ref)
    assert "documents" in {t.task for t in tasks.to_start} and "information_review" not in {t.task for t in tasks.to_start}
    assert "information_review" not in {t.task for t in transfer_views.status_of(ref).tasks}  # its wait is cancelled
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "information_review", {"recorded_by": "Kim TM", "outcome": "sufficient"})
    assert "opens after documents" in str(exc.value)

    documents_received(ref, "2027-01-07")  # the missing AssetPlus arrives: two working days stood still
    assert actions(ref)["address_assessment"].due_on == dt.date(2027, 1, 11)
    assert actions(ref)["information_review"].due_on == dt.date(2027, 1, 11)  # due from the day it all arrived
    assert "moved on 2 working days" in history(ref)[-1].detail
    assert opened(ref)["information_review"] == "receiving_spo"  # a new round
    assert transfers.apply_step(ref, "information_review", {"recorded_by": "Kim TM", "outcome": "sufficient"}) == "in_progress"


@pytest.mark.parametrize(
    ("answer", "field"),
    [({**STAY, "missing": []}, "missing"), ({**STAY, "reasons": " "}, "reasons"), ({**REJECT, "reasons": ""}, "reasons")],
)
def test_12_4_a_stay_names_what_is_missing_and_both_give_reasons_or_nothing_is_stored(store_url, answer, field):
    ref = raise_youth()
    allocate(ref)
    documents_received(ref)
    before = len(history(ref))
    with pytest.raises((transfers.StepRefused, FormError)) as exc:
        transfers.apply_step(ref, "information_review", answer)
    assert field in str(exc.value) and "12.4" in str(exc.value)
    assert len(history(ref)) == before and actions(ref)["documents"].status == "done"


def test_12_4_a_rejection_closes_the_request_and_a_re_request_is_linked_to_it(store_url):
    ref = raise_youth()
    allocate(ref)
    documents_received(ref)
    assert transfers.apply_step(ref, "information_review", REJECT) == "refused"
    assert transfer_views.outcome_to_tell(ref) == "step:information_review"
    assert notices.event_kind("step:information_review") == "rejected"
    assert "Sent to Sam Practitioner (N07515) to address and re-request" in history(ref)[-1].detail
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.raise_dispute(ref, "It was all there", "Alex Senior")
    assert "only a refusal that upheld a challenge" in str(exc.value)

    again = raise_youth("y-2", re_request_of=ref.lower())
    assert again != ref and f"re-requests {ref}, rejected for its information (12.4)" in history(again)[0].detail
    assert history(ref)[-1].detail == f"re-requested as {again} (12.4)"


def test_12_4_only_a_request_rejected_for_its_information_is_re_requested(store_url):
    ref = raise_youth()
    with pytest.raises(transfers.StepRefused) as exc:
        raise_youth("y-2", crn="Y123457", re_request_of=ref)
    assert exc.value.field == "re_request_of" and "another young person's" in str(exc.value)
    transfers.withdraw(ref, "Not moving", "Sam")
    with pytest.raises(transfers.StepRefused) as exc:
        raise_youth("y-3", re_request_of=ref)
    assert exc.value.field == "re_request_of" and "was not rejected for its information" in str(exc.value)


def test_12_4_the_requesting_service_gets_a_stay_and_a_rejection_with_the_reasons_once(smtp: SmtpServer, store_url):
    ref = raise_youth()
    allocate(ref)
    documents_received(ref)
    transfers.apply_step(ref, "information_review", STAY)
    assert transfers.stays_to_tell(ref) == ["attempt:information_review:0"]
    notices.send_notices(ref, "attempt:information_review:0")
    msg = smtp.inbox.to(mailbox(FROM_PDU))
    assert len(msg) == 1 and smtp.inbox.to(mailbox(TO_PDU)) == []
    assert str(msg[0]["Subject"]).startswith("OFFICIAL-SENSITIVE: Transfer request stayed: send the missing information")
    text, html = parts(msg[0])
    assert "What they said: missing asset plus: AssetPlus last updated in June" in text and "AssetPlus last updated" in html
    assert notices.send_notices(ref, "attempt:information_review:0").skipped == 1  # asked again: sent once

    documents_received(ref, "2027-01-07")
    transfers.apply_step(ref, "information_review", REJECT, attempt=1)
    notices.send_notices(ref, "step:information_review")
    rejected = smtp.inbox.to(mailbox(FROM_PDU))[-1]
    text, _ = parts(rejected)
    assert "Transfer request rejected" in str(rejected["Subject"]) and "Order summary and offence details are blank" in text
    assert f"re_request_of: {ref}" in text and len(smtp.inbox.messages) == 2


def test_5_1_a_case_re_assessed_high_held_by_a_band_a_worker_opens_the_co_allocation_task(store_url):
    ref = raise_youth()
    allocate(ref, "CM101")  # Band A: allowed while Medium RoSH and Low SaW (4.1)
    assert "co_allocation" not in actions(ref)
    detail = transfers.change(ref, "risk", "Kim TM", "New intelligence", rosh="High").detail
    assert "5.1: re-assessed RoSH High, held by CM101 (Band A)" in detail
    task = actions(ref)["co_allocation"]
    assert (task.status, task.due_on) == ("open", dt.date(2027, 1, 12)) and opened(ref)["co_allocation"] == "receiving_spo"
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.apply_step(ref, "co_allocation", {"recorded_by": "Kim TM", "co_allocated_to": "CM102"})
    assert exc.value.field == "co_allocated_to" and "5.1" in str(exc.value)
    transfers.apply_step(ref, "co_allocation", {"recorded_by": "Kim TM", "co_allocated_to": "CM201"})
    assert actions(ref)["co_allocation_agreement"].due_on == dt.date(2027, 1, 13)  # 5.3: within 5 days
    assert actions(ref)["co_allocation_review"].due_on == dt.date(2027, 2, 19)  # 5.3: at least every six weeks
    assert "co_allocation_agreement" in opened(ref)


def test_5_1_a_re_assessed_saw_held_by_a_senior_worker_needs_no_co_allocation(store_url):
    ref = raise_youth()
    allocate(ref, "CM201")
    detail = transfers.change(ref, "risk", "Kim TM", "Placement breakdown", saw_level="Very High").detail
    assert "saw level Low → Very High" in detail and "5.1" not in detail and "co_allocation" not in actions(ref)
    low = raise_youth("y-2", crn="Y123458")
    allocate(low, "CM102")
    assert "SaW Very High" in transfers.change(low, "risk", "Kim TM", "Placement breakdown", saw_level="Very High").detail


def test_5_3_the_co_allocated_workers_review_at_least_every_six_weeks(store_url):
    ref = raise_youth(saw_level="Very High")
    allocate(ref, "CM102", co_allocated_to="CM201")
    review = actions(ref)["co_allocation_review"]
    assert (review.due_on, review.owner_role) == (dt.date(2027, 2, 2), "receiving_pp")
    assert "co_allocation_review" not in opened(ref)  # reminded and recorded with action-done, not a waiting task
    transfers.mark_action_done(ref, "co_allocation_review", "Pat", on=dt.date(2027, 1, 8))
    review = actions(ref)["co_allocation_review"]
    assert (review.status, review.due_on) == ("open", dt.date(2027, 3, 16))
    assert history(ref)[-1].event == "co allocation review on time"


def test_12_7_the_caretaking_agreement_is_complete_only_when_both_areas_have_confirmed_it(store_url):
    ref = raise_youth(nsi_type="temporary_move", temporary_reason="Bail placement", expected_return_date="2027-03-01")
    assert {actions(ref)[c].owner_role for c in ("caretaking_agreement_host", "caretaking_agreement_home")} == {
        "receiving_spo", "transferring_spo"}  # fmt: skip
    transfers.mark_action_done(ref, "caretaking_agreement_host", "Kim TM", on=dt.date(2027, 1, 6))
    assert not [h for h in history(ref) if h.event == "caretaking agreed"]
    transfers.mark_action_done(ref, "caretaking_agreement_home", "Alex Senior", on=dt.date(2027, 1, 7))
    agreed = [h.detail for h in history(ref) if h.event == "caretaking agreed"]
    assert agreed == ["caretaking agreement complete, confirmed in writing by both areas (12.7): host area: Kim TM on "
                      "2027-01-06; home area: Alex Senior on 2027-01-07"]  # fmt: skip


def test_12_7_a_transfer_in_completes_only_after_both_areas_confirm_the_agreement(store_url):
    ref = raise_youth()
    allocate(ref)
    assert opened(ref)["caretaking_agreement_home"] == "transferring_spo"
    everything_else(ref)
    assert [h.event for h in history(ref)].count("caretaking agreed") == 1


def test_12_10_both_parents_orders_move_to_the_area_where_the_young_person_lives(store_url):
    orders = [{"parent": "Mother", "lives_with_young_person": True}, {"parent": "Father", "lives_with_young_person": False}]
    ref = raise_youth(parenting_orders=orders)
    allocate(ref)
    both = actions(ref)["parenting_orders_both"]
    assert both.owner_role == "receiving_spo" and "parenting_orders_who_decides" not in actions(ref)
    assert opened(ref)["parenting_orders_both"] == "receiving_spo"  # the receiving area takes both over
    assert "parenting_orders_both" in get_policy("youth").completion_requires


def test_12_10_a_young_person_living_with_neither_parent_named_gets_a_task_saying_who_decides(store_url):
    orders = [{"parent": "Mother", "lives_with_young_person": False}, {"parent": "Father", "lives_with_young_person": False}]
    ref = raise_youth(parenting_orders=orders)
    allocate(ref)
    task = actions(ref)["parenting_orders_who_decides"]
    assert "parenting_orders_both" not in actions(ref)
    assert "Team Managers of both areas decide" in task.title and "not agreed: the Service Manager" in task.title
    one = raise_youth("y-2", crn="Y123459", parenting_orders=[{"parent": "Mother", "lives_with_young_person": True}])
    allocate(one)
    assert not {"parenting_orders_both", "parenting_orders_who_decides"} & set(actions(one))


def test_2_1_nobody_absent_from_work_is_allocated(store_url):
    ref = raise_youth()
    with pytest.raises(transfers.StepRefused) as exc:
        allocate(ref, "CM203", done_on="2027-01-08")
    assert exc.value.field == "case_manager" and "2.1" in str(exc.value) and "absent from 2026-12-14 to 2027-01-29" in str(exc.value)
    assert "allocation" not in transfer_views.recorded_steps(ref)


def test_2_1_a_case_manager_at_the_caseload_limit_is_allocated_only_with_a_rationale(store_url):
    get_policy("youth").allocation.max_caseload = 1  # type: ignore[union-attr]
    first = raise_youth()
    allocate(first, "CM201")
    second = raise_youth("y-2", crn="Y123460")
    with pytest.raises(transfers.StepRefused) as exc:
        allocate(second, "CM201")
    assert "2.1: CM201 already holds 1 open youth cases" in str(exc.value)
    with pytest.raises(transfers.StepRefused):
        transfers.prepare_answer(second, "allocation", {"recorded_by": "Kim TM", "case_manager": "CM201", "team_code": "N50CAD",
                                                       "contact_frequency_weeks": 1})  # fmt: skip
    allocate(second, "CM201", rationale="Knows the family; the team manager has reviewed her caseload")
    assert "rationale recorded: Knows the family" in history(second)[-1].detail


def test_2_2_a_male_secondary_co_worker_may_be_recorded_beside_the_female_case_manager(store_url):
    ref = raise_youth(gender="Female", gender_identity="Girl or young woman")
    girl = {"secondary_co_worker": "CM101"}
    with pytest.raises(transfers.StepRefused) as exc:
        allocate(ref, "CM201", **girl)
    assert exc.value.field == "secondary_reason" and "2.2" in str(exc.value)
    with pytest.raises(transfers.StepRefused) as exc:
        allocate(ref, "CM201", secondary_co_worker="CM102", secondary_reason="She asked for a role model")
    assert exc.value.field == "secondary_co_worker" and "identifies as female" in str(exc.value)
    allocate(ref, "CM201", **girl, secondary_reason="She asked for a male mentor for the football sessions")
    assert "secondary co-worker CM101 as a male role model (2.2)" in history(ref)[-1].detail  # a Band A worker: fine
    boy = raise_youth("y-2", crn="Y123461")
    with pytest.raises(transfers.StepRefused) as exc:
        allocate(boy, "CM201", secondary_co_worker="CM101", secondary_reason="Asked for it")
    assert "for a girl or young woman" in str(exc.value)


def test_12_6_a_transfer_out_opens_update_assetplus_and_the_yot_to_yot_request_due_in_one_working_day(store_url):
    ref = raise_youth()
    request = actions(ref)["asset_plus_transfer_request"]
    assert (request.due_on, request.owner_role) == (dt.date(2026, 12, 22), "transferring_pp")
    assert opened(ref)["asset_plus_transfer_request"] == "transferring_pp"  # before allocation: the home side's own work
