"""handover-reminders: the POM-COM handovers' 28-day report and emails, and the COM's diary alerts.

Thin on purpose: who is told when is in tasks/notify/handover_reminders.py, the emails in
tasks/notify/handover_emails.py, and rendering and exactly-once delivery are every mail job's
(tasks/notify/mail_job.py; the same sent-log as the transfer reminders). Scheduled each morning,
Europe/London (prefect.yaml); `casetransfer handover-reminders` runs it now. On a day that is not
a working day it logs and returns without reading the store: the working day before has already
sent whatever fell on it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from tasks.limits import check_date
from tasks.notify import mail_job
from tasks.notify.email import OutgoingEmail
from tasks.notify.handover_emails import HANDOVERS, HandoverFacts
from tasks.notify.handover_reminders import HandoverPlan
from tasks.notify.handover_report import artifact_rows
from tasks.notify.sent_log import DeliveryReport, deliver
from tasks.settings import get_settings

# The day's plan and messages hold names and addresses: kept in memory, never persisted as task
# results (the sent-log keeps the messages). Retrying is the next run's job; the sent-log makes it safe.
IN_MEMORY = dict(persist_result=False, cache_policy=NO_CACHE)


@task(name="plan-handovers", **IN_MEMORY)
def plan_handovers(day: dt.date) -> HandoverPlan:
    return HANDOVERS.plan(day)


@task(name="render-handover-emails", **IN_MEMORY)
def render_emails(plan: HandoverPlan) -> mail_job.Batch:
    return mail_job.render(HANDOVERS.mails(plan))


@task(name="deliver-handover-emails", **IN_MEMORY)
def deliver_emails(emails: list[OutgoingEmail]) -> DeliveryReport:
    return deliver(emails)


@task(name="publish-handover-report", **IN_MEMORY)
def publish(plan: HandoverPlan) -> None:
    # CRNs and dates only: the Prefect UI is not where a person's name belongs.
    create_table_artifact(
        key="handover-report",
        table=artifact_rows(plan),
        description=f"POM-COM handovers in their report window on {plan.day:%d %B %Y}: CRN and dates.",
    )


def _run_name() -> str:
    day = flow_run.parameters.get("as_of") or get_settings().current_date()
    return f"handovers-{day}" + ("-dry-run" if flow_run.parameters.get("dry_run") else "")


@flow(name="handover-reminders", flow_run_name=_run_name)
def handover_reminders(as_of: dt.date | None = None, dry_run: bool = False) -> mail_job.Summary[HandoverFacts]:
    """Report the POM-COM handovers 28 days out, email the POM, COM and OMU, send the COM's alerts.

    as_of: the day (default today in Europe/London). dry_run: log what would be sent; send and
    log nothing. Fails, after trying every message, when any stayed queued; the next run sends them.
    """
    logger = get_run_logger()
    # A deployment parameter crosses the same boundary as --as-of (config/limits.yaml: dates.as_of).
    day = check_date("as_of", as_of or get_settings().current_date(), "as_of")
    if dry_run:
        summary, emails = mail_job.preview(HANDOVERS, day)
        for e in emails:
            logger.info("would send %s (%s)", e.kind, e.day)  # no addresses or subjects (CRNs) in the log
    else:

        def plan_and_publish(on: dt.date) -> HandoverPlan:
            plan = plan_handovers(on)
            publish(plan)  # the report artifact, whatever delivery then does
            return plan

        steps = dataclasses.replace(
            mail_job.direct_steps(HANDOVERS), plan=plan_and_publish, render=render_emails, deliver=deliver_emails
        )
        try:
            summary = mail_job.run_mail_job(HANDOVERS, day, steps=steps)
        except mail_job.NotDelivered as exc:
            for line in exc.summary.lines():
                logger.info(line)
            raise
    for line in summary.lines():
        logger.info(line)
    return summary
