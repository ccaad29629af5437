"""Start, suspend, resume, wake, stop and delete flow runs through the Prefect API: what the
service layer, the flows and the command line do to runs other than their own."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.flow_runs import NotPausedError, resume_flow_run
from prefect.input import RunInput
from prefect.states import Cancelled, Crashed, Running, Scheduled

from prefect_runs import internals


class EngineError(RuntimeError):
    pass


def api_url() -> str | None:
    """The configured Prefect API (environment or Prefect profile); None means a temporary one."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def require_server() -> None:
    """Transfers live on a real Prefect server, never on a temporary in-process one."""
    if not api_url():
        raise EngineError("no Prefect server: start one with `casetransfer up`, or set PREFECT_API_URL")


def start_run(
    deployment: str,
    parameters: dict,
    run_name: str | None = None,
    job_variables: dict | None = None,
    idempotency_key: str | None = None,
    tags: list[str] | None = None,
) -> str:
    """Create a flow run of a deployment and return its id without waiting for it.

    With `idempotency_key`, asking again returns the run already created (a re-run flow starting
    its follow-on). Never a subflow: a run started from a flow (a Temporary Move becoming a Case
    Transfer) lives on its own for weeks after the starting run has finished."""
    require_server()
    try:
        run = run_deployment(
            name=deployment,
            parameters=parameters,
            timeout=0,
            flow_run_name=run_name,
            job_variables=job_variables,
            idempotency_key=idempotency_key,
            as_subflow=False,
            tags=tags,
        )
    except ObjectNotFound:
        raise EngineError(f"deployment {deployment} is not registered on {api_url()}: run `casetransfer up`") from None
    return str(run.id)


def start_suspended(
    deployment: str,
    parameters: dict,
    *,
    run_name: str,
    key: str,
    form: type[RunInput],
    timeout_seconds: int,
    idempotency_key: str,
    job_variables: dict | None = None,
    tags: list[str] | None = None,
) -> str:
    """Create a run of a deployment already suspended at `key`, with `form` as its Resume form.

    A waiting task does nothing until it is answered, so no worker starts a process for it (about
    2 s of CPU each; allocation opens eight). When it is resumed, the flow runs from the top and its
    own `suspend_flow_run(key=key)` returns the answer: Prefect refuses a suspend key that has
    already fired and hands back the input, as for any resumed run. A run created by an earlier
    attempt (same idempotency key) is left as it is; one left Running by a crash between the two
    calls is suspended now, or rescheduled by recover-transfers like any run without a heartbeat.
    Suspending another run is not something Prefect's public API does: see internals.propose_suspended."""
    require_server()
    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise EngineError(f"deployment {deployment} is not registered on {api_url()}: run `casetransfer up`") from None
        run = client.create_flow_run_from_deployment(
            found.id,
            parameters=parameters,
            name=run_name,
            tags=tags,
            idempotency_key=idempotency_key,
            job_variables=job_variables,
            state=Running(message="Opened as a waiting task"),
        )
        if run.state is not None and run.state.is_running():
            keyset = internals.propose_suspended(client, run.id, key, timeout_seconds)
            if keyset is not None:
                form.save(keyset, flow_run_id=run.id)
    return str(run.id)


def run_state(flow_run_id: str) -> tuple[str, str | None]:
    """(state type, state name) of a flow run."""
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            raise EngineError(f"flow run {flow_run_id} does not exist on this Prefect server") from None
        return (run.state.type.value if run.state else "UNKNOWN", run.state.name if run.state else None)


def wait_until_paused(flow_run_id: str, timeout: float = 60.0, gone: Callable[[], bool] | None = None) -> str | None:
    """Wait until the run suspends (it may still be starting or finishing the previous step).
    Returns the pause key, which names the step it waits at; None at once when the run has
    finished, or when `gone()` says what it waits for was answered meanwhile."""
    require_server()
    deadline = time.monotonic() + timeout
    while True:
        if gone is not None and gone():
            return None
        with get_client(sync_client=True) as client:
            try:
                run = client.read_flow_run(UUID(flow_run_id))
            except ObjectNotFound:
                raise EngineError(f"flow run {flow_run_id} does not exist on this Prefect server") from None
        state = run.state
        if state is not None and state.is_paused():
            return state.state_details.pause_key
        if gone is not None and state is not None and state.is_final():
            return None
        if time.monotonic() > deadline:
            raise EngineError(f"flow run {flow_run_id} is {state.type.value if state else 'UNKNOWN'}, not waiting for input")
        time.sleep(0.5)


def wait_until_final(flow_run_id: str, timeout: float = 600.0) -> str:
    """Wait for a run to finish; returns its state name."""
    deadline = time.monotonic() + timeout
    while True:
        state_type, name = run_state(flow_run_id)
        if state_type in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return name or state_type
        if time.monotonic() > deadline:
            raise EngineError(f"flow run {flow_run_id} still {state_type} after {timeout:.0f} s")
        time.sleep(1)


def heartbeat_within(flow_run_id: str, seconds: float) -> bool:
    """Did the run send Prefect's heartbeat event in the last `seconds`? (A live run sends one
    every run_heartbeat_seconds, from a thread of its own, whatever its flow is doing.)"""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    with get_client(sync_client=True) as client:
        return bool(internals.flow_run_events(client, flow_run_id, internals.HEARTBEAT_EVENT, since))


def _claim_key(pause_key: str) -> str:
    return f"answer-claim-{pause_key}"


def claim_answer(flow_run_id: str, pause_key: str) -> dt.datetime | None:
    """Claim the right to answer the run waiting at `pause_key`, before resuming it. None when this
    caller holds the claim; otherwise when the other sender claimed it.

    Why: two resumes that arrive together are both accepted by Prefect's server (each reads the run
    Paused inside its own transaction), so both senders would be told their answer was recorded
    while only one answer is read. A run input's key is unique on the server (internals.create_input_once),
    which makes the claim atomic. The claim holds a time only: Prefect never holds who answered.
    A claim older than `answer_claim_seconds` is taken over: its sender died before resuming."""
    from tasks.settings import get_settings

    stands_for = get_settings().answer_claim_seconds
    key = _claim_key(pause_key)
    run = UUID(flow_run_id)
    with get_client(sync_client=True) as client:
        for _ in range(2):
            claimed_at = dt.datetime.now(dt.UTC)
            if internals.create_input_once(client, run, key, json.dumps({"at": claimed_at.isoformat()})):
                return None
            try:
                value = internals.read_input(client, run, key)
                if value is None:
                    continue  # released meanwhile: try again
                other = dt.datetime.fromisoformat(json.loads(value)["at"])
            except (PrefectHTTPStatusError, ValueError, KeyError):
                continue
            if (claimed_at - other).total_seconds() < stands_for:
                return other
            internals.delete_input(client, run, key)  # its sender died before resuming
    return claimed_at


def release_answer(flow_run_id: str, pause_key: str) -> None:
    """Give up a claim whose answer did not reach the run (the resume failed): it may be sent again."""
    with get_client(sync_client=True) as client:
        try:
            internals.delete_input(client, UUID(flow_run_id), _claim_key(pause_key))
        except PrefectHTTPStatusError:
            pass


class AnswerTaken(EngineError):
    """Another answer resumed the run first: this one was not delivered and will not be read."""


def resume(flow_run_id: str, answer: dict, timeout: float = 30.0) -> None:
    """Resume a waiting run with the step's answer; returns only when the server took this answer
    as the one the run will read. Raises AnswerTaken when another answer resumed it first.

    Why not prefect.flow_runs.resume_flow_run: it checks Paused in one request and resumes in
    another, and returns quietly when the server answers the second "not paused" (ABORT): a sender
    who lost to another answer in between would be told nothing (issue 31). The server's resume
    reads the run, proposes the new state with the run's row locked and stores the answer as the
    run input its pause reads, in one transaction: ACCEPT is this answer stored; ABORT is a run
    already resumed; 409 is two resumes that met in flight, the other's answer stored.

    The run turns Paused a moment before it saves its form, and the server refuses an answer
    until then, so a run still without its form is waited for rather than reported
    (internals.waiting_without_form).
    """
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.responses import SetStateStatus

    run = UUID(flow_run_id)
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            formless = internals.waiting_without_form(client, run)
        if not formless:
            break
        if time.monotonic() > deadline:
            raise EngineError(
                "the transfer's flow run is waiting without its form (its process stopped while suspending); "
                "`casetransfer recover` gives the form back, then record the step again"
            )
        time.sleep(0.3)
    with get_client(sync_client=True) as client:
        try:
            result = client.resume_flow_run(run, run_input=answer)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == 409:
                raise AnswerTaken("another answer resumed the run at the same moment") from None
            raise
    if result.status == SetStateStatus.ACCEPT:
        return
    if result.status == SetStateStatus.ABORT:
        raise AnswerTaken("the run is not waiting for input any more: another answer resumed it")
    if result.state is not None and result.state.type == StateType.FAILED:
        raise EngineError("the wait for this answer has timed out")
    reason = getattr(result.details, "reason", None) or result.status.value
    raise EngineError(f"the Prefect server refused the answer: {reason}")


def retag(flow_run_id: str, tag: str) -> None:
    """Give a run `tag` in place of the one it carries with the same prefix ("pdu:"); its other
    tags (its NSI's reference, its owner role, the deployment's) stay."""
    prefix = tag.split(":", 1)[0] + ":"
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        tags = [t for t in run.tags if not t.startswith(prefix)] + [tag]
        if tags != run.tags:
            client.update_flow_run(UUID(flow_run_id), tags=tags)


def stop(flow_run_id: str, message: str) -> None:
    """Cancel a waiting or running flow run (a withdrawn transfer)."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        if run.state and run.state.is_final():
            return
        client.set_flow_run_state(UUID(flow_run_id), Cancelled(message=message), force=True)


# A waiting step left for longer than suspend_timeout_days fails its run with this, on purpose:
# that failure is for a person to see, not one to reschedule.
PAUSE_EXPIRED = "never resumed"
RESCHEDULED_AFTER_FAILED = "rescheduled after failed"


def _may_retry_failed(client: Any, run_id: str, state: Any, at_most: int) -> bool:
    """A run that failed while running its code (not one failed by hand or by expiry while it
    waited), rescheduled fewer than `at_most` times before."""
    if at_most <= 0 or PAUSE_EXPIRED in (state.message or ""):
        return False
    earlier = sorted(client.read_flow_run_states(UUID(run_id)), key=lambda s: s.timestamp)
    before = [s for s in earlier if s.type.value != "FAILED" or s.timestamp < state.timestamp]
    if not before or before[-1].type.value != "RUNNING":
        return False
    return sum((s.message or "").startswith(RESCHEDULED_AFTER_FAILED) for s in earlier) < at_most


def reschedule_stale(
    flow_run_ids: list[str],
    stale_after_seconds: float,
    form_for: Callable[[str], type[RunInput] | None] | None = None,
    failed_at_most: int = 0,
) -> list[str]:
    """Put back in the queue every run whose process died: crashed, or running/pending with no
    state change for longer than a segment ever takes. A worker then re-runs it from the top,
    which is safe because every step it takes is idempotent.

    A run whose process died between suspending and saving its step's form (Prefect saves the
    form just after the state) waits with no form, and no answer can be given to it. For such a
    run, the form its step asks for (`form_for(run id)`) is saved for it. Returns the runs
    rescheduled or given their form back.

    A run that failed (an exception: the store unreachable for a moment) is rescheduled too, at
    most `failed_at_most` times over its life; after that it stays failed, for a person."""
    recovered = []
    now = dt.datetime.now(dt.UTC)
    with get_client(sync_client=True) as client:
        for run_id in flow_run_ids:
            try:
                run = client.read_flow_run(UUID(run_id))
            except ObjectNotFound:
                continue
            state = run.state
            if state is None:
                continue
            age = (now - state.timestamp).total_seconds()
            stale = state.type.value in ("RUNNING", "PENDING") and age >= stale_after_seconds
            failed = state.type.value == "FAILED" and _may_retry_failed(client, run_id, state, failed_at_most)
            if state.type.value == "CRASHED" or stale or failed:
                client.set_flow_run_state(
                    UUID(run_id), Scheduled(message=f"rescheduled after {state.type.value.lower()} {age:.0f} s"), force=True
                )
                recovered.append(run_id)
            elif state.type.value == "PAUSED" and form_for and age >= stale_after_seconds:
                keyset = state.state_details.run_input_keyset
                formless = keyset and internals.read_input(client, UUID(run_id), keyset["schema"]) is None
                if formless and (form := form_for(run_id)):
                    form.save(keyset, flow_run_id=UUID(run_id))
                    recovered.append(run_id)
    return recovered


RESCHEDULED_LOST = "rescheduled: its process died"
LOST = "its process died"


def lost_run(run_id: str, silent_seconds: float) -> tuple[str, str] | None:
    """(deployment name, state type) of a run a worker started whose process is gone: running or
    pending with no heartbeat for `silent_seconds`, or crashed. None for a live or finished run,
    and for a run no worker started (a command's own flow sends no heartbeat to judge it by)."""
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(run_id))
        except ObjectNotFound:
            return None
        if run.deployment_id is None or run.state is None:
            return None
        kind = run.state.type.value
        if kind not in ("RUNNING", "PENDING", "CRASHED"):
            return None
        try:
            name = client.read_deployment(run.deployment_id).name
        except ObjectNotFound:  # deleted since: nothing says it is safe to run again
            name = "(deleted deployment)"
    if kind != "CRASHED" and heartbeat_within(run_id, silent_seconds):
        return None
    return name, kind


def requeue_or_crash(run_id: str, run_again: bool, at_most: int) -> str:
    """A lost run that is no transfer's: back in the queue when its deployment is safe to run again
    (every side effect keyed: notices, the nightly jobs), at most `at_most` times over its life;
    else Crashed, so that it no longer looks alive in the UI. Returns what was done."""
    with get_client(sync_client=True) as client:
        earlier = client.read_flow_run_states(UUID(run_id))
        if run_again and sum((s.message or "").startswith(RESCHEDULED_LOST) for s in earlier) < at_most:
            client.set_flow_run_state(UUID(run_id), Scheduled(message=RESCHEDULED_LOST), force=True)
            return "rescheduled"
        why = "not run again: its work may have been done" if not run_again else f"rescheduled {at_most} times already"
        client.set_flow_run_state(UUID(run_id), Crashed(message=f"{LOST}; {why}"), force=True)
        return "marked crashed"


def runs_in_flight(older_than_seconds: float) -> list[str]:
    """Runs of deployments pending or running since longer ago than `older_than_seconds`."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_seconds)
    wanted = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])),
        deployment_id=FlowRunFilterDeploymentId(is_null_=False),
    )
    with get_client(sync_client=True) as client:
        # The API's page limit; the oldest first, the likeliest lost, should more ever be in flight.
        runs = client.read_flow_runs(flow_run_filter=wanted, sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=200)
    return [str(r.id) for r in runs if r.state is not None and r.state.timestamp < since]


# recover-transfers runs one at a time (its deployment's concurrency limit, ENQUEUE): a run asked
# for meanwhile waits, Scheduled as "AwaitingConcurrencySlot", without a process. The run holding
# the slot does the waiting runs' work and cancels them with this message (flows/admin.py).
ABSORBED = "Done by the recover-transfers run that held the slot"
AWAITING_SLOT = "AwaitingConcurrencySlot"


def queued_behind(deployment_name: str, besides: set[str]) -> list[tuple[str, dict]]:
    """The runs of a deployment waiting to start now (for its concurrency slot, or due), other than
    `besides`: (id, parameters), oldest first. Runs scheduled for later are left to their time."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    now = dt.datetime.now(dt.UTC)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(deployment_name)
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(not_any_=[UUID(i) for i in besides]) if besides else None,
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )
    return [
        (str(r.id), r.parameters)
        for r in runs
        if r.state and (r.state.name == AWAITING_SLOT or (r.expected_start_time and r.expected_start_time <= now))
    ]


def wake_transfer(reference: str, timeout: float | None = None) -> bool:
    """Make sure the transfer's run reads the store after the change just committed (a task
    recorded, a challenge raised). Its run may be between its last read and its suspension: then
    it is not paused yet, and a resume now would be lost, so wait until it either records that it
    has read this change (seen_seq) or is paused, and resume it then. True once the change is
    seen or on its way; False after `timeout` (`recover` re-sends wake-ups still unseen)."""
    from tasks.domain import transfer_views
    from tasks.settings import get_settings

    target, _, _, _ = transfer_views.wake_state(reference)
    deadline = time.monotonic() + (get_settings().wake_timeout_seconds if timeout is None else timeout)
    while True:
        _, seen, run_id, _ = transfer_views.wake_state(reference)
        if seen >= target or not run_id:
            return True
        try:
            state_type, _ = run_state(run_id)
        except EngineError:
            return True  # no run to wake: nothing waits for this change
        if state_type in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return True
        if state_type == "PAUSED":
            try:
                resume_flow_run(UUID(run_id))
                return True
            except (NotPausedError, RuntimeError, PrefectHTTPStatusError):
                pass  # resumed by another wake-up a moment ago: check again what it has read
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)


def resume_if_paused(flow_run_id: str, older_than_seconds: float) -> bool:
    """Resume a run paused for longer than `older_than_seconds` (a lost wake-up re-sent)."""
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return False
    state = run.state
    if state is None or not state.is_paused():
        return False
    if (dt.datetime.now(dt.UTC) - state.timestamp).total_seconds() < older_than_seconds:
        return False
    try:
        resume_flow_run(UUID(flow_run_id))
    except (NotPausedError, RuntimeError, PrefectHTTPStatusError):
        return False
    return True


def forget_parameters(flow_run_id: str, keep: dict | None = None, name: str | None = None, tags: list[str] | None = None) -> None:
    """Replace a run's parameters with `keep` (references only): what someone typed into the UI's
    Run form (a transfer form, a concern, a reason) has been stored, and Prefect keeps no copy.
    Optionally rename it (raise-CT000001) and tag it with the reference, so retention finds it."""
    with get_client(sync_client=True) as client:
        if tags:  # an update replaces the tags: keep the deployment's
            tags = list(dict.fromkeys([*client.read_flow_run(UUID(flow_run_id)).tags, *tags]))
        client.update_flow_run(UUID(flow_run_id), parameters=dict(keep or {}), name=name, tags=tags)


def forget_answer(flow_run_id: str, pause_key: str) -> None:
    """Delete the run input that carried an answer to the pause `pause_key`, once the store holds
    it (or has recorded its rejection). The form's schema and description stay: they hold the
    reference and the step only. A missing input (deleted by a re-run before) is fine."""
    with get_client(sync_client=True) as client:
        internals.delete_input(client, UUID(flow_run_id), internals.suspend_keyset(pause_key)["response"])


def delete_runs(flow_run_ids: list[str], named_for: str | None = None) -> int:
    """Delete flow runs (their states, task runs, inputs and artifacts go with them) and, with
    `named_for`, every other run named or tagged for that NSI (its raise, admin and dispute runs).
    A run already gone counts as deleted. Returns how many were deleted now."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterTags

    from tasks.domain.privacy import belongs_to

    ids = {UUID(i) for i in flow_run_ids}
    deleted = 0
    with get_client(sync_client=True) as client:
        if named_for:
            for run_filter in (
                FlowRunFilter(tags=FlowRunFilterTags(all_=[named_for])),
                FlowRunFilter(name=FlowRunFilterName(like_=named_for)),
            ):
                ids |= {r.id for r in client.read_flow_runs(flow_run_filter=run_filter, limit=200) if belongs_to(r.name, named_for)
                        or named_for in (r.tags or [])}  # fmt: skip
        if ids:  # artifacts outlive their run on the server: the Action List goes first
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

            artifact_filter = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=list(ids)))
            while batch := client.read_artifacts(artifact_filter=artifact_filter, limit=200):  # the API's page limit
                for artifact in batch:
                    try:
                        client.delete_artifact(artifact.id)
                    except ObjectNotFound:
                        pass
        for run_id in ids:
            try:
                client.delete_flow_run(run_id)
                deleted += 1
            except ObjectNotFound:
                pass
    return deleted
