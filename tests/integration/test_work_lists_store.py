"""Each person finds their own work, and an answer to work already done is refused at once (issue
28, item 7), in the store on SQLite and PostgreSQL, without Prefect: `progress` is what the
transfer's run reads before it opens each task's run with the tags it gives, `prepare_answer` what
`casetransfer record` checks before it sends an answer to a task's run."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from conftest import demo_form
from support.smtp import FROM_PDU, TO_PDU

from tasks.domain import transfer_views, transfers
from tasks.domain.form import parse_form
from tasks.settings import get_settings
from tasks.store.models import HistoryEntry, Nsi
from tasks.store.unit_of_work import UnitOfWork

ALLOCATION = {"recorded_by": "Kim SPO", "practitioner": "Pat Receiver", "team_code": "N50CAD", "done_on": "2026-12-15"}
CHECKLIST = "assessment,supervision_plan,order_or_licence,contact_log"  # the demo form's documents


def raise_transfer(key: str, **changes: object) -> str:
    form = demo_form(raised_on="2026-12-14", **changes)
    return transfers.register_nsi(parse_form(form), key, placement=transfers.Placement(TO_PDU))


def opened(ref: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Task -> (owner role, the tags its run is opened with); each marked started, as the transfer's run does."""
    started = transfers.progress(ref).to_start
    for t in started:
        transfers.task_started(ref, t.task, t.round, f"run-{ref}-{t.task}-{t.round}")
    return {t.task: (t.owner_role, t.tags) for t in started}


def open_tasks(ref: str) -> dict[str, tuple[str, ...]]:
    """Task -> the tags its run is opened with."""
    return {task: tags for task, (_, tags) in opened(ref).items()}


def record(ref: str, task: str, **answer: object) -> None:
    """Checked as the command line checks it, then recorded as the task's run records it."""
    transfers.apply_step(ref, task, transfers.prepare_answer(ref, task, dict(answer)).answer)


def stored(ref: str) -> tuple[list[str], list[str], dict[str, str]]:
    """Everything an answer could have written: history keys, recorded steps, action statuses."""
    with UnitOfWork() as uow:
        nsi = uow.session.query(Nsi).filter_by(reference=ref).one()
        return sorted(h.key for h in nsi.history), sorted(s.step for s in nsi.steps), {a.code: a.status for a in nsi.actions}


def recorded_at(ref: str, key: str) -> dt.datetime:
    with UnitOfWork() as uow:
        nsi_id = uow.session.query(Nsi.id).filter_by(reference=ref).scalar()
        at = uow.session.query(HistoryEntry.at).filter_by(nsi_id=nsi_id, key=key).scalar()
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(get_settings().zone)


# --- each task's run is tagged with the PDU whose people own it ---------------------------------------


def test_each_task_is_opened_tagged_with_its_owner_role_and_the_pdu_of_the_side_that_does_it(store_url):
    ref = raise_transfer("tags-1")
    at_raising = opened(ref)
    assert at_raising["allocation"][1] == ("owner:receiving_spo", f"pdu:{TO_PDU}")  # the receiving SPO allocates
    assert at_raising["documents_sent"][1] == ("owner:transferring_pp", f"pdu:{FROM_PDU}")  # the sending side's own work
    record(ref, "allocation", **ALLOCATION)
    after = opened(ref)
    assert after["documents"][1] == ("owner:admin", f"pdu:{TO_PDU}")  # the receiving area's case admin
    assert len(after) >= 4
    for task, (owner, (owner_tag, pdu_tag)) in {**at_raising, **after}.items():
        receiving = owner.startswith("receiving_") or owner == "admin"
        assert owner_tag == f"owner:{owner}" and pdu_tag == f"pdu:{TO_PDU if receiving else FROM_PDU}", task


def test_a_limited_access_case_s_tasks_carry_the_same_codes_and_nothing_about_the_person(store_url):
    lao = raise_transfer("tags-lao", lao=True, crn="L123456", name="Restricted Person")
    plain = raise_transfer("tags-plain", crn="P123456")
    assert open_tasks(lao) == open_tasks(plain)
    transfers.apply_step(lao, "allocation", ALLOCATION)
    for tags in open_tasks(lao).values():
        assert all(re.fullmatch(r"owner:[a-z_]+|pdu:[A-Z0-9]+", tag) for tag in tags), tags
        assert not any(word in " ".join(tags) for word in ("L123456", "Restricted", "Person"))


# --- an answer to a task whose work another answer has done is refused at once ------------------------


def test_documents_sent_after_every_item_was_received_is_refused_at_once_naming_who_received_them(store_url):
    ref = raise_transfer("done-1")
    open_tasks(ref)
    record(ref, "allocation", **ALLOCATION)
    record(ref, "documents", recorded_by="Admin A", received="assessment,contact_log", done_on="2026-12-16")
    # Two items still missing on the receiving side: the sending side's task is open, its answer taken.
    transfers.prepare_answer(ref, "documents_sent", {"recorded_by": "Sam Practitioner", "sent": "supervision_plan"})
    record(ref, "documents", recorded_by="Admin A", received="supervision_plan,order_or_licence", done_on="2026-12-17")
    # Every item received counts as sent: the sending side's work is done, though its task's run is
    # still waiting until the transfer's run wakes and stops it.
    assert transfer_views.task_round(ref, "documents_sent")[1] == "open"
    before = stored(ref)
    started = time.monotonic()
    with pytest.raises(transfers.StepRefused) as refused:
        transfers.prepare_answer(ref, "documents_sent", {"recorded_by": "Sam Practitioner", "sent": CHECKLIST})
    assert time.monotonic() - started < 5
    at = recorded_at(ref, "step:documents")
    assert refused.value.field == "step"
    assert str(refused.value) == (
        f"step: Send the documents on the checklist to the receiving area (documents_sent) for {ref} was already done on "
        f"17 Dec 2026: completed by Admin A (by their answer to documents; recorded {at:%H:%M:%S} on {at:%d %b %Y}); "
        "your answer was not recorded"
    )
    assert stored(ref) == before  # nothing written


def test_once_the_task_is_closed_a_later_answer_does_not_take_the_credit(store_url):
    ref = raise_transfer("done-2")
    open_tasks(ref)
    record(ref, "allocation", **ALLOCATION)
    record(ref, "documents", recorded_by="Admin A", received=CHECKLIST, done_on="2026-12-16")
    closing = transfers.progress(ref)  # the transfer's run wakes: the sending side's task is closed
    assert f"run-{ref}-documents_sent-1" in closing.to_stop
    time.sleep(1.1)  # a later answer, recorded in a later second than the task's closing
    record(ref, "police_checks", recorded_by="Someone Else", returned_on="2026-12-18")
    with pytest.raises(transfers.StepRefused, match=r"completed by Admin A \(by their answer to documents;"):
        transfers.prepare_answer(ref, "documents_sent", {"recorded_by": "Sam Practitioner"})


def test_documents_marked_done_with_action_done_refuse_the_sending_side_s_answer_naming_who_marked_them(store_url):
    ref = raise_transfer("done-3")
    open_tasks(ref)
    record(ref, "allocation", **ALLOCATION)
    transfers.mark_action_done(ref, "documents", "Case Admin", dt.date(2026, 12, 18))
    before = stored(ref)
    with pytest.raises(transfers.StepRefused) as refused:
        transfers.prepare_answer(ref, "documents_sent", {"recorded_by": "Sam Practitioner", "sent": "assessment"})
    assert "(documents_sent) for" in str(refused.value) and "was already done on 18 Dec 2026: completed by Case Admin (marked done;" in str(
        refused.value
    )
    assert stored(ref) == before
    # An action marked done itself names its own marking.
    transfers.mark_action_done(ref, "police_checks", "Admin B")
    with pytest.raises(transfers.StepRefused, match=r"\(police_checks\) for .* completed by Admin B \(marked done;"):
        transfers.prepare_answer(ref, "police_checks", {"recorded_by": "Admin A", "returned_on": "2026-12-18"})
