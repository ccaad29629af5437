"""Notices sent at once (issue 16): an escalation, a challenge, a dispute, a transfer arriving.

Each event is a history entry of its NSI, and the notice is keyed by it (`raised`,
`escalated:<n>`, `challenge:<seq>`, `dispute:<seq>`). Who is told (the PDU transfer mailboxes of
config/spocs.yaml, the addresses the digests use; a PDU's SPOs and its head read it):

- **raised**: a transfer arrives: the receiving PDU, whose allocation clock has started.
- **escalated:<n>**: a concern escalated by a practitioner: the SPOs of both sides, as the
  nightly escalation of an overdue action tells both.
- **challenge:<seq>**: a challenge about risk: the receiving PDU, whose SPO upholds or withdraws it.
- **dispute:<seq>**: a refusal disputed: the receiving PDU, for its head, who settles it.
- **flagged:<n>**, **absence:<n>** (issue 26): the proposed address is inside an exclusion zone;
  an unacceptable missed appointment before completion: both sides (no words typed about it).

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

from tasks.domain.changes import clock_stopped_words
from tasks.domain.import_mapping import recorded
from tasks.notify.mail_job import Facts, Mail, MailJob, Summary, run_mail_job
from tasks.notify.reminders import TaskList
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


# Events that close or change a transfer, told to the other side at once (issue 25): the history
# key each is stored under -> its kind.
OUTCOME_KEYS = {"withdrawn": "withdrawn", "step:completion": "completed", "step:decision": "refused", "sentence_end": "sentence_end",
                "step:information_review": "rejected"}  # fmt: skip
# A youth request stayed for missing information (004 12.4): told to the requesting service at once.
STAYED_PREFIX = "attempt:information_review:"


def event_kind(key: str) -> str:
    head, _, tail = key.partition(":")
    if key in ("raised", *OUTCOME_KEYS):
        return OUTCOME_KEYS.get(key, key)
    if key.startswith(STAYED_PREFIX) and key.removeprefix(STAYED_PREFIX).isdigit():
        return "stayed"
    if head == "escalated" and tail.isdigit():
        return "escalated"  # a concern; `escalated:<action code>` is the nightly job's, told in the digest
    if head in ("challenge", "dispute", "clock_stopped", "flagged", "absence") and tail.isdigit():
        return head  # flagged: an address in an exclusion zone; absence: a missed appointment (issue 26)
    if head == "step" and tail.startswith("challenge-") and tail.removeprefix("challenge-").isdigit():
        return "refused"  # an upheld challenge (services only ask for those)
    if head == "destination" and tail.count(":") == 1 and tail.split(":")[0].isdigit():
        return "destination"  # destination:<n>:<the PDU it no longer goes to>
    raise UnknownEvent(
        f"event: {key!r} is not raised, escalated:<n>, challenge:<n>, dispute:<n>, clock_stopped:<n>, flagged:<n>, absence:<n>, "
        "destination:<n>:<pdu>, withdrawn, sentence_end, step:completion, step:challenge-<n>, "
        f"step:information_review or {STAYED_PREFIX}<n>"
    )


def _sides(kind: str, key: str, transferring: str, receiving: str) -> list[str]:
    """Whose mailboxes an event goes to: the side that must act on it, or hear of it."""
    if kind in ("escalated", "clock_stopped", "sentence_end", "flagged", "absence"):
        return list(dict.fromkeys([transferring, receiving]))
    if kind in ("refused", "completed", "stayed", "rejected"):
        return [transferring]
    if kind == "destination":
        return list(dict.fromkeys([key.rsplit(":", 1)[1], receiving]))
    return [receiving]


@dataclass
class NoticePlan:
    mails: list[Mail] = field(default_factory=list)
    unrouted: list[str] = field(default_factory=list)  # PDUs with no mailbox configured


def plan_notices(reference: str, key: str, url: str | None = None) -> NoticePlan:
    """The notice of one event for each mailbox it goes to (nothing rendered or sent)."""
    from tasks.notify.digests import NSI_TYPE_LABELS, ROLE_LABELS
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
        nsi_policy_profile = nsi.profile
        clock = (nsi.clock_stop_reason, nsi.clock_stopped_on)
        case = {
            "reference": nsi.reference,
            "crn": nsi.crn,
            "name": None if nsi.lao else nsi.name,
            "nsi_type": NSI_TYPE_LABELS.get(nsi.nsi_type, nsi.nsi_type),
            "due_on": nsi.due_on,
            "transferring_pdu_code": nsi.transferring_pdu_code,
            "receiving_pdu_code": nsi.receiving_pdu_code,
            "transferring_spo": recorded(nsi.transferring_spo),
            "lao": nsi.lao,
            "clock_stopped": clock_stopped_words(*clock),
            "sentence_end_date": dt.date.fromisoformat(end) if (end := nsi.form.get("sentence_end_date")) else None,
            "link": f"{settings.ui_url.rstrip('/')}/runs/flow-run/{nsi.flow_run_id}" if nsi.flow_run_id else None,
        }
    estate = load_estate()
    sides = _sides(kind, key, case["transferring_pdu_code"], case["receiving_pdu_code"])
    names = {code: estate.pdus[code].name for code in (case["transferring_pdu_code"], case["receiving_pdu_code"], *sides)}
    # What a person typed ("concern escalated to the SPO: ...") stays out of a limited access
    # case's email; events whose words are the system's (a destination, a stop) carry none.
    told_as_is = ("escalated", "challenge", "dispute", "withdrawn", "refused", "stayed", "rejected")
    detail = None if case["lao"] or kind not in told_as_is else event.detail.split(": ", 1)[-1]
    extra = _extra(kind, event, nsi_policy_profile, case, url)
    acting = _acting_roles(kind, nsi_policy_profile)
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
            "role_label": ROLE_LABELS,
            "task_lists": _task_lists(code, acting, case, settings.ui_url, nsi_policy_profile),
            **extra,
        }
        plan.mails.append(Mail(KIND, TEMPLATE, spoc.mailbox, event.day, f"{reference}:{key}", context, placeholder=spoc.example))
    return plan


def _acting_roles(kind: str, profile: str) -> tuple[str, ...]:
    """The roles whose task the event opens or asks for: the allocation of a transfer arriving,
    the decision on a challenge or a dispute, the licence-conditions check of a flagged address,
    the enforcement review after an absence, the SPOs for an escalated concern. An event that asks
    no one for a task (a withdrawal, a completion) has none."""
    from tasks.domain.conditions import CONDITIONS_CHECK
    from tasks.domain.continuity import ENFORCEMENT
    from tasks.domain.policy import get_policy

    policy = get_policy(profile)

    def owner(code: str) -> tuple[str, ...]:
        return tuple(r.owner for r in policy.actions if r.code == code)

    return {
        "raised": owner("allocate"),
        "destination": owner("allocate"),
        "challenge": (policy.challenge_owner,),
        "dispute": (policy.dispute_owner,),
        "flagged": owner(CONDITIONS_CHECK),
        "absence": owner(ENFORCEMENT),
        "escalated": ("transferring_spo", "receiving_spo"),
    }.get(kind, ())


def _task_lists(code: str, roles: tuple[str, ...], case: dict[str, Any], ui_url: str, profile: str) -> list[TaskList]:
    """Links to the UI's runs list of each acting role's tasks, for the mailbox of the PDU that
    role works in (codes and roles only)."""
    from tasks.domain.policy import get_policy
    from tasks.domain.work_tags import owner_pdu, runs_list_url

    days = get_policy(profile).suspend_timeout_days
    return [
        TaskList(role, code, runs_list_url(ui_url, code, role, days))
        for role in roles
        if owner_pdu(role, case["transferring_pdu_code"], case["receiving_pdu_code"]) == code
    ]


def _extra(kind: str, event: Event, profile: str, case: dict[str, Any], url: str | None) -> dict[str, Any]:
    """What the words of an outcome need besides the case: the day a refusal can be disputed
    until, the PDU a moved transfer no longer goes to."""
    from tasks.calendar import get_calendar
    from tasks.domain.policy import get_policy
    from tasks.places.estate import load_estate

    if kind == "refused":
        from tasks.domain.transfer_views import dispute_deadline

        days = get_policy(profile).dispute_working_days
        # Counted from the day the refusal was made (as `dispute` checks it), not the day it was typed.
        by = dispute_deadline(case["reference"], url) or get_calendar(get_settings().calendar).add_working_days(event.day, days)
        return {"dispute_by": by, "dispute_days": days}
    if kind == "destination":
        old = event.key.rsplit(":", 1)[1]
        return {"old_pdu_code": old, "old_pdu": load_estate().pdus[old].name}
    return {}


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
