"""case-transfer: one flow run per Case Transfer NSI.

Concurrent shape (2): the run opens a waiting task run for each piece of work that has become
possible (flows/transfer_task.py; allocation first, then address assessment, checks, documents,
handover and the actions the form calls for, all at once), publishes the Action List, and
suspends. Each finished task wakes it; it opens what that made possible and suspends again, until
the transfer completes, is refused or is withdrawn. No process is held while people work.

Sequential shape (1): the NSIs raised before the concurrent shape finish on theirs: one step
after another in this same run (`drive_steps`), chosen by the NSI's shape version.
"""

from __future__ import annotations

import os
import time

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import suspend_flow_run
from prefect.runtime import flow_run

from flows.steps import CASE_TRANSFER_STEPS, StepForm, form_for, validate_step
from prefect_runs import engine, internals
from tasks.domain import documents, transfer_views, transfers
from tasks.domain import steps as registry
from tasks.domain.form import FormError, TransferForm
from tasks.domain.policy import get_policy
from tasks.settings import get_settings

# The store is the record; tasks are retried when it blips (a restart, a failover).
STORE = dict(retries=5, retry_delay_seconds=[1, 2, 4, 8, 16], persist_result=True, cache_policy=NO_CACHE)
TASK_DEPLOYMENT = "transfer-task/transfer-task"


@task(name="raise-nsi", **STORE)
def raise_nsi(form: TransferForm, request_key: str, flow_run_id: str | None = None) -> str:
    return transfers.register_nsi(form, request_key, flow_run_id=flow_run_id or request_key)


@task(name="wait-for-step", task_run_name="wait-for-{step}", **STORE)
def mark_waiting(reference: str, step: str, status: str | None = None) -> None:
    transfers.mark_waiting(reference, step, flow_run_id=str(flow_run.id), status=status)


@task(name="record-step", task_run_name="record-{step}", **STORE)
def record_step(reference: str, step: str, answer: dict, attempt: int = 0) -> str:
    status = transfers.apply_step(reference, step, answer, flow_run_id=str(flow_run.id), attempt=attempt)
    if delay := get_settings().fault_delay_seconds:
        time.sleep(delay)  # fault tests kill the worker here: committed, not yet moved on
    return status


@task(name="reject-answer", task_run_name="reject-{step}-answer", **STORE)
def reject_answer(reference: str, step: str, attempt: int, message: str, actor: str) -> None:
    transfers.record_rejection(reference, step, attempt, message, actor, flow_run_id=str(flow_run.id))


def raise_once(form: TransferForm, request_key: str, prefix: str = "transfer") -> str:
    """The run's NSI: registered by the task on the run's first start, read back on every resume
    after (a resumed run starts again from the top, and a task run per resume adds up).

    A run started with the form (the UI's Run form on this deployment, older callers) then drops
    it: its parameters become the reference, and its name transfer-<reference>, so Prefect keeps
    no copy of the person's details and a re-run picks the NSI up by reference."""
    reference = transfer_views.registered(request_key)
    if reference is None:
        reference = raise_nsi(form, request_key, str(flow_run.id))
        if form.supersedes:  # moving again: the NSI it superseded stops waiting, as a withdrawn one does
            import services

            services.stop_superseded(reference, form.raised_by)
    engine.forget_parameters(str(flow_run.id), {"reference": reference}, name=f"{prefix}-{reference}", tags=[reference])
    return reference


def run_name_for(prefix: str) -> str:
    """<prefix>-CT000001: the reference only (an LAO case's run must not carry even its CRN).
    A run started with a form (runs from before the reference was the parameter) is named for
    its CRN unless the case is LAO."""
    params = flow_run.parameters
    if params.get("reference"):
        return f"{prefix}-{params['reference']}"
    form = params.get("form") or {}
    crn, lao = (form.get("crn"), form.get("lao")) if isinstance(form, dict) else (form.crn, form.lao)
    return f"{prefix}-restricted" if lao else f"{prefix}-{crn}"


def transfer_run_name() -> str:
    return run_name_for("transfer")


def describe(reference: str, step: str, form_cls: type[StepForm], note: str | None) -> str:
    view = transfer_views.status_of(reference)
    policy = transfer_views.policy_of(reference)
    codes = {r.code for r in policy.rules_for_step(step)} | {step}
    due = next((a.due_on for a in view.actions if a.status == "open" and a.code in codes), None)
    # The description is stored in Prefect: the reference and the CRN only, never the name; an
    # LAO case's says it is restricted and shows not even the CRN.
    who = "Restricted (LAO)" if view.lao else view.crn
    lines = [
        f"### {reference}: {registry.spec_for(step, policy).title}",
        f"{who}, {view.transferring} → {view.receiving}.",
        # One paragraph per blank-line block: the docstring's wrapped lines would otherwise show as
        # broken lines in the UI's Resume form.
        "\n\n".join(" ".join(block.split()) for block in (form_cls.__doc__ or "").split("\n\n")),
        "Give **done_on** (or the step's own date) as the day the work was done; empty means today.",
    ]
    if due:
        whole = "the caretaking limit is" if view.nsi_type == "temporary_move" else "the whole transfer is due"
        lines.append(f"Due **{due:%d %B %Y}**; {whole} {view.due_on:%d %B %Y}.")
    if missing := documents.still_open(view.actions, step):
        lines.append(f"Still to be {documents.document_rules().sides[step].field}: {documents.words(missing)}.")
    if note:
        lines.append(note)
    return "\n\n".join(lines)


def wait_for_answer(reference: str, step: str, key: str, waiting_status: str | None = None, sequential: bool = True) -> str:
    """Suspend until `step` is answered and recorded; a rejected answer asks again with the reason,
    and so does an answer the policy records without completing the step (a handover that did not
    transfer the case, a stayed decision). Each asking has its own suspend key: `key`-attempt."""
    logger = get_run_logger()
    timeout = get_policy().suspend_timeout_days * 86400
    policy = transfer_views.policy_of(reference)
    form_cls = form_for(step, policy)
    note: str | None = None
    status, _ = transfer_views.nsi_status(reference)
    while True:
        # Rejected and not-final answers both count, so each asking has its own suspend key.
        attempt = transfer_views.step_attempts(reference, step)
        if sequential:
            mark_waiting(reference, step, waiting_status)
        form = form_cls.with_initial_data(description=describe(reference, step, form_cls, note))
        answer = suspend_flow_run(wait_for_input=form, key=f"{key}-{attempt}", timeout=timeout)
        data = answer.model_dump(mode="json")
        try:
            validate_step(step, data, policy)
            status = record_step(reference, step, data, attempt)
        except (FormError, transfers.StepRefused) as exc:
            closed = transfer_views.nsi_status(reference)[0]
            if closed in transfers.CLOSED and (sequential or not _still_open(reference, step)):
                forget_answer(f"{key}-{attempt}")
                return closed
            rejection = str(exc)
            note = f"**The last answer was not accepted.** {rejection}"
            # The reason may quote what was typed: it goes to the store and the form, not the log.
            logger.warning("%s: %s answer rejected (the reason is in the NSI's history)", reference, step)
            reject_answer(reference, step, attempt, rejection, data.get("recorded_by") or "unknown")
            forget_answer(f"{key}-{attempt}")
            continue
        forget_answer(f"{key}-{attempt}")  # the store holds it now: Prefect keeps no copy
        seen = transfer_views.step_state(reference, step)
        if seen.recorded or status in transfers.CLOSED:
            logger.info("%s", recorded_words(reference, step, seen))
            return status
        event, detail = seen.last_attempt or ("asked again", "")
        if not sequential:
            # A concurrent task's answer recorded without completing it may change what else is
            # open (a youth stay reopens the documents, 12.4): the transfer's run reads it now.
            engine.wake_transfer(reference)
        # The detail may quote the answer's free text (a stay's evidence): the store and `status`
        # show that, the form in Prefect only the policy's words around it.
        note = f"**Asked again: {event}.** {without_free_text(detail, data)}"
        logger.warning("%s: %s %s (the detail is in the NSI's history)", reference, step.replace("_", " "), event)


def recorded_words(reference: str, step: str, seen: transfer_views.StepState | None = None) -> str:
    """The run's message once its step is recorded: who answered and when, for whoever else sent
    an answer from the UI at the same moment (the server took theirs as not waiting any more)."""
    seen = seen or transfer_views.step_state(reference, step)
    if not seen.recorded or seen.recorded_at is None:
        return f"{reference}: {step.replace('_', ' ')} not recorded ({seen.status.replace('_', ' ')})"
    at = seen.recorded_at.astimezone(get_settings().zone)
    return (f"{reference}: {step.replace('_', ' ')} recorded by {seen.recorded_by} at {at:%H:%M:%S} on {at:%d %b %Y}; "
            "any other answer to it was not recorded")  # fmt: skip


FREE_TEXT_FIELDS = ("notes", "evidence", "receiving_responsibilities", "home_responsibilities", "reasons", "rationale", "secondary_reason")


def without_free_text(text: str, answer: dict) -> str:
    """`text` with whatever the answer's free-text fields said replaced by a pointer to the record."""
    for name in FREE_TEXT_FIELDS:
        if isinstance(value := answer.get(name), str) and value.strip():
            text = text.replace(value.strip(), "(in the NSI's history: `casetransfer status`)")
    return text


def forget_answer(pause_key: str) -> None:
    """Delete this run's input that carried the answer to `pause_key` (see engine.forget_answer)."""
    engine.forget_answer(str(flow_run.id), pause_key)


def _still_open(reference: str, step: str) -> bool:
    """Can this task still be answered on a closed NSI (an after-the-move action, a dispute)?"""
    found = transfer_views.task_round(reference, step)
    return found is not None and found[1] == "open"


def drive_steps(reference: str, steps: dict[str, type[StepForm]], waiting_status: dict[str, str] | None = None) -> str:
    """The sequential shape: wait at each step not yet recorded, in order. `waiting_status` names
    waits that are a period of their own (a temporary move's "supporting")."""
    logger = get_run_logger()
    for step in steps:
        status, _ = transfer_views.nsi_status(reference)
        if status in transfers.CLOSED:
            break
        if step in transfer_views.recorded_steps(reference):
            continue
        wait_for_answer(reference, step, registry.wait_key(step), (waiting_status or {}).get(step))
    status, _ = transfer_views.nsi_status(reference)
    logger.info("%s finished: %s", reference, status)
    tell_outcome(reference)
    return status


def tell_outcome(reference: str) -> None:
    """A completion or a refusal is told to the transferring side at once (its notice run is
    keyed by the event, so a re-run of this one tells nobody twice)."""
    import services

    if (key := transfer_views.outcome_to_tell(reference)) is not None:
        get_run_logger().info("%s: telling the other side (%s)", reference, services.notify(reference, key))


def tell_stays(reference: str) -> None:
    """A youth request stayed for missing information (12.4) is told to the requesting service at
    once; each stay's notice run is keyed by it, so waking again tells nobody twice."""
    import services

    for key in transfers.stays_to_tell(reference):
        get_run_logger().info("%s: telling the requesting side (%s)", reference, services.notify(reference, key))


@task(name="open-tasks", **STORE)
def open_tasks(reference: str) -> transfers.Progress:
    """Open a task run for everything that has become possible; cancel the ones that no longer apply."""
    progress = transfers.progress(reference)
    logger = get_run_logger()
    for run_id in progress.to_stop:
        try:
            engine.stop(run_id, f"{reference} is {progress.status}: this task is no longer needed")
        except engine.EngineError:
            pass
    policy = transfer_views.policy_of(reference) if progress.to_start else None
    for t in progress.to_start:
        slug = t.task.replace("_", "-")
        form_cls = form_for(t.task, policy)
        # Opened already suspended at its first asking: no process starts until it is answered.
        run_id = engine.start_suspended(
            TASK_DEPLOYMENT,
            {"reference": progress.reference, "task": t.task, "round": t.round},
            run_name=f"{slug}-{progress.reference}",
            key=f"{registry.wait_key(t.task, t.round)}-{transfer_views.step_attempts(progress.reference, t.task)}",
            form=form_cls.with_initial_data(description=describe(progress.reference, t.task, form_cls, None)),
            timeout_seconds=policy.suspend_timeout_days * 86400,
            # Keyed by this run too: a re-run of it opens nothing twice, and a reference that
            # recurs on the same server (another store: a test's, a rebuilt one) never finds
            # another NSI's task run.
            idempotency_key=f"{flow_run.id}:{progress.reference}:{t.task}:{t.round}",
            tags=[progress.reference, *t.tags],  # owner:<role>, pdu:<code>: each person's list in the UI
            job_variables=_forwarded_env(),
        )
        if not transfers.task_started(progress.reference, t.task, t.round, run_id):
            # Withdrawn (or closed) while this segment was opening tasks: nothing else will stop it.
            engine.stop(run_id, f"{reference} was closed while its tasks were opening: this task is not needed")
            logger.info("%s: closed while opening tasks; %s not opened", progress.reference, t.title)
            continue
        logger.info("%s: %s opened for %s", progress.reference, t.title, t.owner_role.replace("_", " "))
    return progress


# What a transfer's run was started with that its task runs need too: the NSI's profile, the
# database it reaches the store by, and the fault tests' delays.
FORWARDED_ENV = ("CASETRANSFER_PROFILE", "CASETRANSFER_DATABASE_URL", "CASETRANSFER_FAULT_DELAY_SECONDS")


def _forwarded_env() -> dict | None:
    env = {k: v for k in FORWARDED_ENV if (v := os.environ.get(k))}
    return {"env": env} if env else None


def publish_action_list(reference: str) -> None:
    """The transfer's Action List as a markdown artifact on its run, rewritten at each change.
    References, roles and dates only: no names, addresses or free text."""
    view = transfer_views.status_of(reference)
    ui = get_settings().ui_url.rstrip("/")
    run_of = {t.task: t.flow_run_id for t in view.tasks}
    policy = transfer_views.policy_of(reference)
    lines = [
        f"## Action List: {view.reference}",
        f"Status **{view.status.replace('_', ' ')}**; whole transfer due {view.due_on:%d %B %Y}. "
        f"Written {get_settings().now():%d %B %Y %H:%M} (Europe/London).",
        "",
        f"From {view.transferring} to **{view.receiving}**.",  # PDU and team names: no personal data
        "",
        *([f"**{view.clock_stopped[0].upper()}{view.clock_stopped[1:]}**: nothing is reminded or escalated until it restarts.", ""]
          if view.clock_stopped else []),
        "| action | owner | due | done | status | task |",
        "|---|---|---|---|---|---|",
    ]
    for a in view.actions:
        rule = next((r for r in policy.actions if r.code == a.code), None)
        task_name = rule.task if rule else a.code
        link = f"[{task_name.replace('_', '-')}]({ui}/runs/flow-run/{run_of[task_name]})" if run_of.get(task_name) else ""
        overdue = f" (overdue {a.days_overdue} wd)" if a.days_overdue else ""
        lines.append(
            f"| {a.title} | {a.owner_role.replace('_', ' ')} | {a.due_on:%d %b %Y} | "
            f"{a.done_on.strftime('%d %b %Y') if a.done_on else ''} | {a.status.replace('not_required', 'no longer required')}{overdue} | {link} |"
        )
    for t in view.tasks:
        if t.task.startswith(("challenge-", "dispute-")) and t.flow_run_id:
            lines.append(f"| {t.title} | {t.owner_role.replace('_', ' ')} | | | open | "
                         f"[{t.task}]({ui}/runs/flow-run/{t.flow_run_id}) |")  # fmt: skip
    # What completion waits for, named as the refusal names it (a decision on concerns raised...).
    if view.status not in transfers.CLOSED and (waits := [a for a in view.actions if a.code in policy.completion_requires and a.status == "open"]):
        lines += ["", "Completion waits for: " + "; ".join(f"{a.title} ({a.code})" for a in waits)]
    create_markdown_artifact(
        key=f"action-list-{view.reference.lower()}", markdown="\n".join(lines), description=f"Action List of {view.reference}"
    )


def orchestrate(reference: str) -> str:
    """The concurrent shape: open tasks, publish, suspend until a task wakes the run; again."""
    logger = get_run_logger()
    timeout = transfer_views.policy_of(reference).suspend_timeout_days * 86400
    while True:
        progress = open_tasks(reference)
        publish_action_list(reference)
        tell_stays(reference)
        if progress.finished:
            logger.info("%s finished: %s", reference, progress.status)
            tell_outcome(reference)
            return progress.status
        if delay := get_settings().fault_wake_delay_seconds:
            time.sleep(delay)  # fault tests finish a task here: read, not yet suspended
        # Returns at once only when this key already fired (resumed before with nothing new read
        # since): move the sequence past it and read again.
        try:
            suspend_flow_run(key=f"wake-{progress.seen}", timeout=timeout)
        except RuntimeError:
            # Prefect refuses to suspend a run a withdrawal has just stopped (it read the store
            # before the withdrawal committed). End it as the withdrawal left it, Cancelled,
            # rather than fail a transfer that was withdrawn as asked.
            status, _ = transfer_views.nsi_status(reference)
            if status not in transfers.CLOSED:
                raise
            logger.info("%s was %s while this run was opening its tasks", reference, status)
            internals.end_as_stopped(f"{reference} is {status}")
        transfers.bump_wake(reference)


@flow(name="case-transfer", flow_run_name=transfer_run_name, persist_result=True, log_prints=True)
def case_transfer(form: TransferForm | None = None, request_key: str | None = None, reference: str | None = None) -> str:
    """Raise a Case Transfer and drive it to completion, refusal or withdrawal.

    Args:
        form: The transfer form.
        request_key: Leave empty. Set when another flow has already registered this NSI
            (a Temporary Move converted to a Case Transfer), so the run picks that NSI up.
        reference: Leave empty. The NSI a new run takes on (a disputed refusal).
    """
    if reference is None:
        if form is None:
            raise ValueError("form: give the transfer form")
        reference = raise_once(form, request_key or str(flow_run.id))
    if transfer_views.shape_of(reference) < 2:
        # Not dead: transfers raised under the sequential shape (1) before the concurrent tasks
        # finish the way they started; a policy or settings.shape_version can still choose it.
        return drive_steps(reference, CASE_TRANSFER_STEPS)
    return orchestrate(reference)
