"""Each synthetic NSI raised and taken through its recorded steps by the domain's own functions, in
memory: new_nsi's columns, plan_actions, the step registry's answers and effects, the store's
closing rules. What comes out is the rows raising and each step would have stored, without ids
yet (tasks/demo/seed.py writes them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from tasks.calendar import WorkingDayCalendar
from tasks.demo.synthetic import NEVER, OUTCOME_STEP, STEPS, SUPPORT_STEP, Synthetic, to_dates
from tasks.demo.transfer_forms import Labels, form_dict, person
from tasks.domain import documents
from tasks.domain import steps as registry
from tasks.domain.actions import Clocks, Facts, plan_actions
from tasks.domain.form import TransferForm
from tasks.domain.policy import Policy
from tasks.domain.temporary_moves import CONVERTING, OUTCOMES, SUPPORTING
from tasks.domain.transfer import close_nsi, finish_actions, unplanned
from tasks.domain.transfers import nsi_columns, raised_detail, waiting_status
from tasks.places.estate import load_estate
from tasks.places.placement import Placement, check_placement
from tasks.store.models import Nsi

# The steps whose actions their recording finishes; the others people mark done around their due date.
RECORDED_STEPS = frozenset((*STEPS, SUPPORT_STEP, OUTCOME_STEP))
SHAPE = 1  # the sequential shape, whose steps STEPS are (tasks/demo/synthetic.py)


def _at(d: dt.date, hour: int) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day, hour, 0, tzinfo=dt.UTC)


def _answer(
    step: str, on: dt.date, i: int, c: dict[str, np.ndarray], labels: Labels, situation: registry.Situation, policy: Policy
) -> tuple[dict[str, Any], registry.Effect]:
    """The step's answer, built and dumped through its form in the step registry as a flow would,
    and what the registry says recording it does."""
    spo, pp = person(int(c["people"][3, i])), person(int(c["people"][2, i]))
    fields: dict[str, Any]
    if step == SUPPORT_STEP:
        fields = {"recorded_by": spo, "support_contact": pp, "team_code": labels.teams[c["r_team"][i]]}
    elif step == OUTCOME_STEP:
        fields = {"recorded_by": person(int(c["people"][0, i])), "outcome": str(c["status"][i]), "on": on}
    elif step == "allocation" and policy.allocation is not None:
        # A senior case manager identifying as female meets 4.1 and 2.2 for every case.
        rules = policy.allocation
        manager = next(m for m in rules.staff if m.band in rules.senior_bands and m.gender == "female")
        fields = {"recorded_by": spo, "case_manager": manager.id, "team_code": labels.teams[c["r_team"][i]]}
    elif step == "allocation":
        fields = {"recorded_by": spo, "practitioner": pp, "team_code": labels.teams[c["r_team"][i]]}
    elif step == "address_assessment":
        home = c["postcodes"][1, i] % 3 or policy.home_visit_required
        fields = {"recorded_by": pp, "method": "home_visit" if home else "desktop", "suitable": True}
    elif step in ("police_checks", "safeguarding_checks"):
        fields = {"recorded_by": "Case admin", "returned_on": on}
    elif step == "handover":
        fields = {"recorded_by": person(int(c["people"][0, i])), "held_on": on}
    elif step == "decision":
        fields = {"recorded_by": spo, "outcome": "accept"}
        if c["status"][i] == "refused":
            fields = {
                "recorded_by": spo,
                "outcome": "refuse",
                "reasons": ["Risk of harm would increase and could not be managed at the new address"],
                "evidence": "Police checks show the proposed address is close to the victim's home",
            }
    else:
        fields = {"recorded_by": spo, "responsible_officer": pp, "completed_on": on}
    answer = registry.spec_for(step, policy).form.model_validate(fields).model_dump(mode="json")
    return answer, registry.effect_of(step, answer, situation, policy, on)


@dataclass
class ActionDraft:
    """An Action row before its NSI has an id; `usual_done` is when people mark it done if no step
    finishes it (None: never)."""

    code: str
    title: str
    owner_role: str
    due_on: dt.date
    usual_done: dt.date | None
    status: str = "open"
    done_on: dt.date | None = None


class NsiDraft(SimpleNamespace):
    """An NSI row before it has an id, with the attributes the store's rules touch
    (tasks/domain/transfer.py: finish_actions, close_nsi): its columns and its actions."""

    actions: list[ActionDraft]


def _plan(
    draft: NsiDraft, facts: Facts, clocks: Clocks, syn: Synthetic, i: int, calendar: WorkingDayCalendar, policy: Policy,
    clock: str | None = None,
) -> None:  # fmt: skip
    """Add the actions plan_actions gives (those of one clock, when named) as register_nsi and
    apply_step do, each with the day people would mark it done."""
    planned = plan_actions(facts, clocks, policy, calendar, draft.shape_version)
    if clock is not None:
        planned = [p for p in planned if policy.rule(p.code).clock == clock]
    for p in unplanned(planned, {a.code for a in draft.actions}):
        delay = int(syn.action_delay[syn.rule_index[p.code], i])
        usual = None
        if p.step not in RECORDED_STEPS and delay != NEVER:
            start = clocks.start(policy.rule(p.code).clock)
            assert start is not None  # plan_actions plans only started clocks
            usual = max(calendar.add_working_days(p.due_on, delay), start)
        draft.actions.append(ActionDraft(p.code, p.title, p.owner_role, p.due_on, usual))
    # The checklist's lines, as Transfer.plan adds them: marked done when their documents are.
    documents.plan_items(draft, lambda code, title, parent: ActionDraft(code, title, parent.owner_role, parent.due_on, parent.usual_done))


def _done_by(draft: NsiDraft, on: dt.date, today: dt.date) -> None:
    """The actions people had marked done by `on` (and by today)."""
    for a in draft.actions:
        if a.status == "open" and a.usual_done is not None and a.usual_done <= min(on, today):
            a.status, a.done_on = "done", a.usual_done


@dataclass
class Drafted:
    """A chunk's NSIs as drafts, and their step records and history entries, each with the NSI's
    position in the chunk in place of its id."""

    nsis: list[NsiDraft]
    steps: list[tuple[int, dict[str, Any]]]  # (position in the chunk, step record without its nsi_id)
    history: list[tuple[int, dict[str, Any]]]


def draft_nsis(
    syn: Synthetic, rows: range, seed: int, policy: Policy, calendar: WorkingDayCalendar, today: dt.date
) -> Drafted:
    """Rows `rows` of `syn`, each raised and taken through its recorded steps by the domain's own
    functions (new_nsi's columns, plan_actions, the step registry's effects, the store's closing
    rules), in memory."""
    c = syn.cols
    labels = syn.labels
    estate = load_estate()
    sl = slice(rows.start, rows.stop)
    raised, received, move = to_dates(c["raised"][sl]), to_dates(c["received"][sl]), to_dates(c["move"][sl])
    closed, due = to_dates(c["closed"][sl]), to_dates(c["due"][sl])
    step_dates = [to_dates(syn.step_dates[k, sl]) for k in range(len(STEPS))]
    drafts: list[NsiDraft] = []
    steps: list[tuple[int, dict[str, Any]]] = []  # (row in chunk, step record without its nsi_id)
    history: list[tuple[int, dict[str, Any]]] = []
    for j, i in enumerate(rows):
        form = TransferForm.model_validate(form_dict(c, i, labels))
        placement = Placement(labels.pdus[c["r_pdu"][i]], float(c["distance"][i]))
        draft = NsiDraft(
            **nsi_columns(
                form, f"seed-{seed}-{i}", policy, SHAPE, raised=raised[j], received=received[j], move=move[j], due=due[j],
                placed=check_placement(form, placement, policy), placement=placement, flow_run_id=None,
                parent_reference=None, created_at=_at(raised[j], 9),
            ),
            allocated_on=None, closed_on=None, receiving_team_code=None, receiving_practitioner=None, waiting_step=None,
            actions=[],
        )  # fmt: skip
        drafts.append(draft)
        clocks = Clocks(raised=raised[j], received=received[j], move=move[j])
        facts = Facts(form, nearby_pdu=placement.distance_km is not None and placement.distance_km < policy.nearby_pdu_km)
        _plan(draft, facts, clocks, syn, i, calendar, policy)
        history.append((j, {
            "key": "raised",
            "event": "raised",
            "detail": raised_detail(draft.nsi_type, estate.pdus[draft.receiving_pdu_code].name),
            "actor": form.raised_by,
            "at": _at(raised[j], 9),
            "flow_run_id": None,
        }))  # fmt: skip
        situation = registry.Situation(
            reference=draft.request_key,  # the id-based reference is not known yet; no effect words it
            status="raised",
            concurrent=False,  # synthetic NSIs follow the sequential shape (above)
            receiving_pdu_code=draft.receiving_pdu_code,
            transferring_team_code=draft.transferring_team_code,
            transferring_pdu_code=draft.transferring_pdu_code,
            transferring_practitioner=draft.transferring_practitioner,
        )
        # Recorded in the flow's order: the first step not recorded ends the run of them.
        upto = next((k for k in range(len(STEPS)) if not syn.step_recorded[k, i]), len(STEPS))
        recorded = [(step_dates[k][j], STEPS[k], 10 + k) for k in range(upto)]
        recorded += [
            (to_dates(c["tm_dates"][step][i : i + 1])[0], step, 11) for step in (SUPPORT_STEP, OUTCOME_STEP) if c["tm_recorded"][step][i]
        ]
        for on, step, hour in recorded:
            answer, effect = _answer(step, on, i, c, labels, situation, policy)
            if effect.closes not in (None, "completed"):
                _done_by(draft, effect.on, today)
            # What apply_step does with the effect (the seeder's answers are all final).
            for name, value in effect.sets.items():
                setattr(draft, name, value)
            if effect.plans == "allocation":
                _plan(draft, replace(facts, allocation=effect.answer), replace(clocks, reallocation=effect.on), syn, i, calendar, policy)
            finish_actions(cast(Nsi, draft), list(effect.finishes), effect.on)
            if effect.closes is not None:
                close_nsi(cast(Nsi, draft), effect.closes, effect.on)
            else:
                draft.status = effect.status or draft.status
                draft.waiting_step = None
            if effect.plans == "returned":
                _plan(draft, facts, replace(clocks, returned=effect.on), syn, i, calendar, policy, clock="returned")
            at = _at(on, hour)
            steps.append((j, {
                "step": step, "answer": effect.answer, "recorded_by": answer["recorded_by"], "recorded_at": at,
                "flow_run_id": None, "done_on": effect.on,
            }))  # fmt: skip
            history.append((j, {
                "key": f"step:{step}", "event": step, "detail": effect.detail, "actor": answer["recorded_by"], "at": at,
                "flow_run_id": None,
            }))  # fmt: skip
        if draft.status == CONVERTING:
            # conversion.finish closes the move; the Case Transfer it becomes is not seeded.
            _done_by(draft, closed[j], today)
            close_nsi(cast(Nsi, draft), OUTCOMES["converted"], closed[j])
        status = c["status"][i]
        if status == "withdrawn" or (status in ("returned", "converted", "ended") and not c["tm_recorded"][OUTCOME_STEP][i]):
            # Closed outside any step: withdrawn, or a temporary move's end without its flow's outcome step.
            _done_by(draft, closed[j], today)
            close_nsi(cast(Nsi, draft), status, closed[j])
            detail = "moved again before the transfer finished" if status == "withdrawn" else f"temporary move {status}"
            history.append((j, {
                "key": status, "event": status, "detail": detail, "actor": form.transferring_practitioner,
                "at": _at(closed[j], 16), "flow_run_id": None,
            }))  # fmt: skip
        elif draft.closed_on is None and c["waiting"][i] is not None:
            # Where the flow has got to: waiting for its next step, as mark_waiting leaves it.
            draft.waiting_step = c["waiting"][i]
            draft.status = waiting_status(draft.waiting_step, SUPPORTING if draft.waiting_step == OUTCOME_STEP else None)
        _done_by(draft, today, today)
        draft.updated_at = _at(draft.closed_on or raised[j], 17)
    return Drafted(drafts, steps, history)
