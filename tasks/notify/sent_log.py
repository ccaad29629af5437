"""The sent-log: every email delivered exactly once, whichever run or job asks for it.

Each message has a sent-log row with a unique key (kind, recipient, day and content hash: see
tasks/notify/email.py's sent_log_key), the GOV.UK email-alert-api pattern (NOTES.md). The row is
inserted as 'sending' with the rendered message in one transaction before anything is sent, then
marked 'sent' with the Message-ID. A key already 'sent' is skipped. A row left 'failed' (SMTP down,
refused) is sent again, unchanged, by the next run of any job; so is a row left 'sending' by a run
that stopped mid-send, once it is older than config/email.yaml's sending_stale_minutes.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tasks.notify.email import POLICY, OutgoingEmail, SmtpUnavailable, Transport, default_transport, delivery_config
from tasks.store.models import SentEmail
from tasks.store.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

_CHUNK = 500
ERROR_CHARS = 2000


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
