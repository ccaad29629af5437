"""The reminder and escalation digests as a nightly mail job (tasks/notify/mail_job.py).

Plan: what is outstanding (tasks/notify/outstanding.py), sorted into one digest per PDU transfer
mailbox by the rules of tasks/notify/reminders.py. Prepare: record today's escalations
(tasks/notify/escalations.py), before any digest says "escalated today". Each digest is one email
(templates/email/reminder_digest.*), keyed by mailbox, day and a hash of everything it says: the
same content on the same day for the same mailbox is the same email, sent once. Digests for
example mailboxes (config/spocs.yaml) are held through SMTP.

`casetransfer remind` and the nightly-reminders flow run it; so do the tests, through run_reminders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from tasks.calendar import get_calendar
from tasks.domain import moving_again
from tasks.notify.mail_job import Facts, Mail, MailJob, Summary, run_mail_job
from tasks.notify.reminders import Digest, Plan, ReminderRules, by_case, load_rules, plan_digests
from tasks.settings import get_settings

if TYPE_CHECKING:
    from tasks.notify.email import Transport

DIGEST_KIND = "reminder_digest"
TEMPLATE = "reminder_digest"
ROLE_LABELS = {
    "transferring_pp": "transferring practitioner",
    "transferring_spo": "transferring SPO",
    "receiving_spo": "receiving SPO",
    "receiving_pp": "receiving practitioner",
    "admin": "case admin",
    "receiving_head": "head of the receiving PDU",
    "service_manager": "Service Manager (youth justice)",
}
NSI_TYPE_LABELS = {"case_transfer": "Case transfer", "temporary_move": "Temporary move"}


def digest_context(digest: Digest, rules: ReminderRules) -> dict[str, Any]:
    return {
        "digest": digest,
        "limit": rules.max_items_per_section,
        "role_label": ROLE_LABELS,
        "nsi_type_label": NSI_TYPE_LABELS,
        "by_case": by_case,
        "repeat_mover_rule": moving_again.load_rule().words(),
    }


def plan_for(as_of: dt.date, url: str | None = None) -> Plan:
    """The day's digests from the store: every open action and matter, every PDU's mailbox."""
    from tasks.notify.outstanding import open_actions, open_matters, pdu_contacts

    settings = get_settings()
    calendar = get_calendar(settings.calendar)
    rules = load_rules()
    matters = open_matters(as_of, calendar, url, settings.ui_url)
    return plan_digests(
        open_actions(as_of, rules, calendar, url), as_of, rules, calendar, pdu_contacts(), settings.ui_url, matters
    )


@dataclass(frozen=True)
class DigestFacts(Facts):
    """What the digests listed, for the summary."""

    recipients: int = 0  # mailboxes with a digest today (held ones not counted)
    actions: int = 0  # actions listed across those digests
    escalated: int = 0  # escalations recorded in this run (0 on a repeat of the same day); a dry run: would be
    unrouted: Mapping[str, int] = field(default_factory=dict)  # PDU code -> actions with no SPOC mailbox to go to

    dry_run_leaves: ClassVar[str] = "sent, escalated or logged"

    def day_off(self, day: dt.date) -> str:
        return f"{day:%A %d %B %Y} is not a working day: no reminders sent"

    def head(self, summary: Summary[Any]) -> list[str]:
        head = f"reminders for {summary.day:%A %d %B %Y}: {self.recipients} recipients, {self.actions} actions listed"
        return [f"{head}, {self.escalated} {'would be escalated' if summary.dry_run else 'escalated'}"]

    def notes(self, summary: Summary[Any]) -> list[str]:
        out = []
        if summary.held:
            out.append(
                f"held {len(summary.held)} digests for example mailboxes (config/spocs.yaml): nothing is sent to a placeholder "
                "through SMTP; put the real mailboxes in config/spocs.d/ or <data_dir>/spocs.d/"
            )
        if self.unrouted:
            codes = ", ".join(f"{code} ({n})" for code, n in sorted(self.unrouted.items()))
            out.append(f"no SPOC mailbox configured (config/spocs.yaml) for: {codes}")
        return out

    def not_delivered(self, summary: Summary[Any]) -> str:
        return f"{summary.failed} of {summary.failed + summary.sent} reminder emails not sent; they stay queued for the next run"


class DigestJob(MailJob[Plan, DigestFacts]):
    def plan(self, day: dt.date, url: str | None = None) -> Plan:
        return plan_for(day, url)

    def prepare(self, plan: Plan, url: str | None = None, flow_run_id: str | None = None) -> int:
        from tasks.notify.escalations import record_escalations

        return record_escalations(plan.escalations, plan.day, url, flow_run_id)

    def mails(self, plan: Plan) -> list[Mail]:
        rules = load_rules()
        return [
            Mail(
                DIGEST_KIND,
                TEMPLATE,
                d.recipient,
                d.day,
                d.content_hash(),
                digest_context(d, rules),
                placeholder=d.example_mailbox,
            )
            for d in plan.digests
        ]

    def facts(self, plan: Plan | None, prepared: int | None = None, held: Sequence[Mail] = ()) -> DigestFacts:
        if plan is None:
            return DigestFacts()
        held_to = {m.recipient for m in held}
        listed = [d for d in plan.digests if d.recipient not in held_to]
        return DigestFacts(
            recipients=len(listed),
            actions=sum(d.item_count for d in listed),
            escalated=len(plan.escalations) if prepared is None else prepared,
            unrouted=dict(plan.unrouted),
        )


DIGESTS = DigestJob()


def run_reminders(
    as_of: dt.date | None = None, url: str | None = None, transport: Transport | None = None
) -> Summary[DigestFacts]:
    """One day's digests, now: plan, escalate, render, deliver. Raises NotDelivered after
    attempting every message if any stayed queued."""
    return run_mail_job(DIGESTS, as_of, url, transport)
