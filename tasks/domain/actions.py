"""The Action List, derived from the transfer form and the policy in force.

Pure functions: a form, its clocks and a policy in, planned actions out. The store applies them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dateutil.relativedelta import relativedelta

from tasks.calendar import WorkingDayCalendar
from tasks.domain import conditions
from tasks.domain.form import NsiType, TransferForm
from tasks.domain.policy import ActionRule, Policy


@dataclass(frozen=True)
class Clocks:
    """The days each kind of clock starts; None where that clock has not started yet."""

    raised: dt.date
    received: dt.date
    move: dt.date
    reallocation: dt.date | None = None
    returned: dt.date | None = None  # a temporary move's person came back (its outcome step)
    caretaking: dt.date | None = None  # the caretaking agreement's start (a support allocation)
    concerns: dt.date | None = None  # checks recorded with concerns, or an unsuitable address (tasks/domain/concerns.py)
    absence: dt.date | None = None  # an absence recorded (tasks/domain/continuity.py): never at raising
    information: dt.date | None = None  # youth 12.4: all requested information received (tasks/domain/youth.py)
    reassessed: dt.date | None = None  # youth 5.1: a new RoSH or SaW level recorded (tasks/domain/youth.py)

    def start(self, clock: str) -> dt.date | None:
        return getattr(self, clock)


@dataclass(frozen=True)
class Facts:
    """What the conditions in config/timescales.yaml ask about a transfer."""

    form: TransferForm
    nearby_pdu: bool = False
    allocation: dict[str, Any] | None = None  # the allocation answer, once recorded


CONDITIONS: dict[str, Callable[[Facts], bool]] = {
    "high_rosh": lambda f: f.form.high_rosh,
    "mappa_level_2_or_3": lambda f: (f.form.mappa_level or 0) >= 2,
    "high_rosh_or_mappa": lambda f: f.form.high_rosh or f.form.mappa_category is not None,
    "victim_contact": lambda f: f.form.victim_contact,
    "nearby_pdu": lambda f: f.nearby_pdu,
    "court_order": lambda f: f.form.court_order,
    "safeguarding_concerns": lambda f: f.form.safeguarding_concerns,
    "internal_transfer": lambda f: f.form.internal_transfer,
    "no_transfer_in_summary": lambda f: f.form.transfer_in is None,
    "transfer_in_documents_missing": lambda f: f.form.transfer_in is not None and bool(f.form.transfer_in.documents.missing()),
    "co_allocated": lambda f: bool(f.allocation and f.allocation.get("co_allocated_to")),
    "parenting_order": lambda f: bool(f.form.parenting_orders),
    "documents_listed": lambda f: not f.form.documents.none_marked(),
    "address_in_exclusion_zone": lambda f: conditions.address_in_exclusion_zone(f.form) is not None,
    "oasys_out_of_date": lambda f: conditions.oasys_out_of_date(f.form),
    "approved_premises": lambda f: conditions.approved_premises(f.form),
    # 004 12.10: both parents on Parenting Orders and the young person living with one of them; or with neither.
    "both_parenting_orders_one_parent": lambda f: len(f.form.parenting_orders) == 2
    and sum(o.lives_with_young_person for o in f.form.parenting_orders) == 1,
    "parenting_orders_neither_parent": lambda f: bool(f.form.parenting_orders)
    and not any(o.lives_with_young_person for o in f.form.parenting_orders),
}


@dataclass(frozen=True)
class PlannedAction:
    code: str
    title: str
    owner_role: str
    due_on: dt.date
    step: str | None


def due_date(rule: ActionRule, start: dt.date, calendar: WorkingDayCalendar) -> dt.date:
    if rule.working_days is not None:
        return calendar.add_working_days(start, rule.working_days)
    if rule.days is not None:
        return start + dt.timedelta(days=rule.days)
    if rule.weeks is not None:
        return start + dt.timedelta(weeks=rule.weeks)
    assert rule.months is not None
    return start + relativedelta(months=rule.months)


def applies(rule: ActionRule, facts: Facts) -> bool:
    if facts.form.nsi_type.value not in rule.nsi_types:
        return False
    if rule.when is None:
        return True
    try:
        return CONDITIONS[rule.when](facts)
    except KeyError:
        raise ValueError(f"config/timescales.yaml: action {rule.code} names unknown condition {rule.when!r}") from None


def plan_actions(
    facts: Facts, clocks: Clocks, policy: Policy, calendar: WorkingDayCalendar, shape: int | None = None
) -> list[PlannedAction]:
    """Every action that applies (to the NSI's process shape, when given) and whose clock has
    started, with its due date."""
    planned = []
    for rule in policy.actions:
        start = clocks.start(rule.clock)
        if start is None or (shape is not None and shape not in rule.shapes) or not applies(rule, facts):
            continue
        planned.append(PlannedAction(rule.code, rule.title, rule.owner, due_date(rule, start, calendar), rule.step))
    return planned


def transfer_due(raised_on: dt.date, policy: Policy, calendar: WorkingDayCalendar, nsi_type: NsiType) -> dt.date:
    """When the whole NSI should be finished: 20 working days for a transfer, the caretaking
    limit for a temporary move."""
    if nsi_type is NsiType.temporary_move:
        return raised_on + relativedelta(months=policy.caretaking_months)
    return calendar.add_working_days(raised_on, policy.transfer_working_days)
