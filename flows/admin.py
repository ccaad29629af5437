"""Flows for what can happen at any step: withdraw, escalate a concern, mark an action done.
Deployed so that operations staff can do these from the Prefect UI's Run form too."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.input import RunInput

from flows import engine
from tasks import transfers


def withdraw_transfer_now(reference: str, reason: str, withdrawn_by: str) -> None:
    """Withdraw in the store (the record), then stop the waiting flow run."""
    flow_run_id = transfers.withdraw(reference, reason, withdrawn_by)
    if flow_run_id:
        try:
            engine.stop(flow_run_id, f"Withdrawn by {withdrawn_by}: {reason}")
        except engine.EngineError:
            pass  # the store says withdrawn; a run that no longer exists has nothing to stop


@flow(name="withdraw-transfer", flow_run_name="withdraw-{reference}")
def withdraw_transfer(reference: str, reason: str, withdrawn_by: str) -> None:
    """Withdraw a transfer at any step."""
    withdraw_transfer_now(reference, reason, withdrawn_by)
    get_run_logger().info("%s withdrawn by %s", reference, withdrawn_by)


@flow(name="escalate-concern", flow_run_name="escalate-{reference}")
def escalate_concern(reference: str, concern: str, raised_by: str) -> int:
    """Escalate a concern about progress to the SPO at any step."""
    return transfers.escalate(reference, concern, raised_by)


@flow(name="mark-action-done", flow_run_name="action-{reference}-{code}")
def mark_action_done(reference: str, code: str, done_by: str, done_on: dt.date | None = None) -> None:
    """Record that an action with no waiting step of its own (documents, VLO liaison...) is done."""
    transfers.mark_action_done(reference, code, done_by, done_on)


def recover_now(stale_after_seconds: float | None = None) -> list[str]:
    """Reschedule the flow runs of open transfers whose process died, and give back its form to
    a run left waiting without one (see engine.reschedule_stale)."""
    from flows.steps import STEP_FORMS
    from tasks.settings import get_settings

    stale = get_settings().stale_run_seconds if stale_after_seconds is None else stale_after_seconds
    runs = dict((f, r) for r, f in transfers.open_flow_runs())
    waiting = transfers.waiting_steps()

    def form_for(flow_run_id: str) -> type[RunInput] | None:
        # Built only for a run found without its form: a form class per open transfer, every
        # few minutes, would cost far more than the rare repair.
        reference, step = waiting.get(flow_run_id, (None, None))
        if step not in STEP_FORMS:
            return None
        form = STEP_FORMS[step]
        return form.with_initial_data(description=f"### {reference}: {step.replace('_', ' ')}\n\n{(form.__doc__ or '').strip()}")

    return [runs[f] for f in engine.reschedule_stale(list(runs), stale, form_for)]


@flow(name="recover-transfers")
def recover_transfers(stale_after_seconds: float | None = None) -> list[str]:
    """Find transfers whose flow run lost its process (a killed worker) and run them again."""
    recovered = recover_now(stale_after_seconds)
    logger = get_run_logger()
    for reference in recovered:
        logger.warning("%s: its flow run had stalled and was rescheduled", reference)
    return recovered
