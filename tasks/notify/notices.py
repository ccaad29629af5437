"""Notices sent at once (issue 16): an escalation, a challenge, a dispute, a transfer arriving.

Each event is a history entry of its NSI, and the notice is keyed by it (`raised`,
`escalated:<n>`, `challenge:<seq>`, `dispute:<seq>`). Who is told (the PDU transfer mailboxes of
config/spocs.yaml, the addresses the digests use; a PDU's SPOs and its head read it):

- **raised**: a transfer arrives: the receiving PDU, whose allocation clock has started.
- **escalated:<n>**: a concern escalated by a practitioner: the SPOs of both sides, as the
  nightly escalation of an overdue action tells both.
- **challenge:<seq>**: a challenge about risk: the receiving PDU, whose SPO upholds or withdraws it.
- **dispute:<seq>**: a refusal disputed: the receiving PDU, for its head, who settles it.

The notice is sent by a run the event starts (services.notify: the `send-notice`
deployment, or in the caller's process when no Prefect server is up), never by the nightly job,
through the digests' delivery and sent-log: the key is (kind, mailbox, the event's day, the
event), so however often it is asked for, each mailbox gets it once. Example mailboxes are held
through SMTP, as the digests' are. A limited access case carries its CRN only, and no free text
typed about it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from tasks.notify.mail_job import Facts, Mail, MailJob, Summary, run_mail_job
from tasks.settings import get_settings
from tasks.store.models import HistoryEntry, Nsi
from tasks.store.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from tasks.notify.email import Transport

KIND = "notice"
TEMPLATE = "notice"


class UnknownEvent(ValueError):
    """No history entry with this key: nothing happened that could be told."""


@dataclass(frozen=True)
class Event:
    kind: str  # raised | escalated | challenge | dispute
    key: str
    day: dt.date
    detail: str
    actor: str


def event_kind(key: str) -> str:
    head, _, tail = key.partition(":")
    if key == "raised":
        return "raised"
    if head == "escalated" and tail.isdigit():
        return "escalated"  # a concern; `escalated:<action code>` is the nightly job's, told in the digest
    if head in ("challenge", "dispute") and tail.isdigit():
        return head
    raise UnknownEvent(f"event: {key!r} is not raised, escalated:<n>, challenge:<n> or dispute:<n>")


@dataclass
class NoticePlan:
    mails: list[Mail] = field(default_factory=list)
    unrouted: list[str] = field(default_factory=list)  # PDUs with no mailbox configured


def plan_notices(reference: str, key: str, url: str | None = None) -> NoticePlan:
    """The notice of one event for each mailbox it goes to (nothing rendered or sent)."""
    from tasks.notify.digests import NSI_TYPE_LABELS
    from tasks.places.estate import load_estate
    from tasks.places.locator import LocatorError, spoc_for

    kind = event_kind(key)
    settings = get_settings()
    reference = reference.strip().upper()
    with UnitOfWork(url) as uow:
        nsi = uow.session.scalars(select(Nsi).where(Nsi.reference == reference)).one_or_none()
        if nsi is None:
            raise UnknownEvent(f"reference: no NSI {reference}")
        entry = uow.session.scalars(
            select(HistoryEntry).where(HistoryEntry.nsi_id == nsi.id, HistoryEntry.key == key)
        ).one_or_none()
        if entry is None:
            raise UnknownEvent(f"event: {reference} has no {key!r} in its history")
        at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=dt.UTC)
        event = Event(kind, key, at.astimezone(settings.zone).date(), entry.detail, entry.actor)
        case = {
            "reference": nsi.reference,
            "crn": nsi.crn,
            "name": None if nsi.lao else nsi.name,
            "nsi_type": NSI_TYPE_LABELS.get(nsi.nsi_type, nsi.nsi_type),
            "due_on": nsi.due_on,
            "transferring_pdu_code": nsi.transferring_pdu_code,
            "receiving_pdu_code": nsi.receiving_pdu_code,
            "transferring_spo": nsi.transferring_spo,
            "lao": nsi.lao,
            "link": f"{settings.ui_url.rstrip('/')}/runs/flow-run/{nsi.flow_run_id}" if nsi.flow_run_id else None,
        }
    estate = load_estate()
    names = {code: estate.pdus[code].name for code in (case["transferring_pdu_code"], case["receiving_pdu_code"])}
    sides = [case["receiving_pdu_code"]]
    if kind == "escalated":
        sides = list(dict.fromkeys([case["transferring_pdu_code"], case["receiving_pdu_code"]]))
    # What a person typed ("concern escalated to the SPO: ...") stays out of a limited access case's email.
    detail = None if case["lao"] or kind == "raised" else event.detail.split(": ", 1)[-1]
    plan = NoticePlan()
    for code in sides:
        try:
            spoc = spoc_for(code)
        except LocatorError:
            plan.unrouted.append(code)
            continue
        context: dict[str, Any] = {
            "event": event,
            "case": case,
            "detail": detail,
            "pdu_name": names[code],
            "transferring_pdu": names[case["transferring_pdu_code"]],
            "receiving_pdu": names[case["receiving_pdu_code"]],
            "for_receiving": code == case["receiving_pdu_code"],
        }
        plan.mails.append(Mail(KIND, TEMPLATE, spoc.mailbox, event.day, f"{reference}:{key}", context, placeholder=spoc.example))
    return plan


@dataclass(frozen=True)
class NoticeFacts(Facts):
    """Which event's notice, and where it could not go: its summary is one line."""

    reference: str = ""
    key: str = ""
    unrouted: tuple[str, ...] = ()

    def delivery(self, summary: Summary[Any]) -> str:
        out = f"{self.reference} {self.key}: sent {summary.sent}, already sent {summary.skipped}, failed {summary.failed}"
        if summary.held:
            out += f"; held for example mailboxes: {', '.join(summary.held)}"
        if self.unrouted:
            out += f"; no mailbox configured for {', '.join(self.unrouted)}"
        return out

    def not_delivered(self, summary: Summary[Any]) -> str:
        return f"{self.delivery(summary)}: {'; '.join(summary.errors)}"


@dataclass(frozen=True)
class NoticeJob(MailJob[NoticePlan, NoticeFacts]):
    """The notice of one event: sent the moment it is asked for, any day."""

    reference: str
    key: str

    def is_send_day(self, day: dt.date) -> bool:
        return True

    def plan(self, day: dt.date, url: str | None = None) -> NoticePlan:
        return plan_notices(self.reference, self.key, url)

    def mails(self, plan: NoticePlan) -> list[Mail]:
        return plan.mails

    def facts(self, plan: NoticePlan | None, prepared: int | None = None, held: Sequence[Mail] = ()) -> NoticeFacts:
        unrouted = tuple(plan.unrouted) if plan is not None else ()
        return NoticeFacts(self.reference.strip().upper(), self.key, unrouted)


def send_notices(reference: str, key: str, url: str | None = None, transport: Transport | None = None) -> Summary[NoticeFacts]:
    """Plan and deliver one event's notice; raises NotDelivered if any stayed queued."""
    return run_mail_job(NoticeJob(reference, key), url=url, transport=transport)
