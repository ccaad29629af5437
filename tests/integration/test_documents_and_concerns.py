"""What the form and the checks say drives the work (issue 26, items 1, 2 and 7), in the store on
SQLite and PostgreSQL: the documents checklist chased item by item on both sides, a digest that
names what is still missing, the Compliance sheet's measure per item, and checks with concerns
holding completion until the receiving SPO decides. No Prefect: `apply_step` is what a task's run
calls with the answer, `progress` what the transfer's run calls when it wakes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TODAY, demo_form
from openpyxl import load_workbook
from support.smtp import FROM_PDU, TO_PDU, SmtpServer, mailbox, parts, smtp_on_loopback

from tasks.domain import transfer_views, transfers
from tasks.domain.form import FormError, parse_form
from tasks.notify import digests
from tasks.reports.tracker import run_tracker

RAISED = dt.date(2026, 12, 14)  # documents due 10 days after: 24 December
ALLOCATION = {"recorded_by": "Kim SPO", "practitioner": "Pat Receiver", "team_code": "N50CAD", "done_on": "2026-12-15"}
# The demo form's checklist: the assessment, the supervision plan, the order or licence, the contact log.
CHECKLIST = ["assessment", "supervision_plan", "order_or_licence", "contact_log"]


def raise_transfer(key: str = "ct-1", **changes: object) -> str:
    changes.setdefault("raised_on", RAISED.isoformat())
    return transfers.register_nsi(parse_form(demo_form(**changes)), key, placement=transfers.Placement(TO_PDU))


def record(ref: str, task: str, **answer: object) -> str:
    """Checked and put in its form's shape as the command line does, then recorded as the task's run does."""
    checked = transfers.prepare_answer(ref, task, {"recorded_by": "Someone", **answer})
    return transfers.apply_step(ref, task, checked.answer)


def lines(ref: str, prefix: str) -> dict[str, transfer_views.ActionView]:
    return {a.code.split(":")[1]: a for a in transfer_views.status_of(ref).actions if a.code.startswith(f"{prefix}:")}


def action(ref: str, code: str) -> transfer_views.ActionView:
    return next(a for a in transfer_views.status_of(ref).actions if a.code == code)


def opened(ref: str) -> set[str]:
    started = transfers.progress(ref).to_start
    for t in started:
        transfers.task_started(ref, t.task, t.round, f"run-{t.task}-{t.round}")
    return {t.task for t in started}


# --- documents item by item ------------------------------------------------------------------------


def test_each_item_the_form_marks_is_a_line_sent_by_the_transferring_side_and_received_by_the_receiving_side(store_url):
    ref = raise_transfer()
    sent, received = lines(ref, "sent"), lines(ref, "received")
    assert sorted(sent) == sorted(received) == sorted(CHECKLIST)  # mappa_notes and the rest are not marked: no line
    documents = action(ref, "documents")
    assert {a.due_on for a in [*sent.values(), *received.values()]} == {documents.due_on} == {dt.date(2026, 12, 24)}
    assert {a.owner_role for a in sent.values()} == {"transferring_pp"} and {a.owner_role for a in received.values()} == {"admin"}
    assert sent["contact_log"].title == "Send the contact log" and received["assessment"].title == "Receive the assessment"
    assert "documents_sent" in opened(ref)  # the sending side's own work: open before allocation


def test_a_form_marking_no_documents_has_no_lines_and_no_sending_task(store_url):
    ref = raise_transfer(documents={})
    assert lines(ref, "sent") == lines(ref, "received") == {}
    assert "documents_sent" not in {a.code for a in transfer_views.status_of(ref).actions}
    record(ref, "allocation", **ALLOCATION)
    record(ref, "documents")  # done as any other action
    assert action(ref, "documents").status == "done"


def test_two_items_received_at_once_are_dated_and_the_task_stays_open_naming_the_rest(store_url):
    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    record(ref, "documents", received="assessment,contact_log", done_on="2026-12-17")  # as typed after --received
    received, sent = lines(ref, "received"), lines(ref, "sent")
    assert {i: (a.status, a.done_on) for i, a in received.items() if a.status == "done"} == {
        "assessment": ("done", dt.date(2026, 12, 17)), "contact_log": ("done", dt.date(2026, 12, 17))
    }  # fmt: skip
    assert sent["assessment"].status == "done" and sent["supervision_plan"].status == "open"  # received counts as sent
    assert action(ref, "documents").status == "open" and "documents" not in transfer_views.recorded_steps(ref)
    event, detail = transfer_views.last_attempt(ref, "documents") or ("", "")
    assert event == "documents received in part"
    assert detail == (
        "received: the assessment, the contact log; still missing: the supervision plan, the copy of the order or licence"
    )
    # The rest, by their other names too; every item in, the action is done and the step recorded.
    record(ref, "documents", received=["supervision_plan", "order_copy"], done_on="2026-12-18")
    assert action(ref, "documents").status == "done" and action(ref, "documents").done_on == dt.date(2026, 12, 18)
    assert action(ref, "documents_sent").status == "done"  # all received: all sent
    assert "documents" in transfer_views.recorded_steps(ref)


def test_the_sending_side_records_its_items_and_is_done_when_all_are_sent(store_url):
    ref = raise_transfer()
    record(ref, "documents_sent", sent=["assessment", "supervision_plan", "order_or_licence"])
    assert action(ref, "documents_sent").status == "open" and lines(ref, "received")["assessment"].status == "open"
    record(ref, "documents_sent", sent=["contact_log"])
    assert action(ref, "documents_sent").status == "done" and action(ref, "documents").status == "open"


def test_an_item_not_on_the_checklist_is_refused_naming_the_field_and_nothing_is_stored(store_url):
    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    with pytest.raises(transfers.StepRefused) as exc:
        record(ref, "documents", received=["assessment", "mappa_notes"])
    assert exc.value.field == "received" and "mappa_notes is not on" in str(exc.value) and "assessment" in str(exc.value)
    assert lines(ref, "received")["assessment"].status == "open"


def test_action_done_on_the_documents_takes_every_item_still_missing(store_url):
    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    record(ref, "documents", received=["assessment"])
    transfers.mark_action_done(ref, "documents", "Admin A", dt.date(2026, 12, 18))
    assert {a.status for a in lines(ref, "received").values()} == {"done"} == {a.status for a in lines(ref, "sent").values()}
    assert lines(ref, "received")["assessment"].done_on == TODAY and lines(ref, "received")["contact_log"].done_on == dt.date(2026, 12, 18)
    assert action(ref, "documents_sent").status == "done"


@pytest.fixture
def smtp(real_mailboxes: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    with smtp_on_loopback(monkeypatch) as server:
        yield server


def test_a_digest_names_the_documents_still_missing_the_morning_after_two_were_received(smtp: SmtpServer):
    ref = raise_transfer(transferring_team_code="N07515")
    record(ref, "allocation", **ALLOCATION)
    record(ref, "documents", received=["assessment", "contact_log"])
    digests.run_reminders(dt.date(2026, 12, 22))  # the documents are due on the 24th: in the warning window
    text, html = parts(smtp.inbox.to(mailbox(TO_PDU))[-1])
    assert (
        "Receive the documents from the transferring area: still missing the supervision plan, the copy of the order or licence"
        in text
    )
    assert "Receive the assessment" not in text and "Receive the supervision plan" not in text  # one line, not one per item
    assert "still missing the supervision plan" in html
    text, _ = parts(smtp.inbox.to(mailbox(FROM_PDU))[-1])
    assert "Send the documents on the checklist to the receiving area: still missing the supervision plan" in text


def test_the_compliance_sheet_gives_back_the_share_of_each_item_received_by_its_deadline(store_url, tmp_path: Path):
    """Ten transfers with the assessment on the checklist: seven received by the deadline, one
    late, two not yet (past due): 7 of 10. The supervision plan on four of them: one on time."""
    for i in range(10):
        items = {"assessment": True, "supervision_plan": i < 4}
        ref = raise_transfer(f"ct-{i}", crn=f"P{100000 + i}", raised_on="2026-12-01", documents=items)
        record(ref, "allocation", **{**ALLOCATION, "done_on": "2026-12-02"})
        if i < 7:
            record(ref, "documents", received=["assessment", *(["supervision_plan"] if i == 0 else [])], done_on="2026-12-10")
        elif i == 7:
            record(ref, "documents", received=["assessment"], done_on="2026-12-16")  # due the 11th: late
    run_tracker(TODAY, out_dir=tmp_path / "trackers", workers=1)
    sheet = load_workbook(next((tmp_path / "trackers").iterdir()) / "national.xlsx", read_only=True)["Compliance"]
    rows = list(sheet.iter_rows(values_only=True))
    at = {h: k for k, h in enumerate(rows[0])}
    found = {
        (r[0], r[1]): (r[at["Due in period / applicable"]], r[at["Met in time"]], r[at["Share met"]])
        for r in rows[1:]
        if str(r[0]).startswith("Documents received by item")
    }
    assessment = "Documents received by item: the assessment by the deadline (2004 inspection: 49%)"
    plan = "Documents received by item: the supervision plan by the deadline (2004 inspection: 34%)"
    assert found[(assessment, "All")] == (10, 7, pytest.approx(0.7))
    assert found[(plan, "All")] == (4, 1, pytest.approx(0.25))
    assert found[(assessment, "Case transfers")] == (10, 7, pytest.approx(0.7))  # split as the other measures are
    assert found[(assessment, "Temporary moves")][:2] == (0, 0)
    mappa = "Documents received by item: the MAPPA notes by the deadline (2004 inspection: 1%)"
    assert found[(mappa, "All")][:2] == (0, 0)  # on no checklist


# --- concerns hold completion ----------------------------------------------------------------------


def all_but_the_checks(ref: str) -> None:
    record(ref, "allocation", **ALLOCATION)
    record(ref, "address_assessment", method="desktop", suitable=True)
    record(ref, "safeguarding_checks")
    record(ref, "documents")
    record(ref, "handover")


def test_police_checks_with_concerns_hold_completion_until_the_spo_decides(store_url):
    ref = raise_transfer()
    all_but_the_checks(ref)
    record(ref, "police_checks", concerns=True, returned_on="2026-12-16")
    decision = action(ref, "concerns_decision")
    assert decision.owner_role == "receiving_spo" and decision.due_on == dt.date(2026, 12, 18)  # 2 working days
    assert "concerns_decision" in opened(ref) and "completion" not in opened(ref)
    with pytest.raises(transfers.StepRefused) as exc:
        record(ref, "completion", responsible_officer="Pat Receiver")
    assert exc.value.field == "step" and "(concerns_decision)" in str(exc.value) and "Decide on the concerns raised" in str(exc.value)
    with pytest.raises(FormError) as bad:  # as the CLI and the task's form check an answer before sending it
        transfers.prepare_answer(ref, "concerns_decision", {"recorded_by": "Kim SPO", "outcome": "proceed_with_plan", "reasons": ""})
    assert [field for field, _ in bad.value.problems] == ["reasons"]
    record(ref, "concerns_decision", outcome="proceed_with_plan", reasons="Police to share a risk plan; weekly home visits", recorded_by="Kim SPO")
    history = {h.event: h for h in transfer_views.status_of(ref).history}
    assert "police checks returned with concerns" in history["concerns raised"].detail
    decided = history["concerns decided"]
    assert decided.detail == "proceed with a plan: Police to share a risk plan; weekly home visits" and decided.actor == "Kim SPO"
    assert "completion" in opened(ref)
    assert record(ref, "completion", responsible_officer="Pat Receiver") == "completed"


def test_an_unsuitable_address_opens_the_decision_and_raising_a_challenge_holds_completion_as_a_challenge(store_url):
    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    record(ref, "address_assessment", method="home_visit", suitable=False)
    assert action(ref, "concerns_decision").status == "open"
    record(ref, "concerns_decision", outcome="raise_challenge", reasons="Victim lives two streets away")
    view = transfer_views.status_of(ref)
    assert view.status == "challenged" and [c.seq for c in view.challenges if c.status == "open"] == [1]
    assert "challenge-1" in opened(ref)


def test_checks_without_concerns_and_a_suitable_address_ask_for_no_decision(store_url):
    ref = raise_transfer()
    all_but_the_checks(ref)
    record(ref, "police_checks", concerns=False)
    assert "concerns_decision" not in {a.code for a in transfer_views.status_of(ref).actions}
    assert record(ref, "completion", responsible_officer="Pat Receiver") == "completed"


def test_concerns_after_the_decision_ask_for_it_again_keeping_the_first(store_url):
    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    record(ref, "police_checks", concerns=True)
    record(ref, "concerns_decision", outcome="proceed_with_plan", reasons="Plan agreed")
    record(ref, "safeguarding_checks", concerns=True)
    assert action(ref, "concerns_decision").status == "open"
    assert "concerns_decision~1" in transfer_views.recorded_steps(ref)  # the first decision is kept
    record(ref, "concerns_decision", outcome="another_address", reasons="Children in the household")
    assert [h.detail.split(":")[0] for h in transfer_views.status_of(ref).history if h.event == "concerns decided"] == [
        "proceed with a plan", "another address"
    ]  # fmt: skip
