"""Case transfers in the store: each change a person or a flow asks for, as one transaction.

Each function opens a unit of work, loads the Transfer once (tasks/domain/transfer.py), changes it
through its methods and commits; a refusal (StepRefused) leaves nothing written. Each is
idempotent: a resumed or re-run flow calls them again with the same keys and nothing is stored
twice. What a transfer looks like is read by tasks/domain/transfer_views.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tasks.calendar import get_calendar
from tasks.domain import challenges, changes, concerns, conditions, continuity, moving_again, waiting_tasks, youth
from tasks.domain import steps as registry
from tasks.domain.actions import Clocks, Facts, plan_actions, transfer_due
from tasks.domain.decisions import check_reason
from tasks.domain.form import NsiType, TransferForm
from tasks.domain.policy import Policy, get_policy
from tasks.domain.temporary_moves import looked_after_as_caretaking
from tasks.domain.transfer import CLOSED, NotFound, StepRefused, Transfer, TransferWork, today
from tasks.domain.waiting_tasks import Progress
from tasks.places.estate import load_estate
from tasks.places.placement import Placement, check_placement, place, placement_detail
from tasks.settings import get_settings
from tasks.store.models import Nsi
from tasks.store.unit_of_work import UnitOfWork

__all__ = ["CLOSED", "NotFound", "Placement", "Progress", "StepRefused", "check_placement", "place", "today"]

AWAITING_ALLOCATION, IN_PROGRESS = registry.AWAITING_ALLOCATION, registry.IN_PROGRESS
REFERENCE_PREFIX = {NsiType.case_transfer: "CT", NsiType.temporary_move: "TM"}


# ---- raising ----


def register_nsi(
    form: TransferForm,
    request_key: str,
    *,
    placement: Placement | None = None,
    flow_run_id: str | None = None,
    actor: str | None = None,
    url: str | None = None,
    profile: str | None = None,
    parent_reference: str | None = None,
) -> str:
    """Store a new NSI with its Action List; returns its reference. Same key → same NSI.

    `profile` is the policy the NSI follows for its whole life (the raising run's, by default);
    `parent_reference` links a Case Transfer to the Temporary Move it was converted from."""
    with UnitOfWork(url) as uow:
        existing = uow.session.scalar(select(Nsi).where(Nsi.request_key == request_key))
        if existing is not None:
            if flow_run_id and not existing.flow_run_id:
                existing.flow_run_id = flow_run_id
                uow.commit()
            return existing.reference
    policy = get_policy(profile or get_settings().profile)
    form = looked_after_as_caretaking(form, policy)
    placement = placement or place(form)
    transferring_pdu, transferring_region, receiving_region = check_placement(form, placement, policy)
    settings = get_settings()
    calendar = get_calendar(settings.calendar)
    raised = form.raised_on or today()
    received = form.received_on or raised
    move = form.move_date or received
    facts = Facts(form, nearby_pdu=placement.distance_km is not None and placement.distance_km < policy.nearby_pdu_km)
    shape = shape_for(form.nsi_type, policy)
    planned = plan_actions(facts, Clocks(raised=raised, received=received, move=move), policy, calendar, shape)
    with UnitOfWork(url) as uow:
        # One open transfer per person (a conversion continues its Temporary Move's): refused, or
        # the open one the form supersedes, its row locked until this commits.
        superseded = None if parent_reference else moving_again.check_one_open(uow.session, form)
        re_requested = youth.re_request(uow.session, form)
        nsi = new_nsi(
            form,
            request_key,
            policy,
            shape,
            raised=raised,
            received=received,
            move=move,
            due=transfer_due(raised, policy, calendar, form.nsi_type),
            placed=(transferring_pdu, transferring_region, receiving_region),
            placement=placement,
            flow_run_id=flow_run_id,
            parent_reference=parent_reference,
        )
        uow.session.add(nsi)
        try:
            uow.session.flush()
        except IntegrityError:
            # Raced with another caller using the same key (the CLI and the flow it started).
            uow.rollback()
            with UnitOfWork(url) as again:
                return again.session.scalars(select(Nsi.reference).where(Nsi.request_key == request_key)).one()
        nsi.reference = f"{REFERENCE_PREFIX[form.nsi_type]}{nsi.id:06d}"
        transfer = Transfer(nsi)
        transfer.plan(planned)
        pdu_name = load_estate().pdus[placement.receiving_pdu_code].name
        transfer.note(
            "raised",
            "raised",
            f"{form.nsi_type.value} raised to {pdu_name}"
            + (f"; converted from Temporary Move {parent_reference}" if parent_reference else "")
            + ("; internal transfer between teams of the PDU" if form.internal_transfer else "")
            + (f"; looked after: caretaking, not a transfer. {policy.looked_after_message.strip()}"
               if form.looked_after and policy.looked_after_caretaking and form.nsi_type is NsiType.temporary_move else "")
            + placement_detail(form, placement)
            + (youth.link_re_request(re_requested, nsi.reference, actor or form.raised_by) if re_requested else ""),
            actor or form.raised_by,
            flow_run_id,
        )
        if (zone := conditions.address_in_exclusion_zone(form)) is not None:
            transfer.note("flagged:1", conditions.FLAGGED, conditions.flag_words(form, zone), actor or form.raised_by, flow_run_id)
        if superseded is not None:
            old = superseded.reference
            moving_again.supersede(superseded, nsi, actor or form.raised_by, today())
            transfer.note("supersedes", "supersedes", f"supersedes {old}, closed as superseded: the person is moving again; "
                          f"{old}'s history is shown with this one's", actor or form.raised_by, flow_run_id)  # fmt: skip
        try:
            uow.commit()
        except IntegrityError:
            uow.rollback()
            with UnitOfWork(url) as again:
                return again.session.scalars(select(Nsi.reference).where(Nsi.request_key == request_key)).one()
        return nsi.reference


def raised_detail(nsi_type: str, pdu_name: str, parent_reference: str | None = None, internal: bool = False) -> str:
    """The history's words for a raised NSI: one wording for raising, importing and the seeder."""
    return (
        f"{nsi_type} raised to {pdu_name}"
        + (f"; converted from Temporary Move {parent_reference}" if parent_reference else "")
        + ("; internal transfer between teams of the PDU" if internal else "")
    )


def new_nsi(*args: Any, **kwargs: Any) -> Nsi:
    """A new NSI row from a checked form (raised here, or imported from a legacy tracker), built
    from nsi_columns (same arguments), so the seeder's bulk rows and these are one rule."""
    return Nsi(**nsi_columns(*args, **kwargs))


def nsi_columns(
    form: TransferForm,
    request_key: str,
    policy: Policy,
    shape: int,
    *,
    raised: dt.date,
    received: dt.date,
    move: dt.date | None,
    due: dt.date,
    placed: tuple[str, str, str],
    placement: Placement,
    **more: Any,
) -> dict[str, Any]:
    """A new NSI row's column values, from a checked form: new_nsi's row, and the demo seeder's bulk
    insert. Its reference is the id's, set once it is flushed. `placed`: what check_placement
    gives, (transferring PDU, transferring region, receiving region)."""
    transferring_pdu, transferring_region, receiving_region = placed
    return dict(
        reference=f"new-{uuid.uuid4().hex[:16]}",  # replaced by the id-based reference once flushed
        request_key=request_key,
        nsi_type=form.nsi_type.value,
        profile=policy.profile,
        status=AWAITING_ALLOCATION if shape == 2 else "raised",
        shape_version=shape,
        crn=form.crn,
        name=form.name,
        lao=form.lao,
        rosh=form.rosh.value,
        mappa_category=form.mappa_category,
        mappa_level=form.mappa_level,
        diversity_recorded=bool(form.diversity_needs),
        raised_on=raised,
        received_on=received,
        move_on=move,
        due_on=due,
        transferring_region_code=transferring_region,
        transferring_pdu_code=transferring_pdu,
        transferring_team_code=form.transferring_team_code,
        transferring_practitioner=form.transferring_practitioner,
        transferring_spo=form.transferring_spo,
        receiving_region_code=receiving_region,
        receiving_pdu_code=placement.receiving_pdu_code,
        distance_km=placement.distance_km,
        form=form.model_dump(mode="json"),
        # A temporary move never moves management: the transferring practitioner stays responsible.
        responsible_officer=form.transferring_practitioner if form.nsi_type is NsiType.temporary_move else None,
        **more,
    )


def shape_for(nsi_type: NsiType, policy: Policy) -> int:
    """The process shape a new NSI follows. A Temporary Move is one step after another (support,
    then its outcome) whatever the policy; settings can pin a shape (tests of the old one)."""
    if nsi_type is NsiType.temporary_move:
        return 1
    return get_settings().shape_version or policy.shape_version


# ---- answering a step ----


@dataclass(frozen=True)
class AnswerToSend:
    """An answer checked against its NSI, ready for the run waiting for it."""

    answer: dict[str, Any]  # as the form gives it (validated, in JSON)
    attempts: int  # answers to the step taken so far without recording it
    shape: int
    flow_run_id: str | None  # the transfer's run (sequential shape: the one waiting)


def prepare_answer(reference: str, step: str, fields: dict[str, Any], url: str | None = None) -> AnswerToSend:
    """Validate an answer's form (registry.validate_answer) and check it against the NSI as the
    flow will (Transfer.check_new_answer), reading the NSI once. Raises FormError / StepRefused /
    NotFound; writes nothing."""
    with TransferWork(url) as uow:
        t = uow.transfers.get(reference)
        spec = registry.spec_for(step, t.policy)
        check_not_done_already(t, step)
        for name, value in list(fields.items()):
            info = spec.form.model_fields.get(name)
            if info is not None and "list" in str(info.annotation) and not isinstance(value, list):
                fields[name] = [value]
        form = registry.validate_answer(step, fields, t.policy, today(), t.nsi.raised_on)
        answer = form.model_dump(mode="json")
        t.check_new_answer(step, answer)
        youth.check_capacity_now(uow.session, t, step, answer)
        return AnswerToSend(answer, len(t.attempts(step)), t.shape, t.nsi.flow_run_id)


def check_not_done_already(t: Transfer, step: str) -> None:
    """Refuse an answer to a concurrent task whose work is already done by another answer: the
    documents sent, say, once every item is received (received counts as sent), or an action
    marked done with `action-done`. Its run is about to be stopped by the transfer's, so the
    answer could only wait for it and time out; the sender is told at once who did it and when.
    A step recorded, or a closed NSI, is refused by Transfer.check_new_answer in its own words."""
    if t.shape < 2 or t.closed or t.recorded(step) is not None:
        return
    codes = {r.code for r in t.policy.actions if r.task == step} | {step}
    actions = [a for a in t.nsi.actions if a.code in codes]
    if not actions or any(a.status == "open" for a in actions) or not any(a.status == "done" for a in actions):
        return
    entry = completing_entry(t, step, codes)
    said = f"{actions[0].title} ({step}) for {t.reference}"
    days = [a.done_on for a in actions if a.done_on]
    done = f"was already done on {max(days):%d %b %Y}" if days else "was already done"
    if entry is None:
        raise StepRefused("step", f"{said} {done}; your answer was not recorded")
    at = _aware(entry.at).astimezone(get_settings().zone)
    how = "marked done" if entry.key.startswith("action:") else f"by their answer to {entry.event.replace('_', ' ')}"
    raise StepRefused(
        "step", f"{said} {done}: completed by {entry.actor} ({how}; recorded {at:%H:%M:%S} on {at:%d %b %Y}); your answer was not recorded"
    )


def completing_entry(t: Transfer, step: str, codes: set[str]) -> Any:
    """The history entry of the change that completed a task's actions without an answer to the
    task: its actions marked done (`action:<code>`), else the last answer recorded before the
    task closed (its waiting task's closing time; the transfer's run closes it within seconds of
    that answer), or before now while it is still open. None when the history holds none."""
    history = t.nsi.history
    direct = [h for h in history if h.key in {f"action:{c}" for c in codes}]
    if direct:
        return max(direct, key=lambda h: _aware(h.at))
    row = waiting_tasks.latest_round(t, step)
    until = _aware(row.closed_at) if row is not None and row.status != "open" and row.closed_at else None
    answers = [
        h for h in history
        if h.key.startswith(("step:", "attempt:", "action:")) and not h.key.startswith(f"attempt:{step}:")
        and (until is None or _aware(h.at) <= until)
    ]  # fmt: skip
    return max(answers, key=lambda h: _aware(h.at)) if answers else None


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)  # SQLite gives back naive UTC


def check_answer(reference: str, step: str, answer: dict[str, Any], url: str | None = None) -> None:
    """Would this answer be accepted now? Raises StepRefused (or NotFound) when not; writes nothing."""
    with TransferWork(url) as uow:
        uow.transfers.get(reference).check_new_answer(step, answer)


def apply_step(
    reference: str,
    step: str,
    answer: dict[str, Any],
    flow_run_id: str | None = None,
    url: str | None = None,
    attempt: int = 0,
) -> str:
    """Record a step's answer and its effects (Transfer.answer) in one transaction; returns the
    NSI status after it. Raises StepRefused when the NSI is closed or the answer breaks a rule."""
    with TransferWork(url) as uow:
        t = uow.transfers.get(reference)
        if t.recorded(step) is not None:
            return t.nsi.status  # a re-run flow records it again: nothing to write
        youth.check_capacity_now(uow.session, t, step, answer)
        status = t.answer(step, answer, flow_run_id, attempt)
        concerns.follow(t, step)  # concerns raised open the SPO's decision; a decision is carried out
        if t.recorded(step) is not None:
            continuity.after_answer(t, step, answer)
        youth.after_answer(t, step, answer, attempt)
        status = t.nsi.status
        try:
            uow.commit()
        except IntegrityError:
            # Two answers raced (double click): the first one stands.
            uow.rollback()
        return status


def waiting_status(step: str, status: str | None = None) -> str:
    """An open NSI's status while it waits for `step`: "awaiting_<step>" unless the wait has a
    name of its own (a temporary move's "supporting")."""
    return status or f"awaiting_{step}"


def mark_waiting(
    reference: str, step: str, flow_run_id: str | None = None, url: str | None = None, status: str | None = None
) -> None:
    """The NSI now waits for `step`; written once per step however often the flow passes here.
    `status` names a waiting period that is more than a wait for a form (a temporary move's
    "supporting"); by default "awaiting_<step>"."""
    with TransferWork(url) as uow:
        if uow.transfers.get(reference).wait_for(step, waiting_status(step, status), flow_run_id):
            uow.commit()


def record_rejection(
    reference: str, step: str, attempt: int, message: str, actor: str, flow_run_id: str | None = None, url: str | None = None
) -> None:
    with TransferWork(url) as uow:
        uow.transfers.get(reference).reject(step, attempt, message, actor, flow_run_id)
        uow.commit()


# ---- other changes ----


def correct(reference: str, step: str, done_on: dt.date, reason: str, by: str, url: str | None = None) -> dt.date:
    """Correct the day a recorded step (or action) was done; returns the date it replaced."""
    reason, by = check_reason("reason", reason), check_reason("by", by)
    with TransferWork(url) as uow:
        was = uow.transfers.get(reference).correct(step, done_on, reason, by)
        uow.commit()
        return was


def withdraw(reference: str, reason: str, by: str, url: str | None = None) -> list[str]:
    """Withdraw at any step. Returns the flow runs to stop: the transfer's and every task still open.
    The NSI's row is locked: a task being opened at the same moment waits, then sees it closed."""
    reason, by = check_reason("reason", reason), check_reason("by", by)
    with TransferWork(url) as uow:
        runs = uow.transfers.get(reference, lock=True).withdraw(reason, by)
        uow.commit()
        return runs


def escalate(reference: str, concern: str, by: str, url: str | None = None) -> int:
    """Escalate a concern to the SPO at any step; returns how many escalations the NSI has."""
    concern, by = check_reason("concern", concern), check_reason("by", by)
    with TransferWork(url) as uow:
        n = uow.transfers.get(reference).escalate(concern, by)
        uow.commit()
        return n


def mark_action_done(reference: str, code: str, by: str, on: dt.date | None = None, url: str | None = None) -> None:
    by = check_reason("by", by)
    with TransferWork(url) as uow:
        t = uow.transfers.get(reference)
        t.mark_action_done(code, by, on)
        youth.after_answer(t, code, {"recorded_by": by}, 0)
        uow.commit()


def raise_challenge(reference: str, concern: str, by: str, role: str, url: str | None = None) -> tuple[int, int]:
    """A challenge about risk (tasks/domain/challenges.py). Returns (challenge number, wake-up sequence)."""
    concern, by = check_reason("concern", concern), check_reason("by", by)
    with TransferWork(url) as uow:
        result = challenges.raise_challenge(uow.transfers.get(reference), concern, by, role)
        uow.commit()
        return result


def raise_dispute(reference: str, grounds: str, by: str, url: str | None = None) -> int:
    """The transferring SPO disputes a refusal (tasks/domain/challenges.py). Returns the challenge number."""
    grounds, by = check_reason("grounds", grounds), check_reason("by", by)
    with TransferWork(url) as uow:
        seq = challenges.raise_dispute(uow.transfers.get(reference), grounds, by)
        uow.commit()
        return seq


# ---- changes after raising (tasks/domain/changes.py) ----


def change(reference: str, what: str, by: str, reason: str | None = None, url: str | None = None, **fields: Any) -> changes.Changed:
    """One change of tasks/domain/changes.py (`what`: destination, dates, risk, stop_clock,
    restart_clock) in one transaction, the NSI's row held as withdraw holds it (a task being
    opened meanwhile waits, then sees the change). Raises StepRefused / FormError; writes nothing then."""
    by = check_reason("by", by)
    if reason is not None:
        fields["reason"] = check_reason("reason", reason)
    apply = {
        "destination": changes.amend_destination,
        "dates": changes.amend_dates,
        "risk": changes.amend_risk,
        "stop_clock": changes.stop_clock,
        "restart_clock": changes.restart_clock,
    }[what]
    with TransferWork(url) as uow:
        t = uow.transfers.get(reference, lock=True)
        changed = apply(t, by=by, **fields)
        if what == "risk" and (words := youth.reassessed(t, fields.get("on") or today(), by)):
            changed.detail += f"; {words}"
        uow.commit()
        return changed


# ---- continuity of supervision (tasks/domain/continuity.py) ----


def record_absence(
    reference: str, on: dt.date, acceptable: bool, by: str, role: str, notes: str = "", url: str | None = None
) -> continuity.Recorded:
    """A missed appointment before completion, from either side, in one transaction."""
    by = check_reason("by", by)
    with TransferWork(url) as uow:
        recorded = continuity.record_absence(uow.transfers.get(reference, lock=True), on=on, acceptable=acceptable, by=by, role=role, notes=notes)
        uow.commit()
        return recorded


def record_contact(reference: str, on: dt.date, by: str, role: str, notes: str = "", url: str | None = None) -> continuity.Recorded:
    """A temporary move's host records a contact, in one transaction."""
    by = check_reason("by", by)
    with TransferWork(url) as uow:
        recorded = continuity.record_contact(uow.transfers.get(reference, lock=True), on=on, by=by, role=role, notes=notes)
        uow.commit()
        return recorded


# ---- the runs that drive it ----


def set_flow_run(reference: str, flow_run_id: str, url: str | None = None) -> None:
    with TransferWork(url) as uow:
        nsi = uow.transfers.get(reference).nsi
        if nsi.flow_run_id != flow_run_id:
            nsi.flow_run_id = flow_run_id
            uow.commit()


def set_transfer_run(reference: str, flow_run_id: str, url: str | None = None) -> None:
    """A new run drives the transfer (a disputed refusal): it becomes the NSI's run."""
    with TransferWork(url) as uow:
        uow.transfers.get(reference).nsi.flow_run_id = flow_run_id
        uow.commit()


def progress(reference: str, url: str | None = None) -> Progress:
    """Concurrent shape: open the tasks that became possible, close those that no longer apply
    (tasks/domain/waiting_tasks.py). One transaction; idempotent."""
    with TransferWork(url) as uow:
        result = waiting_tasks.progress(uow.transfers.get(reference))
        uow.commit()
        return result


def task_started(reference: str, task: str, round_: int, flow_run_id: str, url: str | None = None) -> bool:
    """Record the run that waits for a task; False when the task is no longer open (its row is
    locked, as withdraw's is, so the two go one by one)."""
    with TransferWork(url) as uow:
        started = waiting_tasks.task_started(uow.transfers.get(reference, lock=True), task, round_, flow_run_id)
        uow.commit()
        return started


def task_done(reference: str, task: str, round_: int, url: str | None = None) -> None:
    with TransferWork(url) as uow:
        waiting_tasks.task_done(uow.transfers.get(reference), task, round_)
        uow.commit()


def stays_to_tell(reference: str, url: str | None = None) -> list[str]:
    """The youth stays (12.4) the requesting service is told of, by history key."""
    with TransferWork(url) as uow:
        return youth.stays_to_tell(uow.transfers.get(reference))


def bump_wake(reference: str, url: str | None = None) -> int:
    """Move the wake-up sequence on (a run resumed with nothing new moves past the key it used)."""
    with TransferWork(url) as uow:
        seq = uow.transfers.get(reference).wake()
        uow.commit()
        return seq
