"""POM-COM handover reminders: the 28-day report and email, the COM's diary alerts (seed 003).

The rules (every number in config/handovers.yaml):

- **The deadline** is the record's handover date: the day the handover must happen by.
- **The report** (the admins' "POM-COM handovers" tracker sheet, the flow's table artifact) lists
  each handover from its report day (28 days before) until the deadline. On its report day one
  email goes to each of the POM, the COM and the prison OMU mailbox, with the deadline.
- **Diary alerts** go to the COM one month and two weeks before the deadline: an email with an
  iCalendar (RFC 5545) event for the deadline attached. Its UID is the handover's
  (`pom-com-handover-<crn>@<mail domain>`) and its SEQUENCE grows with each alert and correction,
  so each alert, a resend or a corrected date updates the one event in the COM's calendar.
- **Never late.** A send day that is not a working day moves to the working day before it. The
  run exits early on a non-working day, and the run on the working day before has already sent
  it. A run that was missed sends what fell due since, until the deadline passes; of the alerts
  only the latest one due is sent (two alerts on one day would say the same thing).
- **Exactly once**, through tasks/notify/sent_log.py: a message's key is its kind, recipient,
  scheduled send day and (CRN, role or alert, deadline). A re-run, a later run or a corrected
  name sends nothing again; a corrected deadline or address is news, and is sent.
- **In-person session.** A qualifying case (sentence type and length, config) with no session
  recorded in the final three months before the deadline is flagged in the report, the emails
  and the COM's alert.
- **Limited access (LAO).** The report and the OMU mailbox's email carry the CRN only: the name
  and prison are removed here, before any template or sheet sees them. The POM and COM manage the
  case and see its name. No name is ever in a subject line or the calendar event's title, and
  the Prefect artifact holds CRNs and dates only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from tasks.calendar import WorkingDayCalendar, get_calendar
from tasks.domain.handovers import HandoverRules, load_rules
from tasks.notify.undelivered import NotDelivered
from tasks.settings import Settings, get_settings
from tasks.store.models import PomComHandover
from tasks.store.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from tasks.notify.email import OutgoingEmail, Transport
    from tasks.notify.sent_log import DeliveryReport

REPORT_KIND = "handover_report"
ALERT_KIND = "handover_alert"
REPORT_TEMPLATE = "handover_report"
ALERT_TEMPLATE = "handover_alert"
ROLES = ("pom", "com", "omu")
ROLE_LABELS = {"pom": "prison offender manager (POM)", "com": "community offender manager (COM)", "omu": "prison OMU"}


# --- when -----------------------------------------------------------------------------------------


def working_day_on_or_before(day: dt.date, calendar: WorkingDayCalendar) -> dt.date:
    """A send day on a weekend, bank holiday or closure moves back, so the reminder is never late."""
    while not calendar.is_working_day(day):
        day -= dt.timedelta(days=1)
    return day


@dataclass(frozen=True)
class AlertDay:
    name: str
    label: str
    index: int  # position in config: the calendar event's SEQUENCE grows with it
    day: dt.date


@dataclass(frozen=True)
class Schedule:
    deadline: dt.date
    report_on: dt.date
    alerts: tuple[AlertDay, ...]  # earliest first

    def alert(self, name: str) -> AlertDay:
        return next(a for a in self.alerts if a.name == name)


def schedule_for(deadline: dt.date, rules: HandoverRules, calendar: WorkingDayCalendar) -> Schedule:
    report_on = working_day_on_or_before(deadline - dt.timedelta(days=rules.report_days_before), calendar)
    alerts = tuple(
        sorted(
            (
                AlertDay(a.name, a.label, i, working_day_on_or_before(a.nominal_day(deadline), calendar))
                for i, a in enumerate(rules.alerts)
            ),
            key=lambda a: (a.day, a.index),
        )
    )
    return Schedule(deadline, report_on, alerts)


# --- what -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One handover as the emails and the report see it. name and prison are None when redacted (LAO)."""

    crn: str
    name: str | None
    prison: str | None
    lao: bool
    pom_name: str
    pom_email: str
    com_name: str
    com_email: str
    com_team_code: str | None
    com_pdu_code: str
    com_pdu_name: str
    com_region_code: str
    omu_mailbox: str
    sentence_type: str
    sentence_label: str
    sentence_length_months: int
    release_date: dt.date
    schedule: Schedule
    qualifies: bool
    last_session_on: dt.date | None
    session_window_start: dt.date
    revision: int

    @property
    def deadline(self) -> dt.date:
        return self.schedule.deadline

    @property
    def session_missing(self) -> bool:
        """A qualifying case with no in-person session in the final months before the handover."""
        return self.qualifies and (self.last_session_on is None or self.last_session_on < self.session_window_start)

    def redacted(self) -> Case:
        """For the report and the OMU mailbox: a limited access case by CRN only."""
        if not self.lao:
            return self
        from dataclasses import replace

        return replace(self, name=None, prison=None)


def _case(row: PomComHandover, rules: HandoverRules, calendar: WorkingDayCalendar, pdu_names: dict[str, str]) -> Case:
    deadline = row.handover_date
    window_start = rules.session_window_start(deadline)
    # The latest session on or before the deadline: one after it is not "before the handover".
    held = [s.held_on for s in row.sessions if s.held_on <= deadline]
    return Case(
        crn=row.crn,
        name=row.name,
        prison=row.prison,
        lao=row.lao,
        pom_name=row.pom_name,
        pom_email=row.pom_email,
        com_name=row.com_name,
        com_email=row.com_email,
        com_team_code=row.com_team_code,
        com_pdu_code=row.com_pdu_code,
        com_pdu_name=pdu_names.get(row.com_pdu_code, row.com_pdu_code),
        com_region_code=row.com_region_code,
        omu_mailbox=row.omu_mailbox,
        sentence_type=row.sentence_type,
        sentence_label=rules.sentence_types.get(row.sentence_type, row.sentence_type),
        sentence_length_months=row.sentence_length_months,
        release_date=row.release_date,
        schedule=schedule_for(deadline, rules, calendar),
        qualifies=rules.qualifies(row.sentence_type, row.sentence_length_months),
        last_session_on=max(held, default=None),
        session_window_start=window_start,
        revision=row.revision,
    )


def cases_around(as_of: dt.date, url: str | None = None, rules: HandoverRules | None = None) -> list[Case]:
    """Handovers whose deadline is today or later, near enough for any of their sends to be due."""
    from tasks.places.estate import load_estate

    rules = rules or load_rules()
    calendar = get_calendar(get_settings().calendar)
    # Moves to a working day only bring a send day earlier; a fortnight covers any run of closures.
    horizon = as_of + dt.timedelta(days=rules.max_lead_days + 14)
    pdu_names = {p.code: p.name for p in load_estate().pdus.values()}
    stmt = (
        select(PomComHandover)
        .where(PomComHandover.handover_date >= as_of, PomComHandover.handover_date <= horizon)
        .options(selectinload(PomComHandover.sessions))
        .order_by(PomComHandover.handover_date, PomComHandover.crn)
    )
    with UnitOfWork(url) as uow:
        return [_case(row, rules, calendar, pdu_names) for row in uow.session.scalars(stmt)]


def in_report(case: Case, as_of: dt.date) -> bool:
    return case.schedule.report_on <= as_of <= case.deadline


def alert_due(case: Case, as_of: dt.date) -> AlertDay | None:
    """The latest alert whose day has come (the deadline not passed), or None."""
    if as_of > case.deadline:
        return None
    due = [a for a in case.schedule.alerts if a.day <= as_of]
    return due[-1] if due else None


@dataclass
class HandoverPlan:
    day: dt.date
    report: list[Case]  # every handover in its report window today (the tracker sheet, the artifact)
    alerts: list[tuple[Case, AlertDay]]


def plan_for(as_of: dt.date, url: str | None = None) -> HandoverPlan:
    cases = cases_around(as_of, url)
    report = [c for c in cases if in_report(c, as_of)]
    alerts = [(c, a) for c in cases if (a := alert_due(c, as_of)) is not None]
    return HandoverPlan(as_of, report, alerts)


# --- rendering ------------------------------------------------------------------------------------


def _hash(*parts: object) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()


def report_key(case: Case, role: str) -> str:
    """The sent-log key: the recipient, the scheduled report day and (CRN, role, deadline), not the wording."""
    from tasks.notify.email import sent_log_key

    recipient = {"pom": case.pom_email, "com": case.com_email, "omu": case.omu_mailbox}[role]
    return sent_log_key(REPORT_KIND, recipient, case.schedule.report_on, _hash(case.crn, role, case.deadline))


def alert_key(case: Case, alert: AlertDay) -> str:
    from tasks.notify.email import sent_log_key

    return sent_log_key(ALERT_KIND, case.com_email, alert.day, _hash(case.crn, alert.name, case.deadline))


def report_emails(
    plan: HandoverPlan, settings: Settings, rules: HandoverRules, wanted: Callable[[str, str], bool] = lambda key, to: True
) -> list[OutgoingEmail]:
    """One email per recipient (POM, COM, OMU) for each handover on its report day or after it.

    wanted(key, recipient): False skips rendering (already sent, or a held placeholder address).
    """
    from tasks.notify.email import compose

    out = []
    for case in plan.report:
        recipients = {"pom": case.pom_email, "com": case.com_email, "omu": case.omu_mailbox}
        for role in ROLES:
            if not wanted(report_key(case, role), recipients[role]):
                continue
            shown = case.redacted() if role == "omu" else case
            context = {
                "case": shown,
                "role": role,
                "role_label": ROLE_LABELS,
                "day": plan.day,
                "recipients": recipients,
                "final_months": rules.session_final_months,
            }
            email = compose(
                REPORT_TEMPLATE,
                REPORT_KIND,
                recipients[role],
                case.schedule.report_on,
                _hash(case.crn, role, case.deadline),
                context,
                settings,
            )
            assert email.key == report_key(case, role)  # the pre-check above must test the key deliver() uses
            out.append(email)
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


def alert_emails(
    plan: HandoverPlan, settings: Settings, rules: HandoverRules, wanted: Callable[[str, str], bool] = lambda key, to: True
) -> list[OutgoingEmail]:
    """The COM's diary alerts: the message of tasks/notify/email.py with the event attached."""
    from tasks.notify.email import POLICY, OutgoingEmail, build_message, render

    out = []
    for case, alert in plan.alerts:
        if not wanted(alert_key(case, alert), case.com_email):
            continue
        context = {"case": case, "alert": alert, "day": plan.day, "final_months": rules.session_final_months}
        rendered = render(ALERT_TEMPLATE, context)
        msg = build_message(rendered, case.com_email, settings)
        ics = calendar_event(case, alert, settings, len(rules.alerts))
        msg.add_attachment(
            ics, maintype="text", subtype="calendar", filename=f"handover-{case.crn}.ics", params={"method": "PUBLISH"}
        )
        out.append(
            OutgoingEmail(
                key=alert_key(case, alert),
                kind=ALERT_KIND,
                recipient=case.com_email,
                day=alert.day,
                subject=rendered.subject,
                message_id=str(msg["Message-ID"]),
                body=msg.as_bytes(policy=POLICY).decode("ascii"),
            )
        )
    return out


def is_held(recipient: str, rules: HandoverRules) -> bool:
    """A placeholder address (config held_domains): never sent through SMTP."""
    domain = recipient.rpartition("@")[2].lower()
    return any(domain == d or domain.endswith("." + d) for d in rules.held_domains)


# --- the whole run --------------------------------------------------------------------------------


@dataclass
class HandoverRunSummary:
    day: dt.date
    working_day: bool = True
    dry_run: bool = False
    reported: int = 0  # handovers in the report today
    report_emails: int = 0  # report emails due (sent now or before)
    alerts: int = 0  # diary alerts due
    flagged: int = 0  # reported handovers with no in-person session in the final months
    transport: str = ""
    sent: int = 0
    retried: int = 0
    skipped: int = 0
    in_flight: int = 0
    failed: int = 0
    held: int = 0
    errors: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        if not self.working_day:
            return [f"{self.day:%A %d %B %Y} is not a working day: no handover reminders sent"]
        out = [
            f"POM-COM handovers for {self.day:%A %d %B %Y}: {self.reported} in the report "
            f"({self.flagged} with no in-person session in the final months), "
            f"{self.report_emails} report emails and {self.alerts} diary alerts due"
        ]
        if self.dry_run:
            out.append(f"dry run: would send {self.sent}, skip {self.skipped} already sent; nothing sent or logged")
        else:
            out.append(
                f"sent {self.sent} ({self.retried} queued by an earlier run), skipped {self.skipped} already sent, "
                f"{self.in_flight} being sent by another run, failed {self.failed}"
                + (f" via {self.transport}" if self.transport else "")
            )
        out += [f"not sent: {e}" for e in self.errors]
        if self.held:
            out.append(
                f"held {self.held} emails to placeholder addresses (config/handovers.yaml held_domains): not sent through SMTP"
            )
        return out


class HandoverRemindersNotDelivered(NotDelivered):
    """Some handover emails stayed queued."""

    @staticmethod
    def describe(summary: HandoverRunSummary) -> str:
        return f"{summary.failed} handover emails not sent; they stay queued for the next run"


def is_send_day(day: dt.date) -> bool:
    return get_calendar(get_settings().calendar).is_working_day(day)


@dataclass
class Rendered:
    emails: list[OutgoingEmail]  # to deliver now
    held: int = 0  # to placeholder addresses, through SMTP: not sent
    already_sent: int = 0  # sent by an earlier run: not rendered again


def render_all(plan: HandoverPlan, rules: HandoverRules | None = None, url: str | None = None) -> Rendered:
    """Every email due today that is not sent yet. Already-sent keys are looked up first, so a
    repeat run renders nothing (3 ms a message, bench/handovers.py) only for deliver() to skip it."""
    from tasks.notify.sent_log import pending_keys

    rules = rules or load_rules()
    settings = get_settings()
    keys = [report_key(c, role) for c in plan.report for role in ROLES] + [alert_key(c, a) for c, a in plan.alerts]
    sent = {k for k, status in pending_keys(keys, url).items() if status == "sent"}
    out = Rendered([])

    def wanted(key: str, recipient: str) -> bool:
        if key in sent:
            out.already_sent += 1
            return False
        if settings.smtp_host and is_held(recipient, rules):
            out.held += 1
            return False
        return True

    out.emails = [*report_emails(plan, settings, rules, wanted), *alert_emails(plan, settings, rules, wanted)]
    return out


def summarise(plan: HandoverPlan, rendered: Rendered, report: DeliveryReport | None) -> HandoverRunSummary:
    summary = HandoverRunSummary(
        day=plan.day,
        reported=len(plan.report),
        report_emails=len(plan.report) * len(ROLES),
        alerts=len(plan.alerts),
        flagged=sum(1 for c in plan.report if c.session_missing),
        held=rendered.held,
        skipped=rendered.already_sent,
    )
    if report is not None:
        summary.transport = report.transport
        summary.sent, summary.retried = report.sent, report.retried
        summary.skipped += report.skipped
        summary.in_flight, summary.failed, summary.errors = report.in_flight, report.failed, list(report.errors)
    return summary


def preview(as_of: dt.date, url: str | None = None) -> tuple[HandoverRunSummary, list[OutgoingEmail]]:
    """A dry run: what would be sent today, with nothing sent or logged."""
    plan = plan_for(as_of, url)
    rendered = render_all(plan, url=url)
    summary = summarise(plan, rendered, None)
    summary.dry_run = True
    summary.sent = len(rendered.emails)
    return summary, rendered.emails


@dataclass(frozen=True)
class NightSteps:
    """The day's three steps. The handover-reminders flow passes them wrapped as Prefect tasks;
    `casetransfer handover-reminders` and the tests take them as they are."""

    plan: Callable[[dt.date], HandoverPlan]
    render: Callable[[HandoverPlan], Rendered]
    send: Callable[[list[OutgoingEmail]], DeliveryReport]


def direct_steps(url: str | None = None, transport: Transport | None = None) -> NightSteps:
    from tasks.notify.sent_log import deliver

    return NightSteps(
        plan=lambda day: plan_for(day, url),
        render=lambda plan: render_all(plan, url=url),
        send=lambda emails: deliver(emails, url, transport),
    )


def run_handover_reminders(
    as_of: dt.date | None = None, url: str | None = None, transport: Transport | None = None, steps: NightSteps | None = None
) -> tuple[HandoverRunSummary, HandoverPlan | None]:
    """Plan, render and deliver one day's handover emails: the one path of the handover-reminders
    flow (which passes its tasks as `steps`), the CLI and the tests.

    Raises HandoverRemindersNotDelivered after attempting every message if any stayed queued.
    """
    as_of = as_of or get_settings().current_date()
    if not is_send_day(as_of):
        return HandoverRunSummary(day=as_of, working_day=False), None
    steps = steps or direct_steps(url, transport)
    plan = steps.plan(as_of)
    rendered = steps.render(plan)
    report = steps.send(rendered.emails)
    summary = summarise(plan, rendered, report)
    if summary.failed:
        raise HandoverRemindersNotDelivered(summary)
    return summary, plan


# --- the report: tracker rows and the artifact ------------------------------------------------------


def artifact_rows(plan: HandoverPlan) -> list[dict[str, str]]:
    """The Prefect table artifact: CRNs and dates only (the UI is not the place for names)."""
    return [
        {
            "crn": c.crn,
            "handover_by": c.deadline.isoformat(),
            "release_date": c.release_date.isoformat(),
            "report_on": c.schedule.report_on.isoformat(),
            **{f"{a.name}_alert_on": a.day.isoformat() for a in c.schedule.alerts},
            "last_in_person_session": c.last_session_on.isoformat() if c.last_session_on else "",
        }
        for c in plan.report
    ]


def report_records(as_of: dt.date, url: str | None = None) -> list[dict[str, Any]]:
    """The tracker's rows: every handover in its report window, LAO cases by CRN only (name None)."""
    rules = load_rules()
    out = []
    for c in (c.redacted() for c in cases_around(as_of, url, rules) if in_report(c, as_of)):
        out.append(
            {
                "region_code": c.com_region_code,
                "crn": c.crn,
                "name": c.name,
                "lao": c.lao,
                "prison": c.prison,
                "pom_name": c.pom_name,
                "pom_email": c.pom_email,
                "com_name": c.com_name,
                "com_email": c.com_email,
                "com_team_code": c.com_team_code,
                "com_pdu": c.com_pdu_name,
                "omu_mailbox": c.omu_mailbox,
                "sentence": c.sentence_type,
                "sentence_length_months": c.sentence_length_months,
                "release_date": c.release_date,
                "handover_by": c.deadline,
                "report_on": c.schedule.report_on,
                "alerts": {a.label: a.day for a in c.schedule.alerts},
                "qualifies": c.qualifies,
                "last_session_on": c.last_session_on,
                "session_missing": c.session_missing,
                "session_window_start": c.session_window_start,
            }
        )
    return out


def alert_labels(rules: HandoverRules | None = None) -> list[str]:
    return [a.label for a in (rules or load_rules()).alerts]


def flag_text(session_window_start: dt.date) -> str:
    return f"No in-person session since {session_window_start:%d/%m/%Y}"


def describe(cases: Sequence[Case]) -> list[str]:
    """One line per case for the CLI: CRN and dates (a terminal may be shared or logged)."""
    return [
        f"{c.crn}  handover by {c.deadline}  report {c.schedule.report_on}  "
        + "  ".join(f"{a.label} alert {a.day}" for a in c.schedule.alerts)
        + ("  NO IN-PERSON SESSION" if c.session_missing else "")
        for c in cases
    ]
