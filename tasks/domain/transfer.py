"""The Transfer aggregate: one NSI with its actions, step answers, waiting tasks, challenges and
history, loaded once and changed only through its methods.

Each method applies the policy's rules to the NSI as it stands and changes it in memory; the unit
of work (`TransferWork`) writes whatever changed in one transaction when committed, and nothing
when not. The step registry (tasks/domain/steps.py) says what an answer means as pure `Effect`s;
this is where they meet the record. Read views (status, Action List, digests) are queries of
their own (tasks/domain/transfer_views.py), not built from here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tasks.calendar import get_calendar
from tasks.domain import documents, profile_rules
from tasks.domain import steps as registry
from tasks.domain.actions import Clocks, Facts, PlannedAction, plan_actions
from tasks.domain.decisions import RefusalReason, RuleBroken
from tasks.domain.form import NsiType, TransferForm
from tasks.domain.policy import Policy, get_policy
from tasks.settings import get_settings
from tasks.store.models import Action, Challenge, HistoryEntry, Nsi, StepRecord, utcnow
from tasks.store.unit_of_work import UnitOfWork

CLOSED = {"completed", "refused", "withdrawn", "returned", "converted", "ended", "superseded"}
CHALLENGED, DISPUTED = registry.CHALLENGED, registry.DISPUTED
CONTACT_RECORDS_ON_TIME, CONTACT_RECORDS_LATE = "contact records on time", "contact records late"


def recurring_events(code: str) -> tuple[str, str]:
    """The history events of a recurring check done on time and late (12.8's have their own words)."""
    words = code.replace("_", " ")
    return f"{words} on time", f"{words} late"


class NotFound(LookupError):
    pass


class StepRefused(ValueError):
    """A step answer (or any change) that cannot be applied now; `field` names what was wrong."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def today() -> dt.date:
    return get_settings().current_date()


def unplanned(planned: list[PlannedAction], have: Collection[str]) -> list[PlannedAction]:
    """The planned actions an NSI does not hold yet: each code is planned once (a re-run or a
    later clock plans it again)."""
    return [p for p in planned if p.code not in have]


def attempt_prefixes(step: str) -> tuple[str, str]:
    """The history keys of answers to `step` taken without recording it: rejected ones, and those
    recorded as not final (a handover that did not transfer the case, a stayed decision)."""
    return f"rejected:{step}:", f"attempt:{step}:"


def date_in(answer: dict[str, Any], key: str) -> dt.date | None:
    value = answer.get(key)
    return dt.date.fromisoformat(str(value)) if value else None


def done_note(on: dt.date, recorded: dt.date) -> str:
    return f" (done {on.isoformat()})" if on != recorded else ""


def finish_actions(nsi: Nsi, codes: Collection[str], on: dt.date) -> None:
    """Mark these open actions done on `on` (the seeder's synthetic NSIs use it too)."""
    for action in nsi.actions:
        if action.code in codes and action.status == "open":
            action.status = "done"
            action.done_on = on


def close_nsi(nsi: Nsi, status: str, on: dt.date) -> None:
    """Close the NSI as `status`; its open actions are cancelled unless it completed."""
    nsi.status = status
    nsi.waiting_step = None
    nsi.closed_on = on
    if status != "completed":
        for action in nsi.actions:
            if action.status == "open":
                action.status = "cancelled"


class Transfer:
    """An NSI and everything recorded against it, under the policy it was raised with."""

    def __init__(self, nsi: Nsi):
        self.nsi = nsi
        self.policy: Policy = get_policy(nsi.profile)
        self._keys: set[str] | None = None

    # ---- what it is now ----

    @property
    def reference(self) -> str:
        return self.nsi.reference

    @property
    def closed(self) -> bool:
        return self.nsi.status in CLOSED

    @property
    def concurrent(self) -> bool:
        return self.nsi.shape_version >= 2 and self.nsi.nsi_type == NsiType.case_transfer.value

    @property
    def shape(self) -> int:
        """1 sequential, 2 concurrent tasks. Shape 1's branches stay while open transfers raised
        under it can still finish."""
        return self.nsi.shape_version if self.nsi.nsi_type == NsiType.case_transfer.value else 1

    def recorded(self, step: str) -> StepRecord | None:
        return next((s for s in self.nsi.steps if s.step == step), None)

    def open_challenge(self) -> Challenge | None:
        return next((c for c in self.nsi.challenges if c.status == "open"), None)

    def disputed(self) -> Challenge | None:
        return next((c for c in self.nsi.challenges if c.dispute_status == "open"), None)

    def attempts(self, step: str) -> list[HistoryEntry]:
        """Answers to `step` taken without recording it (attempt_prefixes): both kinds count."""
        return [h for h in self.nsi.history if h.key.startswith(attempt_prefixes(step))]

    def done_codes(self) -> set[str]:
        """Steps recorded and actions done (an action done counts for its step too): what a
        concurrent task's gate asks about."""
        done = {s.step for s in self.nsi.steps}
        for a in self.nsi.actions:
            if a.status == "done":
                done.add(a.code)
                rule = next((r for r in self.policy.actions if r.code == a.code), None)
                if rule is not None:
                    done.add(rule.task)
        return done

    def blocking_completion(self) -> list[Action]:
        """Concurrent shape: the actions config marks as required before completion that are still open."""
        required = set(self.policy.completion_requires)
        return [a for a in self.nsi.actions if a.code in required and a.status == "open"]

    def gate(self, task: str) -> list[str]:
        """What a concurrent task waits for before it opens (steps or actions not yet done)."""
        rule = self.policy.rule_for_task(task)
        if rule is None:
            return []
        done = self.done_codes()
        return [g for g in rule.opens_after if g not in done]

    def situation(self) -> registry.Situation:
        """What the step registry's checks and effects read from the NSI."""
        nsi = self.nsi
        open_one, disputed = self.open_challenge(), self.disputed()
        handover = next(
            (s for s in nsi.steps if s.step == "handover" and not profile_rules.handover_shortfall(self.policy, s.answer)), None
        )
        return registry.Situation(
            reference=nsi.reference,
            status=nsi.status,
            concurrent=self.concurrent,
            receiving_pdu_code=nsi.receiving_pdu_code,
            transferring_team_code=nsi.transferring_team_code,
            transferring_pdu_code=nsi.transferring_pdu_code,
            transferring_practitioner=nsi.transferring_practitioner,
            form=nsi.form,
            distance_km=nsi.distance_km,
            open_challenge=open_one.seq if open_one else None,
            disputed=disputed.seq if disputed else None,
            handover_held_on=date_in(handover.answer, "held_on") if handover else None,
        )

    # ---- what every change writes ----

    def note(self, key: str, event: str, detail: str, actor: str, flow_run_id: str | None = None) -> None:
        """Append a history entry unless one with this key exists (a re-run writes it again)."""
        if self._keys is None:
            self._keys = {h.key for h in self.nsi.history}
        if key not in self._keys:
            self._keys.add(key)
            self.nsi.history.append(HistoryEntry(key=key, event=event, detail=detail, actor=actor, flow_run_id=flow_run_id))

    def plan(self, planned: Iterable[PlannedAction]) -> None:
        have = {a.code for a in self.nsi.actions}
        for p in unplanned(list(planned), have):
            self.nsi.actions.append(Action(code=p.code, title=p.title, owner_role=p.owner_role, due_on=p.due_on))
            have.add(p.code)
        documents.plan_items(self.nsi)  # the checklist's lines under the documents actions

    def finish_actions(self, codes: Collection[str], on: dt.date) -> None:
        finish_actions(self.nsi, codes, on)

    def close(self, status: str, on: dt.date) -> None:
        close_nsi(self.nsi, status, on)

    def wake(self) -> int:
        """Move the wake-up sequence on: the transfer's run reads what changed when it wakes."""
        self.nsi.wake_seq += 1
        return self.nsi.wake_seq

    # ---- answering a step ----

    def check_answer(self, step: str, answer: dict[str, Any], situation: registry.Situation | None = None) -> None:
        """The rules an answer meets against this NSI, under its own policy: the step's own rules
        (the registry's check_situation), then the shape's (gates, completion waiting, actions that
        must be done first). StepRefused names the field. Writes nothing."""
        nsi, policy = self.nsi, self.policy
        situation = situation or self.situation()
        spec = registry.spec_for(step, policy)
        if self.closed:
            # After completion, the after-the-move actions (reassessment, plan review, court
            # application) stay open and can still be recorded; a refusal can still be disputed.
            action = next((a for a in nsi.actions if a.code == step and a.status == "open"), None)
            late_action = self.concurrent and nsi.status == "completed" and spec.kind == "action" and action is not None
            if not late_action and not (spec.kind == "dispute" and self.disputed() is not None):
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
            registry.check_situation(step, answer, situation, policy, today())
            documents.check(nsi, step, answer)
        except RuleBroken as exc:
            raise StepRefused(exc.field, str(exc).removeprefix(f"{exc.field}: ")) from None
        if self.concurrent and spec.kind in ("step", "action"):
            if spec.kind == "action" and not any(a.code == step for a in nsi.actions):
                have = ", ".join(a.code for a in nsi.actions)
                raise StepRefused("step", f"{nsi.reference} has no action {step!r}; it has: {have}")
            if waiting := self.gate(step):
                raise StepRefused(
                    "step", f"{spec.title} opens after {', '.join(w.replace('_', ' ') for w in waiting)}, not yet recorded"
                )
            if step == "completion":
                if challenge := self.open_challenge():
                    raise StepRefused(
                        "step",
                        f"completion waits while challenge {challenge.seq} about risk is open: the receiving SPO settles it first",
                    )
                if blocking := self.blocking_completion():
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

    def check_new_answer(self, step: str, answer: dict[str, Any]) -> None:
        """As check_answer, for an answer about to be sent: refused too when the step is already
        recorded, or (sequential shape) when the NSI waits at another step."""
        nsi = self.nsi
        if self.recorded(step) is not None:
            raise StepRefused("step", f"{step} is already recorded for {nsi.reference}; to change its date use: casetransfer correct")
        self.check_answer(step, answer)
        if nsi.shape_version < 2 and nsi.waiting_step != step:
            waiting = nsi.waiting_step.replace("_", " ") if nsi.waiting_step else "no step"
            raise StepRefused("step", f"{nsi.reference} is waiting for {waiting}, not {step.replace('_', ' ')}")

    def answer(self, step: str, answer: dict[str, Any], flow_run_id: str | None = None, attempt: int = 0) -> str:
        """Record a step's answer and its effects, dated the day the work was done (the answer's
        done date; today when empty). Returns the NSI status after it.

        A step is recorded once: the same answer again (a re-run flow) changes nothing. An answer
        the policy records without completing the step goes in the history under `attempt`, and
        the step stays waiting. On the concurrent shape the wake-up counter moves, so the
        transfer's run opens whatever became possible."""
        nsi, policy = self.nsi, self.policy
        if self.recorded(step) is not None:
            return nsi.status
        actor = answer.get("recorded_by") or "unknown"
        recorded_today = today()
        calendar = get_calendar(get_settings().calendar)
        # Read once: the checks and the effect see the NSI as it was before this answer.
        situation = self.situation()
        self.check_answer(step, answer, situation)
        effect = documents.take(nsi, step, registry.effect_of(step, answer, situation, policy, recorded_today))
        if effect.pending is not None:
            self.note(f"attempt:{step}:{attempt}", effect.pending, effect.detail, actor, flow_run_id)
            return nsi.status
        on = effect.on
        for name, value in effect.sets.items():
            setattr(nsi, name, value)
        if effect.plans == "allocation":
            form = TransferForm.model_validate(nsi.form)
            clocks = Clocks(raised=nsi.raised_on, received=nsi.received_on, move=nsi.move_on or nsi.received_on, reallocation=on)
            self.plan(plan_actions(Facts(form, allocation=effect.answer), clocks, policy, calendar, nsi.shape_version))
        if effect.challenge is not None:
            challenge = self.open_challenge()
            assert challenge is not None  # check_answer refused otherwise
            challenge.settled_by, challenge.settled_on, challenge.status = actor, on, effect.challenge
            if effect.challenge == "upheld":
                challenge.reasons = [RefusalReason(r).value for r in answer.get("reasons", [])]
                challenge.evidence = answer.get("evidence", "")
        if effect.dispute is not None:
            challenge = self.disputed()
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
        self.finish_actions(effect.finishes, on)
        nsi.steps.append(StepRecord(step=step, answer=effect.answer, recorded_by=actor, flow_run_id=flow_run_id, done_on=on))
        if effect.closes is not None:
            self.close(effect.closes, on)
        else:
            nsi.status = effect.status or nsi.status
            nsi.waiting_step = None
        if effect.caretaking_from is not None:
            # 12.8: the host's record of contacts, first due one agreed period after caretaking starts.
            weeks = int(answer["contact_frequency_weeks"])
            self.plan(
                PlannedAction(r.code, r.title, r.owner, effect.caretaking_from + dt.timedelta(weeks=weeks), None)
                for r in policy.actions if r.recurring and r.clock == "caretaking" and nsi.nsi_type in r.nsi_types
            )  # fmt: skip
        if effect.closes == "completed":
            # 12.5: caretaking ends when responsibility passes in full; its checks end with it.
            for action in nsi.actions:
                if action.status == "open" and policy.recurs(action.code):
                    action.status = "cancelled"
        if effect.plans == "returned":
            # After closing, so the review stays open: the case is reviewed on the person's return.
            clocks = Clocks(raised=nsi.raised_on, received=nsi.received_on, move=nsi.move_on or nsi.received_on, returned=on)
            planned = plan_actions(Facts(TransferForm.model_validate(nsi.form)), clocks, policy, calendar, nsi.shape_version)
            self.plan(p for p in planned if policy.rule(p.code).clock == "returned")
        for row in nsi.tasks:
            if row.task == step and row.status == "open":
                # "recorded" until its run has woken the transfer (task_done): a run killed in
                # between is still found by recover, and the transfer's run leaves it alone.
                row.status, row.closed_at = "recorded", utcnow()
        if self.concurrent:
            self.wake()
        # A step done again (the destination changed) keeps the first record as `<step>~<n>`.
        again = sum(1 for s in nsi.steps if s.step.startswith(f"{step}~"))
        key = f"step:{step}" + (f"~{again + 1}" if again else "")
        self.note(key, step, effect.detail + done_note(on, recorded_today), actor, flow_run_id)
        return nsi.status

    def wait_for(self, step: str, status: str, flow_run_id: str | None = None) -> bool:
        """The NSI now waits for `step` (sequential shape), under `status`. False when closed."""
        nsi = self.nsi
        if self.closed:
            return False
        nsi.status = status
        nsi.waiting_step = step
        if flow_run_id and not nsi.flow_run_id:
            nsi.flow_run_id = flow_run_id
        self.note(f"waiting:{step}", "waiting", f"waiting for {step.replace('_', ' ')}", "casetransfer", flow_run_id)
        return True

    def reject(self, step: str, attempt: int, message: str, actor: str, flow_run_id: str | None = None) -> None:
        self.note(f"rejected:{step}:{attempt}", "answer rejected", message, actor, flow_run_id)

    # ---- changes besides answers ----

    def check_done_date(self, name: str, on: dt.date) -> None:
        if on > today():
            raise StepRefused(name, f"{on} is in the future: record work on or after the day it was done")
        if on < self.nsi.raised_on:
            raise StepRefused(name, f"{on} is before the NSI was raised ({self.nsi.raised_on})")

    def correct(self, step: str, done_on: dt.date, reason: str, by: str) -> dt.date:
        """Correct the day a recorded step (or action) was done. The answer and the action take
        the new date; the history keeps the original entry and adds who corrected it, when and
        why. Returns the date it replaced."""
        nsi, policy = self.nsi, self.policy
        record = self.recorded(step)
        codes = [r.code for r in policy.rules_for_step(step, nsi.shape_version)] or [step]
        actions = [a for a in nsi.actions if a.code in codes and a.status == "done"]
        if record is None and not actions:
            done = sorted({s.step for s in nsi.steps} | {a.code for a in nsi.actions if a.status == "done"})
            raise StepRefused("step", f"{step} is not recorded for {nsi.reference}; recorded: {', '.join(done) or 'nothing yet'}")
        self.check_done_date("done_on", done_on)
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
        n = sum(1 for h in nsi.history if h.event == "corrected")
        detail = f"{step.replace('_', ' ')} done on {done_on.isoformat()} (was {was.isoformat()}): {reason}"
        self.note(f"corrected:{step}:{n + 1}", "corrected", detail, by)
        return was

    def withdraw(self, reason: str, by: str) -> list[str]:
        """Withdraw at any step. Returns the flow runs to stop: the transfer's and every task still open."""
        nsi = self.nsi
        if self.closed:
            raise StepRefused("nsi", f"{nsi.reference} is already {nsi.status}")
        runs = self.end("withdrawn", today())
        self.note("withdrawn", "withdrawn", reason, by)
        return runs

    def end(self, status: str, on: dt.date) -> list[str]:
        """Close it as `status` (withdrawn, superseded) with every waiting task still open, and
        wake its run. Returns the flow runs to stop: the transfer's and those tasks'."""
        nsi = self.nsi
        self.close(status, on)
        runs = [nsi.flow_run_id] if nsi.flow_run_id else []
        for row in nsi.tasks:
            if row.status == "open":
                row.status, row.closed_at = "cancelled", utcnow()
                if row.flow_run_id:
                    runs.append(row.flow_run_id)
        self.wake()
        return runs

    def escalate(self, concern: str, by: str) -> int:
        """Escalate a concern to the SPO at any step; returns how many escalations the NSI has."""
        n = sum(1 for h in self.nsi.history if h.event == "escalated") + 1
        self.note(f"escalated:{n}", "escalated", f"concern escalated to the SPO: {concern}", by)
        return n

    def mark_action_done(self, code: str, by: str, on: dt.date | None = None) -> None:
        nsi = self.nsi
        action = next((a for a in nsi.actions if a.code == code), None)
        if action is None:
            raise StepRefused("action", f"{nsi.reference} has no action {code!r}; it has: {', '.join(a.code for a in nsi.actions)}")
        if action.status != "open":
            raise StepRefused("action", f"{code} is already {action.status}")
        own_steps = registry.TEMPORARY_MOVE_STEPS if nsi.nsi_type == NsiType.temporary_move.value else registry.SEQUENTIAL_STEPS
        if self.shape < 2 and code in own_steps:
            # Done here, the action would close while the transfer still waits at its step.
            raise StepRefused(
                "action", f"{code} is a step of its own: record it with `casetransfer record {nsi.reference} {code}`"
            )
        on = on or today()
        self.check_done_date("on", on)
        rule = next((r for r in self.policy.actions if r.code == code), None)
        if rule is not None and rule.recurring:
            self._check_recurring(action, on, by)
            return
        action.status = "done"
        action.done_on = on
        documents.after_action_done(nsi, code, on)
        if nsi.shape_version >= 2:
            self.wake()  # its waiting task, if any, is closed by the transfer's run
        self.note(f"action:{code}", "action done", action.title + done_note(on, today()), by)

    def agreed_weeks(self) -> int | None:
        """The agreed contact frequency: a caretaking agreement's, or a transfer in's allocation's (12.5)."""
        record = next((s for s in self.nsi.steps if s.step in ("support_allocation", "allocation")), None)
        weeks = record.answer.get("contact_frequency_weeks") if record else None
        return int(weeks) if weeks else None

    def _check_recurring(self, action: Action, on: dt.date, by: str) -> None:
        """12.8: the host's record of contacts checked: on time or late against its due date, and
        due again one agreed period later. It stays open (and reminded) until the caretaking ends."""
        rule = self.policy.rule(action.code)
        # 12.8's frequency is agreed case by case; another recurring check (5.3's reviews) has its own.
        weeks = self.agreed_weeks() if rule.clock == "caretaking" else rule.weeks
        if weeks is None:
            raise StepRefused("action", f"{action.code}: no contact frequency is agreed on the caretaking agreement")
        events = (CONTACT_RECORDS_ON_TIME, CONTACT_RECORDS_LATE) if rule.clock == "caretaking" else recurring_events(action.code)
        seq = 1 + sum(1 for h in self.nsi.history if h.event in events and h.key.startswith(f"action:{action.code}:"))
        late = (on - action.due_on).days
        event = events[0] if late <= 0 else events[1]
        due = action.due_on + dt.timedelta(weeks=weeks)
        words = "on time" if late <= 0 else f"{late} days late"
        detail = f"{action.title}: received {on.isoformat()}, due {action.due_on.isoformat()}: {words}; next due {due.isoformat()}"
        self.note(f"action:{action.code}:{seq}", event, detail, by)
        action.due_on = due


class Transfers:
    """The repository: Transfers by reference, within one session."""

    def __init__(self, session: Session):
        self.session = session

    def get(self, reference: str, lock: bool = False) -> Transfer:
        """The NSI by reference; with `lock`, its row is held until the transaction ends
        (PostgreSQL), so two writers that each read before writing go one by one."""
        reference = reference.strip().upper()
        query = select(Nsi).where(Nsi.reference == reference)
        if lock and self.session.get_bind().dialect.name == "sqlite":
            # SQLite has no row locks and pysqlite reads outside a transaction: a no-op write
            # first takes the database's write lock, so the reads below see every earlier commit
            # and a second writer waits (busy_timeout) until this one commits.
            self.session.execute(
                update(Nsi).where(Nsi.reference == reference).values(wake_seq=Nsi.wake_seq, updated_at=Nsi.updated_at)
            )  # updated_at named too, so the model's onupdate does not stamp a read as a change
        nsi = self.session.scalar(query.with_for_update() if lock else query)
        if nsi is None:
            raise NotFound(f"nsi: no NSI with reference {reference!r}")
        return Transfer(nsi)


class TransferWork(UnitOfWork):
    """A unit of work over Transfers: `with TransferWork(url) as uow: t = uow.transfers.get(ref)
    … uow.commit()`. Rolls back unless committed."""

    transfers: Transfers

    def __enter__(self) -> TransferWork:
        super().__enter__()
        self.transfers = Transfers(self.session)
        return self
