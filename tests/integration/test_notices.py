"""Notices sent at once (issue 16), through a real SMTP server on loopback: an escalation reaches
both sides' SPOs once, before any nightly run; a challenge and a dispute reach the receiving PDU;
a transfer arriving reaches the receiving PDU; a limited access case shows its CRN only. The path
is the CLI's (services): with no Prefect server up, the notice is sent from the caller's
process, by the same delivery and sent-log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import demo_form, pin_today
from sqlalchemy import select
from support.smtp import FROM_PDU, TO_PDU, SmtpServer, free_port, mailbox, parts, section, smtp_on_loopback

import services
from tasks.domain import transfers
from tasks.domain.form import parse_form
from tasks.notify import digests, notices
from tasks.notify.email import day_date
from tasks.notify.mail_job import NotDelivered
from tasks.settings import reset_settings
from tasks.store.models import HistoryEntry, SentEmail
from tasks.store.unit_of_work import UnitOfWork

STRONG = "Risk of harm would increase and could not be managed at the new address"
ALLOCATION = {"recorded_by": "Kim SPO", "practitioner": "Pat Receiver", "team_code": "N50CAD", "done_on": "2026-12-15"}


@pytest.fixture
def smtp(real_mailboxes: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    # No Prefect server: services.notify sends from this process (as the CLI does without one).
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with smtp_on_loopback(monkeypatch) as server:
        yield server


def raise_transfer(key: str = "n-1", **changes: object) -> str:
    changes.setdefault("raised_on", "2026-12-14")
    ref = transfers.register_nsi(parse_form(demo_form(**changes)), key)
    transfers.apply_step(ref, "allocation", ALLOCATION)
    return ref


def one(messages: list[EmailMessage]) -> EmailMessage:
    assert len(messages) == 1, [m["Subject"] for m in messages]
    return messages[0]


def test_an_escalation_reaches_both_sides_spos_once_before_any_nightly_run(smtp: SmtpServer, store_url: str) -> None:
    ref = raise_transfer(name="Jo Bloggs", crn="X123456")
    assert services.escalate(ref, "No allocation news after a week", "Pat Practitioner") == 1
    with UnitOfWork() as uow:
        at = uow.session.scalars(select(HistoryEntry.at).where(HistoryEntry.key == "escalated:1")).one()
    escalated_on = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(ZoneInfo("Europe/London")).date()
    for pdu in (FROM_PDU, TO_PDU):
        msg = one(smtp.inbox.to(mailbox(pdu)))
        assert str(msg["Subject"]).strip() == f"OFFICIAL-SENSITIVE: Concern escalated: {ref} (CRN X123456)"
        text, html = parts(msg)
        # Dated by the history entry, which the wall clock stamps (a pinned "today" does not move it).
        assert f"Pat Practitioner escalated a concern about this transfer to the SPO on {day_date(escalated_on)}" in text
        assert "What they said: No allocation news after a week" in text and "No allocation news after a week" in html
        assert f"{ref}: Jo Bloggs, CRN X123456" in text
    # Asked again (a retried run, a second click): the sent-log has it; nothing more is sent.
    assert notices.send_notices(ref, "escalated:1").skipped == 2
    assert len(smtp.inbox.messages) == 2
    with UnitOfWork() as uow:
        kinds = uow.session.scalars(select(SentEmail.kind)).all()
    assert kinds == ["notice", "notice"]  # no digest: the nightly job has not run


def test_a_challenge_and_a_dispute_reach_the_receiving_pdu_when_raised(
    smtp: SmtpServer, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_today(monkeypatch, dt.date(2026, 12, 16))
    ref = raise_transfer()
    seq, _ = transfers.raise_challenge(ref, "Victim nearby", "Pat Receiver", "receiving_pp")
    services.notify(ref, f"challenge:{seq}")
    msg = one(smtp.inbox.to(mailbox(TO_PDU)))
    assert str(msg["Subject"]).strip().startswith("OFFICIAL-SENSITIVE: Challenge about risk to decide")
    assert "uphold it, with evidence of risk, or withdraw it" in parts(msg)[0]
    assert smtp.inbox.to(mailbox(FROM_PDU)) == []
    transfers.apply_step(
        ref, "challenge-1", {"recorded_by": "Kim SPO", "outcome": "uphold", "reasons": [STRONG], "evidence": "x"}
    )
    seq = transfers.raise_dispute(ref, "The victim moved away", "Jo SPO")
    services.notify(ref, f"dispute:{seq}")
    msg = smtp.inbox.to(mailbox(TO_PDU))[-1]
    assert str(msg["Subject"]).strip().startswith("OFFICIAL-SENSITIVE: Disputed refusal to settle")
    assert "The head of Manchester South needs to confirm the refusal or overturn it" in parts(msg)[0]


def test_a_transfer_that_arrives_is_notified_to_the_receiving_pdu(smtp: SmtpServer, store_url: str) -> None:
    ref = transfers.register_nsi(parse_form(demo_form(raised_on="2026-12-14")), "arrives")
    services.notify(ref, "raised")
    msg = one(smtp.inbox.to(mailbox(TO_PDU)))
    assert msg["Subject"] == f"OFFICIAL-SENSITIVE: New case transfer to Manchester South: {ref} (CRN {msg['Subject'][-8:-1]})"
    assert "The time to allocate it has started" in parts(msg)[0]
    assert smtp.inbox.to(mailbox(FROM_PDU)) == []


def test_a_limited_access_case_shows_its_crn_and_nothing_typed_about_it(smtp: SmtpServer, store_url: str) -> None:
    ref = raise_transfer(lao=True, name="Secret Person", crn="L123456")
    services.escalate(ref, "He lives at 3 Hidden Lane", "Pat Practitioner")
    for _, msg in smtp.inbox.messages:
        text, html = parts(msg)
        for part in (text, html, str(msg["Subject"])):
            assert "Secret Person" not in part and "Hidden Lane" not in part
        assert "Restricted (LAO), CRN L123456" in text


def test_smtp_down_keeps_the_escalation_and_queues_its_notice(
    real_mailboxes: None, store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CASETRANSFER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CASETRANSFER_SMTP_PORT", str(free_port()))  # nothing listens there
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    reset_settings()
    ref = raise_transfer()
    assert services.escalate(ref, "Nothing heard", "Pat Practitioner") == 1  # stored whatever SMTP does
    with UnitOfWork() as uow:
        assert sorted(uow.session.scalars(select(SentEmail.status))) == ["failed", "failed"]


def test_the_next_digest_lists_an_open_challenge_until_it_is_settled(smtp: SmtpServer, store_url: str) -> None:
    ref = raise_transfer(name="Jo Bloggs")
    seq, _ = transfers.raise_challenge(ref, "Victim nearby", "Pat Receiver", "receiving_pp")
    services.notify(ref, f"challenge:{seq}")
    digests.run_reminders(dt.date(2026, 12, 21))
    text, html = parts(smtp.inbox.to(mailbox(TO_PDU))[-1])
    waiting = section(text, "WAITING FOR A DECISION")
    assert f"{ref}: Jo Bloggs" in waiting and "Challenge 1 about risk: for the receiving SPO to uphold or withdraw" in waiting
    assert "Waiting for a decision" in html and "waiting for a decision" in smtp.inbox.to(mailbox(TO_PDU))[-1]["Subject"]
    # Settled (withdrawn): the next working day's digest no longer lists it.
    transfers.apply_step(ref, "challenge-1", {"recorded_by": "Kim SPO", "outcome": "withdraw"})
    digests.run_reminders(dt.date(2026, 12, 22))
    for msg in smtp.inbox.to(mailbox(TO_PDU))[2:]:
        assert "WAITING FOR A DECISION" not in parts(msg)[0]


def test_a_notice_smtp_refused_is_listed_in_the_other_sides_next_digest(smtp: SmtpServer, store_url: str) -> None:
    ref = raise_transfer()
    smtp.inbox.refuse.add(mailbox(TO_PDU))
    seq, _ = transfers.raise_challenge(ref, "Victim nearby", "Pat Receiver", "receiving_pp")
    assert services.notify(ref, f"challenge:{seq}").startswith("queued")  # the challenge stands; its notice waits
    with pytest.raises(NotDelivered):
        digests.run_reminders(dt.date(2026, 12, 21))  # the receiving mailbox still refuses its digest
    text, _ = parts(one(smtp.inbox.to(mailbox(FROM_PDU))))
    undelivered = section(text, "NOT DELIVERED")
    assert f"Not delivered to {mailbox(TO_PDU)}: Challenge about risk to decide: {ref}" in undelivered
    assert "Please contact them another way" in undelivered


def test_an_unknown_event_is_refused_naming_it(store_url: str) -> None:
    ref = raise_transfer()
    with pytest.raises(notices.UnknownEvent, match="has no 'challenge:9'"):
        notices.plan_notices(ref, "challenge:9")
    with pytest.raises(notices.UnknownEvent, match="has no 'withdrawn'"):
        notices.plan_notices(ref, "withdrawn")  # a kind told at once, but nothing withdrew this one
    with pytest.raises(notices.UnknownEvent, match="is not raised"):
        notices.plan_notices(ref, "step:police_checks")


@pytest.mark.prefect
def test_on_the_stack_an_escalation_is_sent_by_a_run_it_starts_once_before_any_nightly_run(prefect_stack, tmp_path: Path) -> None:
    """The CLI as people use it, against a real Prefect server and worker: `casetransfer escalate`
    starts a send-notice run, which writes both sides' notices (example mailboxes and no SMTP
    on the test stack: to the outbox, as the embedded default does)."""
    import os
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from support.cli import cli
    from support.transfers import raise_form
    from support.waits import prefect_api, wait_for

    outbox = Path(os.environ["CASETRANSFER_OUTBOX"])
    ref = raise_form(tmp_path, crn="E654321")

    def notices_about(what: str) -> list[Path]:
        return [p for p in outbox.glob("notice_*.eml") if ref in p.read_text() and what in p.read_text()]

    # The transfer's arrival, to the receiving PDU's mailbox.
    wait_for(lambda: len(notices_about("New case transfer")) == 1, 120, "the arrival's notice")
    cli("escalate", ref, "--concern", "No allocation news", "--by", "Pat Practitioner")
    wait_for(lambda: len(notices_about("Concern escalated")) == 2, 120, "both sides' escalation notices")

    def notice_runs() -> list:
        with prefect_api(prefect_stack), get_client(sync_client=True) as client:
            return client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=f"notice-{ref}")))

    # Sent by runs the events started (the arrival's and the escalation's), each completed.
    wait_for(lambda: len(runs := notice_runs()) == 2 and all(r.state and r.state.is_completed() for r in runs), 60, "runs")
    time.sleep(3)
    assert len(notices_about("Concern escalated")) == 2  # once: no second copy
    with UnitOfWork() as uow:
        assert "reminder_digest" not in set(uow.session.scalars(select(SentEmail.kind)))  # no nightly run was needed
