"""nightly-reminders: one digest per SPOC mailbox of the actions due soon, overdue and escalated.

Thin on purpose: the rules are in tasks/notify/reminders.py, the job in tasks/notify/digests.py, and
rendering and exactly-once delivery are every mail job's (tasks/notify/mail_job.py). Scheduled at
07:00 Europe/London (prefect.yaml). The night itself is tasks.notify.mail_job.run_mail_job, with this
flow's tasks as its steps; `casetransfer remind` runs it through this flow on a Prefect server, or
calls it directly when none is configured.
On a day that is not a working day it logs and returns without reading the store.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from tasks.limits import check_date
from tasks.notify import mail_job, reminders
from tasks.notify.digests import DIGESTS, DigestFacts
from tasks.notify.email import OutgoingEmail
from tasks.notify.sent_log import DeliveryReport, deliver
from tasks.settings import get_settings

# Plans and messages are passed in memory; persisting a day's digests as task results would
# duplicate what the sent-log already keeps. Retrying a task is the next run's job (the
# sent-log makes that safe), so no task retries here.
IN_MEMORY = dict(persist_result=False, cache_policy=NO_CACHE)


@task(name="plan-digests", **IN_MEMORY)
def plan_digests(day: dt.date) -> reminders.Plan:
    return DIGESTS.plan(day)


@task(name="record-escalations", **IN_MEMORY)
def record_escalations(plan: reminders.Plan) -> int:
    return DIGESTS.prepare(plan, flow_run_id=str(flow_run.id) if flow_run.id else None)


@task(name="render-digests", **IN_MEMORY)
def render_digests(plan: reminders.Plan) -> mail_job.Batch:
    return mail_job.render(DIGESTS.mails(plan))


@task(name="deliver-digests", **IN_MEMORY)
def deliver_digests(emails: list[OutgoingEmail]) -> DeliveryReport:
    return deliver(emails)


def _run_name() -> str:
    day = flow_run.parameters.get("as_of") or get_settings().current_date()
    return f"reminders-{day}" + ("-dry-run" if flow_run.parameters.get("dry_run") else "")


@flow(name="nightly-reminders", flow_run_name=_run_name)
def nightly_reminders(as_of: dt.date | None = None, dry_run: bool = False) -> mail_job.Summary[DigestFacts]:
    """Send today's reminder and escalation digests to the PDUs' transfer mailboxes.

    as_of: the day to remind for (default today in Europe/London). dry_run: render and log what
    would be sent, sending, escalating and logging nothing. Fails, after trying every message,
    when any stayed queued; the next run sends them.
    """
    logger = get_run_logger()
    # A deployment parameter crosses the same boundary as --as-of (config/limits.yaml: dates.as_of).
    day = check_date("as_of", as_of or get_settings().current_date(), "as_of")
    if dry_run:
        summary, emails = mail_job.preview(DIGESTS, day)
        for e in emails:
            logger.info("would send to %s: %s", e.recipient, e.subject)
    else:
        steps = mail_job.Steps(plan=plan_digests, prepare=record_escalations, render=render_digests, deliver=deliver_digests)
        try:
            summary = mail_job.run_mail_job(DIGESTS, day, steps=steps)
        except mail_job.NotDelivered as exc:
            for line in exc.summary.lines():
                logger.info(line)
            raise
    for line in summary.lines():
        logger.info(line)
    return summary
