"""The POM-COM handover emails as a nightly mail job (tasks/notify/mail_job.py): the 28-day
report's emails to the POM, the COM and the prison OMU mailbox, and the COM's diary alerts with
their calendar event. Who is told when is tasks/notify/handover_reminders.py's.

- **Exactly once**, through the sent-log (tasks/notify/sent_log.py): a message's key is its kind,
  recipient, scheduled send day and (CRN, role or alert, deadline). A re-run, a later run or a
  corrected name sends nothing again; a corrected deadline or address is news, and is sent.
- **The calendar event** (RFC 5545) is for the deadline. Its UID is the handover's
  (`pom-com-handover-<crn>@<mail domain>`) and its SEQUENCE grows with each alert and correction,
  so each alert, a resend or a corrected date updates the one event in the COM's calendar.
- **Limited access (LAO).** The OMU mailbox's email carries the CRN only; the POM and COM manage
  the case and see its name. No name is ever in a subject line or the calendar event's title.
- **Placeholder addresses** (config/handovers.yaml held_domains) are held through SMTP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from tasks.domain.handovers import HandoverRules, load_rules
from tasks.notify.handover_reminders import AlertDay, Case, HandoverPlan, plan_for
from tasks.notify.mail_job import Facts, Mail, MailJob, Summary, run_mail_job
from tasks.settings import Settings, get_settings

if TYPE_CHECKING:
    from tasks.notify.email import Attachment, Transport

REPORT_KIND = "handover_report"
ALERT_KIND = "handover_alert"
REPORT_TEMPLATE = "handover_report"
ALERT_TEMPLATE = "handover_alert"
ROLES = ("pom", "com", "omu")
ROLE_LABELS = {"pom": "prison offender manager (POM)", "com": "community offender manager (COM)", "omu": "prison OMU"}


def _hash(*parts: object) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()


def is_held(recipient: str, rules: HandoverRules) -> bool:
    """A placeholder address (config held_domains): never sent through SMTP."""
    domain = recipient.rpartition("@")[2].lower()
    return any(domain == d or domain.endswith("." + d) for d in rules.held_domains)


def report_emails(plan: HandoverPlan, rules: HandoverRules) -> list[Mail]:
    """One email per recipient (POM, COM, OMU) for each handover on its report day or after it,
    keyed by the recipient, the scheduled report day and (CRN, role, deadline), not the wording."""
    out = []
    for case in plan.report:
        recipients = {"pom": case.pom_email, "com": case.com_email, "omu": case.omu_mailbox}
        for role in ROLES:
            context = {
                "case": case.redacted() if role == "omu" else case,
                "role": role,
                "role_label": ROLE_LABELS,
                "day": plan.day,
                "recipients": recipients,
                "final_months": rules.session_final_months,
                "to_serve_months": rules.qualifying_more_than_months,
            }
            out.append(
                Mail(
                    REPORT_KIND,
                    REPORT_TEMPLATE,
                    recipients[role],
                    case.schedule.report_on,
                    _hash(case.crn, role, case.deadline),
                    context,
                    placeholder=is_held(recipients[role], rules),
                )
            )
    return out


def event_uid(crn: str, settings: Settings) -> str:
    """Stable for the handover: every alert and resend updates one event, never adds another."""
    domain = settings.mail_from.rpartition("@")[2] or "casetransfer.invalid"
    return f"pom-com-handover-{crn.lower()}@{domain}"


def calendar_event(case: Case, alert: AlertDay, settings: Settings, alert_count: int, now: dt.datetime | None = None) -> bytes:
    """The .ics: an all-day event on the deadline (RFC 5545 DATE values need no time zone)."""
    from icalendar import Calendar, Event

    cal = Calendar()
    cal.add("prodid", "-//HMPPS casetransfer//POM-COM handovers//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", event_uid(case.crn, settings))
    event.add("dtstamp", (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC))
    event.add("dtstart", case.deadline)
    event.add("dtend", case.deadline + dt.timedelta(days=1))
    # SEQUENCE must grow for a calendar to take an update: later alerts and later corrections both raise it.
    event.add("sequence", (case.revision - 1) * alert_count + alert.index)
    # The title is what a shared calendar shows: the CRN only, never a name.
    event.add("summary", f"POM-COM handover due: CRN {case.crn}")
    lines = [
        f"The handover from the POM to the COM for CRN {case.crn} must happen by {case.deadline:%d %B %Y}.",
        f"POM: {case.pom_name} ({case.pom_email}). Prison OMU: {case.omu_mailbox}.",
    ]
    if case.session_missing:
        lines.append(
            f"No in-person supervision session is recorded since {case.session_window_start:%d %B %Y}: "
            "one is required before the handover."
        )
    event.add("description", "\n".join(lines))
    event.add("transp", "TRANSPARENT")
    event.add("status", "CONFIRMED")
    cal.add_component(event)
    return cal.to_ical()


def _event_attachment(case: Case, alert: AlertDay, settings: Settings, alert_count: int) -> Sequence[Attachment]:
    from tasks.notify.email import Attachment

    ics = calendar_event(case, alert, settings, alert_count)
    return [Attachment(f"handover-{case.crn}.ics", ics, "text", "calendar", {"method": "PUBLISH"})]


def alert_emails(plan: HandoverPlan, rules: HandoverRules, settings: Settings) -> list[Mail]:
    """The COM's diary alerts, each with the handover's calendar event attached (made only when sent)."""
    return [
        Mail(
            ALERT_KIND,
            ALERT_TEMPLATE,
            case.com_email,
            alert.day,
            _hash(case.crn, alert.name, case.deadline),
            {"case": case, "alert": alert, "day": plan.day, "final_months": rules.session_final_months,
             "to_serve_months": rules.qualifying_more_than_months},
            placeholder=is_held(case.com_email, rules),
            attachments=partial(_event_attachment, case, alert, settings, len(rules.alerts)),
        )
        for case, alert in plan.alerts
    ]


# --- the whole run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandoverFacts(Facts):
    """What the day's handover emails were about, for the summary."""

    reported: int = 0  # handovers in the report today
    report_emails: int = 0  # report emails due (sent now or before)
    alerts: int = 0  # diary alerts due
    flagged: int = 0  # reported handovers with no in-person session in the final months

    def day_off(self, day: dt.date) -> str:
        return f"{day:%A %d %B %Y} is not a working day: no handover reminders sent"

    def head(self, summary: Summary[Any]) -> list[str]:
        return [
            f"POM-COM handovers for {summary.day:%A %d %B %Y}: {self.reported} in the report "
            f"({self.flagged} with no in-person session in the final months), "
            f"{self.report_emails} report emails and {self.alerts} diary alerts due"
        ]

    def notes(self, summary: Summary[Any]) -> list[str]:
        if not summary.held:
            return []
        return [
            f"held {len(summary.held)} emails to placeholder addresses (config/handovers.yaml held_domains): not sent through SMTP"
        ]

    def not_delivered(self, summary: Summary[Any]) -> str:
        return f"{summary.failed} handover emails not sent; they stay queued for the next run"


class HandoverJob(MailJob[HandoverPlan, HandoverFacts]):
    def plan(self, day: dt.date, url: str | None = None) -> HandoverPlan:
        return plan_for(day, url)

    def mails(self, plan: HandoverPlan) -> list[Mail]:
        rules = load_rules()
        return [*report_emails(plan, rules), *alert_emails(plan, rules, get_settings())]

    def facts(self, plan: HandoverPlan | None, prepared: int | None = None, held: Sequence[Mail] = ()) -> HandoverFacts:
        if plan is None:
            return HandoverFacts()
        return HandoverFacts(
            reported=len(plan.report),
            report_emails=len(plan.report) * len(ROLES),
            alerts=len(plan.alerts),
            flagged=sum(1 for c in plan.report if c.session_missing),
        )


HANDOVERS = HandoverJob()


def run_handover_reminders(
    as_of: dt.date | None = None, url: str | None = None, transport: Transport | None = None
) -> Summary[HandoverFacts]:
    """One day's handover emails and diary alerts, now. Raises NotDelivered after attempting every
    message if any stayed queued."""
    return run_mail_job(HANDOVERS, as_of, url, transport)
