"""The digests and notices link each PDU's people to their own tasks (issue 28, item 7): the
Prefect UI's runs list filtered to the PDU and the role, under the people's UI address
(settings.ui_url). Delivered to a real SMTP server on loopback (aiosmtpd), on SQLite and
PostgreSQL; the notices by the CLI's path with no Prefect server up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from email.message import EmailMessage
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import demo_form
from sqlalchemy import select
from support.smtp import FROM_PDU, TO_PDU, SmtpServer, mailbox, parts, smtp_on_loopback

import services
from tasks.domain import transfers
from tasks.domain.form import parse_form
from tasks.domain.policy import get_policy
from tasks.notify import digests
from tasks.settings import reset_settings
from tasks.store.models import Nsi
from tasks.store.unit_of_work import UnitOfWork

UI = "https://casetransfer.probation.test/prefect"  # the people's address of the UI, behind the proxy
CHRISTMAS_EVE = dt.date(2026, 12, 24)


@pytest.fixture
def smtp(real_mailboxes: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # notices are sent from this process
    monkeypatch.setenv("CASETRANSFER_UI_URL", UI)
    with smtp_on_loopback(monkeypatch) as server:
        yield server
    reset_settings()


class Links(HTMLParser):
    """Every <a href> of an HTML part, with its text, as a mail client reads them (entities decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self.found.append((self._href or "", ""))

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            href, text = self.found[-1]
            self.found[-1] = (href, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


def links(html: str) -> dict[str, str]:
    """Link text -> href, for the links to a runs list."""
    parser = Links()
    parser.feed(html)
    return {text.strip(): href for href, text in parser.found if "/runs?" in href}


def runs_list(url: str) -> tuple[str, list[tuple[str, str]]]:
    parts_ = urlsplit(url)
    return f"{parts_.scheme}://{parts_.netloc}{parts_.path}", parse_qsl(parts_.query, strict_parsing=True)


def expected_query(pdu: str, role: str) -> list[tuple[str, str]]:
    seconds = str(-get_policy().suspend_timeout_days * 86400)
    return [("tag", f"pdu:{pdu}"), ("tag", f"owner:{role}"), ("state", "Suspended"), ("type", "span"), ("seconds", seconds)]


def one(messages: list[EmailMessage]) -> EmailMessage:
    assert len(messages) == 1, [m["Subject"] for m in messages]
    return messages[0]


def overdue_transfer(key: str, overdue: set[str], **form: object) -> str:
    """A transfer raised for real whose `overdue` actions are due on the 23rd, the rest done."""
    ref = transfers.register_nsi(parse_form(demo_form(raised_on="2026-12-01", **form)), key, placement=transfers.Placement(TO_PDU))
    with UnitOfWork() as uow:
        nsi = uow.session.scalars(select(Nsi).where(Nsi.reference == ref)).one()
        for a in nsi.actions:
            if a.code in overdue:
                a.due_on = dt.date(2026, 12, 23)
            else:
                a.status, a.done_on = "done", dt.date(2026, 12, 1)
        uow.commit()
    return ref


def test_each_digest_links_its_pdu_s_roles_to_their_tasks_in_the_ui_and_the_other_side_s_work_brings_none(smtp: SmtpServer):
    overdue_transfer("d-1", {"allocate", "documents", "documents_sent"}, crn="A123456", lao=True)
    digests.run_reminders(CHRISTMAS_EVE)
    receiving_text, receiving_html = parts(one(smtp.inbox.to(mailbox(TO_PDU))))
    found = links(receiving_html)
    assert set(found) == {"Receiving SPO's tasks in Manchester South", "Case admin's tasks in Manchester South"}
    for text, role in (("Receiving SPO's tasks in Manchester South", "receiving_spo"), ("Case admin's tasks in Manchester South", "admin")):
        base, query = runs_list(found[text])
        assert base == f"{UI}/runs" and query == expected_query(TO_PDU, role)
        assert f"{found[text]}\n" in receiving_text  # the same address in the plain text, whole on its line
    assert "&amp;tag=owner:receiving_spo&amp;" in receiving_html  # written as HTML wants it; the parser decoded it above
    transferring_text, transferring_html = parts(one(smtp.inbox.to(mailbox(FROM_PDU))))
    (only_link,) = links(transferring_html).values()  # not the receiving side's roles
    assert runs_list(only_link) == (f"{UI}/runs", expected_query(FROM_PDU, "transferring_pp"))
    assert f"Transferring practitioner: {only_link}" in transferring_text
    for text in (receiving_text, transferring_text):  # the link is codes and roles: a limited access case's CRN stays out of it
        assert not any("A123456" in line for line in text.splitlines() if "/runs?" in line)


def test_a_digest_with_only_the_other_side_s_escalated_action_links_nothing(smtp: SmtpServer):
    overdue_transfer("d-2", {"allocate"})
    digests.run_reminders(dt.date(2026, 12, 31))  # overdue long enough to be escalated to the transferring side too
    transferring_text, transferring_html = parts(one(smtp.inbox.to(mailbox(FROM_PDU))))
    assert "ESCALATED TODAY" in transferring_text and "/runs?" not in transferring_text and links(transferring_html) == {}
    _, receiving_html = parts(one(smtp.inbox.to(mailbox(TO_PDU))))
    assert list(links(receiving_html)) == ["Receiving SPO's tasks in Manchester South"]


def test_a_digest_is_not_sent_again_the_same_day_because_the_ui_address_changed(smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch):
    overdue_transfer("d-3", {"allocate"})
    monkeypatch.setenv("CASETRANSFER_UI_URL", "http://127.0.0.1:4200")
    reset_settings()
    assert digests.run_reminders(CHRISTMAS_EVE).sent >= 1
    monkeypatch.setenv("CASETRANSFER_UI_URL", UI)  # the UI moved behind the proxy later that day
    reset_settings()
    assert digests.run_reminders(CHRISTMAS_EVE).sent == 0
    assert not any(UI in parts(m)[0] for _, m in smtp.inbox.messages)


def test_a_notice_links_the_pdu_that_must_act_to_the_tasks_of_the_role_that_acts(smtp: SmtpServer, store_url: str):
    ref = transfers.register_nsi(parse_form(demo_form(raised_on="2026-12-14")), "n-1")
    services.notify(ref, "raised")  # a transfer arrives: the receiving SPO allocates it
    text, html = parts(one(smtp.inbox.to(mailbox(TO_PDU))))
    (link,) = links(html).values()
    assert runs_list(link) == (f"{UI}/runs", expected_query(TO_PDU, "receiving_spo"))
    assert f"Receiving SPO's tasks in Manchester South, every one waiting, in the Prefect UI (bookmark it, or save it as a view there): {link}" in text
    transfers.apply_step(ref, "allocation", {"recorded_by": "Kim SPO", "practitioner": "Pat Receiver", "team_code": "N50CAD"})
    assert services.escalate(ref, "No news of the documents", "Pat Receiver") == 1  # both sides' SPOs
    for pdu, role in ((FROM_PDU, "transferring_spo"), (TO_PDU, "receiving_spo")):
        escalated = [m for m in smtp.inbox.to(mailbox(pdu)) if "Concern escalated" in str(m["Subject"])]
        (link,) = links(parts(one(escalated))[1]).values()
        assert runs_list(link) == (f"{UI}/runs", expected_query(pdu, role))
    services.withdraw(ref, "No longer moving", "Sam Practitioner")  # asks no one for a task: no list
    withdrawn = [m for m in smtp.inbox.to(mailbox(TO_PDU)) if "withdrawn" in str(m["Subject"]).lower()]
    assert links(parts(one(withdrawn))[1]) == {}
