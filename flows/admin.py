"""Flows for what can happen at any step: withdraw, escalate a concern, mark an action done.
Deployed so that operations staff can do these from the Prefect UI's Run form too."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any

from prefect import flow, get_run_logger
from prefect.input import RunInput
from prefect.runtime import flow_run

import services
from prefect_runs import engine, internals
from prefect_runs.api import RECOVER_DEPLOYMENT
from tasks.domain import transfer_views, transfers
from tasks.settings import get_settings


def forget_free_text(reference: str, **keep: object) -> None:
    """These flows are the UI's Run forms for staff: what they typed (a concern, grounds, a
    reason) is stored in the NSI's history, so the run keeps only the reference and staff names.
    Called whether or not the store took it: a refused one is not kept in Prefect either."""
    engine.forget_parameters(str(flow_run.id), {"reference": reference, **keep}, tags=[reference.strip().upper()])


@flow(name="raise-challenge", flow_run_name="challenge-{reference}")
def raise_challenge(reference: str, concern: str, raised_by: str, role: str = "receiving_spo") -> int:
    """Receiving practitioner or SPO: challenge the transfer about risk, before completion. The
    receiving SPO settles it (upheld: a refusal; or withdrawn), and completion waits meanwhile."""
    try:
        return services.challenge(reference, concern, raised_by, role)
    finally:
        forget_free_text(reference, raised_by=raised_by, role=role)


@flow(name="dispute-refusal", flow_run_name="dispute-{reference}")
def dispute_refusal(reference: str, grounds: str, disputed_by: str) -> str:
    """Transferring SPO: dispute a refusal within the period set in config; the head of the
    receiving PDU confirms it or orders the transfer to proceed."""
    try:
        return services.dispute(reference, grounds, disputed_by)
    finally:
        forget_free_text(reference, disputed_by=disputed_by)


@flow(name="correct-done-date", flow_run_name="correct-{reference}-{step}")
def correct_done_date(reference: str, step: str, done_on: dt.date, reason: str, corrected_by: str) -> str:
    """Correct the day a recorded step or action was done; the history keeps the original."""
    try:
        was = transfers.correct(reference, step, done_on, reason, corrected_by)
    finally:
        forget_free_text(reference, step=step, done_on=done_on.isoformat(), corrected_by=corrected_by)
    return f"{reference} {step}: done on {done_on} (was {was})"


@flow(name="withdraw-transfer", flow_run_name="withdraw-{reference}")
def withdraw_transfer(reference: str, reason: str, withdrawn_by: str) -> None:
    """Withdraw a transfer at any step."""
    try:
        services.withdraw(reference, reason, withdrawn_by)
    finally:
        forget_free_text(reference, withdrawn_by=withdrawn_by)
    get_run_logger().info("%s withdrawn by %s", reference, withdrawn_by)


class Rosh(str, Enum):
    low = "Low"
    medium = "Medium"
    high = "High"
    very_high = "Very High"


@flow(name="amend-transfer", flow_run_name="amend-{reference}")
def amend_transfer(
    reference: str,
    reason: str,
    amended_by: str,
    new_postcode: str | None = None,
    new_address: str | None = None,
    receiving_pdu_code: str | None = None,
    move_date: dt.date | None = None,
    expected_return: dt.date | None = None,
    rosh: Rosh | None = None,
    saw_level: Rosh | None = None,
    mappa_category: int | None = None,
    mappa_level: int | None = None,
    no_longer_mappa: bool = False,
    safeguarding_concerns: bool | None = None,
    victim_contact: bool | None = None,
    changed_on: dt.date | None = None,
) -> str:
    """Change an open transfer: fill in ONE kind of change. Destination: new_postcode (with
    new_address) or receiving_pdu_code. Dates: move_date or expected_return (a temporary move).
    Risk: rosh, saw_level (youth justice), mappa_category and mappa_level (or no_longer_mappa),
    safeguarding_concerns, victim_contact. What was done stays done; what depends on the change is planned again from
    changed_on (default today), and the other side is told."""
    from tasks.domain.changes import amendment

    try:
        what, fields = amendment(
            postcode=new_postcode, address=new_address, pdu=receiving_pdu_code, move_date=move_date,
            expected_return=expected_return, rosh=rosh.value if rosh else None, saw_level=saw_level.value if saw_level else None, mappa_category=mappa_category,
            mappa_level=mappa_level, no_mappa=no_longer_mappa, safeguarding=safeguarding_concerns,
            victim_contact=victim_contact, on=changed_on,
        )  # fmt: skip
        services.change(reference, what, amended_by, reason, **fields)  # its words quote the reason: the store's
    finally:
        # The address, postcode and reason are the store's: the run keeps the reference and who.
        forget_free_text(reference, amended_by=amended_by)
    get_run_logger().info("%s: %s changed by %s (the detail is in the NSI's history)", reference, what, amended_by)
    return f"{reference}: {what} changed"


class ClockStopReason(str, Enum):
    custody = "custody"
    recall = "recall"
    remand = "remand"
    hospital = "hospital"
    other = "other"


@flow(name="stop-clock", flow_run_name="stop-clock-{reference}")
def stop_clock(reference: str, reason: ClockStopReason, stopped_from: dt.date, stopped_by: str, note: str = "") -> str:
    """The person cannot be supervised (custody, recall, remand, hospital): stop the transfer's
    clocks from that day. Nothing is reminded or escalated until the clock restarts."""
    try:
        services.change(reference, "stop_clock", stopped_by, None, kind=reason.value, since=stopped_from, note=note)
        return f"{reference}: clock stopped ({reason.value}) from {stopped_from}"
    finally:
        forget_free_text(reference, reason=reason.value, stopped_from=stopped_from.isoformat(), stopped_by=stopped_by)


@flow(name="restart-clock", flow_run_name="restart-clock-{reference}")
def restart_clock(reference: str, restarted_on: dt.date, restarted_by: str) -> str:
    """Supervision resumed: restart the transfer's clocks; every open deadline moves on by the
    working days stopped."""
    return services.change(reference, "restart_clock", restarted_by, None, on=restarted_on)


class Recorder(str, Enum):
    """Who records a missed appointment (config/conditions.yaml absence_recorders says who may)."""

    receiving_pp = "receiving_pp"
    transferring_pp = "transferring_pp"
    admin = "admin"


@flow(name="record-absence", flow_run_name="absence-{reference}")
def record_absence(
    reference: str, missed_on: dt.date, acceptable: bool, recorded_by: str, role: Recorder = Recorder.receiving_pp, notes: str = ""
) -> str:
    """A missed appointment before completion, from either side: it joins the record of absences
    handed over and, when unacceptable, opens the transferring practitioner's enforcement decision."""
    try:
        return services.absence(reference, missed_on, acceptable, recorded_by, role.value, notes)
    finally:
        forget_free_text(reference, missed_on=missed_on.isoformat(), acceptable=acceptable, recorded_by=recorded_by, role=role.value)


@flow(name="record-contact", flow_run_name="contact-{reference}")
def record_contact(reference: str, contact_on: dt.date, recorded_by: str, notes: str = "") -> str:
    """A Temporary Move's host records a contact; the supervising practitioner sees it in status."""
    try:
        return transfers.record_contact(reference, contact_on, recorded_by, "receiving_pp", notes).detail
    finally:
        forget_free_text(reference, contact_on=contact_on.isoformat(), recorded_by=recorded_by)


@flow(name="escalate-concern", flow_run_name="escalate-{reference}")
def escalate_concern(reference: str, concern: str, raised_by: str) -> int:
    """Escalate a concern about progress to the SPO at any step, and tell both sides' SPOs now."""
    from tasks.notify import notices

    try:
        n = transfers.escalate(reference, concern, raised_by)
    finally:
        forget_free_text(reference, raised_by=raised_by)
    # This run is the one the escalation started: it sends the notice itself.
    get_run_logger().info(notices.send_notices(reference, f"escalated:{n}").line())
    return n


@flow(name="mark-action-done", flow_run_name="action-{reference}-{code}")
def mark_action_done(reference: str, code: str, done_by: str, done_on: dt.date | None = None) -> None:
    """Record that an action with no waiting step of its own (documents, VLO liaison...) is done."""
    transfers.mark_action_done(reference, code, done_by, done_on)


def recover_now(
    stale_after_seconds: float | None = None, flow_run_id: str | None = None, wake_after_seconds: float | None = None
) -> list[str]:
    """Reschedule the flow runs of open transfers whose process died, and give back its form to
    a run left waiting without one (see engine.reschedule_stale).

    Without `flow_run_id` (recover-transfers' schedule, the fallback), every open transfer's runs
    are looked at, and a run counts as lost once it has sat running for `stale_run_seconds`.
    With it (a `prefect.flow-run.<id>` resource id or a bare id; an automation names a run that
    crashed or stays running, ops.stack.dead_worker_automations), only that run, which counts
    as lost when it sent no heartbeat for `run_heartbeat_timeout_seconds`. A run still sending
    them (a long step) is looked at again that much later."""
    from flows.steps import form_for as step_form
    from tasks.domain.form import FormError

    settings = get_settings()
    runs = dict((f, r) for r, f in transfer_views.open_flow_runs())
    if flow_run_id:
        wanted = flow_run_id.removeprefix(internals.FLOW_RUN_RESOURCE)
        runs = {f: r for f, r in runs.items() if f == wanted}
        if not runs:  # not a transfer's (a notice, a nightly job, a finished transfer's)
            return settle_lost([wanted], only_run_again=True)
        state = engine.run_state(wanted)[0]
        if state not in ("RUNNING", "PENDING", "CRASHED", "FAILED"):
            return []  # suspended, finished or back in the queue since
        silent = settings.run_heartbeat_timeout_seconds
        if state in ("RUNNING", "PENDING") and engine.heartbeat_within(wanted, silent):
            _check_again(wanted, silent)
            return []
        stale = silent if stale_after_seconds is None else stale_after_seconds
    else:
        stale = settings.stale_run_seconds if stale_after_seconds is None else stale_after_seconds
    waiting = transfer_views.waiting_steps()

    def form_for(flow_run_id: str) -> type[RunInput] | None:
        # Built only for a run found without its form: a form class per open transfer, every
        # few minutes, would cost far more than the rare repair.
        reference, step = waiting.get(flow_run_id, (None, None))
        if reference is None or step is None:
            return None
        try:
            form = step_form(step, transfer_views.policy_of(reference))
        except FormError:
            return None
        return form.with_initial_data(description=f"### {reference}: {step.replace('_', ' ')}\n\n{(form.__doc__ or '').strip()}")

    recovered = [runs[f] for f in engine.reschedule_stale(list(runs), stale, form_for, settings.failed_run_reschedules)]
    if not flow_run_id:
        recovered += wake_unseen(settings.wake_resend_seconds if wake_after_seconds is None else wake_after_seconds)
        # Always the fallback's own wait here, whatever the caller's: a run no transfer owns may be
        # a long one (a nightly job), and one marked crashed while alive would lose its work.
        others = [r for r in engine.runs_in_flight(settings.stale_run_seconds) if r not in runs]
        recovered += settle_lost(others, only_run_again=False)
    return recovered


class SettledRun(str):
    """What settle_lost did to a run no transfer owns ("send-notice run <id> (rescheduled)"), told
    apart from the references of transfers recovered in the same list."""


def settle_lost(run_ids: list[str], only_run_again: bool) -> list[str]:
    """Runs that are no transfer's and lost their process: those of the deployments safe to run
    again (`rerun_lost_deployments`: their side effects are keyed) go back in the queue, so a notice
    or a night's digests are not lost with a worker; the others (`only_run_again` False: the 5-minute
    fallback, after `stale_run_seconds`) are marked crashed, so none is left looking alive (a
    recover-transfers run killed with its worker, an amendment) and ops sees it."""
    settings = get_settings()
    settled = []
    for run_id in run_ids:
        lost = engine.lost_run(run_id, settings.run_heartbeat_timeout_seconds)
        if lost is None:
            continue
        deployment, state = lost
        run_again = deployment in settings.rerun_lost_deployments
        if state == "CRASHED" and not run_again:
            continue  # already says what happened
        if only_run_again and not run_again:
            continue
        done = engine.requeue_or_crash(run_id, run_again, settings.failed_run_reschedules)
        settled.append(SettledRun(f"{deployment} run {run_id} ({done})"))
    return settled


def wake_unseen(older_than_seconds: float) -> list[str]:
    """A task recorded but its wake-up lost (its process died between committing and waking, or
    the transfer's run was slow to suspend): resume each transfer's run that has been waiting
    longer than `older_than_seconds` with a change it has not read."""
    woken = []
    for reference, run_id in transfer_views.unseen_wakeups():
        if engine.resume_if_paused(run_id, older_than_seconds):
            woken.append(reference)
    return woken


def _check_again(flow_run_id: str, after_seconds: float) -> None:
    """A run still alive after the automation's wait: look at it again later, for as long as it runs."""
    from prefect.deployments import run_deployment

    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=after_seconds)
    run_deployment(
        RECOVER_DEPLOYMENT, parameters={"flow_run_id": flow_run_id}, scheduled_time=when, timeout=0, as_subflow=False
    )


# A recover run started while the store is away (the automation fires at once on a run that
# failed for that reason) tries again once it may be back.
@flow(
    name="recover-transfers",
    retries=get_settings().recover_retries,
    retry_delay_seconds=get_settings().recover_retry_delay_seconds,
)
def recover_transfers(stale_after_seconds: float | None = None, flow_run_id: str | None = None) -> list[str]:
    """Find transfers whose flow run lost its process (a killed worker) and run them again: all
    of them on the schedule, or the one run an automation names (`flow_run_id`)."""
    logger = get_run_logger()
    recovered = _recover_and_log(logger, stale_after_seconds, flow_run_id)
    # One recover-transfers run at a time (its deployment's concurrency limit, ENQUEUE): under
    # load the automations would otherwise start a process per slow run, feeding the overload.
    # The runs asked for meanwhile wait for the slot without a process: do their work here, each
    # once, then cancel them, so each lost run is still looked at and only one process does it.
    # A run queued after the last look starts by itself once the slot is free: nothing is lost.
    me = str(flow_run.id)
    done: set[str] = {me}
    while len(done) <= get_settings().recover_absorbed_at_most:
        queued = engine.queued_behind(RECOVER_DEPLOYMENT, done)
        if not queued:
            break
        for run_id, params in queued:
            done.add(run_id)
            logger.info("doing the work of %s, queued behind this run", run_id)
            recovered += _recover_and_log(logger, params.get("stale_after_seconds"), params.get("flow_run_id"))
            engine.stop(run_id, f"{engine.ABSORBED} ({me})")
    return recovered


def _recover_and_log(logger: Any, stale_after_seconds: float | None, flow_run_id: str | None) -> list[str]:
    recovered = recover_now(stale_after_seconds, flow_run_id)
    for what in recovered:
        if isinstance(what, SettledRun):
            logger.warning("%s: its process had died", what)
        else:
            logger.warning("%s: its flow run had stalled and was rescheduled", what)
    if flow_run_id and not recovered:
        logger.info("%s: not a lost run of an open transfer; nothing to do", flow_run_id)
    return recovered
