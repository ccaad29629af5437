"""Case transfers in the store: raise, wait, record a step, withdraw, escalate, report status.

Every function here is one transaction and is idempotent: a resumed or re-run flow calls them
again with the same keys and nothing is stored twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tasks import profile_rules, temporary_moves
from tasks.actions import Clocks, Facts, PlannedAction, plan_actions, transfer_due
from tasks.calendar import get_calendar
from tasks.decisions import RefusalReason, RuleBroken, check_decision, check_reason
from tasks.estate import load_estate
from tasks.form import FormError, NsiType, TransferForm
from tasks.policy import Policy, get_policy
from tasks.settings import get_settings
from tasks.store.models import Action, HistoryEntry, Nsi, StepRecord
from tasks.store.unit_of_work import UnitOfWork

CLOSED = {"completed", "refused", "withdrawn", "returned", "converted", "ended"}
REFERENCE_PREFIX = {NsiType.case_transfer: "CT", NsiType.temporary_move: "TM"}


class NotFound(LookupError):
    pass


class StepRefused(ValueError):
    """A step answer that cannot be applied now; `field` names what was wrong."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Placement:
    """Where a transfer goes: the locator's answer, or the PDU the form names."""

    receiving_pdu_code: str
    distance_km: float | None = None


def today() -> dt.date:
    return get_settings().current_date()


def _policy_for(profile: str | None = None) -> Policy:
    return get_policy(profile or get_settings().profile)


def _history(session: Session, nsi: Nsi, key: str, event: str, detail: str, actor: str, flow_run_id: str | None = None) -> None:
    """Append a history entry unless one with this key exists (a re-run writes it again)."""
    exists = session.scalar(select(HistoryEntry.id).where(HistoryEntry.nsi_id == nsi.id, HistoryEntry.key == key))
    if exists is None:
        session.add(HistoryEntry(nsi_id=nsi.id, key=key, event=event, detail=detail, actor=actor, flow_run_id=flow_run_id))


def _add_planned(session: Session, nsi: Nsi, planned: list[PlannedAction]) -> None:
    have = set(session.scalars(select(Action.code).where(Action.nsi_id == nsi.id)))
    for p in planned:
        if p.code not in have:
            session.add(Action(nsi_id=nsi.id, code=p.code, title=p.title, owner_role=p.owner_role, due_on=p.due_on))


def place(form: TransferForm) -> Placement:
    """The receiving PDU: the form's, or the PDU locator's for the proposed postcode."""
    from tasks.locator import LocatorError, get_locator  # the index loads only when needed

    locator = get_locator()
    distance = None
    try:
        distance = locator.distance_km(form.current_postcode, form.proposed_postcode)
    except LocatorError:
        distance = None
    if form.receiving_pdu_code:
        return Placement(form.receiving_pdu_code, distance)
    try:
        loc = locator.locate(form.proposed_postcode)
    except LocatorError as exc:
        raise FormError([("proposed_postcode", f"{exc}; name the receiving_pdu_code instead")]) from None
    return Placement(loc.pdu_code, distance)


def check_placement(form: TransferForm, placement: Placement, policy: Policy | None = None) -> tuple[str, str, str]:
    """(transferring PDU, transferring region, receiving region), or FormError. A move inside
    the transferring PDU is an internal move, not a case transfer, unless the policy allows
    internal transfers and the form says it is one."""
    policy = policy or _policy_for()
    estate = load_estate()
    team = estate.teams.get(form.transferring_team_code)
    if team is None:
        raise FormError([("transferring_team_code", f"{form.transferring_team_code!r} is not a team in the estate")])
    pdu = estate.pdus.get(placement.receiving_pdu_code)
    if pdu is None or not pdu.geographic:
        raise FormError([("receiving_pdu_code", f"{placement.receiving_pdu_code!r} is not a geographic PDU")])
    internal_allowed = form.internal_transfer and policy.internal_transfers
    if form.nsi_type is NsiType.case_transfer and pdu.code == team.pdu_code and not internal_allowed:
        why = " (internal transfers are not part of this service's policy)" if form.internal_transfer else ""
        raise FormError(
            [
                (
                    "proposed_postcode",
                    f"the proposed address is in the transferring PDU ({pdu.name}): this is an internal move "
                    f"between teams, not a case transfer{why}",
                )
            ]
        )
    if form.internal_transfer and pdu.code != team.pdu_code:
        raise FormError(
            [("internal_transfer", f"an internal transfer stays inside the transferring PDU; {pdu.name} is another PDU")]
        )
    return team.pdu_code, team.region_code, pdu.region_code


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
    placement = placement or place(form)
    transferring_pdu, transferring_region, receiving_region = check_placement(form, placement, policy)
    settings = get_settings()
    calendar = get_calendar(settings.calendar)
    raised = form.raised_on or today()
    received = form.received_on or raised
    move = form.move_date or received
    facts = Facts(form, nearby_pdu=placement.distance_km is not None and placement.distance_km < policy.nearby_pdu_km)
    planned = plan_actions(facts, Clocks(raised=raised, received=received, move=move), policy, calendar)
    with UnitOfWork(url) as uow:
        nsi = Nsi(
            reference=f"new-{uuid.uuid4().hex[:16]}",  # replaced by the id-based reference below
            request_key=request_key,
            nsi_type=form.nsi_type.value,
            profile=policy.profile,
            status="raised",
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
            due_on=transfer_due(raised, policy, calendar, form.nsi_type),
            transferring_region_code=transferring_region,
            transferring_pdu_code=transferring_pdu,
            transferring_team_code=form.transferring_team_code,
            transferring_practitioner=form.transferring_practitioner,
            transferring_spo=form.transferring_spo,
            receiving_region_code=receiving_region,
            receiving_pdu_code=placement.receiving_pdu_code,
            distance_km=placement.distance_km,
            form=form.model_dump(mode="json"),
            flow_run_id=flow_run_id,
            parent_reference=parent_reference,
            # A temporary move never moves management: the transferring practitioner stays responsible.
            responsible_officer=form.transferring_practitioner if form.nsi_type is NsiType.temporary_move else None,
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
            + ("; internal transfer between teams of the PDU" if form.internal_transfer else ""),
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


def registered(request_key: str, url: str | None = None) -> str | None:
    """The reference of the NSI stored under `request_key` once a flow run has taken it on."""
    with UnitOfWork(url) as uow:
        row = uow.session.execute(select(Nsi.reference, Nsi.flow_run_id).where(Nsi.request_key == request_key)).first()
        return row.reference if row is not None and row.flow_run_id else None


def _load(session: Session, reference: str) -> Nsi:
    nsi = session.scalar(select(Nsi).where(Nsi.reference == reference.strip().upper()))
    if nsi is None:
        raise NotFound(f"nsi: no NSI with reference {reference!r}")
    return nsi


def open_flow_runs(url: str | None = None) -> list[tuple[str, str]]:
    """(reference, flow run id) of every open NSI that has a flow run."""
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(
            select(Nsi.reference, Nsi.flow_run_id).where(Nsi.status.not_in(CLOSED), Nsi.flow_run_id.is_not(None))
        )
        return [(r, f) for r, f in rows if f]


def waiting_steps(url: str | None = None) -> dict[str, tuple[str, str]]:
    """flow run id -> (reference, the step it waits at) for every open NSI waiting at a step."""
    with UnitOfWork(url) as uow:
        rows = uow.session.execute(
            select(Nsi.flow_run_id, Nsi.reference, Nsi.waiting_step).where(
                Nsi.status.not_in(CLOSED), Nsi.flow_run_id.is_not(None), Nsi.waiting_step.is_not(None)
            )
        )
        return {f: (r, s) for f, r, s in rows if f and s}


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
        nsi.status = status or f"awaiting_{step}"
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


def _check_answer(nsi: Nsi, step: str, answer: dict[str, Any]) -> None:
    """Rules that need the NSI, under the NSI's own policy: StepRefused names the field."""
    if nsi.status in CLOSED:
        raise StepRefused("nsi", f"{nsi.reference} is {nsi.status}; no more steps can be recorded")
    policy = _policy_for(nsi.profile)
    try:
        if step in ("allocation", "support_allocation"):
            team = load_estate().teams.get(str(answer["team_code"]).strip().upper())
            if team is None:
                raise StepRefused("team_code", f"{answer['team_code']!r} is not a team in the estate")
            if team.pdu_code != nsi.receiving_pdu_code:
                raise StepRefused("team_code", f"{team.code} ({team.name}) is not in the receiving PDU {nsi.receiving_pdu_code}")
            if team.code == nsi.transferring_team_code and nsi.receiving_pdu_code == nsi.transferring_pdu_code:
                raise StepRefused(
                    "team_code", f"{team.code} is the transferring team; an internal transfer moves to another team"
                )
            if step == "support_allocation":
                temporary_moves.check_caretaking_agreement(policy, answer, today())
        elif step == "decision":
            reasons = [RefusalReason(r) for r in answer.get("reasons", [])]
            check_decision(answer["outcome"], reasons, answer.get("evidence", ""), policy.information_refusals)
        elif step == "completion" and policy.handover_requires_attendance and _valid_handover(nsi, policy) is None:
            raise StepRefused(
                "step",
                "the case has not transferred: no three-way meeting with the "
                f"{policy.person} is recorded, so the transferring team keeps case management responsibility",
            )
        elif step == "outcome" and answer.get("outcome") == "converted":
            on = answer.get("on") and dt.date.fromisoformat(str(answer["on"])) or today()
            form = temporary_moves.conversion_form(nsi.form, on, str(answer.get("recorded_by")), nsi.receiving_pdu_code)
            check_placement(form, Placement(nsi.receiving_pdu_code, nsi.distance_km), policy)
    except RuleBroken as exc:
        raise StepRefused(exc.field, str(exc).removeprefix(f"{exc.field}: ")) from None
    except FormError as exc:
        raise StepRefused("outcome", f"cannot convert to a Case Transfer: {exc}") from None
    # After the step's own rules, which say the more fundamental thing (no valid meeting yet).
    if blocking := profile_rules.open_required_actions(policy, step, nsi.actions):
        names = "; ".join(f"{a.title} ({a.code})" for a in blocking)
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
            raise StepRefused("step", f"{step} is already recorded for {nsi.reference}")
        _check_answer(nsi, step, answer)
        if nsi.waiting_step != step:
            waiting = nsi.waiting_step.replace("_", " ") if nsi.waiting_step else "no step"
            raise StepRefused("step", f"{nsi.reference} is waiting for {waiting}, not {step.replace('_', ' ')}")


def _date_in(answer: dict[str, Any], key: str) -> dt.date | None:
    value = answer.get(key)
    return dt.date.fromisoformat(str(value)) if value else None


def apply_step(
    reference: str,
    step: str,
    answer: dict[str, Any],
    flow_run_id: str | None = None,
    url: str | None = None,
    attempt: int = 0,
) -> str:
    """Record a step's answer and its effects. Returns the NSI status after it.

    A step is recorded once: the same answer again (a re-run flow) changes nothing; raises
    StepRefused when the NSI is closed or the answer breaks a rule. An answer the policy records
    without completing the step (a handover that did not transfer the case, a stayed decision)
    goes in the history under `attempt`, and the step stays waiting.
    """
    actor = answer.get("recorded_by") or "unknown"
    on = today()
    settings = get_settings()
    with UnitOfWork(url) as uow:
        session = uow.session
        nsi = _load(session, reference)
        if session.scalar(select(StepRecord.id).where(StepRecord.nsi_id == nsi.id, StepRecord.step == step)) is not None:
            return nsi.status
        policy = _policy_for(nsi.profile)
        calendar = get_calendar(settings.calendar)
        detail = step.replace("_", " ") + " recorded"
        _check_answer(nsi, step, answer)
        transferring = f"{nsi.transferring_practitioner} ({nsi.transferring_team_code})"
        if (pending := profile_rules.not_final(policy, step, answer, transferring)) is not None:
            _history(session, nsi, f"attempt:{step}:{attempt}", pending.event, pending.detail, actor, flow_run_id)
            uow.commit()
            return nsi.status
        close_as: tuple[str, dt.date] | None = None
        status_after = f"{step}_recorded"
        if step in ("allocation", "support_allocation"):
            team = load_estate().teams[str(answer["team_code"]).strip().upper()]
            nsi.receiving_team_code = team.code
            nsi.allocated_on = on
            if step == "allocation":
                nsi.receiving_practitioner = answer["practitioner"]
                form = TransferForm.model_validate(nsi.form)
                clocks = Clocks(
                    raised=nsi.raised_on, received=nsi.received_on, move=nsi.move_on or nsi.received_on, reallocation=on
                )
                _add_planned(session, nsi, plan_actions(Facts(form), clocks, policy, calendar))
                session.flush()
                session.refresh(nsi)
                detail = f"allocated to {answer['practitioner']} ({team.name})"
            else:
                nsi.receiving_practitioner = answer["support_contact"]
                status_after = temporary_moves.SUPPORTING
                detail = "; ".join(
                    part
                    for part in (
                        f"support contact {answer['support_contact']} ({team.name}); "
                        f"{nsi.transferring_practitioner} stays the responsible practitioner",
                        temporary_moves.agreement_detail(answer),
                    )
                    if part
                )
        elif step == "handover" and policy.handover_is_transfer_date:
            detail = f"three-way meeting held on {answer['held_on']}: the formal transfer date"
        elif step == "decision":
            detail = profile_rules.decision_detail(answer, transferring)
            if answer["outcome"] == "refuse":
                close_as = ("refused", on)
        elif step == "completion":
            nsi.responsible_officer = answer["responsible_officer"]
            detail = f"completed: responsible officer {answer['responsible_officer']}"
            handover = _valid_handover(nsi, policy) if policy.handover_is_transfer_date else None
            # Where the handover is the formal transfer date, completion dates from it.
            completed_on = _date_in(answer, "completed_on") or (handover and _date_in(handover.answer, "held_on")) or on
            close_as = ("completed", completed_on)
        elif step == "outcome":
            outcome, ended_on = answer["outcome"], _date_in(answer, "on") or on
            answer = {**answer, "on": ended_on.isoformat()}  # stored resolved: a conversion re-run uses the same day
            if outcome == "converted":
                status_after = temporary_moves.CONVERTING  # closes once the Case Transfer exists
                detail = "converting to a Case Transfer (full transfer)"
            else:
                close_as = (temporary_moves.OUTCOMES[outcome], ended_on)
                detail = f"temporary move {outcome}" + (f": {answer['notes']}" if answer.get("notes") else "")
        codes = [r.code for r in policy.rules_for_step(step)]
        _finish_actions(session, nsi, codes, on)
        session.add(StepRecord(nsi_id=nsi.id, step=step, answer=answer, recorded_by=actor, flow_run_id=flow_run_id))
        if close_as is not None:
            _close(nsi, *close_as)
        else:
            nsi.status = status_after
            nsi.waiting_step = None
        if step == "outcome" and answer["outcome"] == "returned":
            # After closing, so the review stays open: the case is reviewed on the person's return.
            clocks = Clocks(
                raised=nsi.raised_on, received=nsi.received_on, move=nsi.move_on or nsi.received_on, returned=ended_on
            )
            planned = plan_actions(Facts(TransferForm.model_validate(nsi.form)), clocks, policy, calendar)
            _add_planned(session, nsi, [p for p in planned if policy.rule(p.code).clock == "returned"])
        _history(session, nsi, f"step:{step}", step, detail, actor, flow_run_id)
        try:
            uow.commit()
        except IntegrityError:
            # Two answers raced (double click): the first one stands.
            uow.rollback()
        return nsi.status


def withdraw(reference: str, reason: str, by: str, url: str | None = None) -> str | None:
    """Withdraw at any step. Returns the flow run id to stop, if any."""
    reason = check_reason("reason", reason)
    by = check_reason("by", by)
    with UnitOfWork(url) as uow:
        nsi = _load(uow.session, reference)
        if nsi.status in CLOSED:
            raise StepRefused("nsi", f"{nsi.reference} is already {nsi.status}")
        _close(nsi, "withdrawn", today())
        _history(uow.session, nsi, "withdrawn", "withdrawn", reason, by)
        uow.commit()
        return nsi.flow_run_id


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
        action.status = "done"
        action.done_on = on or today()
        _history(uow.session, nsi, f"action:{code}", "action done", action.title, by)
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
        return view
