"""Transfers that change after they are raised (issue 25), on SQLite and PostgreSQL: a new
destination after allocation, risk raised and lowered, a clock stopped and restarted, the other
side told at once through a real SMTP server on loopback. The path is the CLI's (services), with
no Prefect server: the transfer's run is what opens the task runs, and `progress` is what it
reads when it wakes, so these tests read it as the run would."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import openpyxl
import pytest
from conftest import demo_form, pin_today
from sqlalchemy import select
from support.cli import cli
from support.smtp import FROM_PDU, TO_PDU, SmtpServer, mailbox, parts, smtp_on_loopback

import services
from tasks.calendar import get_calendar
from tasks.domain import transfer_views, transfers
from tasks.domain.decisions import RefusalReason
from tasks.domain.form import FormError, parse_form
from tasks.notify import digests
from tasks.store.models import Action, Nsi, StepRecord
from tasks.store.unit_of_work import UnitOfWork

NEW_PDU = "N50BOLT"  # Bolton: another PDU of the same region as the demo's Manchester South
BOLTON = "BL1 1RU"
ALLOCATION = {"recorded_by": "Kim SPO", "practitioner": "Pat Receiver", "team_code": "N50CAD", "done_on": "2026-12-15"}
HIGH_ROSH_ACTIONS = {"transfer_report", "full_information", "aco_involvement"}


@pytest.fixture
def smtp(real_mailboxes: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # no server: notices go from this process
    with smtp_on_loopback(monkeypatch) as server:
        yield server


def allocated(key: str = "c-1", **changes: object) -> str:
    """A concurrent-shape transfer raised on 14 December and allocated on the 15th, its tasks opened."""
    changes.setdefault("raised_on", "2026-12-14")
    ref = transfers.register_nsi(parse_form(demo_form(**changes)), key)
    transfers.apply_step(ref, "allocation", ALLOCATION)
    transfers.progress(ref)
    return ref


def actions(ref: str) -> dict[str, Action]:
    with UnitOfWork() as uow:
        nsi = uow.session.scalars(select(Nsi).where(Nsi.reference == ref)).one()
        out = {a.code: a for a in nsi.actions}
        uow.session.expunge_all()
        return out


def one(messages: list[EmailMessage]) -> EmailMessage:
    assert len(messages) == 1, [m["Subject"] for m in messages]
    return messages[0]


def digest_refs(day: dt.date) -> dict[str, str]:
    """mailbox -> the plain text of its digest for `day` (previewed: nothing sent)."""
    from tasks.notify import mail_job

    _, emails = mail_job.preview(digests.DIGESTS, day)
    out = {}
    for e in emails:
        from email import message_from_string
        from email import policy as email_policy

        msg = message_from_string(e.body, policy=email_policy.default)
        out[e.recipient] = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    return out


# ---- a new destination ----


def test_a_new_destination_after_allocation_moves_the_receiving_work_to_the_new_pdu(smtp: SmtpServer, store_url: str) -> None:
    ref = allocated(name="Jo Bloggs", crn="X123456")
    transfers.apply_step(ref, "police_checks", {"returned_on": "2026-12-16", "recorded_by": "Admin A"})
    open_before = {t.task: t for t in transfer_views.status_of(ref).tasks}
    assert {"address_assessment", "safeguarding_checks"} <= set(open_before)

    detail = services.change(ref, "destination", "Sam Practitioner", "Moving to his sister's in Bolton",
                             proposed_postcode=BOLTON, proposed_address="1 New Street, Bolton")  # fmt: skip

    view = transfer_views.status_of(ref)
    assert view.receiving.startswith("Bolton") and view.status == "awaiting_allocation"
    assert "Manchester South" in detail and "Bolton" in detail
    moved = next(h for h in view.history if h.event == "destination changed")
    assert "Manchester South (" in moved.detail and "→ Bolton (BL1 1RU)" in moved.detail
    # The old side's work stays in the history, dated; the new PDU allocates and assesses afresh.
    events = [h.event for h in view.history]
    assert events.count("to do again") == 2  # the allocation and the police checks, the two done so far
    with UnitOfWork() as uow:
        steps = set(uow.session.scalars(select(StepRecord.step)))
    assert {"allocation~1", "police_checks~1"} <= steps and "allocation" not in steps
    due = {a.code: a for a in view.actions}
    assert due["allocate"].status == "open" and due["allocate"].due_on == get_calendar("england-and-wales").add_working_days(
        dt.date(2026, 12, 21), 2
    )
    assert due["police_checks"].status == "open" and due["police_checks"].done_on is None
    # The tasks the old PDU had open are not waited for any more; the run opens allocation anew.
    progress = transfers.progress(ref)
    assert [t.task for t in progress.to_start] == ["allocation", "documents_sent"]  # the sending side's own work stays its own
    assert {t.task for t in transfer_views.status_of(ref).tasks} == {"allocation", "documents_sent"}
    with UnitOfWork() as uow:
        nsi = uow.session.scalars(select(Nsi).where(Nsi.reference == ref)).one()
        assert (nsi.receiving_pdu_code, nsi.receiving_region_code, nsi.received_on) == (NEW_PDU, "N50", dt.date(2026, 12, 21))
        assert nsi.form["proposed_postcode"] == BOLTON
    # Once each: the old PDU hears the case is no longer coming, the new one that it is.
    old = one(smtp.inbox.to(mailbox(TO_PDU)))
    new = one(smtp.inbox.to(mailbox(NEW_PDU)))
    assert "no longer coming to Manchester South" in old["Subject"]
    assert "New case transfer to Bolton" in new["Subject"]
    assert "sent to Bolton instead" in parts(old)[0] and "The time to allocate it has started" in parts(new)[0]
    services.notify(ref, moved_key(ref))
    assert len(smtp.inbox.to(mailbox(TO_PDU))) == 1 and len(smtp.inbox.to(mailbox(NEW_PDU))) == 1
    # The next digests: the new PDU's lists the allocation due; the old PDU's lists nothing of it.
    texts = digest_refs(dt.date(2026, 12, 22))
    assert ref in texts.get(mailbox(NEW_PDU), "")
    assert ref not in texts.get(mailbox(TO_PDU), "")


def test_a_new_pdu_named_moves_the_tag_of_a_task_left_open_to_the_pdu_that_now_owns_it(store_url: str) -> None:
    ref = allocated(crn="X123457")
    transfers.apply_step(ref, "police_checks", {"returned_on": "2026-12-16", "concerns": True, "recorded_by": "Admin A"})
    opened = {t.task: t for t in transfers.progress(ref).to_start}
    assert "concerns_decision" in opened and "pdu:" + TO_PDU in opened["concerns_decision"].tags
    for task, started in opened.items():
        assert transfers.task_started(ref, task, started.round, f"run-{task}")

    changed = transfers.change(ref, "destination", "Sam Practitioner", "Bolton will supervise", receiving_pdu_code=NEW_PDU)

    # The receiving side's work that does not restart (the SPO's decision on the concerns: the
    # police checks stand; the work timed from the move) stays open, Bolton's now. The work that
    # restarts for the new PDU is stopped instead; the sending side's keeps its tag.
    retagged = dict(changed.runs_to_retag)
    assert set(retagged.values()) == {f"pdu:{NEW_PDU}"}
    assert {"run-concerns_decision", "run-oasys_reassessment", "run-plan_review"} <= set(retagged), retagged
    receiving = {f"run-{t}" for t, started in opened.items() if "pdu:" + TO_PDU in started.tags}
    assert set(retagged) == receiving - set(changed.runs_to_stop)
    assert "run-address_assessment" in changed.runs_to_stop and "run-concerns_decision" not in changed.runs_to_stop


def moved_key(ref: str) -> str:
    from tasks.store.models import HistoryEntry

    with UnitOfWork() as uow:
        return next(k for k in uow.session.scalars(select(HistoryEntry.key)) if k.startswith("destination:"))


def test_the_tracker_puts_a_moved_transfer_in_its_new_region(store_url: str, tmp_path: Path) -> None:
    ref = allocated(proposed_postcode="M1 1AE", crn="X200001")  # Manchester, region N50
    services.change(ref, "destination", "Sam", "Moving to Leeds instead", proposed_postcode="LS1 4DY", proposed_address="1 Park Row")
    cli("tracker", "--out", str(tmp_path), "--as-of", "2026-12-21")
    def refs(region: str) -> set[str]:
        wb = openpyxl.load_workbook(next(tmp_path.rglob(f"{region}.xlsx")), read_only=True)
        return {str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if c}
    assert ref in refs("N55") and ref not in refs("N50")


def test_a_destination_change_that_changes_nothing_is_refused_and_nothing_is_stored(store_url: str) -> None:
    ref = allocated()
    before = transfer_views.status_of(ref)
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.change(ref, "destination", "Sam", "Same place", receiving_pdu_code="N50GMS")
    assert exc.value.field == "destination"
    assert transfer_views.status_of(ref).history == before.history


def test_a_named_pdu_must_be_a_geographic_pdu(store_url: str) -> None:
    ref = allocated()
    with pytest.raises(FormError) as exc:
        transfers.change(ref, "destination", "Sam", "Wrong", receiving_pdu_code="NOPE01")
    assert exc.value.problems[0][0] == "receiving_pdu_code"


def test_a_transfer_raised_one_step_after_another_is_told_how_to_move_instead(store_url: str, sequential_shape: None) -> None:
    ref = transfers.register_nsi(parse_form(demo_form(raised_on="2026-12-14")), "seq-1")
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.change(ref, "destination", "Sam", "Moving", proposed_postcode=BOLTON, proposed_address="1 New St")
    assert f"--supersedes {ref}" in str(exc.value)
    # Its risk and dates can still change.
    transfers.change(ref, "risk", "Sam", "Risk rose", rosh="High")
    assert HIGH_ROSH_ACTIONS <= {a.code for a in transfer_views.status_of(ref).actions if a.status == "open"}


# ---- a change of risk ----


def test_rosh_raised_to_high_after_allocation_adds_the_high_rosh_actions_due_from_the_change(store_url: str) -> None:
    ref = allocated(rosh="Medium", mappa_category=None, mappa_level=None)
    assert not HIGH_ROSH_ACTIONS & set(actions(ref))
    pin_day = dt.date(2026, 12, 21)
    detail = transfers.change(ref, "risk", "Sam Practitioner", "New intelligence", rosh="High").detail
    assert "rosh Medium → High" in detail and "added: transfer_report, full_information, aco_involvement" in detail
    got = actions(ref)
    calendar = get_calendar("england-and-wales")
    assert got["transfer_report"].due_on == pin_day
    assert got["full_information"].due_on == calendar.add_working_days(pin_day, 5)
    assert got["aco_involvement"].due_on == calendar.add_working_days(pin_day, 5)
    # Each gets its waiting task when the transfer's run reads the change.
    assert HIGH_ROSH_ACTIONS <= {t.task for t in transfers.progress(ref).to_start}
    # Lowered again: they close as no longer required, never deleted, and their tasks close.
    detail = transfers.change(ref, "risk", "Sam Practitioner", "Reassessed", rosh="Medium").detail
    assert "no longer required: transfer_report, full_information, aco_involvement" in detail
    assert {actions(ref)[c].status for c in HIGH_ROSH_ACTIONS} == {"not_required"}
    transfers.progress(ref)
    assert not HIGH_ROSH_ACTIONS & {t.task for t in transfer_views.status_of(ref).tasks}
    # Raised once more: the same lines reopen.
    transfers.change(ref, "risk", "Sam Practitioner", "Raised again", rosh="Very High")
    assert {actions(ref)[c].status for c in HIGH_ROSH_ACTIONS} == {"open"}


def test_a_mappa_level_set_after_raising_adds_the_mappa_actions(store_url: str) -> None:
    ref = allocated(rosh="Medium", mappa_category=None, mappa_level=None)
    transfers.change(ref, "risk", "Sam", "MAPPA meeting", mappa_category=2, mappa_level=2)
    assert {"mappa_endorsement", "mappa_brokering", "aco_involvement"} <= {c for c, a in actions(ref).items() if a.status == "open"}
    with UnitOfWork() as uow:
        nsi = uow.session.scalars(select(Nsi).where(Nsi.reference == ref)).one()
        assert (nsi.mappa_category, nsi.mappa_level) == (2, 2)


def test_a_mappa_level_without_a_category_is_refused_naming_the_field(store_url: str) -> None:
    ref = allocated(rosh="Medium", mappa_category=None, mappa_level=None)
    with pytest.raises(FormError) as exc:
        transfers.change(ref, "risk", "Sam", "MAPPA", mappa_level=2)
    assert "mappa_category" in str(exc.value)
    assert "mappa_endorsement" not in actions(ref)


# ---- new dates ----


def test_a_new_move_date_moves_the_deadlines_counted_from_the_move_and_keeps_done_ones(store_url: str) -> None:
    ref = allocated(move_date="2026-12-18")
    transfers.mark_action_done(ref, "plan_review", "Pat", dt.date(2026, 12, 18))
    transfers.change(ref, "dates", "Sam", "Release put back", move_date=dt.date(2027, 1, 11))
    got = actions(ref)
    assert got["oasys_reassessment"].due_on == dt.date(2027, 2, 8)  # 4 weeks from the new move
    assert got["plan_review"].status == "done" and got["plan_review"].done_on == dt.date(2026, 12, 18)


# ---- clock stops ----


def test_a_clock_stopped_for_ten_working_days_moves_every_open_deadline_by_ten(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = allocated()
    before = {c: a.due_on for c, a in actions(ref).items() if a.status == "open"}
    due_before = transfer_views.status_of(ref).due_on
    pin_today(monkeypatch, dt.date(2026, 12, 16))
    transfers.change(ref, "stop_clock", "Sam", None, kind="recall", since=dt.date(2026, 12, 16), note="Recalled")
    assert transfer_views.status_of(ref).clock_stopped == "clock stopped (recalled to custody) since 16 Dec 2026"
    calendar = get_calendar("england-and-wales")
    back = calendar.add_working_days(dt.date(2026, 12, 16), 10)
    pin_today(monkeypatch, back)
    transfers.change(ref, "restart_clock", "Sam", None, on=back)
    after = actions(ref)
    assert {c: after[c].due_on for c in before} == {c: calendar.add_working_days(d, 10) for c, d in before.items()}
    assert transfer_views.status_of(ref).due_on == calendar.add_working_days(due_before, 10)
    with UnitOfWork() as uow:
        nsi = uow.session.scalars(select(Nsi).where(Nsi.reference == ref)).one()
        assert (nsi.clock_stopped_on, nsi.clock_stopped_days, nsi.clock_stops) == (None, 10, 1)


def test_no_reminder_or_escalation_is_sent_for_a_transfer_whose_clock_is_stopped(
    smtp: SmtpServer, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped, running = allocated("c-1", crn="X300001"), allocated("c-2", crn="X300002")
    pin_today(monkeypatch, dt.date(2026, 12, 16))
    services.change(stopped, "stop_clock", "Sam", None, kind="custody", since=dt.date(2026, 12, 16))
    told = smtp.inbox.to(mailbox(TO_PDU))
    assert any("clock stopped" in m["Subject"].lower() for m in told)
    # Every working morning for three weeks: the running transfer is reminded and escalated,
    # the stopped one never, though its actions fall due and overdue meanwhile.
    calendar = get_calendar("england-and-wales")
    day = dt.date(2026, 12, 17)
    while day <= dt.date(2027, 1, 8):
        if calendar.is_working_day(day):
            pin_today(monkeypatch, day)
            digests.run_reminders(day)
        day += dt.timedelta(days=1)
    digest_texts = [parts(m)[0] for _, m in smtp.inbox.messages if "clock stopped" not in m["Subject"].lower()]
    assert any(running in t for t in digest_texts)
    stopped_in = [t for t in digest_texts if stopped in t]
    assert stopped_in, "the stopped transfer is listed as stopped in its PDUs' digests"
    for text in stopped_in:
        # Listed once, under the clock stop: never as an action due or overdue.
        assert text.count(stopped) == 1 and "Clock stopped (in custody) since 16 Dec 2026" in text
    assert all(a.escalated_on is None for a in actions(stopped).values())
    assert any(a.escalated_on is not None for a in actions(running).values())
    with UnitOfWork() as uow:
        from tasks.store.models import HistoryEntry

        keys = set(uow.session.scalars(select(HistoryEntry.key).join(Nsi).where(Nsi.reference == stopped)))
    assert not any(k.startswith("escalated:") for k in keys)


def test_a_clock_stop_reason_outside_config_is_refused_naming_the_field(store_url: str) -> None:
    ref = allocated()
    with pytest.raises(transfers.StepRefused) as exc:
        transfers.change(ref, "stop_clock", "Sam", None, kind="holiday", since=dt.date(2026, 12, 16))
    assert exc.value.field == "kind" and "custody" in str(exc.value)


# ---- the other side told at once ----


def test_a_refusal_reaches_the_transferring_spo_naming_the_dispute_deadline(smtp: SmtpServer, store_url: str) -> None:
    ref = allocated(name="Jo Bloggs")
    transfers.raise_challenge(ref, "Victim lives two streets away", "Pat Receiver", "receiving_pp")
    transfers.apply_step(ref, "challenge-1", {"outcome": "uphold", "reasons": [RefusalReason.risk_unmanageable.value],
                                              "evidence": "Victim address confirmed by police", "recorded_by": "Kim SPO"})  # fmt: skip
    assert transfer_views.nsi_status(ref)[0] == "refused"
    services.notify(ref, transfer_views.outcome_to_tell(ref) or "")
    msg = one(smtp.inbox.to(mailbox(FROM_PDU)))
    dispute_by = get_calendar("england-and-wales").add_working_days(dt.date(2026, 12, 21), 5)
    assert f"dispute by {dispute_by:%A} {dispute_by.day} {dispute_by:%B %Y}" in msg["Subject"]
    assert "can dispute the refusal until" in parts(msg)[0]


def test_a_withdrawal_and_a_completion_are_told_to_the_other_side(smtp: SmtpServer, store_url: str) -> None:
    ref = allocated("w-1", crn="X400001")
    services.withdraw(ref, "No longer moving", "Sam Practitioner")
    assert "Transfer withdrawn" in one(smtp.inbox.to(mailbox(TO_PDU)))["Subject"]
    assert transfer_views.outcome_to_tell(ref) is None


def test_amend_on_the_command_line_refuses_two_kinds_at_once_and_an_unknown_reference(store_url: str) -> None:
    ref = allocated()
    mixed = cli("amend", ref, "--rosh", "High", "--move-date", "2027-01-04", "--reason", "x", check=False)
    assert mixed.returncode == 2 and "one kind of change at a time" in mixed.stderr
    assert cli("amend", "CT999999", "--rosh", "High", "--reason", "x", check=False).returncode == 3
    done = cli("amend", ref, "--rosh", "high", "--reason", "New intelligence", "--by", "Sam")
    assert "added: transfer_report" in done.stdout
    status = cli("status", ref).stdout
    assert "risk changed" in status


def test_the_tracker_says_a_clock_is_stopped_and_counts_no_days_overdue_after_the_stop(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = allocated(crn="X500001")
    transfers.change(ref, "stop_clock", "Sam", None, kind="recall", since=dt.date(2026, 12, 16))
    for as_of in ("2027-01-20", "2027-02-20"):
        cli("tracker", "--out", str(tmp_path / as_of), "--as-of", as_of, "--region", "N50")
        ws = openpyxl.load_workbook(next((tmp_path / as_of).rglob("N50.xlsx")), read_only=True)["Transfers"]
        rows = list(ws.iter_rows(values_only=True))
        header = next(r for r in rows if r and "Reference" in r)
        row = dict(zip(header, next(r for r in rows if r and ref in r), strict=False))
        assert row["Clock"] == "Stopped (recalled to custody) since 16/12/2026"
        # Allocated on the 15th, the address assessment fell due after the stop: nothing is overdue.
        assert row["Days overdue (working)"] in (None, 0, "")


def test_a_sentence_that_ends_before_the_transfer_is_put_to_both_spos_every_morning(store_url: str) -> None:
    ref = allocated(crn="X600001", sentence_end_date="2027-01-05")  # the transfer is due on 12 January 2027
    texts = digest_refs(dt.date(2026, 12, 22))
    for pdu in (FROM_PDU, TO_PDU):
        text = texts[mailbox(pdu)]
        assert ref in text and "The sentence or licence ends on 05 January 2027" in text
    assert transfer_views.nsi_status(ref)[0] != "withdrawn"  # asked, never closed
    later = allocated("c-9", crn="X600002", sentence_end_date="2027-06-30")
    assert later and "30 June 2027" not in "".join(digest_refs(dt.date(2026, 12, 22)).values())


def test_a_clock_stopped_past_the_review_limit_asks_both_spos_whether_it_continues(store_url: str) -> None:
    ref = allocated(crn="X700001")
    transfers.change(ref, "stop_clock", "Sam", None, kind="hospital", since=dt.date(2026, 12, 16))
    soon, later = digest_refs(dt.date(2026, 12, 22)), digest_refs(dt.date(2027, 2, 1))
    assert "decide whether the transfer continues" not in soon[mailbox(TO_PDU)]
    for pdu in (FROM_PDU, TO_PDU):
        assert f"continues (casetransfer restart-clock {ref}) or is withdrawn" in later[mailbox(pdu)].replace("\n", " ")
