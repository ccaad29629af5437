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

Everything here is a pure function over small typed models. What the digests read is in
tasks/notify/outstanding.py, the one write in tasks/notify/escalations.py, and the nightly job
that words and sends them in tasks/notify/digests.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np

from tasks.calendar import WorkingDayCalendar
from tasks.domain.import_mapping import recorded
from tasks.domain.policy import get_policy
from tasks.domain.work_tags import runs_list_url
from tasks.notify.email import load_email_config
from tasks.settings import get_settings


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
    # How far back a digest's link to a role's task list looks: a task waits at most this long
    # (the policy's suspend_timeout_days), so none older is still waiting.
    task_list_days: int

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
        task_list_days=policy.suspend_timeout_days,
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
    repeat_mover: int = 0  # NSIs raised for the person in the repeat-mover window, when a repeat mover (tasks/domain/moving_again.py)


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
    spo: str | None  # None: not recorded (an imported case whose tracker did not name one)
    other_mailbox: str  # the other side's transfer mailbox: who to contact about it
    due_on: dt.date
    # Working days until due (due soon) or overdue by (overdue, escalated).
    working_days: int
    escalated_on: dt.date | None
    yours: bool  # False: the other side's action, escalated to this mailbox to chase
    link: str | None
    transfer_due_on: dt.date | None = None
    repeat_mover: int = 0  # as OpenAction's: 0 unless the person is a repeat mover


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

    kind: str  # challenge | dispute | escalated | clock stopped | undelivered
    reference: str
    crn: str
    name: str | None  # None for a limited access case
    since: dt.date
    working_days: int  # since then, in working days
    what: str  # plain words, no free text
    link: str | None = None
    owner_role: str | None = None  # whose task it is (a challenge's, a dispute's), when it is one


@dataclass(frozen=True)
class TaskList:
    """A link to the Prefect UI's runs list of one role's tasks waiting in one PDU."""

    owner_role: str
    pdu_code: str
    url: str


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
    task_lists: tuple[TaskList, ...] = ()  # the mailbox PDU's own roles with something listed

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
        # The links follow from the mailbox and the roles listed, not from what is due: a change
        # in how they are written must not send the day's digest a second time.
        data.pop("task_lists", None)
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
    unique = sorted({n.strip() for n in names if recorded(n)})
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
        spo=recorded(a.transferring_spo),
        other_mailbox=contacts[contact_code].mailbox,
        due_on=a.due_on,
        working_days=working_days,
        escalated_on=escalated_on,
        yours=yours,
        link=f"{ui_url.rstrip('/')}/runs/flow-run/{a.flow_run_id}" if ui_url and a.flow_run_id else None,
        transfer_due_on=a.transfer_due_on,
        repeat_mover=a.repeat_mover,
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
                task_lists=task_lists(contact.pdu_code, s, matters_of[mailbox], rules, ui_url),
            )
        )
    return Plan(day=as_of, digests=digests, escalations=escalations, actions_considered=len(actions), unrouted=dict(unrouted))


def task_lists(
    pdu_code: str,
    sections: Mapping[Category, Mapping[tuple[str, str], Item]],
    matters: Iterable[Matter],
    rules: ReminderRules,
    ui_url: str | None,
) -> tuple[TaskList, ...]:
    """One link per role of this PDU with work in the digest (its own actions, a challenge or a
    dispute waiting for it): the UI's runs list of that role's tasks in this PDU. Roles and codes
    only. The other side's escalated actions are theirs to do, so they bring no link."""
    if not ui_url:
        return ()
    roles = {i.owner_role for items in sections.values() for i in items.values() if i.yours}
    roles |= {m.owner_role for m in matters if m.owner_role}
    return tuple(TaskList(role, pdu_code, runs_list_url(ui_url, pdu_code, role, rules.task_list_days)) for role in sorted(roles))
