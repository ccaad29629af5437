"""Email: render with Jinja2, deliver by SMTP or to the outbox, exactly once through the sent-log.

Rendering: templates/email/<name>.subject.j2, .txt.j2 and .html.j2, with StrictUndefined (a
missing field is an error, not a blank) and autoescape for the HTML part only. One
EmailMessage holds both parts as multipart/alternative, with Message-ID, Date and
Auto-Submitted. The message is encoded 7-bit clean (quoted-printable where needed), so no line
is longer than SMTP allows and no relay needs 8BITMIME.

Delivery: SMTP when CASETRANSFER_SMTP_HOST is set (port, STARTTLS or SSL, username and a
SecretStr password from settings; the password is never logged); otherwise each message is
written to the outbox folder as a .eml file (settings.effective_outbox).

Exactly once (NOTES.md, the GOV.UK email-alert-api pattern): each message has a sent-log row
with a unique key (kind, recipient, day and content hash). The row is inserted as 'sending' with
the rendered message in one transaction before anything is sent, then marked 'sent' with the
Message-ID. A key already 'sent' is skipped. A row left 'failed' (SMTP down, refused) is sent
again, unchanged, by the next run; so is a row left 'sending' by a run that stopped mid-send,
once it is older than config/email.yaml's sending_stale_minutes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import HeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tasks.config_files import read_yaml
from tasks.settings import TEMPLATES_DIR, Settings, get_settings
from tasks.store.models import SentEmail
from tasks.store.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# 7-bit transfer encodings only: a relay without 8BITMIME takes it, and every line stays short.
POLICY = SMTP_POLICY.clone(cte_type="7bit")
_CHUNK = 500
ERROR_CHARS = 2000


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
    """A file sent with a message (a tracker workbook)."""

    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "octet-stream"


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
        msg.add_attachment(a.content, maintype=a.maintype, subtype=a.subtype, filename=a.filename)
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


# --- the sent-log -------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    transport: str
    planned: int = 0  # messages asked for in this run
    sent: int = 0  # delivered in this run, earlier runs' queued messages included
    retried: int = 0  # of those sent, how many an earlier run had queued
    skipped: int = 0  # already sent by an earlier run
    in_flight: int = 0  # another run is sending it right now
    failed: int = 0  # still queued for the next run
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Queued:
    id: int
    key: str
    recipient: str
    body: str
    retry: bool


def _message_id(body: str) -> str | None:
    head = body.split("\r\n\r\n", 1)[0]
    value = HeaderParser(policy=POLICY).parsestr(head + "\r\n\r\n")["Message-ID"]
    return str(value) if value else None


def _enqueue(emails: Sequence[OutgoingEmail], url: str | None, report: DeliveryReport) -> list[_Queued]:
    """Insert a 'sending' row for every message not yet in the sent-log; returns those rows."""
    mine: list[_Queued] = []
    by_key = {e.key: e for e in emails}
    with UnitOfWork(url) as uow:
        session = uow.session
        keys = list(by_key)
        existing: dict[str, str] = {}
        for i in range(0, len(keys), _CHUNK):
            existing.update(
                session.execute(select(SentEmail.key, SentEmail.status).where(SentEmail.key.in_(keys[i : i + _CHUNK])))
                .tuples()
                .all()
            )
        report.skipped += sum(1 for status in existing.values() if status == "sent")
        new = [e for e in emails if e.key not in existing]
        if not new:
            return mine
        rows = [
            {
                "key": e.key,
                "recipient": e.recipient,
                "day": e.day,
                "kind": e.kind,
                "subject": e.subject,
                "status": "sending",
                "attempts": 1,
                "body": e.body,
            }
            for e in new
        ]
        try:
            session.execute(insert(SentEmail), rows)
            uow.commit()
        except IntegrityError:
            # A concurrent run inserted some of the same keys: those are its to send. Insert
            # the rest one transaction each (SQLite savepoints are unreliable under pysqlite).
            uow.rollback()
            taken = set()
            for row in rows:
                try:
                    session.execute(insert(SentEmail), [row])
                    uow.commit()
                except IntegrityError:
                    uow.rollback()
                    taken.add(row["key"])
            report.in_flight += len(taken)
            new = [e for e in new if e.key not in taken]
        ids = (
            dict(
                session.execute(select(SentEmail.key, SentEmail.id).where(SentEmail.key.in_([e.key for e in new]))).tuples().all()
            )
            if new
            else {}
        )
        mine = [_Queued(ids[e.key], e.key, e.recipient, e.body, False) for e in new]
    return mine


def _claim_pending(
    url: str | None, now: dt.datetime, stale_after: dt.timedelta, exclude: set[int], report: DeliveryReport
) -> list[_Queued]:
    """Rows an earlier run left unsent, claimed for this run (compare-and-set on status and attempts,
    so two runs never both take one)."""
    claimed: list[_Queued] = []
    stale_before = now - stale_after
    with UnitOfWork(url) as uow:
        session = uow.session
        rows = session.execute(
            select(
                SentEmail.id,
                SentEmail.key,
                SentEmail.recipient,
                SentEmail.body,
                SentEmail.status,
                SentEmail.attempts,
                SentEmail.created_at,
            )
            .where(or_(SentEmail.status == "failed", SentEmail.status == "sending"))
            .order_by(SentEmail.day, SentEmail.id)
        ).all()
        for row in rows:
            if row.id in exclude:
                continue
            created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=dt.UTC)
            if row.status == "sending" and created > stale_before:
                report.in_flight += 1
                continue
            if row.body is None:
                continue  # nothing stored to resend (not written by this module)
            result = session.execute(
                update(SentEmail)
                .where(SentEmail.id == row.id, SentEmail.status == row.status, SentEmail.attempts == row.attempts)
                .values(status="sending", attempts=row.attempts + 1)
            )
            if result.rowcount == 1:
                claimed.append(_Queued(row.id, row.key, row.recipient, row.body, True))
            else:
                report.in_flight += 1
        uow.commit()
    return claimed


def _mark(url: str | None, row_id: int, **values: Any) -> None:
    with UnitOfWork(url) as uow:
        uow.session.execute(update(SentEmail).where(SentEmail.id == row_id).values(**values))
        uow.commit()


def pending_keys(keys: Sequence[str], url: str | None = None) -> dict[str, str]:
    """Sent-log status of these keys (read only; for dry runs)."""
    out: dict[str, str] = {}
    with UnitOfWork(url) as uow:
        for i in range(0, len(keys), _CHUNK):
            out.update(
                uow.session.execute(select(SentEmail.key, SentEmail.status).where(SentEmail.key.in_(list(keys[i : i + _CHUNK]))))
                .tuples()
                .all()
            )
    return out


@dataclass(frozen=True)
class Undelivered:
    kind: str
    recipient: str
    day: dt.date
    subject: str
    attempts: int
    error: str | None


def undelivered(url: str | None = None, limit: int = 50) -> list[Undelivered]:
    """Messages SMTP refused or never took (status 'failed'), oldest first: what the tracker's
    artifact lists, so an undelivered escalation is seen, not only logged."""
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(
            select(SentEmail.kind, SentEmail.recipient, SentEmail.day, SentEmail.subject, SentEmail.attempts, SentEmail.error)
            .where(SentEmail.status == "failed")
            .order_by(SentEmail.day, SentEmail.id)
            .limit(limit)
        ).all()
    return [Undelivered(*r) for r in rows]


def deliver(
    emails: Sequence[OutgoingEmail], url: str | None = None, transport: Transport | None = None, now: dt.datetime | None = None
) -> DeliveryReport:
    """Send each message not sent before, and every message an earlier run left queued.

    Attempts all of them even when some fail; the report counts what failed, and those rows stay
    queued (status 'failed', message stored) for the next run.
    """
    cfg = delivery_config()
    transport = transport or default_transport()
    report = DeliveryReport(transport=transport.description, planned=len(emails))
    mine = _enqueue(emails, url, report)
    now = now or dt.datetime.now(dt.UTC)
    pending = _claim_pending(url, now, dt.timedelta(minutes=float(cfg["sending_stale_minutes"])), {q.id for q in mine}, report)
    max_connect_failures = int(cfg["max_connect_failures"])
    connect_failures = 0
    try:
        # Older queued messages first: they were due to go out before today's.
        for q in [*pending, *mine]:
            if connect_failures >= max_connect_failures:
                report.failed += 1
                _mark(
                    url,
                    q.id,
                    status="failed",
                    error=f"not attempted: the SMTP server could not be reached {connect_failures} times in a row",
                )
                continue
            try:
                transport.send(q.key, q.recipient, q.body)
            except SmtpUnavailable as exc:
                connect_failures += 1
                _fail(url, q, exc, report)
                continue
            except (OSError, smtplib.SMTPException) as exc:
                _fail(url, q, exc, report)
                continue
            connect_failures = 0
            _mark(url, q.id, status="sent", message_id=_message_id(q.body), sent_at=dt.datetime.now(dt.UTC), error=None)
            report.sent += 1
            report.retried += int(q.retry)
    finally:
        transport.close()
    return report


def _fail(url: str | None, q: _Queued, exc: BaseException, report: DeliveryReport) -> None:
    message = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    report.failed += 1
    if len(report.errors) < 20:  # the first few say why; the rest are counted
        report.errors.append(f"{q.recipient}: {message}")
    log.warning("email to %s not sent, queued for the next run: %s", q.recipient, message)
    _mark(url, q.id, status="failed", error=message)
