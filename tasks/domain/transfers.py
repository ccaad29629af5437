"""Case transfers in the store: raise, wait, record a step, withdraw, escalate, report status.

Every function here is one transaction and is idempotent: a resumed or re-run flow calls them
again with the same keys and nothing is stored twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tasks.calendar import get_calendar
from tasks.domain import profile_rules
from tasks.domain import steps as registry
from tasks.domain.actions import Clocks, Facts, PlannedAction, plan_actions, transfer_due
from tasks.domain.decisions import RefusalReason, RuleBroken, check_reason
from tasks.domain.form import NsiType, TransferForm
from tasks.domain.policy import Policy, get_policy
from tasks.domain.temporary_moves import looked_after_as_caretaking
from tasks.places.estate import load_estate
from tasks.places.placement import Placement, check_placement, place
from tasks.settings import get_settings
from tasks.store.models import Action, Challenge, HistoryEntry, Nsi, StepRecord, WaitingTask, utcnow
from tasks.store.unit_of_work import UnitOfWork

CLOSED = {"completed", "refused", "withdrawn", "returned", "converted", "ended"}
AWAITING_ALLOCATION, IN_PROGRESS, CHALLENGED, DISPUTED = (
    registry.AWAITING_ALLOCATION,
    registry.IN_PROGRESS,
    registry.CHALLENGED,
    registry.DISPUTED,
)
REFERENCE_PREFIX = {NsiType.case_transfer: "CT", NsiType.temporary_move: "TM"}


class NotFound(LookupError):
    pass


class StepRefused(ValueError):
    """A step answer that cannot be applied now; `field` names what was wrong."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def today() -> dt.date:
    return get_settings().current_date()


def _policy_for(profile: str | None = None) -> Policy:
    return get_policy(profile or get_settings().profile)


def _history(session: Session, nsi: Nsi, key: str, event: str, detail: str, actor: str, flow_run_id: str | None = None) -> None:
    """Append a history entry unless one with this key exists (a re-run writes it again)."""
    exists = session.scalar(select(HistoryEntry.id).where(HistoryEntry.nsi_id == nsi.id, HistoryEntry.key == key))
    if exists is None:
        session.add(HistoryEntry(nsi_id=nsi.id, key=key, event=event, detail=detail, actor=actor, flow_run_id=flow_run_id))


def unplanned(planned: list[PlannedAction], have: Collection[str]) -> list[PlannedAction]:
    """The planned actions an NSI does not hold yet: each code is planned once (a re-run or a
    later clock plans it again)."""
    return [p for p in planned if p.code not in have]


def _add_planned(session: Session, nsi: Nsi, planned: list[PlannedAction]) -> None:
    have = set(session.scalars(select(Action.code).where(Action.nsi_id == nsi.id)))
    for p in unplanned(planned, have):
        session.add(Action(nsi_id=nsi.id, code=p.code, title=p.title, owner_role=p.owner_role, due_on=p.due_on))


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
    policy = _policy_for(profile)
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
        _add_planned(uow.session, nsi, planned)
        pdu_name = load_estate().pdus[placement.receiving_pdu_code].name
        _history(
            uow.session,
            nsi,
            "raised",
            "raised",
            f"{form.nsi_type.value} raised to {pdu_name}"
            + (f"; converted from Temporary Move {parent_reference}" if parent_reference else "")
            + ("; internal transfer between teams of the PDU" if form.internal_transfer else "")
            + (f"; looked after: caretaking, not a transfer. {policy.looked_after_message.strip()}"
               if form.looked_after and policy.looked_after_caretaking and form.nsi_type is NsiType.temporary_move else ""),
            actor or form.raised_by,
            flow_run_id,
        )
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


def registered(request_key: str, url: str | None = None) -> str | None:
    """The reference of the NSI stored under `request_key` once a flow run has taken it on."""
    with UnitOfWork(url) as uow:
        row = uow.session.execute(select(Nsi.reference, Nsi.flow_run_id).where(Nsi.request_key == request_key)).first()
        return row.reference if row is not None and row.flow_run_id else None


def _load(session: Session, reference: str, lock: bool = False) -> Nsi:
    """The NSI by reference; with `lock`, its row is held until the transaction ends (PostgreSQL),
    so two writers that each read before writing (a withdrawal, a task being opened) go one by one."""
    query = select(Nsi).where(Nsi.reference == reference.strip().upper())
    nsi = session.scalar(query.with_for_update() if lock else query)
    if nsi is None:
        raise NotFound(f"nsi: no NSI with reference {reference!r}")
    return nsi


def open_flow_runs(url: str | None = None) -> list[tuple[str, str]]:
    """(reference, flow run id) of every open NSI's run and of every open waiting task's run."""
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(
            select(Nsi.reference, Nsi.flow_run_id).where(Nsi.status.not_in(CLOSED), Nsi.flow_run_id.is_not(None))
        )
        tasks = uow.session.execute(
            select(Nsi.reference, WaitingTask.flow_run_id)
            .join(WaitingTask, WaitingTask.nsi_id == Nsi.id)
            .where(WaitingTask.status.in_(("open", "recorded")), WaitingTask.flow_run_id.is_not(None))
        )
        return [(r, f) for r, f in [*rows, *tasks] if f]


def waiting_steps(url: str | None = None) -> dict[str, tuple[str, str]]:
    """flow run id -> (reference, the step it waits at) for every open NSI waiting at a step, and
    for every open waiting task's run."""
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(
            select(Nsi.flow_run_id, Nsi.reference, Nsi.waiting_step).where(
                Nsi.status.not_in(CLOSED), Nsi.flow_run_id.is_not(None), Nsi.waiting_step.is_not(None)
            )
        )
        tasks = uow.session.execute(
            select(WaitingTask.flow_run_id, Nsi.reference, WaitingTask.task)
            .join(Nsi, WaitingTask.nsi_id == Nsi.id)
            .where(WaitingTask.status == "open", WaitingTask.flow_run_id.is_not(None))
        )
        return {f: (r, s) for f, r, s in [*rows, *tasks] if f and s}


def set_flow_run(reference: str, flow_run_id: str, url: str | None = None) -> None:
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        if nsi.flow_run_id != flow_run_id:
            nsi.flow_run_id = flow_run_id
            uow.commit()


def recorded_steps(reference: str, url: str | None = None) -> dict[str, dict[str, Any]]:
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return {s.step: s.answer for s in nsi.steps}


def nsi_status(reference: str, url: str | None = None) -> tuple[str, str | None]:
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return nsi.status, nsi.waiting_step


def shape_of(reference: str, url: str | None = None) -> int:
    """The process shape the NSI was raised under (1 sequential, 2 concurrent tasks). Shape 1's
    branches here and in apply_step stay while open transfers raised under it can still finish."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return nsi.shape_version if nsi.nsi_type == NsiType.case_transfer.value else 1


def policy_of(reference: str, url: str | None = None) -> Policy:
    """The policy an NSI follows: its profile's, whatever the calling process's profile is."""
    with UnitOfWork(url) as uow:
        return _policy_for(_load(uow.session, reference).profile)


def _attempt_entries(session: Session, nsi: Nsi, step: str) -> Any:
    # A step is asked again after a rejected answer and after an answer that is recorded but not
    # final (a handover that did not transfer the case, a stayed decision): both count.
    return (
        select(HistoryEntry)
        .where(
            HistoryEntry.nsi_id == nsi.id,
            (HistoryEntry.key.like(f"rejected:{step}:%")) | (HistoryEntry.key.like(f"attempt:{step}:%")),
        )
        .order_by(HistoryEntry.id)
    )


def step_attempts(reference: str, step: str, url: str | None = None) -> int:
    """How many answers to `step` were taken without recording it: the next suspension's number."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return len(uow.session.scalars(_attempt_entries(uow.session, nsi, step)).all())


def last_attempt(reference: str, step: str, url: str | None = None) -> tuple[str, str] | None:
    """(event, detail) of the latest answer to `step` that left it waiting, if any."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        entries = uow.session.scalars(_attempt_entries(uow.session, nsi, step)).all()
        return (entries[-1].event, entries[-1].detail) if entries else None


def rejected_attempts(reference: str, step: str, url: str | None = None) -> int:
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return (
            uow.session.scalar(
                select(func.count())
                .select_from(HistoryEntry)
                .where(
                    HistoryEntry.nsi_id == nsi.id,
                    HistoryEntry.event == "answer rejected",
                    HistoryEntry.key.like(f"rejected:{step}:%"),
                )
            )
            or 0
        )


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
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        if nsi.status in CLOSED:
            return
        nsi.status = waiting_status(step, status)
        nsi.waiting_step = step
        if flow_run_id and not nsi.flow_run_id:
            nsi.flow_run_id = flow_run_id
        _history(
            uow.session, nsi, f"waiting:{step}", "waiting", f"waiting for {step.replace('_', ' ')}", "casetransfer", flow_run_id
        )
        uow.commit()


def record_rejection(
    reference: str, step: str, attempt: int, message: str, actor: str, flow_run_id: str | None = None, url: str | None = None
) -> None:
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        _history(uow.session, nsi, f"rejected:{step}:{attempt}", "answer rejected", message, actor, flow_run_id)
        uow.commit()


def _finish_actions(session: Session, nsi: Nsi, codes: list[str], on: dt.date) -> None:
    for action in nsi.actions:
        if action.code in codes and action.status == "open":
            action.status = "done"
            action.done_on = on


def _close(nsi: Nsi, status: str, on: dt.date) -> None:
    nsi.status = status
    nsi.waiting_step = None
    nsi.closed_on = on
    if status != "completed":
        for action in nsi.actions:
            if action.status == "open":
                action.status = "cancelled"


def _valid_handover(nsi: Nsi, policy: Policy) -> StepRecord | None:
    return next((s for s in nsi.steps if s.step == "handover" and not profile_rules.handover_shortfall(policy, s.answer)), None)


def _done_codes(nsi: Nsi, policy: Policy | None = None) -> set[str]:
    """Steps recorded and actions done (an action done counts for its step too): what a
    concurrent task's gate asks about."""
    policy = policy or _policy_for(nsi.profile)
    done = {s.step for s in nsi.steps}
    for a in nsi.actions:
        if a.status == "done":
            done.add(a.code)
            rule = next((r for r in policy.actions if r.code == a.code), None)
            if rule is not None:
                done.add(rule.task)
    return done


def _open_challenge(nsi: Nsi) -> Challenge | None:
    return next((c for c in nsi.challenges if c.status == "open"), None)


def _disputed(nsi: Nsi) -> Challenge | None:
    return next((c for c in nsi.challenges if c.dispute_status == "open"), None)


def _blocking_completion(nsi: Nsi, policy: Policy) -> list[Action]:
    """Concurrent shape: the actions config marks as required before completion that are still open."""
    required = set(policy.completion_requires)
    return [a for a in nsi.actions if a.code in required and a.status == "open"]


def _gate(nsi: Nsi, policy: Policy, task: str) -> list[str]:
    """What a concurrent task waits for before it opens (steps or actions not yet done)."""
    rule = policy.rule_for_task(task)
    if rule is None:
        return []
    done = _done_codes(nsi, policy)
    return [g for g in rule.opens_after if g not in done]


def _concurrent(nsi: Nsi) -> bool:
    return nsi.shape_version >= 2 and nsi.nsi_type == NsiType.case_transfer.value


def _situation(nsi: Nsi, policy: Policy) -> registry.Situation:
    """What the step registry's checks and effects read from the NSI."""
    open_one, disputed, handover = _open_challenge(nsi), _disputed(nsi), _valid_handover(nsi, policy)
    return registry.Situation(
        reference=nsi.reference,
        status=nsi.status,
        concurrent=_concurrent(nsi),
        receiving_pdu_code=nsi.receiving_pdu_code,
        transferring_team_code=nsi.transferring_team_code,
        transferring_pdu_code=nsi.transferring_pdu_code,
        transferring_practitioner=nsi.transferring_practitioner,
        form=nsi.form,
        distance_km=nsi.distance_km,
        open_challenge=open_one.seq if open_one else None,
        disputed=disputed.seq if disputed else None,
        handover_held_on=_date_in(handover.answer, "held_on") if handover else None,
    )


def _check_answer(nsi: Nsi, step: str, answer: dict[str, Any], situation: registry.Situation | None = None) -> None:
    """Rules that need the NSI, under the NSI's own policy: StepRefused names the field."""
    policy = _policy_for(nsi.profile)
    situation = situation or _situation(nsi, policy)
    spec = registry.spec_for(step, policy)
    concurrent = _concurrent(nsi)
    if nsi.status in CLOSED:
        # After completion, the after-the-move actions (reassessment, plan review, court
        # application) stay open and can still be recorded; a refusal can still be disputed.
        action = next((a for a in nsi.actions if a.code == step and a.status == "open"), None)
        late_action = concurrent and nsi.status == "completed" and spec.kind == "action" and action is not None
        if not late_action and not (spec.kind == "dispute" and _disputed(nsi) is not None):
            raise StepRefused("nsi", f"{nsi.reference} is {nsi.status}; no more steps can be recorded")
    if spec.kind == "action" and policy.recurs(step):
        # Recorded as a step, a recurring check would be done for good and its reminders would stop.
        raise StepRefused(
            "step",
            f"{step} recurs at the agreed frequency: record each one with "
            f"`casetransfer action-done {nsi.reference} {step}`, which keeps it open for the next",
        )
    for field_name, problem in registry.date_problems(spec, answer, today(), nsi.raised_on):
        raise StepRefused(field_name, problem)
    try:
        registry.check_against(step, answer, situation, policy, today())
    except RuleBroken as exc:
        raise StepRefused(exc.field, str(exc).removeprefix(f"{exc.field}: ")) from None
    if concurrent and spec.kind in ("step", "action"):
        if spec.kind == "action" and not any(a.code == step for a in nsi.actions):
            have = ", ".join(a.code for a in nsi.actions)
            raise StepRefused("step", f"{nsi.reference} has no action {step!r}; it has: {have}")
        if waiting := _gate(nsi, policy, step):
            raise StepRefused(
                "step", f"{spec.title} opens after {', '.join(w.replace('_', ' ') for w in waiting)}, not yet recorded"
            )
        if step == "completion":
            if challenge := _open_challenge(nsi):
                raise StepRefused(
                    "step", f"completion waits while challenge {challenge.seq} about risk is open: the receiving SPO settles it first"
                )
            if blocking := _blocking_completion(nsi, policy):
                names = "; ".join(f"{a.title} ({a.code})" for a in blocking)
                raise StepRefused("step", f"completion waits for: {names}")
    # After the step's own rules, which say the more fundamental thing (no valid meeting yet).
    if blocking_actions := profile_rules.open_required_actions(policy, step, nsi.actions):
        names = "; ".join(f"{a.title} ({a.code})" for a in blocking_actions)
        raise StepRefused(
            "step",
            f"{step.replace('_', ' ')} cannot be recorded before: {names}. "
            f"Mark each done with: casetransfer action-done {nsi.reference} CODE",
        )


def check_step(reference: str, step: str, answer: dict[str, Any], url: str | None = None) -> None:
    """Would this answer be accepted now? Raises StepRefused (or NotFound) when not; writes nothing."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        if uow.session.scalar(select(StepRecord.id).where(StepRecord.nsi_id == nsi.id, StepRecord.step == step)) is not None:
            raise StepRefused(
                "step", f"{step} is already recorded for {nsi.reference}; to change its date use: casetransfer correct"
            )
        _check_answer(nsi, step, answer)
        if nsi.shape_version < 2 and nsi.waiting_step != step:
            waiting = nsi.waiting_step.replace("_", " ") if nsi.waiting_step else "no step"
            raise StepRefused("step", f"{nsi.reference} is waiting for {waiting}, not {step.replace('_', ' ')}")


def _date_in(answer: dict[str, Any], key: str) -> dt.date | None:
    value = answer.get(key)
    return dt.date.fromisoformat(str(value)) if value else None


def _done_note(on: dt.date, recorded: dt.date) -> str:
    return f" (done {on.isoformat()})" if on != recorded else ""


def apply_step(
    reference: str,
    step: str,
    answer: dict[str, Any],
    flow_run_id: str | None = None,
    url: str | None = None,
    attempt: int = 0,
) -> str:
    """Record a step's answer and its effects, dated the day the work was done (the answer's
    done date; today when empty). Returns the NSI status after it.

    A step is recorded once: the same answer again (a re-run flow) changes nothing; raises
    StepRefused when the NSI is closed or the answer breaks a rule. An answer the policy records
    without completing the step (a handover that did not transfer the case, a stayed decision)
    goes in the history under `attempt`, and the step stays waiting. On the concurrent shape the
    NSI's wake-up counter moves, so its transfer's run opens whatever became possible.
    """
    actor = answer.get("recorded_by") or "unknown"
    recorded_today = today()
    settings = get_settings()
    with UnitOfWork(url) as uow:
        session = uow.session
        nsi = _load(session, reference)
        if session.scalar(select(StepRecord.id).where(StepRecord.nsi_id == nsi.id, StepRecord.step == step)) is not None:
            return nsi.status
        policy = _policy_for(nsi.profile)
        calendar = get_calendar(settings.calendar)
        # Read once: the checks and the effect see the NSI as it was before this answer.
        situation = _situation(nsi, policy)
        _check_answer(nsi, step, answer, situation)
        effect = registry.effect_of(step, answer, situation, policy, recorded_today)
        if effect.pending is not None:
            # Recorded in the history; the step stays waiting for another answer.
            _history(session, nsi, f"attempt:{step}:{attempt}", effect.pending, effect.detail, actor, flow_run_id)
            uow.commit()
            return nsi.status
        on = effect.on
        for name, value in effect.sets.items():
            setattr(nsi, name, value)
        if effect.plans == "allocation":
            form = TransferForm.model_validate(nsi.form)
            clocks = Clocks(raised=nsi.raised_on, received=nsi.received_on, move=nsi.move_on or nsi.received_on, reallocation=on)
            facts = Facts(form, allocation=effect.answer)
            _add_planned(session, nsi, plan_actions(facts, clocks, policy, calendar, nsi.shape_version))
            session.flush()
            session.refresh(nsi)
        if effect.challenge is not None:
            challenge = _open_challenge(nsi)
            assert challenge is not None  # _check_answer refused otherwise
            challenge.settled_by, challenge.settled_on, challenge.status = actor, on, effect.challenge
            if effect.challenge == "upheld":
                challenge.reasons = [RefusalReason(r).value for r in answer.get("reasons", [])]
                challenge.evidence = answer.get("evidence", "")
        if effect.dispute is not None:
            challenge = _disputed(nsi)
            assert challenge is not None
            challenge.dispute_settled_by, challenge.dispute_settled_on = actor, on
            challenge.dispute_notes, challenge.dispute_status = answer.get("notes", ""), effect.dispute
            if effect.dispute == "overturned":
                nsi.closed_on = None
                for action in nsi.actions:
                    if action.status == "cancelled":
                        action.status = "open"  # the tasks reopen as they stood
            else:
                nsi.closed_on = challenge.settled_on
        _finish_actions(session, nsi, list(effect.finishes), on)
        session.add(
            StepRecord(nsi_id=nsi.id, step=step, answer=effect.answer, recorded_by=actor, flow_run_id=flow_run_id, done_on=on)
        )
        if effect.closes is not None:
            _close(nsi, effect.closes, on)
        else:
            nsi.status = effect.status or nsi.status
            nsi.waiting_step = None
        if effect.caretaking_from is not None:
            # 12.8: the host's record of contacts, first due one agreed period after caretaking starts.
            weeks = int(answer["contact_frequency_weeks"])
            _add_planned(session, nsi, [
                PlannedAction(r.code, r.title, r.owner, effect.caretaking_from + dt.timedelta(weeks=weeks), None)
                for r in policy.actions if r.recurring and r.clock == "caretaking" and nsi.nsi_type in r.nsi_types
            ])  # fmt: skip
        if effect.closes == "completed":
            # 12.5: caretaking ends when responsibility passes in full; its checks end with it.
            for action in nsi.actions:
                if action.status == "open" and policy.recurs(action.code):
                    action.status = "cancelled"
        if effect.plans == "returned":
            # After closing, so the review stays open: the case is reviewed on the person's return.
            clocks = Clocks(raised=nsi.raised_on, received=nsi.received_on, move=nsi.move_on or nsi.received_on, returned=on)
            planned = plan_actions(Facts(TransferForm.model_validate(nsi.form)), clocks, policy, calendar, nsi.shape_version)
            _add_planned(session, nsi, [p for p in planned if policy.rule(p.code).clock == "returned"])
        for row in nsi.tasks:
            if row.task == step and row.status == "open":
                # "recorded" until its run has woken the transfer (task_done): a run killed in
                # between is still found by recover, and the transfer's run leaves it alone.
                row.status, row.closed_at = "recorded", utcnow()
        if _concurrent(nsi):
            nsi.wake_seq += 1
        _history(session, nsi, f"step:{step}", step, effect.detail + _done_note(on, recorded_today), actor, flow_run_id)
        try:
            uow.commit()
        except IntegrityError:
            # Two answers raced (double click): the first one stands.
            uow.rollback()
        return nsi.status


def correct(reference: str, step: str, done_on: dt.date, reason: str, by: str, url: str | None = None) -> dt.date:
    """Correct the day a recorded step (or action) was done. The answer and the action take the new
    date; the history keeps the original entry and adds who corrected it, when and why. Returns
    the date it replaced."""
    reason = check_reason("reason", reason)
    by = check_reason("by", by)
    with UnitOfWork(url) as uow:
        session = uow.session
        nsi = _load(session, reference)
        policy = _policy_for(nsi.profile)
        record = session.scalar(select(StepRecord).where(StepRecord.nsi_id == nsi.id, StepRecord.step == step))
        codes = [r.code for r in policy.rules_for_step(step, nsi.shape_version)] or [step]
        actions = [a for a in nsi.actions if a.code in codes and a.status == "done"]
        if record is None and not actions:
            done = sorted({s.step for s in nsi.steps} | {a.code for a in nsi.actions if a.status == "done"})
            raise StepRefused("step", f"{step} is not recorded for {nsi.reference}; recorded: {', '.join(done) or 'nothing yet'}")
        if done_on > today():
            raise StepRefused("done_on", f"{done_on} is in the future: record work on or after the day it was done")
        if done_on < nsi.raised_on:
            raise StepRefused("done_on", f"{done_on} is before the NSI was raised ({nsi.raised_on})")
        was = (record.done_on if record is not None else None) or (actions[0].done_on if actions else None) or today()
        if record is not None:
            record.done_on = done_on
            spec = registry.spec_for(step, policy)
            answer = dict(record.answer)
            for key in (spec.date_field, "done_on"):
                if key and answer.get(key):
                    answer[key] = done_on.isoformat()
            answer.setdefault("done_on", done_on.isoformat())
            record.answer = answer
        for action in actions:
            action.done_on = done_on
        if step == "allocation":
            nsi.allocated_on = done_on
        if step == "completion" and nsi.status == "completed":
            nsi.closed_on = done_on
        n = session.scalar(
            select(func.count()).select_from(HistoryEntry).where(HistoryEntry.nsi_id == nsi.id, HistoryEntry.event == "corrected")
        )
        _history(
            session,
            nsi,
            f"corrected:{step}:{(n or 0) + 1}",
            "corrected",
            f"{step.replace('_', ' ')} done on {done_on.isoformat()} (was {was.isoformat()}): {reason}",
            by,
        )
        uow.commit()
        return was


def withdraw(reference: str, reason: str, by: str, url: str | None = None) -> list[str]:
    """Withdraw at any step. Returns the flow runs to stop: the transfer's and every task still open."""
    reason = check_reason("reason", reason)
    by = check_reason("by", by)
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference, lock=True)
        if nsi.status in CLOSED:
            raise StepRefused("nsi", f"{nsi.reference} is already {nsi.status}")
        _close(nsi, "withdrawn", today())
        runs = [nsi.flow_run_id] if nsi.flow_run_id else []
        for row in nsi.tasks:
            if row.status == "open":
                row.status, row.closed_at = "cancelled", utcnow()
                if row.flow_run_id:
                    runs.append(row.flow_run_id)
        nsi.wake_seq += 1
        _history(uow.session, nsi, "withdrawn", "withdrawn", reason, by)
        uow.commit()
        return runs


def escalate(reference: str, concern: str, by: str, url: str | None = None) -> int:
    """Escalate a concern to the SPO at any step; returns how many escalations the NSI has."""
    concern = check_reason("concern", concern)
    by = check_reason("by", by)
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        n = (
            uow.session.scalar(
                select(func.count())
                .select_from(HistoryEntry)
                .where(HistoryEntry.nsi_id == nsi.id, HistoryEntry.event == "escalated")
            )
            or 0
        )
        _history(uow.session, nsi, f"escalated:{n + 1}", "escalated", f"concern escalated to the SPO: {concern}", by)
        uow.commit()
        return n + 1


def mark_action_done(reference: str, code: str, by: str, on: dt.date | None = None, url: str | None = None) -> None:
    by = check_reason("by", by)
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        action = next((a for a in nsi.actions if a.code == code), None)
        if action is None:
            raise StepRefused(
                "action", f"{nsi.reference} has no action {code!r}; it has: {', '.join(a.code for a in nsi.actions)}"
            )
        if action.status != "open":
            raise StepRefused("action", f"{code} is already {action.status}")
        on = on or today()
        if on > today():
            raise StepRefused("on", f"{on} is in the future: record work on or after the day it was done")
        if on < nsi.raised_on:
            raise StepRefused("on", f"{on} is before the NSI was raised ({nsi.raised_on})")
        rule = next((r for r in _policy_for(nsi.profile).actions if r.code == code), None)
        if rule is not None and rule.recurring:
            _check_recurring(uow.session, nsi, action, on, by)
            uow.commit()
            return
        action.status = "done"
        action.done_on = on
        if nsi.shape_version >= 2:
            nsi.wake_seq += 1  # its waiting task, if any, is closed by the transfer's run
        _history(uow.session, nsi, f"action:{code}", "action done", action.title + _done_note(on, today()), by)
        uow.commit()


CONTACT_RECORDS_ON_TIME, CONTACT_RECORDS_LATE = "contact records on time", "contact records late"


def _agreed_weeks(nsi: Nsi) -> int | None:
    """The agreed contact frequency: a caretaking agreement's, or a transfer in's allocation's (12.5)."""
    record = next((s for s in nsi.steps if s.step in ("support_allocation", "allocation")), None)
    weeks = record.answer.get("contact_frequency_weeks") if record else None
    return int(weeks) if weeks else None


def _check_recurring(session: Session, nsi: Nsi, action: Action, on: dt.date, by: str) -> None:
    """12.8: the host's record of contacts checked: on time or late against its due date, and due
    again one agreed period later. It stays open (and reminded) until the caretaking ends."""
    weeks = _agreed_weeks(nsi)
    if weeks is None:
        raise StepRefused("action", f"{action.code}: no contact frequency is agreed on the caretaking agreement")
    seq = 1 + sum(1 for h in nsi.history if h.event in (CONTACT_RECORDS_ON_TIME, CONTACT_RECORDS_LATE))
    late = (on - action.due_on).days
    event = CONTACT_RECORDS_ON_TIME if late <= 0 else CONTACT_RECORDS_LATE
    due = action.due_on + dt.timedelta(weeks=weeks)
    words = "on time" if late <= 0 else f"{late} days late"
    detail = f"{action.title}: received {on.isoformat()}, due {action.due_on.isoformat()}: {words}; next due {due.isoformat()}"
    _history(session, nsi, f"action:{action.code}:{seq}", event, detail, by)
    action.due_on = due


# ---- The concurrent shape: challenges, disputes, and what the transfer's run opens and closes ----


def raise_challenge(reference: str, concern: str, by: str, role: str, url: str | None = None) -> tuple[int, int]:
    """A challenge about risk from the receiving side, before completion: a waiting task for the
    receiving SPO. At most one is open at a time. Returns (challenge number, wake-up sequence)."""
    concern = check_reason("concern", concern)
    by = check_reason("by", by)
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        policy = _policy_for(nsi.profile)
        if nsi.shape_version < 2 or nsi.nsi_type != NsiType.case_transfer.value:
            raise StepRefused("nsi", f"{nsi.reference} follows the sequential shape: the receiving SPO answers its decision step")
        if role not in policy.challenge_raisers:
            raise StepRefused("role", f"{role!r} cannot raise a challenge; it is for: {', '.join(policy.challenge_raisers)}")
        if nsi.status in CLOSED:
            raise StepRefused("nsi", f"{nsi.reference} is {nsi.status}: a challenge can be raised only before completion")
        if (open_one := _open_challenge(nsi)) is not None:
            raise StepRefused("nsi", f"challenge {open_one.seq} is already open for {nsi.reference}; one at a time")
        seq = len(nsi.challenges) + 1
        uow.session.add(
            Challenge(nsi_id=nsi.id, seq=seq, concern=concern, raised_by=by, raised_role=role, raised_on=today(), status="open",
                      reasons=[], evidence="")  # fmt: skip
        )
        nsi.status = CHALLENGED
        nsi.wake_seq += 1
        _history(uow.session, nsi, f"challenge:{seq}", "challenge raised", f"challenge {seq} about risk: {concern}", by)
        uow.commit()
        return seq, nsi.wake_seq


def dispute_deadline(reference: str, url: str | None = None) -> dt.date | None:
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        upheld = [c for c in nsi.challenges if c.status == "upheld"]
        if not upheld or upheld[-1].settled_on is None:
            return None
        policy = _policy_for(nsi.profile)
        return get_calendar(get_settings().calendar).add_working_days(upheld[-1].settled_on, policy.dispute_working_days)


def raise_dispute(reference: str, grounds: str, by: str, url: str | None = None) -> int:
    """The transferring SPO disputes an upheld challenge (a refusal) within the period in config.
    Returns the challenge number; its dispute is a waiting task for the head of the receiving PDU."""
    grounds = check_reason("grounds", grounds)
    by = check_reason("by", by)
    deadline = dispute_deadline(reference, url)
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        policy = _policy_for(nsi.profile)
        upheld = [c for c in nsi.challenges if c.status == "upheld"]
        if nsi.status != "refused" or not upheld:
            raise StepRefused("nsi", f"{nsi.reference} is {nsi.status}: only a refusal (an upheld challenge) can be disputed")
        challenge = upheld[-1]
        if challenge.dispute_status is not None:
            raise StepRefused("nsi", f"the refusal of {nsi.reference} was already disputed ({challenge.dispute_status})")
        if deadline is not None and today() > deadline:
            raise StepRefused(
                "nsi",
                f"the period to dispute the refusal ended on {deadline} ({policy.dispute_working_days} working days from "
                f"{challenge.settled_on})",
            )
        challenge.dispute_status, challenge.disputed_by, challenge.disputed_on, challenge.grounds = "open", by, today(), grounds
        nsi.status = DISPUTED
        nsi.closed_on = None
        nsi.wake_seq += 1
        _history(uow.session, nsi, f"dispute:{challenge.seq}", "refusal disputed", f"dispute of the refusal: {grounds}", by)
        uow.commit()
        return challenge.seq


@dataclass(frozen=True)
class TaskToStart:
    task: str
    round: int
    owner_role: str
    title: str


@dataclass
class Progress:
    """What the transfer's run does after reading the store: start these task runs, stop those,
    and suspend until woken (or finish)."""

    reference: str
    crn: str
    lao: bool
    status: str
    seen: int
    finished: bool
    to_start: list[TaskToStart] = field(default_factory=list)
    to_stop: list[str] = field(default_factory=list)


def _wanted_tasks(nsi: Nsi, policy: Policy) -> dict[str, str]:
    """task -> owner role: every task whose gate is open and that is not done, now."""
    if nsi.status in ("refused", "withdrawn"):
        return {}
    if (disputed := _disputed(nsi)) is not None:
        return {f"dispute-{disputed.seq}": policy.dispute_owner}
    done = _done_codes(nsi, policy)
    wanted: dict[str, str] = {}
    challenge = _open_challenge(nsi)
    for action in nsi.actions:
        rule = next((r for r in policy.actions if r.code == action.code), None)
        if action.status != "open" or rule is None or rule.recurring:
            continue  # a recurring check is recorded with action-done again and again; reminded, not a task
        if nsi.status == "completed":
            if rule.task != "completion":
                wanted[rule.task] = rule.owner  # after the move: still open, still reminded
            continue
        if any(g not in done for g in rule.opens_after):
            continue
        if rule.task == "completion" and (challenge is not None or _blocking_completion(nsi, policy)):
            continue
        wanted[rule.task] = rule.owner
    if challenge is not None:
        wanted[f"challenge-{challenge.seq}"] = policy.challenge_owner
    return wanted


def progress(reference: str, url: str | None = None) -> Progress:
    """Concurrent shape: open a waiting task for everything that has become possible, close the
    tasks that no longer apply, and note the wake-up sequence read. One transaction; idempotent."""
    with UnitOfWork(url) as uow:
        session = uow.session
        nsi = _load(session, reference)
        policy = _policy_for(nsi.profile)
        seen = nsi.wake_seq
        wanted = _wanted_tasks(nsi, policy)
        latest: dict[str, WaitingTask] = {}
        for row in nsi.tasks:
            if row.task not in latest or row.round > latest[row.task].round:
                latest[row.task] = row
        to_stop = []
        for row in nsi.tasks:
            if row.status == "open" and row.task not in wanted:
                row.status, row.closed_at = "cancelled", utcnow()
                if row.flow_run_id:
                    to_stop.append(row.flow_run_id)
        to_start = []
        for task, owner in wanted.items():
            row = latest.get(task)
            if row is None or row.status == "cancelled":
                row = WaitingTask(nsi_id=nsi.id, task=task, round=(row.round + 1) if row else 1, owner_role=owner, status="open")
                session.add(row)
                title = registry.spec_for(task, policy).title
                _history(session, nsi, f"opened:{task}:{row.round}", "task opened", f"{title}: waiting for {owner.replace('_', ' ')}",
                         "casetransfer")  # fmt: skip
            if row.status == "open" and row.flow_run_id is None:
                to_start.append(TaskToStart(task, row.round, owner, registry.spec_for(task, policy).title))
        nsi.seen_seq = max(nsi.seen_seq, seen)
        finished = nsi.status in CLOSED
        result = Progress(nsi.reference, nsi.crn, nsi.lao, nsi.status, seen, finished, to_start, to_stop)
        uow.commit()
        return result


def task_started(reference: str, task: str, round_: int, flow_run_id: str, url: str | None = None) -> bool:
    """Record the run that waits for a task. False when the task is no longer open (the transfer
    was withdrawn or closed while its run was opening tasks): the caller stops that run, since the
    withdrawal could not know of it."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference, lock=True)
        row = next((r for r in nsi.tasks if r.task == task and r.round == round_), None)
        if row is None or row.status != "open":
            return False
        if row.flow_run_id != flow_run_id:
            row.flow_run_id = flow_run_id
            uow.commit()
        return True


def task_done(reference: str, task: str, round_: int, url: str | None = None) -> None:
    """The task's run has recorded its answer and woken the transfer: nothing of it is left to recover."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        row = next((r for r in nsi.tasks if r.task == task and r.round == round_), None)
        if row is not None and row.status == "recorded":
            row.status = "done"
            uow.commit()


def task_round(reference: str, task: str, url: str | None = None) -> tuple[int, str, str | None] | None:
    """(round, status, flow run id) of the latest waiting task `task`, or None before it opens."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        rows = [r for r in nsi.tasks if r.task == task]
        if not rows:
            return None
        row = max(rows, key=lambda r: r.round)
        return row.round, row.status, row.flow_run_id


def wake_state(reference: str, url: str | None = None) -> tuple[int, int, str | None, str]:
    """(wake_seq, seen_seq, the transfer's flow run id, status)."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        return nsi.wake_seq, nsi.seen_seq, nsi.flow_run_id, nsi.status


def bump_wake(reference: str, url: str | None = None) -> int:
    """Move the wake-up sequence on (a run resumed with nothing new moves past the key it used)."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        nsi.wake_seq += 1
        uow.commit()
        return nsi.wake_seq


def unseen_wakeups(url: str | None = None) -> list[tuple[str, str]]:
    """(reference, flow run id) of open concurrent transfers with a change their run has not read."""
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(
            select(Nsi.reference, Nsi.flow_run_id).where(
                Nsi.shape_version >= 2, Nsi.wake_seq > Nsi.seen_seq, Nsi.flow_run_id.is_not(None)
            )
        )
        return [(r, f) for r, f in rows if f]


def set_transfer_run(reference: str, flow_run_id: str, url: str | None = None) -> None:
    """A new run drives the transfer (a disputed refusal): it becomes the NSI's run."""
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        nsi.flow_run_id = flow_run_id
        uow.commit()


@dataclass
class ActionView:
    code: str
    title: str
    owner_role: str
    due_on: dt.date
    status: str
    done_on: dt.date | None
    days_overdue: int


@dataclass
class TaskView:
    """An open waiting task: who it waits for, when it is due, and its run in the Prefect UI."""

    task: str
    title: str
    owner_role: str
    due_on: dt.date | None
    round: int
    flow_run_id: str | None


@dataclass
class ChallengeView:
    seq: int
    status: str
    raised_on: dt.date
    raised_by: str
    settled_on: dt.date | None
    dispute_status: str | None


@dataclass
class HistoryView:
    at: dt.datetime
    event: str
    detail: str
    actor: str
    flow_run_id: str | None


@dataclass
class StatusView:
    reference: str
    crn: str
    name: str
    lao: bool
    nsi_type: str
    status: str
    waiting_step: str | None
    raised_on: dt.date
    due_on: dt.date
    transferring: str
    receiving: str
    receiving_practitioner: str | None
    responsible_officer: str | None
    flow_run_id: str | None
    actions: list[ActionView] = field(default_factory=list)
    history: list[HistoryView] = field(default_factory=list)
    profile: str = "adult"
    parent_reference: str | None = None  # the Temporary Move this Case Transfer was converted from
    converted_to: str | None = None  # the Case Transfer this Temporary Move became
    shape_version: int = 1
    tasks: list[TaskView] = field(default_factory=list)
    challenges: list[ChallengeView] = field(default_factory=list)


def status_of(reference: str, as_of: dt.date | None = None, url: str | None = None) -> StatusView:
    as_of = as_of or today()
    calendar = get_calendar(get_settings().calendar)
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        estate = load_estate()
        view = StatusView(
            reference=nsi.reference,
            crn=nsi.crn,
            name=nsi.name,
            lao=nsi.lao,
            nsi_type=nsi.nsi_type,
            status=nsi.status,
            waiting_step=nsi.waiting_step,
            raised_on=nsi.raised_on,
            due_on=nsi.due_on,
            transferring=f"{estate.pdus[nsi.transferring_pdu_code].name} ({nsi.transferring_team_code})",
            receiving=f"{estate.pdus[nsi.receiving_pdu_code].name}"
            + (f" ({nsi.receiving_team_code})" if nsi.receiving_team_code else ""),
            receiving_practitioner=nsi.receiving_practitioner,
            responsible_officer=nsi.responsible_officer,
            flow_run_id=nsi.flow_run_id,
            profile=nsi.profile,
            parent_reference=nsi.parent_reference,
            converted_to=uow.session.scalar(select(Nsi.reference).where(Nsi.parent_reference == nsi.reference)),
        )
        for a in nsi.actions:
            overdue = calendar.working_days_between(a.due_on, as_of) if a.status == "open" and a.due_on < as_of else 0
            view.actions.append(ActionView(a.code, a.title, a.owner_role, a.due_on, a.status, a.done_on, overdue))
        view.actions.sort(key=lambda a: (a.due_on, a.code))
        for h in nsi.history:
            view.history.append(HistoryView(h.at, h.event, h.detail, h.actor, h.flow_run_id))
        view.shape_version = nsi.shape_version
        policy = _policy_for(nsi.profile)
        due = {a.code: a.due_on for a in nsi.actions}
        for row in nsi.tasks:
            if row.status != "open":
                continue
            rule = policy.rule_for_task(row.task)
            title = registry.spec_for(row.task, policy).title
            view.tasks.append(TaskView(row.task, title, row.owner_role, due.get(rule.code) if rule else None, row.round, row.flow_run_id))
        view.tasks.sort(key=lambda t: (t.due_on or dt.date.max, t.task))
        view.challenges = [
            ChallengeView(c.seq, c.status, c.raised_on, c.raised_by, c.settled_on, c.dispute_status) for c in nsi.challenges
        ]
        return view
