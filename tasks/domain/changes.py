"""What happens when a transfer changes after it is raised: a new destination, new dates, a
change of risk, a clock stopped while the person cannot be supervised (config/changes.yaml;
DOMAIN.md "When a transfer changes").

Each change is a function over a Transfer: it checks the change, applies it in memory and writes
one history line (before → after, who, why); the caller's unit of work commits it or nothing.
What was done stays done and dated; what depends on the new place, date or risk is planned
again. Each returns a `Changed`: the Prefect runs whose task is no longer theirs (the service
stops them), those still open whose owners are now at another PDU (retagged, so each person's list
in the UI follows the store), and the events the other side is told of at once
(tasks/notify/notices.py). The
transfer's run is woken (`Transfer.wake`) so its waiting tasks follow the Action List.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from tasks.calendar import get_calendar
from tasks.config_files import read_yaml
from tasks.domain import conditions
from tasks.domain.actions import Clocks, Facts, applies, due_date, plan_actions
from tasks.domain.form import NsiType, TransferForm, normalise_postcode, parse_form
from tasks.domain.policy import ActionRule
from tasks.domain.steps import AWAITING_ALLOCATION
from tasks.domain.transfer import StepRefused, Transfer, today
from tasks.domain.work_tags import PDU_TAG, owner_pdu
from tasks.settings import get_settings
from tasks.store.models import Action, utcnow

NOT_REQUIRED = "not_required"
# The clocks the receiving side's work runs on: they restart when the receiving PDU changes.
RECEIVING_CLOCKS = ("received", "reallocation")
RISK_FIELDS = ("rosh", "saw_level", "mappa_category", "mappa_level", "safeguarding_concerns", "victim_contact")


class DestinationRules(BaseModel):
    new_address_redoes: list[str]
    new_pdu_redoes: list[str]


class ClockStopRules(BaseModel):
    reasons: dict[str, str]
    review_after_working_days: int


class SentenceEndRules(BaseModel):
    ask_when_ending_before_due: bool


class ChangeRules(BaseModel):
    destination: DestinationRules
    clock_stop: ClockStopRules
    sentence_end: SentenceEndRules


@lru_cache(maxsize=1)
def _rules(path: str) -> ChangeRules:
    return ChangeRules.model_validate(read_yaml(get_settings().config_dir / path))


def change_rules() -> ChangeRules:
    return _rules("changes.yaml")


@dataclass
class Changed:
    """What a change leaves for the services: runs to stop, events to tell, and the words."""

    detail: str
    runs_to_stop: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    # (run, PDU tag) of task runs still open whose owning PDU changed: each person's list in the
    # UI (tasks/domain/work_tags.py) must show them to their new owners, not their old ones.
    runs_to_retag: list[tuple[str, str]] = field(default_factory=list)


def _refuse_closed(t: Transfer) -> None:
    if t.closed:
        raise StepRefused("nsi", f"{t.reference} is {t.nsi.status}: a closed transfer cannot be changed")


def _seq(t: Transfer, prefix: str) -> int:
    return 1 + sum(1 for h in t.nsi.history if h.key.startswith(prefix))


def _form_with(t: Transfer, **changes: Any) -> TransferForm:
    """The NSI's form with these fields changed, checked by the rules a new form meets under the
    NSI's policy (FormError names every bad field), as of the day it was raised."""
    return parse_form({**t.nsi.form, "raised_on": t.nsi.raised_on.isoformat(), **changes}, t.nsi.profile)


def _facts(t: Transfer, form: TransferForm) -> Facts:
    allocation = t.recorded("allocation")
    nearby = t.nsi.distance_km is not None and t.nsi.distance_km < t.policy.nearby_pdu_km
    return Facts(form, nearby_pdu=nearby, allocation=allocation.answer if allocation else None)


def _rule(t: Transfer, code: str) -> ActionRule | None:
    return next((r for r in t.policy.actions if r.code == code), None)


def _check_day(t: Transfer, name: str, on: dt.date) -> None:
    if on > today():
        raise StepRefused(name, f"{on} is in the future: a change is recorded on or after the day it happened")
    if on < t.nsi.raised_on:
        raise StepRefused(name, f"{on} is before the NSI was raised ({t.nsi.raised_on})")


# ---- a new destination ----


def supersede_step(t: Transfer, step: str, why: str, by: str) -> bool:
    """The step's record is kept, renamed `<step>~<n>`, so the step can be recorded again; its
    actions reopen and its task opens a new round. False when it was not recorded."""
    record = t.recorded(step)
    if record is None:
        return False
    n = 1 + sum(1 for s in t.nsi.steps if s.step.startswith(f"{step}~"))
    record.step = f"{step}~{n}"
    for rule in t.policy.rules_for_step(step, t.nsi.shape_version) or ([r] if (r := _rule(t, step)) else []):
        for action in t.nsi.actions:
            if action.code == rule.code and action.status == "done":
                action.status, action.done_on, action.escalated_on = "open", None, None
    for row in t.nsi.tasks:
        if row.task == step and row.status in ("recorded", "done"):
            row.status = "superseded"
    t.note(f"superseded:{step}:{n}", "to do again", f"{step.replace('_', ' ')} to be done again: {why}", by)
    return True


def amend_destination(
    t: Transfer,
    *,
    by: str,
    reason: str,
    proposed_postcode: str | None = None,
    proposed_address: str | None = None,
    receiving_pdu_code: str | None = None,
    on: dt.date | None = None,
) -> Changed:
    """A new proposed address (the locator finds its PDU) or a named receiving PDU. When the PDU
    changes, the receiving side's open work moves to the new PDU from `on` (its clocks restart),
    the old PDU is told the case is no longer coming and the new one that it is."""
    from tasks.places.estate import load_estate
    from tasks.places.placement import check_placement, place

    nsi = t.nsi
    _refuse_closed(t)
    if nsi.nsi_type != NsiType.case_transfer.value or t.shape < 2:
        raise StepRefused(
            "destination",
            f"{t.reference} was raised before destinations could change ({'a temporary move' if nsi.nsi_type != NsiType.case_transfer.value else 'one step after another'}): "
            f"withdraw it and raise the new move with --supersedes {t.reference}",
        )
    if t.disputed() is not None or t.open_challenge() is not None:
        raise StepRefused("destination", f"{t.reference} has a challenge or dispute open: settle it before changing the destination")
    on = on or today()
    _check_day(t, "on", on)
    changes: dict[str, Any] = {}
    if proposed_postcode:
        try:
            changes["proposed_postcode"] = normalise_postcode(proposed_postcode)
        except ValueError as exc:
            raise StepRefused("proposed_postcode", str(exc)) from None
    if proposed_address:
        changes["proposed_address"] = proposed_address.strip()
    if receiving_pdu_code:
        # A PDU other than the locator's for the postcode needs a reason (placement.place): the amendment's.
        changes["receiving_pdu_code"] = receiving_pdu_code.strip().upper()
        changes["receiving_pdu_reason"] = reason
    elif proposed_postcode:
        changes["receiving_pdu_code"] = changes["receiving_pdu_reason"] = None  # the locator decides for the new postcode
    if not changes:
        raise StepRefused("destination", "give a new proposed postcode (with its address) or a receiving PDU code")
    form = _form_with(t, **changes)
    placement = place(form)
    check_placement(form, placement, t.policy)
    old_pdu, new_pdu = nsi.receiving_pdu_code, placement.receiving_pdu_code
    old_postcode = nsi.form.get("proposed_postcode")
    new_address = form.proposed_postcode != old_postcode or form.proposed_address != nsi.form.get("proposed_address")
    if new_pdu == old_pdu and not new_address:
        raise StepRefused("destination", f"{t.reference} already goes to {new_pdu} at that address: nothing to change")
    estate = load_estate()
    rules = change_rules().destination
    redo = (set(rules.new_address_redoes) if new_address else set()) | (set(rules.new_pdu_redoes) if new_pdu != old_pdu else set())
    why = "the destination changed"
    redone = [s for s in sorted(redo) if supersede_step(t, s, why, by)]
    changed = Changed("")
    if new_pdu != old_pdu:
        nsi.receiving_pdu_code = new_pdu
        nsi.receiving_region_code = estate.pdus[new_pdu].region_code
        nsi.received_on = on
        if "allocation" in redone:
            nsi.receiving_team_code = nsi.receiving_practitioner = nsi.allocated_on = None
            nsi.status = AWAITING_ALLOCATION
        changed.runs_to_stop += _restart_receiving_side(t, on)
        changed.runs_to_retag += _owned_elsewhere(t, old_pdu)
        changed.events.append(f"destination:{_seq(t, 'destination:')}:{old_pdu}")
    nsi.distance_km = placement.distance_km
    nsi.form = form.model_dump(mode="json")
    flagged, flag_key = recheck_zone(t, form, on, by) if new_address else (None, None)
    t.wake()
    before = f"{estate.pdus[old_pdu].name} ({old_postcode})"
    after = f"{estate.pdus[new_pdu].name} ({form.proposed_postcode})"
    detail = f"destination: {before} → {after}"
    if redone:
        detail += f"; to do again: {', '.join(s.replace('_', ' ') for s in redone)}"
    if flagged:
        detail += f"; {flagged}"
    changed.detail = f"{detail}: {reason}"
    key = changed.events[0] if changed.events else f"amended:{_seq(t, 'amended:')}"
    t.note(key, "destination changed", changed.detail, by)
    if flag_key:
        changed.events.append(flag_key)  # both practitioners' PDUs are told at once
    return changed


def recheck_zone(t: Transfer, form: TransferForm, on: dt.date, by: str) -> tuple[str | None, str | None]:
    """A new address inside an exclusion zone is flagged (history) and the conditions check opens,
    or reopens, due again from `on`; an open check the new address no longer needs closes as not
    required. Returns the words for the change's history line (None when nothing changed) and the
    flag's history key (the notice's event), if flagged."""
    nsi = t.nsi
    rule = _rule(t, conditions.CONDITIONS_CHECK)
    if rule is None or nsi.nsi_type not in rule.nsi_types:
        return None, None
    action = next((a for a in nsi.actions if a.code == rule.code), None)
    zone = conditions.address_in_exclusion_zone(form)
    if zone is None:
        if action is not None and action.status == "open":
            action.status = NOT_REQUIRED
            return "in no exclusion zone: the conditions check is no longer required", None
        return None, None
    due = due_date(rule, on, get_calendar(get_settings().calendar))
    if action is None:
        nsi.actions.append(Action(code=rule.code, title=rule.title, owner_role=rule.owner, due_on=due))
    else:
        action.status, action.done_on, action.due_on, action.escalated_on = "open", None, due, None
    seq = 1 + sum(1 for h in nsi.history if h.event == conditions.FLAGGED)
    t.note(f"flagged:{seq}", conditions.FLAGGED, conditions.flag_words(form, zone), by)
    return f"inside exclusion zone {zone.area}: conditions check due {due.isoformat()}", f"flagged:{seq}"


def _restart_receiving_side(t: Transfer, on: dt.date) -> list[str]:
    """The receiving side's open actions are due again from `on`; its open task runs are
    superseded (the transfer's run opens each again, described for the new PDU). Returns the
    runs to stop."""
    calendar = get_calendar(get_settings().calendar)
    nsi, runs = t.nsi, []
    receiving_tasks = set()
    for action in nsi.actions:
        rule = _rule(t, action.code)
        if rule is None or rule.clock not in RECEIVING_CLOCKS:
            continue
        receiving_tasks.add(rule.task)
        if action.status == "open":
            action.due_on, action.escalated_on = due_date(rule, on, calendar), None
    for row in nsi.tasks:
        if row.status == "open" and row.task in receiving_tasks:
            row.status, row.closed_at = "superseded", utcnow()
            if row.flow_run_id:
                runs.append(row.flow_run_id)
    return runs


def _owned_elsewhere(t: Transfer, old_pdu: str) -> list[tuple[str, str]]:
    """The task runs still open (not restarted: a receiving SPO's decision on police concerns, say)
    whose owner is now at another PDU: (run, the new PDU's tag)."""
    nsi = t.nsi
    moved = []
    for row in nsi.tasks:
        if row.status != "open" or not row.flow_run_id:
            continue
        owner_now = owner_pdu(row.owner_role, nsi.transferring_pdu_code, nsi.receiving_pdu_code)
        if owner_now != owner_pdu(row.owner_role, nsi.transferring_pdu_code, old_pdu):
            moved.append((row.flow_run_id, f"{PDU_TAG}{owner_now}"))
    return moved


# ---- new dates ----


def amend_dates(
    t: Transfer, *, by: str, reason: str, move_date: dt.date | None = None, expected_return_date: dt.date | None = None
) -> Changed:
    """A new move (or release) date: the actions counted from the move are due again from it;
    done ones keep their dates. A temporary move's expected return is the tracker's."""
    nsi = t.nsi
    _refuse_closed(t)
    if move_date is None and expected_return_date is None:
        raise StepRefused("dates", "give --move-date or --expected-return")
    if expected_return_date is not None and nsi.nsi_type != NsiType.temporary_move.value:
        raise StepRefused("expected_return_date", "only a temporary move has an expected return date")
    changes: dict[str, Any] = {}
    words = []
    if move_date is not None:
        if move_date < nsi.raised_on:
            raise StepRefused("move_date", f"{move_date} is before the NSI was raised ({nsi.raised_on})")
        words.append(f"move date {nsi.move_on or 'not set'} → {move_date}")
        changes["move_date"] = move_date.isoformat()
    if expected_return_date is not None:
        words.append(f"expected return {nsi.form.get('expected_return_date') or 'not set'} → {expected_return_date}")
        changes["expected_return_date"] = expected_return_date.isoformat()
    form = _form_with(t, **changes)
    nsi.form = form.model_dump(mode="json")
    moved = []
    if move_date is not None:
        nsi.move_on = move_date
        calendar = get_calendar(get_settings().calendar)
        for action in nsi.actions:
            rule = _rule(t, action.code)
            if rule is not None and rule.clock == "move" and action.status == "open":
                action.due_on, action.escalated_on = due_date(rule, move_date, calendar), None
                moved.append(f"{action.code} due {action.due_on}")
    detail = "; ".join(words) + (f" ({', '.join(moved)})" if moved else "") + f": {reason}"
    t.note(f"amended:{_seq(t, 'amended:')}", "dates changed", detail, by)
    t.wake()
    return Changed(detail)


# ---- a change of risk ----


def amend_risk(
    t: Transfer,
    *,
    by: str,
    reason: str,
    rosh: str | None = None,
    saw_level: str | None = None,
    mappa_category: int | None = None,
    mappa_level: int | None = None,
    no_mappa: bool = False,
    safeguarding_concerns: bool | None = None,
    victim_contact: bool | None = None,
    on: dt.date | None = None,
) -> Changed:
    """RoSH, MAPPA or safeguarding changed: the actions the new risk requires are added, due from
    `on`; those it no longer requires close as no longer required (never deleted). The transfer's
    run opens or cancels their waiting tasks to match."""
    nsi = t.nsi
    _refuse_closed(t)
    on = on or today()
    _check_day(t, "on", on)
    changes: dict[str, Any] = {}
    if rosh is not None:
        changes["rosh"] = rosh
    if saw_level is not None:
        changes["saw_level"] = saw_level  # youth justice: a re-assessed SaW (004 5.1)
    if no_mappa:
        changes["mappa_category"] = changes["mappa_level"] = None
    if mappa_category is not None:
        changes["mappa_category"] = mappa_category
    if mappa_level is not None:
        changes["mappa_level"] = mappa_level
    if safeguarding_concerns is not None:
        changes["safeguarding_concerns"] = safeguarding_concerns
    if victim_contact is not None:
        changes["victim_contact"] = victim_contact
    if not changes:
        raise StepRefused("risk", "give --rosh, --saw, --mappa-category/--mappa-level (or --no-mappa), --safeguarding or --victim-contact")
    before = TransferForm.model_validate(nsi.form)
    form = _form_with(t, **changes)
    words = [
        f"{name.replace('_', ' ')} {_shown(getattr(before, name))} → {_shown(getattr(form, name))}"
        for name in RISK_FIELDS
        if getattr(before, name) != getattr(form, name)
    ]
    if not words:
        raise StepRefused("risk", f"{t.reference} already has that risk: nothing to change")
    nsi.form = form.model_dump(mode="json")
    nsi.rosh, nsi.mappa_category, nsi.mappa_level = form.rosh.value, form.mappa_category, form.mappa_level
    added, dropped = replan_for(t, form, on)
    if added:
        words.append(f"added: {', '.join(added)}")
    if dropped:
        words.append(f"no longer required: {', '.join(dropped)}")
    detail = "risk: " + "; ".join(words) + f": {reason}"
    t.note(f"amended:{_seq(t, 'amended:')}", "risk changed", detail, by)
    t.wake()
    return Changed(detail)


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(getattr(value, "value", value))


def replan_for(t: Transfer, form: TransferForm, on: dt.date) -> tuple[list[str], list[str]]:
    """Add the conditional actions the form now requires (due from `on`, or reopen one closed as
    no longer required) and close the open ones it no longer requires. Returns their codes."""
    nsi, policy = t.nsi, t.policy
    facts = _facts(t, form)
    calendar = get_calendar(get_settings().calendar)
    allocated = nsi.allocated_on is not None
    clocks = Clocks(raised=on, received=on, move=max(nsi.move_on or on, on), reallocation=on if allocated else None)
    planned = {p.code: p for p in plan_actions(facts, clocks, policy, calendar, nsi.shape_version)}
    have = {a.code: a for a in nsi.actions}
    added, dropped = [], []
    for rule in policy.actions:
        if rule.when is None or nsi.nsi_type not in rule.nsi_types or nsi.shape_version not in rule.shapes:
            continue
        action = have.get(rule.code)
        if applies(rule, facts):
            p = planned.get(rule.code)
            if p is None:
                continue  # its clock has not started (after allocation): planned then
            if action is None:
                nsi.actions.append(Action(code=p.code, title=p.title, owner_role=p.owner_role, due_on=p.due_on))
                added.append(rule.code)
            elif action.status == NOT_REQUIRED:
                action.status, action.due_on, action.escalated_on = "open", p.due_on, None
                added.append(rule.code)
        elif action is not None and action.status == "open":
            action.status = NOT_REQUIRED
            dropped.append(rule.code)
    return added, dropped


# ---- clock stops ----


def stop_clock(t: Transfer, *, kind: str, since: dt.date, by: str, note: str = "") -> Changed:
    """The person cannot be supervised (custody, recall, remand, hospital): from `since` the
    transfer's clocks stand still and nobody is reminded or chased."""
    nsi = t.nsi
    _refuse_closed(t)
    reasons = change_rules().clock_stop.reasons
    if kind not in reasons:
        raise StepRefused("kind", f"{kind!r} is not a reason the clock stops for; one of: {', '.join(reasons)}")
    if nsi.clock_stopped_on is not None:
        raise StepRefused(
            "nsi", f"{t.reference}'s clock is already stopped ({nsi.clock_stop_reason}) since {nsi.clock_stopped_on}"
        )
    _check_day(t, "from", since)
    nsi.clock_stopped_on, nsi.clock_stop_reason = since, kind
    nsi.clock_stops = (nsi.clock_stops or 0) + 1
    key = f"clock_stopped:{nsi.clock_stops}"
    detail = f"clock stopped ({reasons[kind]}) from {since.isoformat()}" + (f": {note.strip()}" if note.strip() else "")
    t.note(key, "clock stopped", detail, by)
    return Changed(detail, events=[key])


def restart_clock(t: Transfer, *, on: dt.date, by: str) -> Changed:
    """The clock runs again from `on`: every open deadline, and the whole transfer's, moves on by
    the working days it stood still."""
    nsi = t.nsi
    _refuse_closed(t)
    if nsi.clock_stopped_on is None:
        raise StepRefused("nsi", f"{t.reference}'s clock is not stopped")
    if on < nsi.clock_stopped_on:
        raise StepRefused("on", f"{on} is before the clock stopped ({nsi.clock_stopped_on})")
    if on > today():
        raise StepRefused("on", f"{on} is in the future: restart the clock on the day supervision resumes")
    calendar = get_calendar(get_settings().calendar)
    stopped = calendar.working_days_between(nsi.clock_stopped_on, on)
    for action in nsi.actions:
        if action.status == "open":
            action.due_on, action.escalated_on = calendar.add_working_days(action.due_on, stopped), None
    nsi.due_on = calendar.add_working_days(nsi.due_on, stopped)
    detail = (
        f"clock restarted on {on.isoformat()} after {stopped} working days stopped "
        f"({nsi.clock_stop_reason} since {nsi.clock_stopped_on.isoformat()}); open deadlines moved on {stopped} working days"
    )
    nsi.clock_stopped_days = (nsi.clock_stopped_days or 0) + stopped
    nsi.clock_stopped_on, nsi.clock_stop_reason = None, None
    t.note(f"clock_restarted:{nsi.clock_stops}", "clock restarted", detail, by)
    t.wake()
    return Changed(detail)


def clock_stopped_words(reason: str | None, since: dt.date | None) -> str | None:
    """'clock stopped (recalled to custody) since 3 Dec 2026': status, digests and the tracker say it alike."""
    if since is None:
        return None
    label = change_rules().clock_stop.reasons.get(reason or "", reason or "")
    return f"clock stopped ({label}) since {since:%d %b %Y}"


def amendment(
    *,
    postcode: str | None = None,
    address: str | None = None,
    pdu: str | None = None,
    move_date: dt.date | None = None,
    expected_return: dt.date | None = None,
    rosh: str | None = None,
    saw_level: str | None = None,
    mappa_category: int | None = None,
    mappa_level: int | None = None,
    no_mappa: bool = False,
    safeguarding: bool | None = None,
    victim_contact: bool | None = None,
    on: dt.date | None = None,
) -> tuple[str, dict[str, Any]]:
    """Which change an amendment asks for (the CLI's options and the UI's Run form alike): one of
    destination, dates or risk, with its fields. StepRefused names what is missing or mixed."""
    kinds: list[tuple[str, dict[str, Any]]] = []
    if postcode or address or pdu:
        if address and not postcode:
            raise StepRefused("postcode", "give the new address's postcode with the address")
        kinds.append(("destination", {"proposed_postcode": postcode, "proposed_address": address, "receiving_pdu_code": pdu, "on": on}))
    if move_date or expected_return:
        kinds.append(("dates", {"move_date": move_date, "expected_return_date": expected_return}))
    risk = {"rosh": rosh, "saw_level": saw_level, "mappa_category": mappa_category, "mappa_level": mappa_level, "no_mappa": no_mappa,
            "safeguarding_concerns": safeguarding, "victim_contact": victim_contact}  # fmt: skip
    if any(v not in (None, False) for v in risk.values()) or safeguarding is False or victim_contact is False:
        kinds.append(("risk", {**risk, "on": on}))
    if len(kinds) != 1:
        raise StepRefused(
            "amend",
            "give one kind of change at a time: a destination (postcode, address or PDU), dates (move date or "
            "expected return) or risk (RoSH, MAPPA, safeguarding, victim contact)",
        )
    return kinds[0]
