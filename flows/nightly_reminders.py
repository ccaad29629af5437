"""nightly-reminders: one digest per SPOC mailbox of the actions due soon, overdue and escalated.

Thin on purpose: the rules are in tasks/notify/reminders.py, rendering in tasks/notify/email.py and exactly-once
delivery in tasks/notify/sent_log.py. Scheduled at 07:00 Europe/London (prefect.yaml). The night itself is tasks.notify.reminders.run_reminders,
with this flow's tasks as its steps; `casetransfer remind` runs it through this flow on a Prefect
server, or calls it directly when none is configured.
On a day that is not a working day it logs and returns without reading the store.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from tasks.calendar import get_calendar
from tasks.notify import reminders
from tasks.notify.email import OutgoingEmail
from tasks.notify.sent_log import DeliveryReport, deliver
from tasks.settings import get_settings

# Plans and messages are passed in memory; persisting a day's digests as task results would
# duplicate what the sent-log already keeps. Retrying a task is the next run's job (the
# sent-log makes that safe), so no task retries here.
IN_MEMORY = dict(persist_result=False, cache_policy=NO_CACHE)


@task(name="plan-digests", **IN_MEMORY)
def plan_digests(day: dt.date) -> reminders.Plan:
    return reminders.plan_for(day)


@task(name="record-escalations", **IN_MEMORY)
def record_escalations(plan: reminders.Plan) -> int:
    return reminders.record_escalations(plan.escalations, plan.day, flow_run_id=str(flow_run.id) if flow_run.id else None)


@task(name="render-digests", **IN_MEMORY)
def render_digests(plan: reminders.Plan) -> list[OutgoingEmail]:
    return reminders.render_digests(plan)


@task(name="deliver-digests", **IN_MEMORY)
def deliver_digests(emails: list[OutgoingEmail]) -> DeliveryReport:
    return deliver(emails)


def _run_name() -> str:
    day = flow_run.parameters.get("as_of") or get_settings().current_date()
    return f"reminders-{day}" + ("-dry-run" if flow_run.parameters.get("dry_run") else "")


@flow(name="nightly-reminders", flow_run_name=_run_name)
def nightly_reminders(as_of: dt.date | None = None, dry_run: bool = False) -> reminders.RunSummary:
    """Send today's reminder and escalation digests to the PDUs' transfer mailboxes.

    as_of: the day to remind for (default today in Europe/London). dry_run: render and log what
    would be sent, sending, escalating and logging nothing. Fails, after trying every message,
    when any stayed queued; the next run sends them.
    """
    logger = get_run_logger()
    day = as_of or get_settings().current_date()
    if dry_run:
        if not reminders.is_reminder_day(day, get_calendar(get_settings().calendar)):
            summary = reminders.RunSummary(day=day, working_day=False)
        else:
            summary, emails = reminders.preview(day)
            for e in emails:
                logger.info("would send to %s: %s", e.recipient, e.subject)
    else:
        steps = reminders.NightSteps(plan=plan_digests, escalate=record_escalations, render=render_digests, send=deliver_digests)
        try:
            summary = reminders.run_reminders(day, steps=steps)
        except reminders.RemindersNotDelivered as exc:
            for line in exc.summary.lines():
                logger.info(line)
            raise
    for line in summary.lines():
        logger.info(line)
    return summary
