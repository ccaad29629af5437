"""case-transfer: one flow run per Case Transfer NSI, suspended at each human step."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import suspend_flow_run
from prefect.runtime import flow_run

from flows.steps import CASE_TRANSFER_STEPS, StepForm, validate_step
from tasks import transfers
from tasks.form import FormError, TransferForm
from tasks.policy import get_policy
from tasks.settings import get_settings

# The store is the record; tasks are retried when it blips (a restart, a failover).
STORE = dict(retries=5, retry_delay_seconds=[1, 2, 4, 8, 16], persist_result=True, cache_policy=NO_CACHE)


@task(name="raise-nsi", **STORE)
def raise_nsi(form: TransferForm, request_key: str, flow_run_id: str | None = None) -> str:
    return transfers.register_nsi(form, request_key, flow_run_id=flow_run_id or request_key)


@task(name="wait-for-step", **STORE)
def mark_waiting(reference: str, step: str, status: str | None = None) -> None:
    transfers.mark_waiting(reference, step, flow_run_id=str(flow_run.id), status=status)


@task(name="record-step", **STORE)
def record_step(reference: str, step: str, answer: dict, attempt: int = 0) -> str:
    status = transfers.apply_step(reference, step, answer, flow_run_id=str(flow_run.id), attempt=attempt)
    if delay := get_settings().fault_delay_seconds:
        time.sleep(delay)  # fault tests kill the worker here: committed, not yet moved on
    return status


@task(name="reject-answer", **STORE)
def reject_answer(reference: str, step: str, attempt: int, message: str, actor: str) -> None:
    transfers.record_rejection(reference, step, attempt, message, actor, flow_run_id=str(flow_run.id))


def raise_once(form: TransferForm, request_key: str) -> str:
    """The run's NSI: registered by the task on the run's first start, read back on every resume
    after (a resumed run starts again from the top, and a task run per resume adds up)."""
    return transfers.registered(request_key) or raise_nsi(form, request_key, str(flow_run.id))


def transfer_run_name() -> str:
    form = flow_run.parameters["form"]
    crn = form["crn"] if isinstance(form, dict) else form.crn
    return f"transfer-{crn}"


def describe(reference: str, step: str, form_cls: type[StepForm], note: str | None) -> str:
    view = transfers.status_of(reference)
    due = next((a.due_on for a in view.actions if a.status == "open" and a.code in _step_actions(reference, step)), None)
    who = view.crn if view.lao else f"{view.name} ({view.crn})"
    lines = [
        f"### {reference}: {step.replace('_', ' ')}",
        f"{who}, {view.transferring} → {view.receiving}.",
        (form_cls.__doc__ or "").strip(),
    ]
    if due:
        whole = "the caretaking limit is" if view.nsi_type == "temporary_move" else "the whole transfer is due"
        lines.append(f"Due **{due:%d %B %Y}**; {whole} {view.due_on:%d %B %Y}.")
    if note:
        lines.append(note)
    return "\n\n".join(lines)


def _step_actions(reference: str, step: str) -> set[str]:
    return {r.code for r in transfers.policy_of(reference).rules_for_step(step)}


def drive_steps(reference: str, steps: dict[str, type[StepForm]], waiting_status: dict[str, str] | None = None) -> str:
    """Wait at each step not yet recorded; a rejected answer asks again with the reason, and so
    does an answer the policy records without completing the step (a handover that did not
    transfer the case, a stayed decision). `waiting_status` names waits that are a period of
    their own (a temporary move's "supporting")."""
    logger = get_run_logger()
    timeout = get_policy().suspend_timeout_days * 86400
    for step, form_cls in steps.items():
        status, _ = transfers.nsi_status(reference)
        if status in transfers.CLOSED:
            break
        if step in transfers.recorded_steps(reference):
            continue
        note: str | None = None
        while True:
            # Rejected and not-final answers both count, so each asking has its own suspend key.
            attempt = transfers.step_attempts(reference, step)
            mark_waiting(reference, step, (waiting_status or {}).get(step))
            form = form_cls.with_initial_data(description=describe(reference, step, form_cls, note))
            answer = suspend_flow_run(wait_for_input=form, key=f"{step.replace('_', '-')}-{attempt}", timeout=timeout)
            data = answer.model_dump(mode="json")
            try:
                validate_step(step, data, transfers.policy_of(reference))
                status = record_step(reference, step, data, attempt)
            except (FormError, transfers.StepRefused) as exc:
                if transfers.nsi_status(reference)[0] in transfers.CLOSED:
                    break
                rejection = str(exc)
                note = f"**The last answer was not accepted.** {rejection}"
                logger.warning("%s: %s answer rejected: %s", reference, step, rejection)
                reject_answer(reference, step, attempt, rejection, data.get("recorded_by") or "unknown")
                continue
            if step in transfers.recorded_steps(reference) or status in transfers.CLOSED:
                logger.info("%s: %s recorded by %s", reference, step.replace("_", " "), data.get("recorded_by"))
                break
            event, detail = transfers.last_attempt(reference, step) or ("asked again", "")
            note = f"**Asked again: {event}.** {detail}"
            logger.warning("%s: %s %s: %s", reference, step.replace("_", " "), event, detail)
    status, _ = transfers.nsi_status(reference)
    logger.info("%s finished: %s", reference, status)
    return status


@flow(name="case-transfer", flow_run_name=transfer_run_name, persist_result=True, log_prints=True)
def case_transfer(form: TransferForm, request_key: str | None = None) -> str:
    """Raise a Case Transfer and drive it to completion, refusal or withdrawal.

    Args:
        form: The transfer form.
        request_key: Leave empty. Set when another flow has already registered this NSI
            (a Temporary Move converted to a Case Transfer), so the run picks that NSI up.
    """
    reference = raise_once(form, request_key or str(flow_run.id))
    return drive_steps(reference, CASE_TRANSFER_STEPS)
