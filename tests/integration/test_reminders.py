"""Reminder and escalation digests, delivered to a real SMTP server on loopback (aiosmtpd).

Transfers are raised through tasks.domain.transfers.register_nsi (the real store path) and their
Action List due dates then set to the days each test is about. Every test runs on SQLite and,
with the postgres marker, on PostgreSQL (the shared store_url fixture).
"""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import ssl
import typing
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import demo_form
from sqlalchemy import select, update
from support.smtp import FROM_PDU, TO_PDU, SmtpServer, free_port, mailbox, parts, section, smtp_on_loopback
from support.waits import prefect_api

from tasks.calendar import get_calendar
from tasks.domain import transfer_views, transfers
from tasks.domain.form import parse_form
from tasks.notify import digests, reminders
from tasks.notify.mail_job import NotDelivered, Summary
from tasks.places.locator import spoc_for
from tasks.settings import reset_settings
from tasks.store.models import Action, HistoryEntry, Nsi, SentEmail
from tasks.store.unit_of_work import UnitOfWork

FROM_TEAM = "N07515"  # BEX 1, in PDU LDNBBG
CHRISTMAS_EVE = dt.date(2026, 12, 24)  # Thursday; 25 and 28 December are bank holidays
AFTER_CHRISTMAS = dt.date(2026, 12, 29)  # Tuesday, the next working day but one


@pytest.fixture
def smtp(real_mailboxes: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    with smtp_on_loopback(monkeypatch) as server:
        yield server


# --- transfers with chosen due dates --------------------------------------------------------------


def make_transfer(key: str, due: dict[str, dt.date], *, to_pdu: str = TO_PDU, **form: Any) -> str:
    """A transfer raised for real, then given these open actions (the rest marked done)."""
    form = demo_form(raised_on="2026-12-01", transferring_team_code=FROM_TEAM, **form)
    ref = transfers.register_nsi(parse_form(form), key, placement=transfers.Placement(to_pdu))
    with UnitOfWork() as uow:
        nsi = uow.session.scalars(select(Nsi).where(Nsi.reference == ref)).one()
        missing = set(due) - {a.code for a in nsi.actions}
        assert not missing, f"the demo form has no actions {missing}"
        for a in nsi.actions:
            if a.code in due:
                a.due_on = due[a.code]
            else:
                a.status, a.done_on = "done", dt.date(2026, 12, 1)
        uow.commit()
    return ref


def run(day: dt.date) -> Summary[digests.DigestFacts]:
    return digests.run_reminders(day)


def only(messages: list[EmailMessage]) -> EmailMessage:
    assert len(messages) == 1, [m["Subject"] for m in messages]
    return messages[0]


# --- working days, not calendar days --------------------------------------------------------------


def test_warnings_and_escalations_count_working_days_across_christmas(smtp: SmtpServer) -> None:
    ref = make_transfer(
        "xmas",
        {
            "allocate": dt.date(2026, 12, 22),  # receiving SPO: 2 wd overdue on the 24th, 3 on the 29th
            "address_assessment": dt.date(2026, 12, 23),  # receiving PP: 6 calendar days but 2 wd overdue on the 29th
            "three_way_handover": dt.date(2026, 12, 30),  # transferring PP: 6 calendar days but 2 wd away on the 24th
            "documents": dt.date(2026, 12, 31),  # admin: 3 wd away on the 24th (not yet), 2 on the 29th
        },
    )
    receiving, transferring = mailbox(TO_PDU), mailbox(FROM_PDU)

    first = run(CHRISTMAS_EVE)
    assert (first.facts.recipients, first.sent, first.facts.escalated) == (2, 2, 0)
    text, _ = parts(only(smtp.inbox.to(receiving)))
    assert "Allocate to a receiving practitioner\nWas due Tuesday 22 December 2026: 2 working days overdue" in section(
        text, "OVERDUE"
    )
    assert "ESCALATED TODAY" not in text
    assert "Receive the documents" not in text  # 3 working days away: outside the 2-day window
    text, _ = parts(only(smtp.inbox.to(transferring)))
    assert "Hold the three-way handover\nDue Wednesday 30 December 2026 (in 2 working days)" in section(
        text, "DUE IN THE NEXT 2 WORKING DAYS"
    )

    assert run(dt.date(2026, 12, 28)).working_day is False  # substitute Boxing Day: nothing sent
    assert len(smtp.inbox.messages) == 2

    second = run(AFTER_CHRISTMAS)
    assert (second.facts.recipients, second.sent, second.facts.escalated) == (2, 2, 1)
    text, _ = parts(smtp.inbox.to(receiving)[-1])
    escalated, overdue = section(text, "ESCALATED TODAY"), section(text, "OVERDUE")
    assert "Allocate to a receiving practitioner\nWas due Tuesday 22 December 2026: 3 working days overdue" in escalated
    assert "Complete the address assessment\nWas due Wednesday 23 December 2026: 2 working days overdue" in overdue
    assert "Receive the documents from the transferring area\nDue Thursday 31 December 2026 (in 2 working days)" in text
    # The escalation also goes to the other side, to chase.
    text, _ = parts(smtp.inbox.to(transferring)[-1])
    assert "For the other area to do" in section(text, "ESCALATED TODAY")
    assert "Allocate to a receiving practitioner" in section(text, "ESCALATED TODAY")
    assert "Complete the address assessment" not in text  # overdue, not escalated: the receiving side's business

    with UnitOfWork() as uow:
        actions = {a.code: a for a in uow.session.scalars(select(Action).join(Nsi).where(Nsi.reference == ref))}
        assert actions["allocate"].escalated_on == AFTER_CHRISTMAS
        assert actions["address_assessment"].escalated_on is None
    history = [h for h in transfer_views.status_of(ref).history if h.event == "escalated"]
    assert len(history) == 1 and "Allocate to a receiving practitioner: 3 working days overdue" in history[0].detail

    # The next day: allocation stays overdue for its owner, marked escalated, and is not sent to
    # the other side again; the address assessment reaches 3 working days and is escalated.
    third = run(dt.date(2026, 12, 30))
    assert third.facts.escalated == 1
    text, _ = parts(smtp.inbox.to(receiving)[-1])
    assert "3 working days overdue (escalated 29 December 2026)" not in section(text, "ESCALATED TODAY")
    assert "Was due Tuesday 22 December 2026: 4 working days overdue (escalated 29 December 2026)" in section(text, "OVERDUE")
    assert "Complete the address assessment" in section(text, "ESCALATED TODAY")
    text, _ = parts(smtp.inbox.to(transferring)[-1])
    assert "Allocate to a receiving practitioner" not in text
    assert len([h for h in transfer_views.status_of(ref).history if h.event == "escalated"]) == 2


# --- exactly once ---------------------------------------------------------------------------------


def test_a_second_run_on_the_same_day_sends_nothing_and_records_nothing(smtp: SmtpServer) -> None:
    make_transfer("again", {"allocate": dt.date(2026, 12, 17), "three_way_handover": CHRISTMAS_EVE})
    first = run(CHRISTMAS_EVE)
    assert (first.sent, first.facts.escalated) == (2, 1)
    again = run(CHRISTMAS_EVE)
    assert (again.sent, again.skipped, again.facts.escalated, again.failed) == (0, 2, 0, 0)
    assert len(smtp.inbox.messages) == 2
    with UnitOfWork() as uow:
        assert uow.session.scalar(select(HistoryEntry.id).where(HistoryEntry.key == "escalated:allocate")) is not None
        assert len(uow.session.scalars(select(HistoryEntry).where(HistoryEntry.event == "escalated")).all()) == 1


def _five_transfers() -> list[str]:
    """Transfers from one PDU to five: six digests, more than the connection attempts allowed."""
    pdus = ["N50GMS", "N50BOLT", "N50OLD", "N50MANC", "N50WIBO"]
    for n, pdu in enumerate(pdus):
        make_transfer(
            f"five-{n}", {"allocate": dt.date(2026, 12, 22), "three_way_handover": CHRISTMAS_EVE}, to_pdu=pdu, crn=f"A00000{n}"
        )
    return [mailbox(FROM_PDU), *(mailbox(p) for p in pdus)]


def test_smtp_down_loses_nothing_and_duplicates_nothing(smtp: SmtpServer) -> None:
    mailboxes = _five_transfers()
    smtp.stop()
    with pytest.raises(NotDelivered) as exc:
        run(CHRISTMAS_EVE)
    assert (exc.value.summary.facts.recipients, exc.value.summary.sent, exc.value.summary.failed) == (6, 0, 6)
    assert "6 of 6 reminder emails not sent" in str(exc.value)
    with UnitOfWork() as uow:
        rows = uow.session.scalars(select(SentEmail)).all()
        assert {r.status for r in rows} == {"failed"} and all(r.body for r in rows)

    smtp.start()
    later = run(CHRISTMAS_EVE)
    assert (later.sent, later.retried, later.skipped, later.failed) == (6, 6, 0, 0)
    assert run(CHRISTMAS_EVE).sent == 0
    assert sorted(r for rcpt, _ in smtp.inbox.messages for r in rcpt) == sorted(mailboxes)
    received = {str(m["Message-ID"]) for _, m in smtp.inbox.messages}
    with UnitOfWork() as uow:
        rows = uow.session.scalars(select(SentEmail)).all()
        assert {r.status for r in rows} == {"sent"}
        # The message that went out is the one queued: same Message-ID as stored and logged.
        assert {r.message_id for r in rows} == received and len(received) == 6


def test_a_refused_recipient_is_retried_alone_on_the_next_run(smtp: SmtpServer) -> None:
    mailboxes = _five_transfers()
    smtp.inbox.refuse.add(mailboxes[2])
    with pytest.raises(NotDelivered) as exc:
        run(CHRISTMAS_EVE)
    assert (exc.value.summary.sent, exc.value.summary.failed) == (5, 1)
    assert mailboxes[2] in exc.value.summary.errors[0] and "550" in exc.value.summary.errors[0]
    smtp.inbox.refuse.clear()
    # A day later the queued digest still goes, unchanged, beside that day's own digests.
    next_day = run(AFTER_CHRISTMAS)
    assert next_day.retried == 1 and next_day.failed == 0
    delivered = [(r, m["Subject"]) for rcpt, m in smtp.inbox.messages for r in rcpt]
    assert len(delivered) == len(set(delivered)) == 6 + next_day.facts.recipients
    assert len(smtp.inbox.to(mailboxes[2])) == 2


def test_without_smtp_each_message_is_an_eml_file_in_the_outbox(store_url: str, tmp_path) -> None:
    make_transfer("outbox", {"allocate": dt.date(2026, 12, 22)})
    summary = run(CHRISTMAS_EVE)
    assert summary.transport.startswith("outbox") and summary.sent == 1
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    msg = email.message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert msg["To"] == mailbox(TO_PDU) and msg["Auto-Submitted"] == "auto-generated"
    assert run(CHRISTMAS_EVE).skipped == 1 and len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_example_mailboxes_are_held_not_mailed_through_smtp(smtp: SmtpServer) -> None:
    make_transfer("held", {"allocate": dt.date(2026, 12, 22), "three_way_handover": CHRISTMAS_EVE}, to_pdu="N50STTA")
    assert spoc_for("N50STTA").example
    summary = run(CHRISTMAS_EVE)
    assert (summary.sent, len(summary.held), summary.failed) == (1, 1, 0)
    assert [rcpt for rcpt, _ in smtp.inbox.messages] == [[mailbox(FROM_PDU)]]
    assert any("held 1 digests for example mailboxes" in line for line in summary.lines())
    with UnitOfWork() as uow:
        assert [r.recipient for r in uow.session.scalars(select(SentEmail))] == [mailbox(FROM_PDU)]


# --- the message itself ---------------------------------------------------------------------------


def test_a_digest_is_one_multipart_alternative_message_marked_official_sensitive(smtp: SmtpServer) -> None:
    make_transfer("shape", {"allocate": dt.date(2026, 12, 17), "documents": dt.date(2026, 12, 22), "complete": CHRISTMAS_EVE})
    run(CHRISTMAS_EVE)
    msg = only(smtp.inbox.to(mailbox(TO_PDU)))
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert (
        msg["Subject"]
        == "OFFICIAL-SENSITIVE: 1 case transfer with 2 actions overdue, 1 escalated today, 1 due soon (Manchester South)"
    )
    assert msg["Message-ID"] and msg["Date"] and msg["Auto-Submitted"] == "auto-generated"
    text, html = parts(msg)
    assert text.startswith("OFFICIAL-SENSITIVE") and text.rstrip().endswith("OFFICIAL-SENSITIVE")
    assert html.count("OFFICIAL-SENSITIVE") >= 3  # banner, footer, title
    # Greeted by the transferring SPO's name on their own side's digest; the team on the other side.
    assert "Hello Manchester South transfer team," in text
    text, _ = parts(only(smtp.inbox.to(mailbox(FROM_PDU))))
    assert "Hello Alex Senior," in text


def test_a_name_with_a_script_tag_arrives_escaped_in_the_html_part(smtp: SmtpServer) -> None:
    make_transfer(
        "xss",
        {"allocate": dt.date(2026, 12, 22)},
        name="Jo <script>alert('x')</script> Bloggs",
        transferring_spo="<b>Boss</b> & Co",
    )
    run(CHRISTMAS_EVE)
    text, html = parts(only(smtp.inbox.to(mailbox(TO_PDU))))
    assert "<script>" not in html and "<b>Boss" not in html
    assert "Jo &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Bloggs" in html
    assert "&lt;b&gt;Boss&lt;/b&gt; &amp; Co" in html
    assert "Jo <script>alert('x')</script> Bloggs" in text  # plain text is not HTML: shown as typed


def test_a_limited_access_case_shows_its_crn_only(smtp: SmtpServer) -> None:
    make_transfer(
        "lao",
        {"allocate": dt.date(2026, 12, 17), "three_way_handover": CHRISTMAS_EVE},
        lao=True,
        crn="L123456",
        name="Secret Person",
        current_address="7 Hidden Lane, Bexleyheath",
        proposed_address="9 Secret Close, Manchester",
    )
    make_transfer("open", {"allocate": dt.date(2026, 12, 22)}, crn="O123456", name="Open Person")
    run(CHRISTMAS_EVE)
    assert len(smtp.inbox.messages) == 2
    for _, msg in smtp.inbox.messages:
        text, html = parts(msg)
        for part in (text, html, str(msg["Subject"])):
            for secret in ("Secret Person", "Hidden Lane", "Secret Close", "DA6 7AT", "M14 5TG", "Bexleyheath"):
                assert secret not in part
        assert "Restricted (LAO), CRN L123456" in text and "Restricted (LAO), CRN L123456" in html
    text, _ = parts(only(smtp.inbox.to(mailbox(TO_PDU))))
    assert "Open Person, CRN O123456" in text  # an ordinary case keeps its name


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, so the client verifies TLS as it would in production."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_starttls_and_login_with_the_password_from_settings_which_is_never_written_down(
    real_mailboxes: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    password = "s3cret-Pa55word"
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        def text(v: Any) -> str:
            return v.decode() if isinstance(v, bytes) else str(v)

        ok = (
            isinstance(auth_data, LoginPassword) and text(auth_data.login) == "reminders" and text(auth_data.password) == password
        )
        # handled=False: aiosmtpd answers a refusal with 535 itself.
        return AuthResult(success=ok, handled=False)

    server = SmtpServer(free_port(), authenticator=authenticate, tls_context=tls, require_starttls=True, auth_required=True)
    server.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the test certificate, and verifies it
        monkeypatch.setenv("CASETRANSFER_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CASETRANSFER_SMTP_PORT", str(server.port))
        monkeypatch.setenv("CASETRANSFER_SMTP_STARTTLS", "true")
        monkeypatch.setenv("CASETRANSFER_SMTP_USERNAME", "reminders")
        monkeypatch.setenv("CASETRANSFER_SMTP_PASSWORD", "wrong-" + password)
        reset_settings()
        make_transfer("auth", {"allocate": dt.date(2026, 12, 22)})
        with pytest.raises(NotDelivered) as exc:
            run(CHRISTMAS_EVE)
        assert "535" in exc.value.summary.errors[0]
        assert "STARTTLS" in exc.value.summary.transport
        monkeypatch.setenv("CASETRANSFER_SMTP_PASSWORD", password)
        reset_settings()
        assert run(CHRISTMAS_EVE).sent == 1
        assert len(server.inbox.messages) == 1
    finally:
        server.stop()
    with UnitOfWork() as uow:
        stored = " ".join(f"{r.error} {r.body}" for r in uow.session.scalars(select(SentEmail)))
    assert password not in stored and password not in caplog.text and password not in str(exc.value.summary)


def test_smtp_over_ssl(real_mailboxes: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server = SmtpServer(free_port(), ssl_context=tls)
    server.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        monkeypatch.setenv("CASETRANSFER_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CASETRANSFER_SMTP_PORT", str(server.port))
        monkeypatch.setenv("CASETRANSFER_SMTP_SSL", "true")
        reset_settings()
        make_transfer("ssl", {"allocate": dt.date(2026, 12, 22)})
        assert run(CHRISTMAS_EVE).sent == 1
        assert [rcpt for rcpt, _ in server.inbox.messages] == [[mailbox(TO_PDU)]]
    finally:
        server.stop()


# --- grouped by case -----------------------------------------------------------------------------


def test_a_transfer_with_several_overdue_actions_is_named_once_with_its_actions_under_it(smtp: SmtpServer) -> None:
    ref = make_transfer(
        "many",
        {
            "allocate": dt.date(2026, 12, 22),  # 2 working days overdue on the 24th: not yet escalated
            "address_assessment": dt.date(2026, 12, 22),
            "police_checks": dt.date(2026, 12, 22),
            "safeguarding_checks": dt.date(2026, 12, 23),
            "documents": dt.date(2026, 12, 23),
        },
        crn="M123456",
        name="Many Actions",
    )
    other = make_transfer("one", {"documents": dt.date(2026, 12, 23)}, crn="N123456", name="One Action")
    with UnitOfWork() as uow:
        uow.session.execute(update(Nsi).where(Nsi.reference == ref).values(flow_run_id="0b7e4c1e-run-of-the-transfer"))
        uow.commit()
    run(CHRISTMAS_EVE)
    msg = only(smtp.inbox.to(mailbox(TO_PDU)))
    text, html = parts(msg)
    overdue = section(text, "OVERDUE")
    # The header once per section, then every action of that transfer under it.
    assert text.count("Many Actions, CRN M123456") == 1 and html.count("Many Actions, CRN M123456") == 1
    assert text.count("Transferring SPO: Alex Senior") == 2  # one header per transfer, not per action
    for title in ("Complete the address assessment", "Receive the documents from the transferring area"):
        assert title in overdue
    assert "Whole transfer due" in overdue
    # The transfer's run in the Prefect UI, from settings.ui_url; a transfer with no run has no link.
    assert "See the transfer: http://127.0.0.1:4200/runs/flow-run/0b7e4c1e-run-of-the-transfer" in text
    assert 'href="http://127.0.0.1:4200/runs/flow-run/0b7e4c1e-run-of-the-transfer"' in html
    assert text.count("See the transfer:") == 1
    # The HTML lists the actions as a small table under the header.
    assert "<th" in html and "Working days overdue" in html
    assert other in text
    assert msg["Subject"] == "OFFICIAL-SENSITIVE: 2 case transfers with 6 actions overdue (Manchester South)"


# --- the pure rules -------------------------------------------------------------------------------


def _action(
    code: str,
    owner: str,
    due: dt.date,
    *,
    ref: str = "CT000001",
    frm: str = FROM_PDU,
    to: str = TO_PDU,
    spo: str = "Alex Senior",
    escalated_on: dt.date | None = None,
) -> reminders.OpenAction:
    return reminders.OpenAction(
        1, 1, code, code.title(), owner, due, escalated_on, ref, "X123456", "Jordan Example", False, "case_transfer", frm, to, spo
    )


def _contacts(*codes: str) -> dict[str, reminders.Contact]:
    return {c: reminders.Contact(c, f"PDU {c}", f"{c.lower()}@example.gov.uk") for c in codes}


def test_digest_rules() -> None:
    rules = reminders.load_rules()
    cal = get_calendar()
    contacts = _contacts(FROM_PDU, TO_PDU, "N50BOLT")
    actions = [
        _action("allocate", "receiving_spo", dt.date(2026, 12, 21)),  # 3 wd overdue on the 24th: escalated
        _action("documents", "admin", dt.date(2026, 12, 23)),  # 1 wd overdue
        _action("three_way_handover", "transferring_pp", dt.date(2026, 12, 31)),  # 3 wd away: not listed
        _action("vlo_liaison", "transferring_pp", dt.date(2026, 12, 18), escalated_on=dt.date(2026, 12, 23)),  # escalated before
        # A temporary move inside one PDU: its escalation is listed once, as the PDU's own action.
        _action("allocate", "receiving_spo", dt.date(2026, 12, 1), ref="TM000002", frm="N50BOLT", to="N50BOLT"),
        # Four SPOs on one side: the digest greets the team, not a list of names.
        *(_action("mappa_endorsement", "transferring_spo", CHRISTMAS_EVE, ref=f"CT00001{n}", spo=f"SPO {n}") for n in range(4)),
    ]
    plan = reminders.plan_digests(actions, CHRISTMAS_EVE, rules, cal, contacts)
    digests = {d.pdu_code: d for d in plan.digests}
    assert [(e.code, e.working_days) for e in plan.escalations] == [("allocate", 3), ("allocate", 17)]
    receiving, transferring, bolton = digests[TO_PDU], digests[FROM_PDU], digests["N50BOLT"]
    assert [(i.code, i.yours) for i in receiving.escalated] == [("allocate", True)]
    assert [i.code for i in receiving.overdue] == ["documents"] and receiving.due_soon == ()
    assert [(i.code, i.yours) for i in transferring.escalated] == [("allocate", False)]
    assert [(i.code, i.escalated_on) for i in transferring.overdue] == [("vlo_liaison", dt.date(2026, 12, 23))]
    assert len(transferring.due_soon) == 4 and transferring.greeting == f"PDU {FROM_PDU} transfer team"
    assert [(i.reference, i.yours) for i in bolton.escalated] == [("TM000002", True)]
    assert bolton.overdue_count == 1
    # Same store, same digests, same content hash: what makes a repeat run send nothing.
    again = reminders.plan_digests(list(reversed(actions)), CHRISTMAS_EVE, rules, cal, contacts)
    assert [d.content_hash() for d in again.digests] == [d.content_hash() for d in plan.digests]


def test_classify_at_the_edges_of_the_windows() -> None:
    rules = reminders.load_rules()
    cal = get_calendar()

    def at(due: dt.date, escalated_on: dt.date | None = None) -> reminders.Category | None:
        return reminders.classify(due, escalated_on, CHRISTMAS_EVE, cal.working_days_between(CHRISTMAS_EVE, due), rules)

    assert at(CHRISTMAS_EVE) is reminders.Category.due_soon
    assert at(dt.date(2026, 12, 30)) is reminders.Category.due_soon  # 2 wd away (six calendar days)
    assert at(dt.date(2026, 12, 31)) is None
    assert at(dt.date(2026, 12, 22)) is reminders.Category.overdue  # 2 wd overdue
    assert at(dt.date(2026, 12, 21)) is reminders.Category.escalated  # 3 wd overdue
    assert at(dt.date(2026, 12, 21), escalated_on=dt.date(2026, 12, 23)) is reminders.Category.overdue
    assert at(dt.date(2026, 12, 21), escalated_on=CHRISTMAS_EVE) is reminders.Category.escalated  # a re-run that day
    assert reminders.horizon(CHRISTMAS_EVE, rules, cal) == dt.date(2026, 12, 30)


def test_every_owner_role_in_every_profile_has_a_side() -> None:
    """A new owner role without a side in config/email.yaml would stop every digest: caught here."""
    from tasks.domain.policy import OwnerRole, load_policy
    from tasks.settings import CONFIG_DIR

    rules = reminders.load_rules()
    roles = set(typing.get_args(OwnerRole))
    for profile in sorted(p.stem for p in (CONFIG_DIR / "profiles").glob("*.yaml")):
        roles |= {a.owner for a in load_policy(profile).actions}
    assert {role: rules.side_of(role) for role in roles}


def test_reminders_go_out_on_working_days_only() -> None:
    cal = get_calendar()
    days = {dt.date(2026, 12, d): reminders.is_reminder_day(dt.date(2026, 12, d), cal) for d in range(24, 30)}
    assert [d.day for d, working in days.items() if working] == [24, 29]


# --- the flow -------------------------------------------------------------------------------------


@pytest.mark.prefect
def test_the_flow_returns_early_on_a_bank_holiday_and_fails_visibly_when_smtp_is_down(
    smtp: SmtpServer, prefect_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.nightly_reminders import nightly_reminders

    make_transfer("flow", {"allocate": dt.date(2026, 12, 22)})
    monkeypatch.setenv("CASETRANSFER_TODAY", "2026-12-25")
    reset_settings()
    with prefect_api(prefect_stack):  # the flow runs here, against the shared real server
        holiday = nightly_reminders()
        assert holiday.working_day is False and holiday.day == dt.date(2026, 12, 25)
        assert smtp.inbox.messages == []
        with UnitOfWork() as uow:
            assert uow.session.scalars(select(SentEmail)).all() == []

        smtp.stop()
        state = nightly_reminders(as_of=CHRISTMAS_EVE, return_state=True)
        assert state.is_failed()
        error = state.result(raise_on_failure=False)
        assert isinstance(error, NotDelivered) and error.summary.failed == 1

        smtp.start()
        done = nightly_reminders(as_of=CHRISTMAS_EVE)
        assert (done.sent, done.retried) == (1, 1)
        assert len(smtp.inbox.messages) == 1


def test_work_that_outlives_a_completed_transfer_is_still_reminded(smtp: SmtpServer) -> None:
    """Risk reassessment is due four weeks after the move, often after completion."""
    ref = make_transfer("outlives", {"oasys_reassessment": CHRISTMAS_EVE, "complete": CHRISTMAS_EVE})
    transfers.apply_step(ref, "completion", {"recorded_by": "Kim", "responsible_officer": "Pat", "completed_on": None})
    assert transfer_views.status_of(ref).status == "completed"
    run(CHRISTMAS_EVE)
    text, _ = parts(only(smtp.inbox.to(mailbox(TO_PDU))))
    assert "Reassess risk (OASys)" in text
    assert "Complete the transfer" not in text


def test_a_withdrawn_transfer_sends_no_reminders(smtp: SmtpServer) -> None:
    ref = make_transfer("withdrawn", {"oasys_reassessment": CHRISTMAS_EVE})
    transfers.withdraw(ref, "Not moving after all", "Sam")
    run(CHRISTMAS_EVE)
    assert smtp.inbox.messages == []


def test_remind_without_a_prefect_server_sends_from_the_command_itself(tmp_path: Path) -> None:
    """No server configured: `casetransfer remind` runs the night in its own process (no Prefect
    temporary server to time out), and says what it sent."""
    import os
    import subprocess
    import sys
    import time

    cli = str(Path(sys.executable).with_name("casetransfer"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "CASETRANSFER_"))}
    env |= {"CASETRANSFER_DATA_DIR": str(tmp_path), "CASETRANSFER_PREFECT_API_URL": "http://127.0.0.1:9/api"}
    subprocess.run([cli, "seed", "--transfers", "200", "--seed", "3", "--as-of", "2026-12-23"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    done = subprocess.run([cli, "remind", "--as-of", "2026-12-23"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "temporary server" not in (done.stdout + done.stderr).lower()
    assert "reminders for Wednesday 23 December 2026" in done.stdout
    assert "failed 0" in done.stdout
    assert list((tmp_path / "outbox").glob("*")), "the digests are in the outbox"
    assert time.perf_counter() - started < 60
