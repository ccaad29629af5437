"""Reminder and escalation digests for SPOs: who gets which digest today.

The rules (numbers in config/timescales.yaml and config/email.yaml, never here):

- **Recipients are PDU SPOC mailboxes.** A transfer SPO is a name on the NSI
  (Nsi.transferring_spo), not an address, and the receiving side has only a PDU until it
  allocates; the address that always exists is the PDU's transfer SPOC mailbox
  (config/spocs.yaml, `tasks.places.locator.spoc_for`), the functional mailbox its SPOs read.
  Each mailbox gets **one digest a day**, covering the PDU's transfers out and in, never one
  email per action. A mailbox with nothing to report gets nothing.
- **Whose action is it.** An action belongs to the side that does it, by owner role
  (config/email.yaml `reminders.sides`): transferring_pp and transferring_spo to the transferring
  PDU; receiving_spo, receiving_pp and admin to the receiving PDU. Every open action counts,
  including those that outlive their NSI on purpose (risk reassessment and court application
  after completion, the case review after a temporary move returns); closing an NSI any other
  way cancels its open actions.
- **Due soon**: due today or within `reminder_warning_working_days` working days.
  **Overdue**: its due date has passed. Both are counted in working days (weekends, England and
  Wales bank holidays and config closures excluded), so the Christmas holidays do not make an
  action look three days later than it is.
- **Escalated**: overdue by `escalation_working_days` working days or more. An action is escalated
  once, on the first run that finds it so: Action.escalated_on is set and the NSI's history gets
  an "escalated" entry keyed `escalated:<action code>` (written once however often the run is
  repeated). That day it is listed under "Escalated today" in the owner side's digest **and** in
  the other side's digest, so the other PDU's SPO can chase it. On later days it stays in the owner's
  "Overdue" section, marked with the day it was escalated, and is not sent to the other side again.
- **Greeting**: the digest greets the transferring SPOs named on the transfers it lists; with
  more than `greeting_max_names` of them, or none (a receiving-only digest), it greets the PDU's
  transfer team.
- **Limited access (LAO) cases** carry the CRN only: the name is dropped here, before any
  template sees it, and no address is ever part of a digest.
- **Placeholder mailboxes are never mailed.** config/spocs.yaml ships example addresses
  (Spoc.example). Through SMTP their digests are held and counted, not sent and not logged, so
  OFFICIAL-SENSITIVE details never go to an address nobody owns; the outbox (no SMTP configured,
  the embedded default for demos) still gets them. Real mailboxes go in config/spocs.d/ or
  <data_dir>/spocs.d/.

Everything here is a pure function over small typed models except `open_actions` (the one store
query), `pdu_contacts` (the SPOC config) and `record_escalations` (the one write).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from tasks.calendar import WorkingDayCalendar, get_calendar
from tasks.domain.policy import get_policy
from tasks.notify.email import load_email_config
from tasks.notify.undelivered import NotDelivered
from tasks.settings import get_settings
from tasks.store.models import Action, HistoryEntry, Nsi
from tasks.store.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from tasks.notify.email import OutgoingEmail, Transport
    from tasks.notify.sent_log import DeliveryReport

ACTOR = "casetransfer reminders"
DIGEST_KIND = "reminder_digest"
# SQLite allows 32,766 bound parameters per statement; IN lists are chunked well below that.
_CHUNK = 5000


class Side(StrEnum):
    transferring = "transferring"
    receiving = "receiving"


class Category(StrEnum):
    due_soon = "due_soon"
    overdue = "overdue"
    escalated = "escalated"


@dataclass(frozen=True)
class ReminderRules:
    """The numbers that decide what a digest holds (config/timescales.yaml, config/email.yaml)."""

    warning_working_days: int
    escalation_working_days: int
    sides: Mapping[str, Side]
    greeting_max_names: int
    max_items_per_section: int

    def side_of(self, owner_role: str) -> Side:
        try:
            return self.sides[owner_role]
        except KeyError:
            raise ValueError(f"config/email.yaml: reminders.sides has no side for owner role {owner_role!r}") from None


def load_rules(profile: str | None = None) -> ReminderRules:
    policy = get_policy(profile or get_settings().profile)
    cfg = load_email_config()["reminders"]
    return ReminderRules(
        warning_working_days=policy.reminder_warning_working_days,
        escalation_working_days=policy.escalation_working_days,
        sides={role: Side(side) for role, side in cfg["sides"].items()},
        greeting_max_names=int(cfg["greeting_max_names"]),
        max_items_per_section=int(cfg["max_items_per_section"]),
    )


@dataclass(frozen=True, slots=True)
class OpenAction:
    """One open action of an open NSI, as the store query returns it."""

    action_id: int
    nsi_id: int
    code: str
    title: str
    owner_role: str
    due_on: dt.date
    escalated_on: dt.date | None
    reference: str
    crn: str
    name: str
    lao: bool
    nsi_type: str
    transferring_pdu_code: str
    receiving_pdu_code: str
    transferring_spo: str
    flow_run_id: str | None = None
    # An NSI imported from a legacy tracker: what was already overdue that day escalates counting from it.
    imported_on: dt.date | None = None
    transfer_due_on: dt.date | None = None  # the whole transfer's due date (Nsi.due_on)


@dataclass(frozen=True)
class Contact:
    """Where a PDU's digest goes."""

    pdu_code: str
    pdu_name: str
    mailbox: str
    example: bool = False


@dataclass(frozen=True, slots=True)
class Item:
    """One line of a digest: already redacted for limited access cases."""

    reference: str
    crn: str
    name: str | None  # None for a limited access case: the CRN only
    nsi_type: str
    code: str
    title: str
    owner_role: str
    owner_side: Side
    owner_pdu: str
    transferring_pdu: str
    receiving_pdu: str
    spo: str
    other_mailbox: str  # the other side's transfer mailbox: who to contact about it
    due_on: dt.date
    # Working days until due (due soon) or overdue by (overdue, escalated).
    working_days: int
    escalated_on: dt.date | None
    yours: bool  # False: the other side's action, escalated to this mailbox to chase
    link: str | None
    transfer_due_on: dt.date | None = None


@dataclass(frozen=True)
class CaseBlock:
    """One transfer in one section of a digest: its header once, then its actions.

    The header is the first item's (every item of one reference shares it); `items` keeps the
    section's order, most overdue or soonest due first."""

    head: Item
    items: tuple[Item, ...]


def by_case(items: Iterable[Item]) -> list[CaseBlock]:
    """Group a section's items by NSI, so a transfer with eight overdue actions is named once.

    Transfers appear in the order of their first (most urgent) action."""
    groups: dict[str, list[Item]] = {}
    for i in items:
        groups.setdefault(i.reference, []).append(i)
    return [CaseBlock(g[0], tuple(g)) for g in groups.values()]


@dataclass(frozen=True, slots=True)
class Matter:
    """Something told at once (tasks/notify/notices.py) that the digest keeps listing until it is settled:
    a challenge or dispute waiting for a decision, a concern escalated about a transfer still open;
    or a notice that SMTP did not take, listed to the other side of its transfer (issue 16)."""

    kind: str  # challenge | dispute | escalated | undelivered
    reference: str
    crn: str
    name: str | None  # None for a limited access case
    since: dt.date
    working_days: int  # since then, in working days
    what: str  # plain words, no free text
    link: str | None = None


@dataclass(frozen=True)
class Digest:
    """Everything one mailbox is told today."""

    recipient: str
    pdu_code: str
    pdu_name: str
    day: dt.date
    greeting: str
    escalated: tuple[Item, ...]
    overdue: tuple[Item, ...]
    due_soon: tuple[Item, ...]
    warning_working_days: int
    escalation_working_days: int
    example_mailbox: bool = False
    matters: tuple[Matter, ...] = ()

    @property
    def open_matters(self) -> tuple[Matter, ...]:
        return tuple(m for m in self.matters if m.kind != "undelivered")

    @property
    def undelivered(self) -> tuple[Matter, ...]:
        return tuple(m for m in self.matters if m.kind == "undelivered")

    @property
    def overdue_count(self) -> int:
        """Overdue actions listed, escalated ones included (what the subject counts)."""
        return len(self.overdue) + len(self.escalated)

    @property
    def item_count(self) -> int:
        return len(self.escalated) + len(self.overdue) + len(self.due_soon)

    @property
    def transfer_count(self) -> int:
        """Distinct transfers the digest lists, across its sections (what the subject counts too)."""
        return len({i.reference for i in (*self.escalated, *self.overdue, *self.due_soon, *self.matters)})

    def content_hash(self) -> str:
        """Stable over everything the digest says, for the sent-log key: the same content on the
        same day for the same mailbox is the same email, sent once."""
        data = asdict(self)
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Escalation:
    action_id: int
    nsi_id: int
    code: str
    title: str
    due_on: dt.date
    working_days: int
    owner_pdu: str
    other_pdu: str


@dataclass
class Plan:
    day: dt.date
    digests: list[Digest]
    escalations: list[Escalation]
    actions_considered: int
    # PDU code -> actions that could not be routed because the PDU has no SPOC mailbox configured
    unrouted: dict[str, int] = field(default_factory=dict)
    # Digests not sent because their mailbox is a placeholder (see hold_example_mailboxes)
    held: list[Digest] = field(default_factory=list)


def hold_example_mailboxes(plan: Plan, by_smtp: bool) -> Plan:
    """Set aside digests for placeholder mailboxes when delivering through SMTP (module docstring)."""
    if not by_smtp:
        return plan
    keep = [d for d in plan.digests if not d.example_mailbox]
    held = [d for d in plan.digests if d.example_mailbox]
    return replace(plan, digests=keep, held=[*plan.held, *held])


# --- pure decisions -----------------------------------------------------------------------------


def is_reminder_day(day: dt.date, calendar: WorkingDayCalendar) -> bool:
    """Digests go out on working days only: nobody reads the mailbox on a bank holiday, and the
    next working day's digest says everything the skipped one would have."""
    return calendar.is_working_day(day)


def horizon(as_of: dt.date, rules: ReminderRules, calendar: WorkingDayCalendar) -> dt.date:
    """The last calendar day an action can be due and still be 'due soon' (for the store query):
    the day before the first working day past the warning window, so a due date on a weekend
    just after the window's last working day is included."""
    return calendar.add_working_days(as_of, rules.warning_working_days + 1) - dt.timedelta(days=1)


def classify(
    due_on: dt.date,
    escalated_on: dt.date | None,
    as_of: dt.date,
    working_days: int,
    rules: ReminderRules,
    escalation_days: int | None = None,
) -> Category | None:
    """Which section an open action belongs in today, if any.

    `working_days` is calendar.working_days_between(as_of, due_on): working days until the due
    date, negative when it has passed. `escalation_days`, when given, is what escalation counts
    instead (the same sign): an action already overdue when its NSI was imported counts from the
    import day, so go-live does not escalate a backlog nobody here has yet had the chance to chase.
    """
    if due_on >= as_of:
        return Category.due_soon if working_days <= rules.warning_working_days else None
    overdue_by = -(working_days if escalation_days is None else escalation_days)
    if escalated_on is not None and escalated_on < as_of:
        return Category.overdue  # escalated on an earlier day: the other side has been told
    if overdue_by >= rules.escalation_working_days:
        return Category.escalated
    return Category.overdue


def greeting(names: Iterable[str], pdu_name: str, rules: ReminderRules) -> str:
    unique = sorted({n.strip() for n in names if n and n.strip()})
    if not unique or len(unique) > rules.greeting_max_names:
        return f"{pdu_name} transfer team"
    if len(unique) == 1:
        return unique[0]
    return f"{', '.join(unique[:-1])} and {unique[-1]}"


def _item(
    a: OpenAction,
    side: Side,
    yours: bool,
    working_days: int,
    escalated_on: dt.date | None,
    contacts: Mapping[str, Contact],
    ui_url: str | None,
) -> Item:
    owner_code = a.transferring_pdu_code if side is Side.transferring else a.receiving_pdu_code
    other_code = a.receiving_pdu_code if side is Side.transferring else a.transferring_pdu_code
    # Whoever reads this digest, the useful contact is the side that is not reading it.
    contact_code = other_code if yours else owner_code
    return Item(
        reference=a.reference,
        crn=a.crn,
        name=None if a.lao else a.name,
        nsi_type=a.nsi_type,
        code=a.code,
        title=a.title,
        owner_role=a.owner_role,
        owner_side=side,
        owner_pdu=contacts[owner_code].pdu_name,
        transferring_pdu=contacts[a.transferring_pdu_code].pdu_name,
        receiving_pdu=contacts[a.receiving_pdu_code].pdu_name,
        spo=a.transferring_spo,
        other_mailbox=contacts[contact_code].mailbox,
        due_on=a.due_on,
        working_days=working_days,
        escalated_on=escalated_on,
        yours=yours,
        link=f"{ui_url.rstrip('/')}/runs/flow-run/{a.flow_run_id}" if ui_url and a.flow_run_id else None,
        transfer_due_on=a.transfer_due_on,
    )


def plan_digests(
    actions: Sequence[OpenAction],
    as_of: dt.date,
    rules: ReminderRules,
    calendar: WorkingDayCalendar,
    contacts: Mapping[str, Contact],
    ui_url: str | None = None,
    matters: Sequence[tuple[str, Matter]] = (),
) -> Plan:
    """The day's digests, one per mailbox, and the actions to escalate today. `matters`: (PDU code,
    matter) pairs, each listed in that PDU's digest (a mailbox with only matters gets one too)."""
    if actions:
        due = np.array([a.due_on for a in actions], dtype="datetime64[D]")
        counts = calendar.working_days_between_many(np.full(len(actions), np.datetime64(as_of, "D")), due).tolist()
    else:
        counts = []
    # mailbox -> section -> items; a dict keyed by (reference, code) so an action escalated to a
    # PDU that is both sides (a temporary move within one PDU) is listed once.
    sections: dict[str, dict[Category, dict[tuple[str, str], Item]]] = defaultdict(lambda: {c: {} for c in Category})
    spo_names: dict[str, set[str]] = defaultdict(set)
    contact_of_mailbox: dict[str, Contact] = {}
    escalations: list[Escalation] = []
    unrouted: dict[str, int] = defaultdict(int)
    for a, wd in zip(actions, counts, strict=True):
        since_import = (
            calendar.working_days_between(as_of, a.imported_on) if a.imported_on is not None and a.imported_on > a.due_on else None
        )
        category = classify(a.due_on, a.escalated_on, as_of, wd, rules, since_import)
        if category is None:
            continue
        missing = [c for c in (a.transferring_pdu_code, a.receiving_pdu_code) if c not in contacts]
        if missing:
            for code in missing:
                unrouted[code] += 1
            continue
        side = rules.side_of(a.owner_role)
        owner = contacts[a.transferring_pdu_code if side is Side.transferring else a.receiving_pdu_code]
        other = contacts[a.receiving_pdu_code if side is Side.transferring else a.transferring_pdu_code]
        escalated_on = as_of if category is Category.escalated else a.escalated_on
        recipients = [(owner, True)]
        if category is Category.escalated:
            recipients.append((other, False))
            escalations.append(Escalation(a.action_id, a.nsi_id, a.code, a.title, a.due_on, -wd, owner.pdu_name, other.pdu_name))
        for contact, yours in recipients:
            key = (a.reference, a.code)
            bucket = sections[contact.mailbox][category]
            if key in bucket and bucket[key].yours:
                continue  # already listed as this mailbox's own action
            bucket[key] = _item(a, side, yours, -wd if category is not Category.due_soon else wd, escalated_on, contacts, ui_url)
            contact_of_mailbox.setdefault(contact.mailbox, contact)
            if contact.pdu_code == a.transferring_pdu_code:
                spo_names[contact.mailbox].add(a.transferring_spo)

    def ordered(items: Iterable[Item]) -> tuple[Item, ...]:
        # Earliest due first: the most overdue, or the soonest due. Reference and code make the
        # order total, so the same store gives the same digest (and content hash) every time.
        return tuple(sorted(items, key=lambda i: (i.due_on, not i.yours, i.reference, i.code)))

    matters_of: dict[str, list[Matter]] = defaultdict(list)
    for pdu_code, matter in matters:
        contact = contacts.get(pdu_code)
        if contact is None:
            unrouted[pdu_code] += 1
            continue
        matters_of[contact.mailbox].append(matter)
        contact_of_mailbox.setdefault(contact.mailbox, contact)
        sections[contact.mailbox]  # noqa: B018 - a mailbox with only matters still gets its digest

    digests = []
    for mailbox in sorted(sections):
        contact = contact_of_mailbox[mailbox]
        s = sections[mailbox]
        digests.append(
            Digest(
                recipient=mailbox,
                pdu_code=contact.pdu_code,
                pdu_name=contact.pdu_name,
                day=as_of,
                greeting=greeting(spo_names[mailbox], contact.pdu_name, rules),
                escalated=ordered(s[Category.escalated].values()),
                overdue=ordered(s[Category.overdue].values()),
                due_soon=ordered(s[Category.due_soon].values()),
                warning_working_days=rules.warning_working_days,
                escalation_working_days=rules.escalation_working_days,
                example_mailbox=contact.example,
                # Oldest first; the key makes the order total (the same store, the same content hash).
                matters=tuple(sorted(set(matters_of[mailbox]), key=lambda m: (m.since, m.reference, m.kind, m.what))),
            )
        )
    return Plan(day=as_of, digests=digests, escalations=escalations, actions_considered=len(actions), unrouted=dict(unrouted))


# --- config and store ---------------------------------------------------------------------------


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
        .where(Action.status == "open", Action.due_on <= horizon(as_of, rules, calendar))
    )
    with UnitOfWork(url) as uow:
        return [OpenAction(*row) for row in uow.session.execute(stmt)]


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

        def matter(r: Any, kind: str, since: dt.date, what: str) -> Matter:
            link = f"{ui_url.rstrip('/')}/runs/flow-run/{r.flow_run_id}" if ui_url and r.flow_run_id else None
            days = calendar.working_days_between(since, as_of)
            return Matter(kind, r.reference, r.crn, None if r.lao else r.name, since, days, what, link)

        for r in s.execute(
            select(
                Challenge.seq, Challenge.status, Challenge.dispute_status, Challenge.raised_on, Challenge.disputed_on, *nsi_cols
            )
            .join(Nsi, Nsi.id == Challenge.nsi_id)
            .where((Challenge.status == "open") | (Challenge.dispute_status == "open"))
        ):
            if r.status == "open":
                m = matter(
                    r, "challenge", r.raised_on, f"Challenge {r.seq} about risk: for the receiving SPO to uphold or withdraw"
                )
            else:
                m = matter(
                    r, "dispute", r.disputed_on, "Refusal disputed: for the head of the receiving PDU to confirm or overturn"
                )
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


def plan_for(as_of: dt.date, url: str | None = None) -> Plan:
    settings = get_settings()
    calendar = get_calendar(settings.calendar)
    rules = load_rules()
    matters = open_matters(as_of, calendar, url, settings.ui_url)
    plan = plan_digests(
        open_actions(as_of, rules, calendar, url), as_of, rules, calendar, pdu_contacts(), settings.ui_url, matters
    )
    return hold_example_mailboxes(plan, by_smtp=bool(settings.smtp_host))


def record_escalations(
    escalations: Sequence[Escalation], as_of: dt.date, url: str | None = None, flow_run_id: str | None = None
) -> int:
    """Set Action.escalated_on and write each escalation to its NSI's history, once.

    Returns how many history entries were new. Safe to repeat: the history key
    `escalated:<code>` is unique per NSI, and escalated_on keeps the first day.
    """
    if not escalations:
        return 0
    for attempt in range(2):
        with UnitOfWork(url) as uow:
            session = uow.session
            wanted = {(e.nsi_id, f"escalated:{e.code}"): e for e in escalations}
            have: set[tuple[int, str]] = set()
            nsi_ids = sorted({e.nsi_id for e in escalations})
            for i in range(0, len(nsi_ids), _CHUNK):
                rows = session.execute(
                    select(HistoryEntry.nsi_id, HistoryEntry.key).where(
                        HistoryEntry.nsi_id.in_(nsi_ids[i : i + _CHUNK]), HistoryEntry.key.like("escalated:%")
                    )
                )
                have.update((n, k) for n, k in rows)
            new = [
                {
                    "nsi_id": e.nsi_id,
                    "key": key,
                    "event": "escalated",
                    "detail": (
                        f"{e.title}: {e.working_days} working days overdue (due {e.due_on:%d %B %Y}); "
                        f"escalated to the SPOs of {e.owner_pdu} and {e.other_pdu}"
                    ),
                    "actor": ACTOR,
                    "flow_run_id": flow_run_id,
                }
                for (nsi_id, key), e in wanted.items()
                if (nsi_id, key) not in have
            ]
            if new:
                session.execute(insert(HistoryEntry), new)
            action_ids = sorted({e.action_id for e in escalations})
            for i in range(0, len(action_ids), _CHUNK):
                # Only a later date is replaced: a re-run, or a run for an earlier --as-of, keeps the first day.
                session.execute(
                    update(Action)
                    .where(Action.id.in_(action_ids[i : i + _CHUNK]))
                    .where((Action.escalated_on.is_(None)) | (Action.escalated_on > as_of))
                    .values(escalated_on=as_of)
                )
            try:
                uow.commit()
                return len(new)
            except IntegrityError:
                # Another run recorded some of these between our read and our write: read again.
                uow.rollback()
                if attempt:
                    raise
    return 0


# --- rendering and the whole run ----------------------------------------------------------------

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
TEMPLATE = "reminder_digest"


def digest_context(digest: Digest, rules: ReminderRules) -> dict[str, Any]:
    return {
        "digest": digest,
        "limit": rules.max_items_per_section,
        "role_label": ROLE_LABELS,
        "nsi_type_label": NSI_TYPE_LABELS,
        "by_case": by_case,
    }


def render_digests(plan: Plan, rules: ReminderRules | None = None) -> list[OutgoingEmail]:
    """One email per digest, keyed by recipient, day and content hash."""
    from tasks.notify.email import compose

    rules = rules or load_rules()
    settings = get_settings()
    return [
        compose(TEMPLATE, DIGEST_KIND, d.recipient, d.day, d.content_hash(), digest_context(d, rules), settings)
        for d in plan.digests
    ]


@dataclass
class RunSummary:
    """What a reminders run did, for the CLI, the flow's log and its result."""

    day: dt.date
    working_day: bool = True
    dry_run: bool = False
    recipients: int = 0
    actions: int = 0  # actions listed across all digests
    escalated: int = 0  # escalations recorded in this run (0 on a repeat of the same day)
    transport: str = ""
    sent: int = 0
    retried: int = 0
    skipped: int = 0
    in_flight: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    unrouted: dict[str, int] = field(default_factory=dict)
    held: int = 0  # digests for placeholder mailboxes, not sent through SMTP

    def lines(self) -> list[str]:
        if not self.working_day:
            return [f"{self.day:%A %d %B %Y} is not a working day: no reminders sent"]
        head = f"reminders for {self.day:%A %d %B %Y}: {self.recipients} recipients, {self.actions} actions listed"
        if self.dry_run:
            out = [
                f"{head}, {self.escalated} would be escalated",
                f"dry run: would send {self.sent}, skip {self.skipped} already sent; nothing sent, escalated or logged",
            ]
        else:
            out = [
                f"{head}, {self.escalated} escalated",
                f"sent {self.sent} ({self.retried} queued by an earlier run), skipped {self.skipped} already sent, "
                f"{self.in_flight} being sent by another run, failed {self.failed}"
                + (f" via {self.transport}" if self.transport else ""),
            ]
        out += [f"not sent: {e}" for e in self.errors]
        if self.held:
            out.append(
                f"held {self.held} digests for example mailboxes (config/spocs.yaml): nothing is sent to a placeholder "
                "through SMTP; put the real mailboxes in config/spocs.d/ or <data_dir>/spocs.d/"
            )
        if self.unrouted:
            codes = ", ".join(f"{code} ({n})" for code, n in sorted(self.unrouted.items()))
            out.append(f"no SPOC mailbox configured (config/spocs.yaml) for: {codes}")
        return out


class RemindersNotDelivered(NotDelivered):
    """Some digests stayed queued."""

    @staticmethod
    def describe(summary: RunSummary) -> str:
        return f"{summary.failed} of {summary.failed + summary.sent} reminder emails not sent; they stay queued for the next run"


def summarise(plan: Plan, escalated: int, report: DeliveryReport) -> RunSummary:
    return RunSummary(
        day=plan.day,
        recipients=len(plan.digests),
        actions=sum(d.item_count for d in plan.digests),
        escalated=escalated,
        transport=report.transport,
        sent=report.sent,
        retried=report.retried,
        skipped=report.skipped,
        in_flight=report.in_flight,
        failed=report.failed,
        errors=list(report.errors),
        unrouted=dict(plan.unrouted),
        held=len(plan.held),
    )


def preview(as_of: dt.date, url: str | None = None) -> tuple[RunSummary, list[OutgoingEmail]]:
    """A dry run: what would be sent today, rendered, with nothing sent, logged or escalated."""
    from tasks.notify.sent_log import pending_keys

    plan = plan_for(as_of, url)
    emails = render_digests(plan)
    status = pending_keys([e.key for e in emails], url)
    summary = RunSummary(
        day=as_of,
        dry_run=True,
        recipients=len(plan.digests),
        actions=sum(d.item_count for d in plan.digests),
        escalated=len(plan.escalations),
        sent=sum(1 for e in emails if status.get(e.key) != "sent"),
        skipped=sum(1 for e in emails if status.get(e.key) == "sent"),
        unrouted=dict(plan.unrouted),
        held=len(plan.held),
    )
    return summary, [e for e in emails if status.get(e.key) != "sent"]


@dataclass(frozen=True)
class NightSteps:
    """The four steps of a night's digests. The nightly-reminders flow passes them wrapped as
    Prefect tasks (each shows in the UI); the CLI and the tests take them as they are."""

    plan: Callable[[dt.date], Plan]
    escalate: Callable[[Plan], int]
    render: Callable[[Plan], list[OutgoingEmail]]
    send: Callable[[list[OutgoingEmail]], DeliveryReport]


def direct_steps(url: str | None = None, transport: Transport | None = None, flow_run_id: str | None = None) -> NightSteps:
    from tasks.notify.sent_log import deliver

    return NightSteps(
        plan=lambda day: plan_for(day, url),
        escalate=lambda plan: record_escalations(plan.escalations, plan.day, url, flow_run_id),
        render=render_digests,
        send=lambda emails: deliver(emails, url, transport),
    )


def run_reminders(
    as_of: dt.date | None = None,
    url: str | None = None,
    transport: Transport | None = None,
    flow_run_id: str | None = None,
    steps: NightSteps | None = None,
) -> RunSummary:
    """Plan, escalate, render and deliver one day's digests: the one path of the nightly-reminders
    flow (which passes its tasks as `steps`), `casetransfer remind` and the tests.

    Raises RemindersNotDelivered after attempting every message if any stayed queued.
    """
    as_of = as_of or get_settings().current_date()
    if not is_reminder_day(as_of, get_calendar(get_settings().calendar)):
        return RunSummary(day=as_of, working_day=False)
    steps = steps or direct_steps(url, transport, flow_run_id)
    plan = steps.plan(as_of)
    escalated = steps.escalate(plan)
    report = steps.send(steps.render(plan))
    summary = summarise(plan, escalated, report)
    if summary.failed:
        raise RemindersNotDelivered(summary)
    return summary
