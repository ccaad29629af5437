"""The service layer: raise, answer, challenge, dispute, withdraw, escalate, notify. The one path
the CLI, the demo, the admin flows and the benchmark share.

Each function writes the store first (the record, one transaction), then drives Prefect through
the adapter, prefect_runs.engine (start a run, resume the run waiting for an answer, wake a
transfer's run). Prefect is imported only when a function needs it, so the store-only callers
stay light. Below flows/ and ops/, which both call it: it imports neither.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from tasks.domain import moving_again, privacy, transfer_views, transfers
from tasks.domain import steps as registry
from tasks.domain.form import TransferForm

log = logging.getLogger(__name__)


def raise_transfer(form: TransferForm, job_variables: dict | None = None) -> tuple[str, str]:
    """Validate the placement, start the flow run, store the NSI. Returns (reference, flow run id)."""
    from prefect_runs import engine
    from tasks.domain import conditions, transfers
    from tasks.domain.form import NsiType
    from tasks.domain.policy import get_policy
    from tasks.domain.temporary_moves import looked_after_as_caretaking
    from tasks.settings import get_settings

    settings = get_settings()
    # The raiser's profile (or the one job_variables give the run) is the NSI's for its whole
    # life; the run gets it too, so the NSI and its flow agree whoever registers it first.
    env = dict((job_variables or {}).get("env") or {})
    profile = env.setdefault("CASETRANSFER_PROFILE", settings.profile)
    if settings.shape_version:  # a pinned shape holds for the run too, whoever registers the NSI first
        env.setdefault("CASETRANSFER_SHAPE_VERSION", str(settings.shape_version))
    job_variables = {**(job_variables or {}), "env": env}
    form = looked_after_as_caretaking(form, get_policy(profile))  # 12.2: before the deployment is chosen
    placement = transfers.place(form)
    transfers.check_placement(form, placement, get_policy(profile))
    deployment = (
        settings.temporary_move_deployment if form.nsi_type is NsiType.temporary_move else settings.case_transfer_deployment
    )
    prefix = "move" if form.nsi_type is NsiType.temporary_move else "transfer"
    # The store takes the form first; the run gets the reference only, so Prefect never holds a
    # copy of the person's details, and its name carries the reference (not even the CRN: LAO).
    request_key = f"raise:{uuid.uuid4()}"  # unique: a reference alone recurs across stores (tests, a rebuilt store)
    # Moving again: what the superseded NSI was, so a run that cannot start leaves it as it was.
    before = moving_again.before_superseding(form.supersedes) if form.supersedes else None
    reference = transfers.register_nsi(form, request_key, placement=placement, profile=profile)
    try:
        flow_run_id = engine.start_run(
            deployment, {"reference": reference}, f"{prefix}-{reference}", job_variables,
            idempotency_key=request_key, tags=[reference],
        )  # fmt: skip
    except BaseException:
        # Nothing half-stored: an NSI no run drives is removed (and one it superseded reopened).
        if before is not None:
            moving_again.forget_superseding(reference, before)
        else:
            privacy.forget_unstarted(reference)
        raise
    transfers.set_flow_run(reference, flow_run_id)
    stop_superseded(reference, form.raised_by)
    notify(reference, "raised")  # the receiving PDU's allocation clock has started
    if conditions.address_in_exclusion_zone(form) is not None:
        notify(reference, "flagged:1")  # both practitioners' PDUs: the address is in an exclusion zone
    return reference, flow_run_id


def notify(reference: str, event: str) -> str:
    """Tell whoever an event concerns, at once (tasks/notify/notices.py): start the send-notice run for
    it, once per event (idempotency key). With no Prefect server to start it on, send from here:
    the notice is not left for the nightly job either way, and the sent-log sends it once.
    Returns the run's id, or "sent here"."""
    from prefect_runs import engine
    from tasks.notify import notices
    from tasks.notify.mail_job import NotDelivered
    from tasks.settings import get_settings

    reference = reference.strip().upper()
    try:
        return engine.start_run(
            get_settings().notice_deployment,
            {"reference": reference, "event": event},
            run_name=f"notice-{reference}-{event.replace(':', '-')}",
            idempotency_key=f"notice:{reference}:{event}",
            tags=[reference, "notice"],
        )
    except Exception as exc:  # noqa: BLE001 - no server, not deployed, unreachable: send it from here
        log.info("%s %s: no send-notice run (%s); sending from this process", reference, event, exc)
    try:
        return notices.send_notices(reference, event).line()
    except NotDelivered as exc:
        # The event is stored and the notice queued in the sent-log: the next delivery sends it.
        log.warning("%s", exc)
        return f"queued: {exc}"


def escalate(reference: str, concern: str, by: str) -> int:
    """Escalate a concern in the store, then tell the SPOs of both sides at once."""
    n = transfers.escalate(reference, concern, by)
    notify(reference, f"escalated:{n}")
    return n


def send_answer(reference: str, step: str, fields: dict[str, Any], wait: bool = True, timeout: float = 120.0) -> str:
    """Validate an answer as the flow will, resume the run waiting for it and (optionally) wait
    until the flow has recorded it. Raises FormError / StepRefused / NotFound / EngineError."""
    from prefect_runs import engine
    from tasks.domain import transfer_views, transfers
    from tasks.settings import get_settings

    step = step.replace("-", "_") if not step.startswith(("challenge-", "dispute-")) else step
    reference = reference.strip().upper()
    # One read of the NSI: the form validated and the answer checked against it, as the flow will.
    prepared = transfers.prepare_answer(reference, step, fields)
    answer, attempts = prepared.answer, prepared.attempts
    if prepared.shape >= 2:
        flow_run_id, prefix = open_task_run(reference, step, timeout)
    else:
        if not prepared.flow_run_id:
            raise engine.EngineError(f"{reference} has no flow run")
        flow_run_id, prefix = prepared.flow_run_id, registry.wait_key(step) + "-"
    # A task run just started by its transfer needs a worker to pick it up and reach its wait;
    # meanwhile another operator may answer it (then it finishes instead of pausing).
    pause_key = engine.wait_until_paused(flow_run_id, timeout=timeout, gone=lambda: step in transfer_views.recorded_steps(reference))
    # Two operators answering at once: by now the run may wait at the next step. Its pause key
    # names the step, so a late answer is refused instead of landing on the wrong form.
    if not (pause_key or "").startswith(prefix):
        raise transfers.StepRefused("step", answered_already(reference, step, None))
    # Two senders past that check together: the first to claim the step's wait resumes it, the
    # other is told so without sending (issue 31). A UI Resume claims nothing: the server's answer
    # to our resume is the last word (engine.resume: stored as the answer the run reads, or not).
    claimed = engine.claim_answer(flow_run_id, pause_key)
    if claimed is not None:
        raise transfers.StepRefused("step", answered_already(reference, step, claimed))
    try:
        # The run may still be saving its form on a busy server (Prefect's client retries for
        # over a minute): wait for it as long as for the run to reach its wait.
        engine.resume(flow_run_id, answer, timeout=timeout)
    except engine.AnswerTaken:
        engine.release_answer(flow_run_id, pause_key)  # the time in it would be ours, not the answer's
        raise transfers.StepRefused("step", answered_already(reference, step, None)) from None
    except Exception:
        engine.release_answer(flow_run_id, pause_key)  # not delivered: it may be sent again
        raise
    if not wait:
        return f"{reference}: {step} sent to its flow run"
    deadline = time.monotonic() + timeout
    left_behind = transfers.waiting_status(step)
    settled_by: float | None = None
    while time.monotonic() < deadline:
        seen = transfer_views.step_state(reference, step)  # one read per look
        if seen.recorded:
            # The run records the step, then says what it waits for next in a write of its own:
            # report the status it moved on to, not the wait it has just left (for a moment still
            # stored), unless the run takes longer than recorded_status_wait_seconds to get there.
            # Once recorded, it is said so, whatever time was left of `timeout`.
            if settled_by is None:
                settled_by = time.monotonic() + get_settings().recorded_status_wait_seconds
                deadline = max(deadline, settled_by + 1)
            if seen.status != left_behind or time.monotonic() > settled_by:
                return f"{reference}: {step} recorded; status {seen.status}"
            time.sleep(0.3)
            continue
        if seen.attempts > attempts:
            # Recorded without completing the step (or rejected by the flow): the run asks again.
            event, detail = seen.last_attempt or ("answer rejected", "")
            if event == "answer rejected":
                raise transfers.StepRefused("step", detail)
            return f"{reference}: {step} recorded as {event}: {detail}. Waiting for {step.replace('_', ' ')} again"
        time.sleep(0.3)
    raise engine.EngineError(f"{step} was sent but the flow run has not recorded it within {timeout:.0f} s; is a worker running?")


def answered_already(reference: str, step: str, claimed_at: Any) -> str:
    """What the sender who lost the race is told: who answered and when, from the store once the
    other answer is recorded (it may be on its way: waited for up to answered_by_wait_seconds),
    else the time the other sender claimed the step."""
    from tasks.domain import transfer_views
    from tasks.settings import get_settings

    settings = get_settings()
    deadline = time.monotonic() + settings.answered_by_wait_seconds
    while True:
        seen = transfer_views.step_state(reference, step)
        if seen.recorded or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    said = step.replace("_", " ")
    if seen.recorded and seen.recorded_at is not None:
        at = seen.recorded_at.astimezone(settings.zone).strftime("%d %b %Y %H:%M:%S")
        return f"{said} for {reference} was already answered by {seen.recorded_by} (recorded {at}); your answer was not recorded"
    at = f" at {claimed_at.astimezone(settings.zone):%H:%M:%S}" if claimed_at is not None else ""
    return f"{said} for {reference} was already answered{at} by someone else; your answer was not recorded (`casetransfer status {reference}` shows it once recorded)"


def open_task_run(reference: str, step: str, timeout: float) -> tuple[str, str]:
    """(flow run id, pause-key prefix) of the run waiting for this task. Right after `raise` or
    after the step that opens it, the task may not be open yet: wait for it up to `timeout`."""
    from prefect_runs import engine
    from tasks.domain import transfer_views, transfers

    deadline = time.monotonic() + timeout
    while True:
        found = transfer_views.task_round(reference, step)
        if found is not None and found[1] == "open" and found[2]:
            round_, _, run_id = found
            return run_id, registry.wait_key(step, round_) + "-"
        if time.monotonic() > deadline:
            open_now = ", ".join(t.task for t in transfer_views.status_of(reference).tasks) or "none"
            if found is not None and found[1] in ("recorded", "done"):
                raise transfers.StepRefused("step", f"{step} is already recorded for {reference}")
            raise engine.EngineError(
                f"{step} has no open task for {reference} after {timeout:.0f} s (open tasks: {open_now}); is a worker running?"
            )
        time.sleep(0.3)


def withdraw(reference: str, reason: str, withdrawn_by: str) -> None:
    """Withdraw in the store (the record), then stop the transfer's run and every task still open."""
    stop_runs(transfers.withdraw(reference, reason, withdrawn_by), f"Withdrawn by {withdrawn_by}")
    notify(reference, "withdrawn")  # the receiving side stops its work today


def stop_runs(flow_run_ids: list[str], why: str) -> None:
    """Stop runs the store has already let go of (withdrawn, changed): one that no longer exists
    has nothing to stop."""
    from prefect_runs import engine

    for flow_run_id in flow_run_ids:
        try:
            engine.stop(flow_run_id, why)
        except engine.EngineError:
            pass


def change(reference: str, what: str, by: str, reason: str | None = None, **fields: Any) -> str:
    """A change after raising (tasks/domain/changes.py) in the store, then: stop the task runs
    that are no longer theirs, wake the transfer's run (it opens what the change made possible and
    cancels what it closed), and tell the other side at once. Returns the history's words."""
    from prefect_runs import engine

    changed = transfers.change(reference, what, by, reason, **fields)
    reference = reference.strip().upper()
    stop_runs(changed.runs_to_stop, f"{reference} changed: this task reopens as the change needs")
    for flow_run_id, tag in changed.runs_to_retag:
        try:
            engine.retag(flow_run_id, tag)
        except Exception as exc:  # noqa: BLE001 - the store holds the change; the run's owners are read from it
            log.warning("%s: task run %s not retagged %s (%s)", reference, flow_run_id, tag, exc)
    try:
        engine.wake_transfer(reference)
    except Exception as exc:  # noqa: BLE001 - no server: the store holds the change; recover re-sends the wake-up
        log.info("%s: the transfer's run not woken (%s); recover wakes it", reference, exc)
    for event in changed.events:
        notify(reference, event)
    return changed.detail


def stop_superseded(reference: str, by: str) -> list[str]:
    """After a raise that superseded an open NSI is stored: stop that NSI's run and its tasks'
    runs, as a withdrawal does. Returns the runs asked to stop."""
    from prefect_runs import engine

    runs = moving_again.superseded_runs(reference)
    for flow_run_id in runs:
        try:
            engine.stop(flow_run_id, f"Superseded by {reference}, raised by {by}")
        except Exception as exc:  # noqa: BLE001 - the raise is stored; a run left waiting ends at its timeout
            log.warning("%s: could not stop %s of the NSI it superseded (%s)", reference, flow_run_id, exc)
    return runs


def absence(reference: str, on: Any, acceptable: bool, by: str, role: str, notes: str = "") -> str:
    """A missed appointment in the store (tasks/domain/continuity.py), then wake the transfer's run
    to open the transferring practitioner's enforcement review. Returns the history's words."""
    from prefect_runs import engine

    recorded = transfers.record_absence(reference, on, acceptable, by, role, notes)
    if recorded.enforcement_due is not None:
        try:
            engine.wake_transfer(reference.strip().upper())
        except Exception as exc:  # noqa: BLE001 - no server: the store holds it; recover re-sends the wake-up
            log.info("%s: the transfer's run not woken (%s); recover wakes it", reference, exc)
        notify(reference, f"absence:{recorded.seq}")  # the transferring side owns enforcement until completion
    return recorded.detail


def challenge(reference: str, concern: str, raised_by: str, role: str) -> int:
    """Raise a challenge about risk in the store, then wake the transfer's run to open its task."""
    from prefect_runs import engine

    seq, _ = transfers.raise_challenge(reference, concern, raised_by, role)
    engine.wake_transfer(reference)
    notify(reference, f"challenge:{seq}")
    return seq


def dispute(reference: str, grounds: str, disputed_by: str) -> str:
    """Dispute a refusal in the store, then start the run that drives the transfer again: it opens
    the dispute for the head of the receiving PDU, and the tasks again if the refusal is overturned.
    Returns that run's id."""
    from prefect_runs import engine
    from tasks.settings import get_settings

    seq = transfers.raise_dispute(reference, grounds, disputed_by)
    reference = reference.strip().upper()
    run_id = engine.start_run(
        get_settings().case_transfer_deployment,
        {"reference": reference},
        run_name=f"transfer-{reference}",
        idempotency_key=f"dispute:{reference}:{seq}",
        tags=[reference],
        job_variables={"env": {"CASETRANSFER_PROFILE": transfer_views.policy_of(reference).profile}},
    )
    transfers.set_transfer_run(reference, run_id)
    notify(reference, f"dispute:{seq}")
    return run_id


def start_imported_runs(per_minute: float, url: str | None = None, limit: int | None = None,
                        progress: Callable[[int], None] | None = None) -> list[str]:  # fmt: skip
    """Start the flow run of each open imported NSI, `per_minute` at most. A Case Transfer's run
    takes the NSI by reference and opens exactly its open tasks; a caretaking row's run takes its
    form and request key and finds the NSI already stored. Safe to repeat: an NSI with a run is left."""
    from prefect_runs import engine
    from tasks.domain import importer
    from tasks.domain.form import NsiType
    from tasks.settings import get_settings

    settings = get_settings()
    started: list[str] = []
    gap = 60.0 / per_minute if per_minute > 0 else 0.0
    for reference, nsi_type, _key in importer.imported_without_run(url, limit):
        t0 = time.monotonic()
        profile = transfer_views.policy_of(reference, url).profile
        job = {"env": {"CASETRANSFER_PROFILE": profile}}
        if nsi_type == NsiType.temporary_move.value:
            # By reference, as every run: Prefect never holds the person's form (issue 17).
            run_id = engine.start_run(settings.temporary_move_deployment, {"reference": reference},
                                      f"move-{reference}", job, idempotency_key=f"import-run:{reference}", tags=[reference])  # fmt: skip
            transfers.set_flow_run(reference, run_id, url)
        else:
            run_id = engine.start_run(settings.case_transfer_deployment, {"reference": reference}, f"transfer-{reference}", job,
                                      idempotency_key=f"import-run:{reference}", tags=[reference])  # fmt: skip
            transfers.set_transfer_run(reference, run_id, url)
        started.append(reference)
        if progress is not None:
            progress(1)
        if gap:
            time.sleep(max(0.0, gap - (time.monotonic() - t0)))
    return started
