"""What is outstanding, read for the digests: open actions, matters waiting on someone, and where
each PDU's digest goes (tasks/notify/reminders.py has the rules that sort them into digests).

- **Open actions** due by the end of the warning window, whatever the state of their NSI (the
  rules of which count are in tasks/notify/reminders.py).
- **Matters**: challenges and disputes waiting for a decision, concerns escalated about transfers
  still open, and notices SMTP did not take (listed to the other side of their transfer).
- **Contacts**: every geographic PDU's transfer SPOC mailbox (config/spocs.yaml); a PDU without
  one is reported as unrouted, not a reason to fail every other PDU's digest.

A limited access case's matters carry its CRN only; its actions' names are dropped by the plan
(tasks/notify/reminders.py), before any template sees them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select

from tasks.calendar import WorkingDayCalendar
from tasks.domain import documents, moving_again
from tasks.domain.changes import change_rules, clock_stopped_words
from tasks.domain.policy import get_policy
from tasks.notify.reminders import Contact, Matter, OpenAction, ReminderRules, horizon
from tasks.settings import get_settings
from tasks.store.models import Action, HistoryEntry, Nsi
from tasks.store.unit_of_work import UnitOfWork


def pdu_contacts() -> dict[str, Contact]:
    """Every geographic PDU with a SPOC mailbox configured (config/spocs.yaml and overrides)."""
    from tasks.places.estate import load_estate
    from tasks.places.locator import LocatorError, spoc_for

    contacts = {}
    for pdu in load_estate().geographic_pdus():
        try:
            spoc = spoc_for(pdu.code)
        except LocatorError:
            continue  # reported per run as unrouted, rather than failing every other PDU's digest
        contacts[pdu.code] = Contact(pdu.code, pdu.name, spoc.mailbox, spoc.example)
    return contacts


def open_actions(as_of: dt.date, rules: ReminderRules, calendar: WorkingDayCalendar, url: str | None = None) -> list[OpenAction]:
    """Open actions due on or before the end of the warning window."""
    stmt = (
        select(
            Action.id,
            Action.nsi_id,
            Action.code,
            Action.title,
            Action.owner_role,
            Action.due_on,
            Action.escalated_on,
            Nsi.reference,
            Nsi.crn,
            Nsi.name,
            Nsi.lao,
            Nsi.nsi_type,
            Nsi.transferring_pdu_code,
            Nsi.receiving_pdu_code,
            Nsi.transferring_spo,
            Nsi.flow_run_id,
            Nsi.imported_on,
            Nsi.due_on,
        )
        .join(Nsi, Nsi.id == Action.nsi_id)
        # A transfer whose clock is stopped (custody, recall...) is neither reminded nor chased.
        .where(Action.status == "open", Action.due_on <= horizon(as_of, rules, calendar), Nsi.clock_stopped_on.is_(None))
    )
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(stmt).all()
        # Repeat movers among these people: one grouped query, not one per action.
        movers = moving_again.repeat_movers(uow.session, as_of, {row.crn for row in rows})
        # A transfer's missing documents are one line naming them, not one line each.
        return documents.fold([OpenAction(*row, repeat_mover=movers.get(row.crn, 0)) for row in rows])


_REFERENCE = re.compile(r"\b((?:CT|TM)\d{6})\b")


def open_matters(
    as_of: dt.date, calendar: WorkingDayCalendar, url: str | None = None, ui_url: str | None = None
) -> list[tuple[str, Matter]]:
    """(PDU code, matter) for each digest: challenges and disputes waiting for a decision (the
    receiving PDU's), concerns escalated about transfers still open (both sides'), and notices SMTP
    did not take (the other side of the transfer's, so someone picks up the phone)."""
    from tasks.store.models import Challenge, SentEmail

    out: list[tuple[str, Matter]] = []
    with UnitOfWork(url) as uow:
        s = uow.session
        nsi_cols = (Nsi.reference, Nsi.crn, Nsi.name, Nsi.lao, Nsi.transferring_pdu_code, Nsi.receiving_pdu_code, Nsi.flow_run_id)

        def matter(r: Any, kind: str, since: dt.date, what: str, owner_role: str | None = None) -> Matter:
            link = f"{ui_url.rstrip('/')}/runs/flow-run/{r.flow_run_id}" if ui_url and r.flow_run_id else None
            days = calendar.working_days_between(since, as_of)
            return Matter(kind, r.reference, r.crn, None if r.lao else r.name, since, days, what, link, owner_role)

        policy = get_policy()

        for r in s.execute(
            select(
                Challenge.seq, Challenge.status, Challenge.dispute_status, Challenge.raised_on, Challenge.disputed_on, *nsi_cols
            )
            .join(Nsi, Nsi.id == Challenge.nsi_id)
            .where((Challenge.status == "open") | (Challenge.dispute_status == "open"))
        ):
            if r.status == "open":
                m = matter(
                    r, "challenge", r.raised_on, f"Challenge {r.seq} about risk: for the receiving SPO to uphold or withdraw",
                    policy.challenge_owner,
                )  # fmt: skip
            else:
                m = matter(
                    r, "dispute", r.disputed_on, "Refusal disputed: for the head of the receiving PDU to confirm or overturn",
                    policy.dispute_owner,
                )  # fmt: skip
            if m.since <= as_of:
                out.append((r.receiving_pdu_code, m))
        for r in s.execute(
            select(HistoryEntry.key, HistoryEntry.at, *nsi_cols)
            .join(Nsi, Nsi.id == HistoryEntry.nsi_id)
            .where(HistoryEntry.event == "escalated", Nsi.closed_on.is_(None))
        ):
            if not r.key.split(":", 1)[1].isdigit():
                continue  # an overdue action's escalation: listed with the action itself
            at = r.at if r.at.tzinfo else r.at.replace(tzinfo=dt.UTC)
            since = at.astimezone(get_settings().zone).date()
            if since <= as_of:
                m = matter(r, "escalated", since, "Concern escalated to the SPO: open until the transfer is settled")
                out += [(r.transferring_pdu_code, m), (r.receiving_pdu_code, m)]
        for r in s.execute(
            select(Nsi.clock_stopped_on, Nsi.clock_stop_reason, *nsi_cols).where(
                Nsi.clock_stopped_on.is_not(None), Nsi.closed_on.is_(None)
            )
        ):
            if r.clock_stopped_on <= as_of:
                words = clock_stopped_words(r.clock_stop_reason, r.clock_stopped_on) or ""
                what = f"{words[0].upper()}{words[1:]}: nothing is reminded or chased until the clock restarts"
                m = matter(r, "clock stopped", r.clock_stopped_on, what)
                if m.working_days >= change_rules().clock_stop.review_after_working_days:
                    # Stopped this long, both SPOs are asked whether the transfer should go on.
                    what += (f". Stopped {m.working_days} working days: both SPOs decide whether the transfer continues "
                             f"(casetransfer restart-clock {r.reference}) or is withdrawn (casetransfer withdraw {r.reference})")  # fmt: skip
                    m = matter(r, "clock stopped", r.clock_stopped_on, what)
                out += [(r.transferring_pdu_code, m), (r.receiving_pdu_code, m)]
        if change_rules().sentence_end.ask_when_ending_before_due:
            out += _sentence_ends(s, as_of, nsi_cols, matter)
        failed = s.execute(
            select(SentEmail.recipient, SentEmail.subject, SentEmail.day).where(
                SentEmail.status == "failed", SentEmail.kind == "notice"
            )
        ).all()
        refs = {ref: f for f in failed if (ref := next(iter(_REFERENCE.findall(f.subject)), None))}
        rows = {r.reference: r for r in s.execute(select(*nsi_cols).where(Nsi.reference.in_(list(refs))))} if refs else {}
    contacts = pdu_contacts()
    for ref, f in sorted(refs.items()):
        r = rows.get(ref)
        if r is None:
            continue
        what = f"Not delivered to {f.recipient}: {f.subject.removeprefix('OFFICIAL-SENSITIVE: ')}. Please tell them directly"
        m = matter(r, "undelivered", f.day, what)
        for code in (r.transferring_pdu_code, r.receiving_pdu_code):
            if code in contacts and contacts[code].mailbox.lower() != f.recipient.lower():
                out.append((code, m))
    return out


def _sentence_ends(s: Any, as_of: dt.date, nsi_cols: tuple[Any, ...], matter: Any) -> list[tuple[str, Matter]]:
    """An open transfer whose sentence or licence has ended, or ends before the transfer is due:
    both SPOs are asked every morning to complete or withdraw it. Nothing is closed here."""
    from tasks.domain.transfer import CLOSED

    out: list[tuple[str, Matter]] = []
    ends = Nsi.form["sentence_end_date"].as_string()
    for r in s.execute(select(ends.label("ends"), Nsi.due_on, *nsi_cols).where(Nsi.closed_on.is_(None), Nsi.status.not_in(CLOSED))):
        try:
            end = dt.date.fromisoformat(r.ends) if r.ends else None
        except ValueError:
            continue
        if end is None or end > max(r.due_on, as_of):
            continue
        verb = "ended" if end < as_of else "ends"
        what = (f"The sentence or licence {verb} on {end:%d %B %Y}, before the transfer is finished "
                f"(due {r.due_on:%d %B %Y}): complete it or withdraw it")  # fmt: skip
        m = matter(r, "sentence ends", min(end, as_of), what)
        out += [(r.transferring_pdu_code, m), (r.receiving_pdu_code, m)]
    return out
