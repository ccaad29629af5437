"""A real SMTP server on loopback (aiosmtpd) for the email tests, and ways to read what it got."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tasks.places.locator import spoc_for
from tasks.settings import reset_settings

FROM_PDU = "LDNBBG"
TO_PDU = "N50GMS"  # Manchester South


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Inbox:
    """What the SMTP server received; `refuse` holds recipients it answers 550."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=default_policy)
        self.messages.append((list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, mailbox: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.messages if mailbox in rcpt]


class SmtpServer:
    def __init__(self, port: int, **kwargs: Any):
        self.port = port
        self.inbox = Inbox()
        self.kwargs = kwargs
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **self.kwargs)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# PDUs the tests send to, given real (not example) mailboxes: example ones are never mailed by SMTP.
REAL_PDUS = ("LDNBBG", "N50GMS", "N50BOLT", "N50OLD", "N50MANC", "N50WIBO")


@contextmanager
def smtp_on_loopback(monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[SmtpServer]:
    """A real SMTP server on a free loopback port, with the settings pointing at it."""
    server = SmtpServer(free_port(), **options)
    server.start()
    monkeypatch.setenv("CASETRANSFER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CASETRANSFER_SMTP_PORT", str(server.port))
    reset_settings()
    try:
        yield server
    finally:
        server.stop()


def mailbox(pdu: str) -> str:
    return spoc_for(pdu).mailbox


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    # Sent with CRLF line ends, as SMTP requires.
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def section(text: str, heading: str) -> str:
    """The plain-text section under an upper-case heading, '' when absent."""
    for block in text.split("\n---\n"):
        if block.strip().startswith(heading):
            return block
    return ""
