"""One shape for every mail run: plan, render, deliver exactly once, summary.

The reminder digests (tasks/notify/digests.py), the MIS tracker's delivery
(tasks/reports/tracker_delivery.py), the POM-COM handover emails (tasks/notify/handover_emails.py)
and the notices sent at once (tasks/notify/notices.py) are each a MailJob. A job plans (reads
what is due and decides who is told what) and says what each email is, a Mail: its template,
context, recipient and sent-log identity. The rest is the same for every job, and lives here:

- **Render** only what is not sent yet: a Mail whose sent-log key is already 'sent' is counted,
  not rendered again. A Mail to a placeholder address (an example mailbox in config) is held when
  delivering through SMTP: never sent, never logged, counted; the outbox still gets it.
- **Deliver** through tasks/notify/sent_log.py: each key once; what SMTP did not take stays
  queued, and the next run of any job sends it unchanged.
- **Summary**: one shape for every job; the job's own figures, and its words for them, are its
  Facts.
- **NotDelivered** is raised after every message was tried, when any stayed queued: the run
  fails visibly and the next one sends what is left.

The steps are passed as a Steps: the nightly flows wrap them as Prefect tasks (each shows in the
UI), the CLI and the tests take them as they are (direct_steps).

Nothing here imports the email machinery (jinja2, smtplib) until a run renders or delivers: the
tracker's worker processes and the CLI's start-up import the jobs' modules without needing it.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from tasks.notify.email import Attachment, OutgoingEmail, Transport
    from tasks.notify.sent_log import DeliveryReport
    from tasks.settings import Settings


def _no_attachments() -> Sequence[Attachment]:
    return ()


@dataclass(frozen=True)
class Mail:
    """One email a job means to send, before it is rendered."""

    kind: str  # the sent-log's kind: reminder_digest, mis_tracker, handover_report, notice, ...
    template: str  # templates/email/<template>.*.j2
    recipient: str
    day: dt.date  # the day it is for: part of its sent-log key
    identity: str  # what makes it the same email again, whatever its wording: the key's last part
    context: Mapping[str, Any]
    placeholder: bool = False  # an example address from config: held through SMTP
    label: str = ""  # how a summary names it when held (default: the recipient)
    # Made only when the email is rendered: a file read, a calendar event stamped, not for one already sent.
    attachments: Callable[[], Sequence[Attachment]] = _no_attachments

    @property
    def key(self) -> str:
        from tasks.notify.email import sent_log_key

        return sent_log_key(self.kind, self.recipient, self.day, self.identity)

    @property
    def name(self) -> str:
        return self.label or self.recipient

    def compose(self, settings: Settings) -> OutgoingEmail:
        from tasks.notify.email import compose

        return compose(
            self.template, self.kind, self.recipient, self.day, self.identity, dict(self.context), settings, self.attachments()
        )


@dataclass
class Batch:
    """A plan's emails after rendering: those to deliver now, and those left out."""

    emails: list[OutgoingEmail]
    held: list[Mail] = field(default_factory=list)  # to placeholder addresses, through SMTP: not sent
    already_sent: int = 0  # sent by an earlier run: not rendered again


def render(mails: Sequence[Mail], url: str | None = None) -> Batch:
    """Render every mail that is neither held nor sent already. The sent-log is read first, so a
    repeat run renders nothing (3 ms a message and more, bench/handovers.py) only for delivery
    to skip it."""
    from tasks.notify.sent_log import pending_keys
    from tasks.settings import get_settings

    settings = get_settings()
    by_smtp = bool(settings.smtp_host)
    held = [m for m in mails if by_smtp and m.placeholder]
    wanted = [m for m in mails if not (by_smtp and m.placeholder)]
    sent = {k for k, status in pending_keys([m.key for m in wanted], url).items() if status == "sent"}
    emails = []
    for m in wanted:
        if m.key in sent:
            continue
        email = m.compose(settings)
        assert email.key == m.key  # the pre-check above must test the key delivery uses
        emails.append(email)
    return Batch(emails, held, len(wanted) - len(emails))


# --- the summary ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """A job's own part of its summary. Subclasses add what the job counted and word it; the
    lines they do not word are the same for every job."""

    # What a dry run leaves alone, in the dry run's line.
    dry_run_leaves: ClassVar[str] = "sent or logged"

    def day_off(self, day: dt.date) -> str:
        return f"{day:%A %d %B %Y} is not a working day: nothing sent"

    def head(self, summary: Summary[Any]) -> list[str]:
        """What the job found to send, before the delivery line."""
        return []

    def delivery(self, summary: Summary[Any]) -> str:
        s = summary
        if s.dry_run:
            return f"dry run: would send {s.sent}, skip {s.skipped} already sent; nothing {self.dry_run_leaves}"
        return (
            f"sent {s.sent} ({s.retried} queued by an earlier run), skipped {s.skipped} already sent, "
            f"{s.in_flight} being sent by another run, failed {s.failed}" + (f" via {s.transport}" if s.transport else "")
        )

    def notes(self, summary: Summary[Any]) -> list[str]:
        """After the delivery line and the errors: what was held or could not be routed."""
        return []

    def not_delivered(self, summary: Summary[Any]) -> str:
        return f"{summary.failed} emails not sent; they stay queued for the next run"


F = TypeVar("F", bound=Facts)
P = TypeVar("P")


@dataclass
class Summary(Generic[F]):
    """What one run of a mail job did: for the CLI, the flow's log and its result."""

    day: dt.date
    facts: F
    working_day: bool = True
    dry_run: bool = False
    transport: str = ""
    sent: int = 0  # delivered in this run, earlier runs' queued messages included (a dry run: would be)
    retried: int = 0  # of those sent, how many an earlier run had queued
    skipped: int = 0  # already sent by an earlier run
    in_flight: int = 0  # another run is sending it right now
    failed: int = 0  # still queued for the next run
    errors: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # for placeholder addresses: not sent through SMTP

    def lines(self) -> list[str]:
        if not self.working_day:
            return [self.facts.day_off(self.day)]
        return [
            *self.facts.head(self),
            self.facts.delivery(self),
            *(f"not sent: {e}" for e in self.errors),
            *self.facts.notes(self),
        ]

    def line(self) -> str:
        """The summary on one line (a notice's is one line already)."""
        return "; ".join(self.lines())

    def not_delivered(self) -> str:
        return self.facts.not_delivered(self)


class NotDelivered(RuntimeError):
    """Some messages stayed queued in the sent-log (SMTP down or refused): the run fails visibly,
    after trying them all, and the next run sends what is left. `summary` is the run's Summary."""

    def __init__(self, summary: Summary[Any]):
        self.summary = summary
        super().__init__(summary.not_delivered())

    def __reduce__(self) -> tuple[type[NotDelivered], tuple[Summary[Any]]]:
        # Prefect pickles a failed run's exception: rebuild it from the summary, not the message.
        return (type(self), (self.summary,))


# --- the job and its run ------------------------------------------------------------------------------


class MailJob(ABC, Generic[P, F]):
    """One kind of mail run: what it plans, what each email is, and its facts. Rendering, the
    sent-log and delivery are the same for every job (run_mail_job)."""

    def is_send_day(self, day: dt.date) -> bool:
        """Working days only, unless the job says otherwise: nobody reads the mailbox on a bank
        holiday, and the next working day's run sends what the skipped one would have."""
        from tasks.calendar import get_calendar
        from tasks.settings import get_settings

        return get_calendar(get_settings().calendar).is_working_day(day)

    @abstractmethod
    def plan(self, day: dt.date, url: str | None = None) -> P:
        """What is due (the store read)."""

    def prepare(self, plan: P, url: str | None = None, flow_run_id: str | None = None) -> int:
        """What the run does before any email goes (the digests record escalations, the tracker
        copies workbooks to shared folders); returns how many. Nothing by default."""
        return 0

    @abstractmethod
    def mails(self, plan: P) -> list[Mail]:
        """The plan's emails, not yet rendered."""

    @abstractmethod
    def facts(self, plan: P | None, prepared: int | None = None, held: Sequence[Mail] = ()) -> F:
        """The job's own figures: `plan` is None on a day off, `prepared` None in a dry run."""

    def day_off(self, day: dt.date) -> Summary[F]:
        return Summary(day, self.facts(None), working_day=False)


@dataclass(frozen=True)
class Steps(Generic[P]):
    """A run's four steps. The nightly flows replace some with Prefect tasks (each shows in the
    UI); the CLI and the tests take them as direct_steps makes them."""

    plan: Callable[[dt.date], P]
    prepare: Callable[[P], int]
    render: Callable[[P], Batch]
    deliver: Callable[[list[OutgoingEmail]], DeliveryReport]


def direct_steps(
    job: MailJob[P, Any], url: str | None = None, transport: Transport | None = None, flow_run_id: str | None = None
) -> Steps[P]:
    from tasks.notify.sent_log import deliver

    return Steps(
        plan=lambda day: job.plan(day, url),
        prepare=lambda plan: job.prepare(plan, url, flow_run_id),
        render=lambda plan: render(job.mails(plan), url),
        deliver=lambda emails: deliver(emails, url, transport),
    )


def _today() -> dt.date:
    from tasks.settings import get_settings

    return get_settings().current_date()


def run_mail_job(
    job: MailJob[P, F],
    day: dt.date | None = None,
    url: str | None = None,
    transport: Transport | None = None,
    flow_run_id: str | None = None,
    steps: Steps[P] | None = None,
) -> Summary[F]:
    """Plan, prepare, render and deliver one day's emails of `job`: the one path of its flow (which
    passes its tasks as `steps`), the CLI and the tests.

    Raises NotDelivered after attempting every message if any stayed queued.
    """
    day = day or _today()
    if not job.is_send_day(day):
        return job.day_off(day)
    steps = steps or direct_steps(job, url, transport, flow_run_id)
    plan = steps.plan(day)
    prepared = steps.prepare(plan)
    batch = steps.render(plan)
    report = steps.deliver(batch.emails)
    summary = Summary(
        day,
        job.facts(plan, prepared, batch.held),
        transport=report.transport,
        sent=report.sent,
        retried=report.retried,
        skipped=batch.already_sent + report.skipped,
        in_flight=report.in_flight,
        failed=report.failed,
        errors=list(report.errors),
        held=[m.name for m in batch.held],
    )
    if summary.failed:
        raise NotDelivered(summary)
    return summary


def preview(job: MailJob[P, F], day: dt.date | None = None, url: str | None = None) -> tuple[Summary[F], list[OutgoingEmail]]:
    """A dry run: what would be sent today, rendered, with nothing sent, logged or prepared."""
    day = day or _today()
    if not job.is_send_day(day):
        return job.day_off(day), []
    plan = job.plan(day, url)
    batch = render(job.mails(plan), url)
    summary = Summary(
        day,
        job.facts(plan, None, batch.held),
        dry_run=True,
        sent=len(batch.emails),
        skipped=batch.already_sent,
        held=[m.name for m in batch.held],
    )
    return summary, batch.emails
