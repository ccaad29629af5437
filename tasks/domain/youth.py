"""What the youth justice service's rules (004_b0433574f6005d61.txt) do to a transfer in the
concurrent shape, beyond what an answer's own effect does. Called by the store
(tasks/domain/transfers.py) inside the transaction that records the answer, action or change, so
each is written with it or not at all; every function is keyed and safe to run again.

- 12.4: once all requested information is in, the review of it opens (due from that day); a stay
  reopens the documents it names missing and stands the receiving deadlines still until they
  arrive; a rejection closes the request, and a new one may re-request it (linked both ways).
- Appendix A: the home service is contacted within 2 working days of receiving all information.
- 5.1, 5.3: a re-assessment as High or Very High RoSH or SaW, held by a worker below Band B, opens
  the co-allocation task; the agreement (5 days) and the six-weekly reviews follow it.
- 12.7: the caretaking agreement is complete once both areas have confirmed it.
- 2.1: a case manager's caseload is read from the store (open youth NSIs they hold).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tasks.calendar import get_calendar
from tasks.domain.actions import due_date
from tasks.domain.decisions import RuleBroken
from tasks.domain.form import TransferForm
from tasks.domain.policy import ActionRule
from tasks.domain.transfer import CLOSED, StepRefused, Transfer, today
from tasks.domain.youth_steps import CO_ALLOCATION, INFORMATION_REVIEW, check_capacity
from tasks.settings import get_settings
from tasks.store.models import Action, Nsi

_PAUSED_FROM = re.compile(r"stand still from (\d{4}-\d{2}-\d{2})")


def _applies(t: Transfer) -> bool:
    return t.policy.youth_process is not None and t.concurrent and not t.closed


def _rules(t: Transfer, clock: str) -> list[ActionRule]:
    return [r for r in t.policy.actions if r.clock == clock and t.nsi.nsi_type in r.nsi_types and t.shape in r.shapes]


def _plan(t: Transfer, rule: ActionRule, start: dt.date) -> Action:
    """The action of `rule`, due from `start`: added, or re-dated while open."""
    due = due_date(rule, start, get_calendar(get_settings().calendar))
    action = next((a for a in t.nsi.actions if a.code == rule.code), None)
    if action is None:
        action = Action(code=rule.code, title=rule.title, owner_role=rule.owner, due_on=due)
        t.nsi.actions.append(action)
    elif action.status == "open":
        action.due_on, action.escalated_on = due, None
    return action


# ---- 12.4 and Appendix A: the information received ----


def _open_pause(t: Transfer) -> tuple[str, dt.date] | None:
    """The stay whose missing items have not arrived yet: (its attempt, the day it was stayed)."""
    keys = {h.key for h in t.nsi.history}
    for h in reversed(t.nsi.history):
        if h.key.startswith("paused:") and f"resumed:{h.key.removeprefix('paused:')}" not in keys:
            found = _PAUSED_FROM.search(h.detail)
            return (h.key.removeprefix("paused:"), dt.date.fromisoformat(found.group(1))) if found else None
    return None


def information_received(t: Transfer) -> dt.date | None:
    """The day the last of the requested information arrived, once all of it has (12.4, Appendix A)."""
    process = t.policy.youth_process
    assert process is not None
    wanted = [a for a in t.nsi.actions if a.code in process.information_actions]
    if not wanted or any(a.status != "done" or a.done_on is None for a in wanted):
        return None
    return max(a.done_on for a in wanted if a.done_on is not None)


def _information_in(t: Transfer, by: str) -> None:
    """All requested information is in: the review and the supervision requirements are due from
    that day; after a stay, the receiving deadlines move on by the working days they stood still."""
    on = information_received(t)
    if on is None:
        return
    process = t.policy.youth_process
    assert process is not None
    pause = _open_pause(t)
    planned = {a.code for a in t.nsi.actions}
    rules = _rules(t, "information")
    if pause is None and all(r.code in planned for r in rules):
        return  # planned when the information first came in: nothing has changed since
    if pause is not None:
        attempt, since = pause
        calendar = get_calendar(get_settings().calendar)
        stood = calendar.working_days_between(since, on)
        for action in t.nsi.actions:
            if action.status == "open" and action.owner_role in process.paused_roles:
                action.due_on, action.escalated_on = calendar.add_working_days(action.due_on, stood), None
        t.nsi.due_on = calendar.add_working_days(t.nsi.due_on, stood)
        t.note(f"resumed:{attempt}", "information received",
               f"the missing information arrived on {on.isoformat()}: the receiving deadlines moved on {stood} working days (12.4)", by)  # fmt: skip
    for rule in rules:
        _plan(t, rule, on)
    t.wake()


def _stayed(t: Transfer, answer: dict[str, Any], attempt: int, by: str) -> None:
    """12.4: a stay reopens the documents (and the checklist's missing documents), due again from
    the stay, and the receiving deadlines stand still until they arrive."""
    process = t.policy.youth_process
    assert process is not None
    if any(h.key == f"paused:{attempt}" for h in t.nsi.history):
        return
    on = dt.date.fromisoformat(str(answer["done_on"])) if answer.get("done_on") else today()
    calendar = get_calendar(get_settings().calendar)
    reopened = []
    for code in process.stay_reopens:
        action = next((a for a in t.nsi.actions if a.code == code), None)
        if action is None:
            continue
        record = t.recorded(code)
        if record is not None:
            # The first receipt stays in the record, as `documents~1`, so the task can be done again.
            record.step = f"{code}~{1 + sum(1 for s in t.nsi.steps if s.step.startswith(f'{code}~'))}"
        action.status, action.done_on, action.escalated_on = "open", None, None
        action.due_on = calendar.add_working_days(on, process.stay_documents_working_days)
        for row in t.nsi.tasks:
            if row.task == code and row.status in ("recorded", "done"):
                row.status = "superseded"
        reopened.append(code.replace("_", " "))
    t.note(f"paused:{attempt}", "stayed",
           f"{', '.join(reopened) or 'nothing'} to be sent again by {calendar.add_working_days(on, process.stay_documents_working_days)}; "
           f"the receiving deadlines stand still from {on.isoformat()} until the missing items arrive (12.4)", by)  # fmt: skip
    t.wake()


def stays_to_tell(t: Transfer) -> list[str]:
    """The history keys of the stays the requesting service is told of (tasks/notify/notices.py)."""
    return [h.key for h in t.nsi.history if h.key.startswith(f"attempt:{INFORMATION_REVIEW}:") and h.event == "stayed"]


# ---- 5.1, 5.3: co-allocation after a re-assessment ----


def _held_by_senior(t: Transfer) -> bool:
    rules = t.policy.allocation
    assert rules is not None
    holders = [t.nsi.receiving_practitioner or ""]
    for step in ("allocation", CO_ALLOCATION):
        if (record := t.recorded(step)) is not None:
            holders.append(str(record.answer.get("co_allocated_to") or ""))
    return any((m := rules.member(h)) is not None and m.band in rules.senior_bands for h in holders)


def reassessed(t: Transfer, on: dt.date, by: str) -> str | None:
    """5.1: a case re-assessed as High or Very High RoSH or SaW, held by a worker below Band B
    and not co-allocated to one, opens the co-allocation task. Returns the history's words."""
    rules = t.policy.allocation
    if not _applies(t) or rules is None or t.nsi.allocated_on is None or _held_by_senior(t):
        return None
    form = TransferForm.model_validate(t.nsi.form)
    high = [f"{name} {level.value}" for name, level in (("RoSH", form.rosh), ("SaW", form.saw_level))
            if level is not None and level.value in rules.high_levels]  # fmt: skip
    rule = next((r for r in _rules(t, "reassessed") if r.step == CO_ALLOCATION), None)
    if not high or rule is None:
        return None
    if t.recorded(CO_ALLOCATION) is not None:
        return None
    _plan(t, rule, on)
    holder = rules.member(t.nsi.receiving_practitioner or "")
    band = f"Band {holder.band}" if holder else "not on the staff list"
    words = f"5.1: re-assessed {' and '.join(high)}, held by {t.nsi.receiving_practitioner} ({band}): co-allocate to a Band {'/'.join(rules.senior_bands)} worker"
    t.note(f"co_allocation_due:{on.isoformat()}", "co-allocation needed", words, by)
    t.wake()
    return words


def _co_allocated(t: Transfer, on: dt.date) -> None:
    """5.3: the agreement within 5 days of the co-allocation, then reviews at least every six weeks."""
    for rule in t.policy.actions:
        if rule.when == "co_allocated" and t.shape in rule.shapes and not any(a.code == rule.code for a in t.nsi.actions):
            _plan(t, rule, on)


# ---- 12.7: the caretaking agreement, confirmed by both areas ----


def _confirmations(t: Transfer, by: str) -> None:
    process = t.policy.youth_process
    assert process is not None
    codes = process.caretaking_confirmations
    actions = {a.code: a for a in t.nsi.actions if a.code in codes}
    if not codes or set(actions) != set(codes) or any(a.status != "done" for a in actions.values()):
        return
    who = {h.key.split(":", 1)[1]: h.actor for h in t.nsi.history if h.key in {f"{p}:{c}" for c in codes for p in ("step", "action")}}
    parts = [f"{actions[c].title.rsplit('retained by the ', 1)[-1]}: {who.get(c, 'unknown')} on {actions[c].done_on}" for c in codes]
    t.note("caretaking_agreed", "caretaking agreed", "caretaking agreement complete, confirmed in writing by both areas (12.7): "
           + "; ".join(parts), by)  # fmt: skip


# ---- what the store calls ----


def after_answer(t: Transfer, step: str, answer: dict[str, Any], attempt: int) -> None:
    """After an answer (or an action done) is recorded, in its transaction."""
    if t.policy.youth_process is None:
        return
    by = str(answer.get("recorded_by") or "unknown")
    if t.concurrent and step == INFORMATION_REVIEW and answer.get("outcome") == "stay" and not t.closed:
        if any(h.key == f"attempt:{INFORMATION_REVIEW}:{attempt}" and h.event == "stayed" for h in t.nsi.history):
            _stayed(t, answer, attempt, by)
        return
    if step == CO_ALLOCATION and (record := t.recorded(CO_ALLOCATION)) is not None and record.done_on is not None:
        _co_allocated(t, record.done_on)
    _confirmations(t, by)
    if _applies(t):
        _information_in(t, by)


def caseload(session: Session, staff_id: str, besides: Nsi) -> int:
    """2.1: the open NSIs of the service (its profile) a case manager holds, besides the one being allocated."""
    return session.scalar(
        select(func.count()).select_from(Nsi).where(
            Nsi.profile == besides.profile, Nsi.receiving_practitioner == staff_id.strip().upper(),
            Nsi.status.not_in(CLOSED), Nsi.id != besides.id,
        )
    ) or 0  # fmt: skip


def check_capacity_now(session: Session, t: Transfer, step: str, answer: dict[str, Any]) -> None:
    """2.1 against the store: allocating to someone at the caseload limit needs a rationale."""
    rules = t.policy.allocation
    if step != "allocation" or rules is None or rules.max_caseload is None or not answer.get("case_manager"):
        return
    try:
        check_capacity(answer, rules, caseload(session, str(answer["case_manager"]), t.nsi))
    except RuleBroken as exc:
        raise StepRefused(exc.field, str(exc).removeprefix(f"{exc.field}: ")) from None


# ---- 12.4: a rejected request asked again ----


def re_request(session: Session, form: TransferForm) -> Transfer | None:
    """The rejected request this form re-requests, checked: the same young person's, rejected
    under 12.4. StepRefused names the field."""
    ref = form.re_request_of
    if ref is None:
        return None
    nsi = session.scalar(select(Nsi).where(Nsi.reference == ref))
    if nsi is None:
        raise StepRefused("re_request_of", f"there is no NSI {ref} to re-request")
    if nsi.crn != form.crn:
        raise StepRefused("re_request_of", f"{ref} is another young person's NSI (not this crn's)")
    old = Transfer(nsi)
    record = old.recorded(INFORMATION_REVIEW)
    if nsi.status != "refused" or record is None or record.answer.get("outcome") != "reject":
        raise StepRefused("re_request_of", f"{ref} was not rejected for its information (12.4): only such a request is re-requested")
    return old


def link_re_request(old: Transfer, new_reference: str, by: str) -> str:
    """Both NSIs say so; returns the new one's words."""
    old.note(f"re_requested:{new_reference}", "re-requested", f"re-requested as {new_reference} (12.4)", by)
    return f"; re-requests {old.reference}, rejected for its information (12.4)"
