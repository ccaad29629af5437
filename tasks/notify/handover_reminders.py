"""POM-COM handover reminders: who is told when (seed 003). The emails themselves are
tasks/notify/handover_emails.py's, the report's sheet rows and artifact tasks/notify/handover_report.py's.

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
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from tasks.calendar import WorkingDayCalendar, get_calendar
from tasks.domain.handovers import HandoverRules, load_rules
from tasks.settings import get_settings
from tasks.store.models import PomComHandover
from tasks.store.unit_of_work import UnitOfWork

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
        qualifies=rules.qualifies(row.sentence_type, row.sentence_length_months, row.sentence_date, row.release_date),
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
