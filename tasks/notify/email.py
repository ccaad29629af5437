"""Email: render with Jinja2, and send one message by SMTP or to the outbox.

Rendering: templates/email/<name>.subject.j2, .txt.j2 and .html.j2, with StrictUndefined (a
missing field is an error, not a blank) and autoescape for the HTML part only. One
EmailMessage holds both parts as multipart/alternative, with Message-ID, Date and
Auto-Submitted. The message is encoded 7-bit clean (quoted-printable where needed), so no line
is longer than SMTP allows and no relay needs 8BITMIME.

Transport: SMTP when CASETRANSFER_SMTP_HOST is set (port, STARTTLS or SSL, username and a
SecretStr password from settings; the password is never logged); otherwise each message is
written to the outbox folder as a .eml file (settings.effective_outbox).

Exactly once is tasks/notify/sent_log.py's: a message's sent-log key is sent_log_key here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tasks.config_files import read_yaml
from tasks.settings import TEMPLATES_DIR, Settings, get_settings

# 7-bit transfer encodings only: a relay without 8BITMIME takes it, and every line stays short.
POLICY = SMTP_POLICY.clone(cte_type="7bit")


# --- rendering ----------------------------------------------------------------------------------


def long_date(day: dt.date) -> str:
    """GOV.UK style: 24 December 2026 (no leading zero, no ordinal)."""
    return f"{day.day} {day:%B %Y}"


def day_date(day: dt.date) -> str:
    return f"{day:%A} {long_date(day)}"


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural_form or singular + 's'}"


@lru_cache(maxsize=4)
def environment(folder: Path = TEMPLATES_DIR / "email") -> Environment:
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html"), default_for_string=False, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["long_date"] = long_date
    env.filters["day_date"] = day_date
    env.globals["plural"] = plural
    return env


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(template: str, context: dict[str, Any]) -> Rendered:
    env = environment()
    # A subject is one line: newlines from the template's layout are folded away.
    subject = " ".join(env.get_template(f"{template}.subject.j2").render(context).split())
    # The parts may show the subject (the HTML <title>).
    context = {**context, "subject": subject}
    # Optional sections leave runs of blank lines in the plain text; one blank line reads better.
    text = re.sub(r"\n{3,}", "\n\n", env.get_template(f"{template}.txt.j2").render(context))
    return Rendered(subject, text, env.get_template(f"{template}.html.j2").render(context))


@dataclass(frozen=True)
class OutgoingEmail:
    """A rendered message and its sent-log identity."""

    key: str
    kind: str
    recipient: str
    day: dt.date
    subject: str
    message_id: str
    body: str  # the whole RFC 5322 message, CRLF line endings, ASCII


def sent_log_key(kind: str, recipient: str, day: dt.date, content_hash: str) -> str:
    digest = hashlib.sha256(f"{kind}\n{recipient.lower()}\n{day.isoformat()}\n{content_hash}".encode()).hexdigest()
    return f"{kind}:{day.isoformat()}:{digest[:40]}"


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message (a tracker workbook, a handover's calendar event)."""

    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "octet-stream"
    # Content-Type parameters: a calendar event says method=PUBLISH, as its iCalendar METHOD does.
    params: Mapping[str, str] = field(default_factory=dict)


def build_message(
    rendered: Rendered,
    recipient: str,
    settings: Settings,
    now: dt.datetime | None = None,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    msg["From"] = settings.mail_from
    msg["To"] = recipient
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(now or settings.now())
    # The sender's domain, not socket.getfqdn(): that can take seconds and names the host.
    msg["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    # Tells mail servers and out-of-office responders not to reply to an automated message.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    for a in attachments:
        # multipart/mixed around the alternative parts; base64 keeps the message 7-bit clean.
        msg.add_attachment(a.content, maintype=a.maintype, subtype=a.subtype, filename=a.filename, params=dict(a.params))
    return msg


def compose(
    template: str,
    kind: str,
    recipient: str,
    day: dt.date,
    content_hash: str,
    context: dict[str, Any],
    settings: Settings | None = None,
    attachments: Sequence[Attachment] = (),
) -> OutgoingEmail:
    settings = settings or get_settings()
    rendered = render(template, context)
    msg = build_message(rendered, recipient, settings, attachments=attachments)
    return OutgoingEmail(
        key=sent_log_key(kind, recipient, day, content_hash),
        kind=kind,
        recipient=recipient,
        day=day,
        subject=rendered.subject,
        message_id=str(msg["Message-ID"]),
        body=msg.as_bytes(policy=POLICY).decode("ascii"),
    )


# --- transports ---------------------------------------------------------------------------------


class SmtpUnavailable(ConnectionError):
    """Could not connect (or log in) to the SMTP server."""


class Transport(Protocol):
    description: str

    def send(self, key: str, recipient: str, body: str) -> None: ...

    def close(self) -> None: ...


class OutboxTransport:
    """The embedded default: each message is a .eml file in the outbox folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.description = f"outbox {folder}"

    def path_for(self, key: str) -> Path:
        return self.folder / f"{key.replace(':', '_')}.eml"

    def send(self, key: str, recipient: str, body: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path_for(key)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(body.encode("ascii"))
        # Renamed into place: whoever reads the outbox never sees half a message.
        os.replace(tmp, target)

    def close(self) -> None:
        pass


class SmtpTransport:
    """One connection reused for up to messages_per_connection messages."""

    def __init__(self, settings: Settings, timeout: float, messages_per_connection: int):
        if not settings.smtp_host:
            raise ValueError("smtp_host: not set (CASETRANSFER_SMTP_HOST)")
        self.settings = settings
        self.timeout = timeout
        self.messages_per_connection = messages_per_connection
        security = " (SSL)" if settings.smtp_ssl else " (STARTTLS)" if settings.smtp_starttls else ""
        self.description = f"smtp {settings.smtp_host}:{settings.smtp_port}{security}"
        self._conn: smtplib.SMTP | None = None
        self._sent_on_conn = 0

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        host = str(s.smtp_host)
        try:
            if s.smtp_ssl:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, s.smtp_port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                conn = smtplib.SMTP(host, s.smtp_port, timeout=self.timeout)
            # Without TCP_NODELAY the tail of a large message waits for the server's delayed ACK
            # (Nagle): measured 40 ms stalls on every few 100 KiB digests over TLS (bench/reminders.py).
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.ehlo()
            if s.smtp_starttls and not s.smtp_ssl:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if s.smtp_username:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                conn.login(s.smtp_username, password)
        except (OSError, smtplib.SMTPException) as exc:
            # The exception text is the server's reply or the socket error, never the password.
            raise SmtpUnavailable(f"cannot use SMTP server {host}:{s.smtp_port}: {exc}") from None
        return conn

    def send(self, key: str, recipient: str, body: str) -> None:
        if self._conn is not None and self._sent_on_conn >= self.messages_per_connection:
            self.close()
        if self._conn is None:
            self._conn = self._connect()
            self._sent_on_conn = 0
        try:
            self._conn.sendmail(self.settings.mail_from, [recipient], body.encode("ascii"))
        except (OSError, smtplib.SMTPServerDisconnected):
            # The connection is unusable; the next message opens a new one.
            self._drop()
            raise
        except smtplib.SMTPResponseException:
            # A refusal leaves the session in an unknown state: RSET before the next message.
            try:
                self._conn.rset()
            except (OSError, smtplib.SMTPException):
                self._drop()
            raise
        self._sent_on_conn += 1

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()


@lru_cache(maxsize=4)
def load_email_config(path: Path | None = None) -> dict[str, Any]:
    """config/email.yaml: delivery (here) and the reminder digests' rules (tasks/notify/reminders.py)."""
    path = path or get_settings().config_dir / "email.yaml"
    return read_yaml(path) or {}


def delivery_config() -> dict[str, Any]:
    return load_email_config()["delivery"]


def default_transport(settings: Settings | None = None) -> Transport:
    settings = settings or get_settings()
    if settings.smtp_host:
        cfg = delivery_config()
        return SmtpTransport(settings, float(cfg["smtp_timeout_seconds"]), int(cfg["messages_per_connection"]))
    return OutboxTransport(settings.effective_outbox)
