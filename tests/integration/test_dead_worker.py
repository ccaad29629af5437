"""A dead worker, for real: SIGKILL the worker and its flow runs' processes while a transfer's run
is running, start a new worker, and let the server notice by itself (heartbeats, an automation,
recover-transfers) with nobody calling `casetransfer recover`."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from uuid import UUID

import httpx
import pytest
from conftest import demo_form
from support.cli import cli as run_cli
from support.waits import kill_worker_and_its_runs, wait_for

from tasks.domain import transfer_views

pytestmark = pytest.mark.prefect

REQUIREMENT_SECONDS = 120.0
ALLOCATION = ["--practitioner", "Pat Receiver", "--team-code", "N50CAD", "--recorded-by", "Kim SPO"]


def cli(*args: str) -> str:
    return run_cli(*args).stdout


def run_state(flow_run_id: str) -> str:
    from prefect_runs import engine

    return engine.run_state(flow_run_id)[0]


def test_the_automations_are_registered_once_by_name(prefect_stack):
    from ops.stack import CHECK_AUTOMATION, CRASHED_AUTOMATION, ensure_automations

    first = ensure_automations(prefect_stack.api_url)
    assert ensure_automations(prefect_stack.api_url) == first  # again: updated, not duplicated
    names = [a["name"] for a in httpx.post(f"{prefect_stack.api_url}/automations/filter", json={}).json()]
    assert names.count(CHECK_AUTOMATION) == names.count(CRASHED_AUTOMATION) == 1


def test_a_run_whose_worker_died_is_rescheduled_by_itself_within_two_minutes(prefect_stack):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}):
        _kill_and_watch(prefect_stack)


def _running_run(reference: str) -> str | None:
    """The run of this transfer that is running now (its main run or one of its task runs)."""
    return next((f for r, f in transfer_views.open_flow_runs() if r == reference and run_state(f) == "RUNNING"), None)


def _kill_and_watch(prefect_stack) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    from prefect_runs.engine import ABSORBED
    from services import raise_transfer
    from tasks.domain.form import parse_form
    from tasks.settings import get_settings

    settings = get_settings()
    # This transfer's runs hold a recorded step's task for 30 s after committing it: the kill
    # lands while a run is running. Re-run from the top, it finds the step recorded and moves on.
    reference, _ = raise_transfer(
        parse_form(demo_form(crn="D100001")), job_variables={"env": {"CASETRANSFER_FAULT_DELAY_SECONDS": "30"}}
    )
    waiting = (reference, "allocation")
    wait_for(lambda: waiting in transfer_views.waiting_steps().values(), 120, "the transfer to wait for its allocation")
    cli("record", reference, "allocation", *ALLOCATION, "--no-wait")
    wait_for(lambda: "allocation" in transfer_views.recorded_steps(reference), 120, "allocation to commit")
    flow_run_id = str(wait_for(lambda: _running_run(reference), 30, "a run of the transfer to be running"))

    _no_recover_run_in_flight()
    kill_worker_and_its_runs(prefect_stack, flow_run_id)
    killed_at = dt.datetime.now(dt.UTC)
    killed = time.monotonic()
    assert run_state(flow_run_id) == "RUNNING"  # nobody told the server
    prefect_stack.start_worker()

    wait_for(lambda: run_state(flow_run_id) != "RUNNING", REQUIREMENT_SECONDS + 30, "the run to be rescheduled")
    wait_for(
        lambda: run_state(flow_run_id) in ("PAUSED", "COMPLETED"), REQUIREMENT_SECONDS + 60, "the re-run to suspend or finish"
    )
    done = time.monotonic() - killed

    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(UUID(flow_run_id))
        # Started for this run by the automation; or queued behind a recover run already in
        # flight (one at a time), which did its work and cancelled it (engine.ABSORBED).
        # Only the recover deployment's runs expected since the kill: a session's stack holds
        # hundreds of runs by now, and a first page in id order could leave this one out.
        recover_runs = [
            r
            for r in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(after_=killed_at)),
                deployment_filter=_recover_deployment(),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=200,
            )
            if r.parameters.get("flow_run_id", "").endswith(flow_run_id)
            and (r.start_time is not None or (r.state is not None and (r.state.message or "").startswith(ABSORBED)))
        ]
    rescheduled = next(s for s in states if s.type.value == "SCHEDULED" and s.timestamp > killed_at)
    detected = min((r.start_time or r.state.timestamp for r in recover_runs), default=None)
    print(
        f"\nheartbeat every {settings.run_heartbeat_seconds} s; a run still running {settings.run_check_seconds:.0f} s after "
        f"its last state is checked, and is lost after {settings.run_heartbeat_timeout_seconds:.0f} s without a heartbeat."
    )
    print("After the SIGKILL:")
    if detected:
        print(f"  recover-transfers started for the run by the automation: {(detected - killed_at).total_seconds():.1f} s")
    print(f"  run rescheduled ({rescheduled.message}): {(rescheduled.timestamp - killed_at).total_seconds():.1f} s")
    print(f"  re-run done (suspended again or finished): {done:.1f} s")

    assert recover_runs, "the run was rescheduled, but not by a recover-transfers run the automation started"
    assert "rescheduled after running" in (rescheduled.message or "")
    assert done < REQUIREMENT_SECONDS
    assert "allocation" in transfer_views.recorded_steps(reference)


def _worker_processes(supervisor_pid: int) -> list[int]:
    """The processes of a supervised worker other than its supervisor: the warm launcher, the
    Prefect worker and any run forked from them (one process group, ops.supervise)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == supervisor_pid:
            continue
        try:
            if os.getpgid(int(pid)) == supervisor_pid:
                found.append(int(pid))
        except ProcessLookupError:
            continue
    return found


def _polled_since(api_url: str, since: dt.datetime) -> list[str]:
    """Workers of the pool that told the server they were polling after `since`."""
    from ops.stack import POOL

    workers = httpx.post(f"{api_url}/work_pools/{POOL}/workers/filter", json={}).json()
    return [w["name"] for w in workers if w.get("last_heartbeat_time") and dt.datetime.fromisoformat(w["last_heartbeat_time"]) > since]


def test_a_worker_killed_under_its_supervisor_is_started_again_within_30_s_and_its_transfer_finishes(prefect_stack):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from services import raise_transfer
    from tasks.domain.form import parse_form

    supervisor = prefect_stack.workers[-1]
    assert prefect_stack.supervise
    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}):
        reference, _ = raise_transfer(
            parse_form(demo_form(crn="D100002")), job_variables={"env": {"CASETRANSFER_FAULT_DELAY_SECONDS": "30"}}
        )
        waiting = (reference, "allocation")
        wait_for(lambda: waiting in transfer_views.waiting_steps().values(), 120, "the transfer to wait for its allocation")
        cli("record", reference, "allocation", *ALLOCATION, "--no-wait")
        wait_for(lambda: "allocation" in transfer_views.recorded_steps(reference), 120, "allocation to commit")
        flow_run_id = str(wait_for(lambda: _running_run(reference), 30, "a run of the transfer to be running"))

        _no_recover_run_in_flight()
        killed_at = dt.datetime.now(dt.UTC)
        killed = time.monotonic()
        victims = _worker_processes(supervisor.pid)
        assert victims, "the supervised worker has no processes to kill"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)  # the worker and the run it held; its supervisor lives
        assert supervisor.poll() is None

        polling = wait_for(lambda: _polled_since(prefect_stack.api_url, killed_at), 60, "a worker polling again")
        back_after = time.monotonic() - killed
        wait_for(
            lambda: run_state(flow_run_id) in ("PAUSED", "COMPLETED"), REQUIREMENT_SECONDS + 60, "the killed run to suspend or finish"
        )
        done = time.monotonic() - killed
    print(f"\nworker {polling} polling again {back_after:.1f} s after the SIGKILL; its transfer's run done after {done:.1f} s")
    assert back_after < 30
    assert done < REQUIREMENT_SECONDS + 30
    assert "allocation" in transfer_views.recorded_steps(reference)
    assert set(_worker_processes(supervisor.pid)) - set(victims), "the supervisor's new worker is running"


def test_recover_runs_go_one_at_a_time_and_the_one_holding_the_slot_does_the_work_of_those_queued(prefect_stack):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_runs.api import RECOVER_DEPLOYMENT
    from prefect_runs.engine import ABSORBED, AWAITING_SLOT

    asked_for = "prefect.flow-run.00000000-0000-4000-8000-000000000031"
    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(RECOVER_DEPLOYMENT)
        limit = deployment.global_concurrency_limit
        assert limit is not None and limit.limit == 1
        # Hold the deployment's one slot, as a recover run in flight does (once a recover run an
        # earlier test's kill started has let it go: 423 while one holds it).
        lease = wait_for(lambda: _take_slot(client, limit.name), 150, "the recover slot to be free")
        try:
            queued = run_deployment(RECOVER_DEPLOYMENT, parameters={"flow_run_id": asked_for}, timeout=0, as_subflow=False)
            wait_for(
                lambda: client.read_flow_run(queued.id).state.name == AWAITING_SLOT, 60, "the second recover run to wait for the slot"
            )
        finally:
            client.release_concurrency_slots_with_lease(lease.json()["lease_id"])
        holder = run_deployment(RECOVER_DEPLOYMENT, parameters={}, timeout=120, as_subflow=False)
        assert holder.state.is_completed()
        wait_for(lambda: client.read_flow_run(queued.id).state.is_final(), 60, "the queued recover run to be settled")
        after = client.read_flow_run(queued.id)
        states = [s.type.value for s in client.read_flow_run_states(queued.id)]
        assert after.state.type.value == "CANCELLED" and after.state.message.startswith(ABSORBED), (after.state, states)
        # The run that took the slot did its work: ours, or one that came due as the slot was
        # freed (recover-transfers' 5-minute schedule, an automation's): the message names it.
        absorber = (after.state.message or "").rpartition("(")[2].rstrip(")")
        assert client.read_flow_run(UUID(absorber)).deployment_id == deployment.id, after.state.message

        def logged() -> list[str]:
            return [log.message for log in client.read_logs(log_filter=_logs_of(UUID(absorber)))]

        # A run's last log lines reach the server after its final state (its process sends them
        # as it exits): wait for them rather than read once.
        wanted = (f"doing the work of {queued.id}", f"{asked_for}: not a lost run of an open transfer")
        wait_for(lambda: all(any(w in m for m in logged()) for w in wanted), 60, f"the absorbing run to log {wanted}", show=logged)
    assert "RUNNING" not in states, states  # its work was done without a process of its own


def test_a_run_failed_by_hand_or_by_expiry_while_waiting_is_left_failed_for_a_person(prefect_stack):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Failed

    from prefect_runs import engine
    from services import raise_transfer
    from tasks.domain.form import parse_form

    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}), get_client(sync_client=True) as client:
        reference, _ = raise_transfer(parse_form(demo_form(crn="D100005")))
        waiting = (reference, "allocation")
        wait_for(lambda: waiting in transfer_views.waiting_steps().values(), 120, "the transfer to wait for its allocation")
        task_run = next(f for f, w in transfer_views.waiting_steps().items() if w == waiting)
        wait_for(lambda: run_state(task_run) == "PAUSED", 60, "the allocation's task run to wait at its form")
        for message in ("Marked failed in the UI", "The flow was paused and never resumed."):
            client.set_flow_run_state(UUID(task_run), Failed(message=message), force=True)
            assert engine.reschedule_stale([task_run], 600, failed_at_most=3) == []
        time.sleep(10)  # the automation saw the Failed events too, and left it alone
        assert run_state(task_run) == "FAILED"


def _notices_of(reference: str) -> list[str]:
    from pathlib import Path

    return sorted(p.name for p in Path(os.environ["CASETRANSFER_OUTBOX"]).glob("notice_*.eml") if reference in p.read_text())


def _lost(client, deployment: str, parameters: dict) -> UUID:  # type: ignore[no-untyped-def]
    """A run a worker took and then died with: Running, with no process and no heartbeat."""
    from prefect.deployments import run_deployment
    from prefect.states import Running

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)  # no worker takes it before the test does
    run = run_deployment(deployment, parameters=parameters, scheduled_time=later, timeout=0, as_subflow=False)
    client.set_flow_run_state(run.id, Running(), force=True)
    return run.id


def test_a_notice_run_killed_with_its_worker_is_run_again_and_sends_nothing_twice(prefect_stack):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.admin import recover_now
    from services import raise_transfer
    from tasks.domain.form import parse_form
    from tasks.settings import get_settings

    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}), get_client(sync_client=True) as client:
        reference, _ = raise_transfer(parse_form(demo_form(crn="D100007")))
        wait_for(lambda: _notices_of(reference), 120, "the new transfer's notice")
        sent = _notices_of(reference)
        run = _lost(client, get_settings().notice_deployment, {"reference": reference, "event": "raised"})
        assert recover_now(flow_run_id=str(run)) == [f"send-notice run {run} (rescheduled)"]
        wait_for(lambda: run_state(str(run)) == "COMPLETED", 120, "the notice run to run again and finish")
        assert recover_now(flow_run_id=str(run)) == []
        states = [s.message or "" for s in client.read_flow_run_states(run)]
    assert _notices_of(reference) == sent  # the sent-log: the second run found it sent
    assert "rescheduled: its process died" in states


def test_a_lost_run_not_safe_to_repeat_is_marked_crashed_by_the_fallback_not_left_running(prefect_stack):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.admin import recover_now, settle_lost
    from prefect_runs import engine

    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}), get_client(sync_client=True) as client:
        run = str(_lost(client, "mark-action-done/mark-action-done", {"reference": "CT999999", "code": "x", "done_by": "Ops"}))
        assert recover_now(flow_run_id=run) == []  # the automation's quick look re-runs only what is safe to
        assert run_state(run) == "RUNNING"
        assert run in engine.runs_in_flight(0)  # what the 5-minute fallback finds after stale_run_seconds
        assert settle_lost([run], only_run_again=False) == [f"mark-action-done run {run} (marked crashed)"]
        state = client.read_flow_run(UUID(run)).state
    assert state.type.value == "CRASHED"
    assert state.message == "its process died; not run again: its work may have been done"


def _no_recover_run_in_flight() -> None:
    """Wait until no recover-transfers run holds the deployment's slot. What these tests kill is a
    transfer's run and its worker; a recover run killed with them would hold the slot until its
    lease ran out (Prefect renews a running flow's lease for 300 s), and the recovery measured
    here would wait behind it: that case is bounded by the lease, not by the two minutes."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    in_flight = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING])))

    def idle() -> bool:
        with get_client(sync_client=True) as client:
            return not client.read_flow_runs(flow_run_filter=in_flight, deployment_filter=_recover_deployment())

    wait_for(idle, 60, "no recover-transfers run in flight")


def _recover_deployment():  # type: ignore[no-untyped-def]
    """Prefect's filter for the recover-transfers deployment's runs."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    from prefect_runs.api import RECOVER_DEPLOYMENT

    return DeploymentFilter(name=DeploymentFilterName(any_=[RECOVER_DEPLOYMENT.split("/")[-1]]))


def _take_slot(client, name: str):  # type: ignore[no-untyped-def]
    """The slot's lease, or None while another holds it."""
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        return client.increment_concurrency_slots_with_lease(names=[name], slots=1, mode="concurrency", lease_duration=120)
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code == 423:
            return None
        raise


def _recover_report(client, flow_run_id: str) -> str:  # type: ignore[no-untyped-def]
    """What recover-transfers did for a run (for a failure's message)."""
    runs = [r for r in client.read_flow_runs(limit=200) if flow_run_id in str(r.parameters.get("flow_run_id", ""))]
    states = [f"{s.type.value} {s.message or ''}" for s in client.read_flow_run_states(UUID(flow_run_id))]
    logs = [m.message for r in runs for m in client.read_logs(log_filter=_logs_of(r.id))]
    return f"run states {states}; recover runs {[(str(r.id)[:8], r.state_name) for r in runs]}; their logs {logs}"


def _logs_of(flow_run_id: UUID):  # type: ignore[no-untyped-def]
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    return LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
