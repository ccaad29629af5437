"""The contract with Prefect: everything casetransfer relies on beyond Prefect's public API, as
prefect_runs/internals.py names it, exercised against a real server. A Prefect upgrade that
changes any of it fails here, saying which entry, before a transfer fails in a less obvious way.

Runs of a deployment of our own with no work pool (no worker ever starts one) stand in for a
waiting task, and one flow runs in this process: it suspends one of them with Prefect's own
suspend_flow_run and sends a heartbeat. A few seconds beyond the stack's start."""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.input import RunInput
from support.waits import prefect_api, resume_form, wait_for

from prefect_runs import engine, internals

pytestmark = pytest.mark.prefect

CONTRACT_FLOW = "casetransfer-prefect-contract"
PREFECT_SUSPENDED_KEY = "contract-prefect"


class Answer(RunInput):
    recorded_by: str


@pytest.fixture
def client(prefect_stack: Any) -> Iterator[Any]:
    """Prefect's client on the stack; for the whole test, Prefect's calls in this process go to
    the stack too (engine's, resume_flow_run)."""
    from prefect.client.orchestration import get_client

    with prefect_api(prefect_stack), get_client(sync_client=True) as prefect_client:
        yield prefect_client


@pytest.fixture(scope="module")
def deployment(prefect_stack: Any) -> Iterator[UUID]:
    """A deployment no worker serves; every run made of it is deleted afterwards."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with prefect_api(prefect_stack), get_client(sync_client=True) as prefect_client:
        flow_id = prefect_client.create_flow_from_name(CONTRACT_FLOW)
        deployment_id = prefect_client.create_deployment(flow_id, "contract")
    yield deployment_id
    with prefect_api(prefect_stack), get_client(sync_client=True) as prefect_client:
        only_ours = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        for run in prefect_client.read_flow_runs(deployment_filter=only_ours, limit=200):
            prefect_client.delete_flow_run(run.id)
        prefect_client.delete_deployment(deployment_id)
        prefect_client.delete_flow(flow_id)


def running_run(client: Any, deployment_id: UUID) -> UUID:
    """A run created Running, as engine.start_suspended creates a waiting task's."""
    from prefect.states import Running

    run = client.create_flow_run_from_deployment(deployment_id, state=Running(message="contract"))
    assert run.state is not None and run.state.is_running()
    return run.id


@dataclass(frozen=True)
class InProcess:
    caller: str  # the flow run in this process
    suspended: UUID  # the run it suspended with Prefect's own suspend_flow_run
    since: dt.datetime


@pytest.fixture(scope="module")
def in_process(prefect_stack: Any, deployment: UUID) -> Iterator[InProcess]:
    """A flow run in this process, with heartbeats on, that suspends another run with Prefect's
    own suspend_flow_run (Resume form and all). Made once, first, so that its events have been
    saved by the time they are looked for."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import suspend_flow_run
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    @flow(name=f"{CONTRACT_FLOW}-in-process")
    def suspend_another(other: UUID) -> str:
        suspend_flow_run(wait_for_input=Answer, flow_run_id=other, key=PREFECT_SUSPENDED_KEY, timeout=600)
        time.sleep(0.5)  # the heartbeat thread sends its first beat as the run starts
        return str(flow_run.id)

    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    with prefect_api(prefect_stack), get_client(sync_client=True) as prefect_client:
        other = running_run(prefect_client, deployment)
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
            caller = suspend_another(other)
        internals.flush_event_and_log_workers()
    yield InProcess(caller, other, since)
    with prefect_api(prefect_stack), get_client(sync_client=True) as prefect_client:
        prefect_client.delete_flow_run(UUID(caller))


def test_prefect_suspends_a_run_with_its_form_and_answer_under_the_keys_derived_here(client: Any, in_process: InProcess):
    """suspend_flow_run, as a transfer's flow calls it: the state's name, its pause key and the
    keys of the form and the answer are those internals derives, so forget_answer deletes the
    answer and the tests read the form the UI shows. Given another run, it saves the form to the
    caller: why engine.start_suspended proposes the state itself (internals.propose_suspended)."""
    state = client.read_flow_run(in_process.suspended).state
    assert state.name == internals.SUSPENDED, f"Prefect names a suspended run's state {state.name!r}"
    assert state.state_details.pause_key == PREFECT_SUSPENDED_KEY
    keyset = internals.suspend_keyset(PREFECT_SUSPENDED_KEY)
    assert state.state_details.run_input_keyset == keyset, (
        f"Prefect keeps a suspended run's form and answer under {state.state_details.run_input_keyset}, "
        f"internals.suspend_keyset says {keyset}"
    )
    schema = internals.read_input(client, UUID(in_process.caller), keyset["schema"])
    assert schema is not None and "recorded_by" in json.loads(schema)["properties"], "the form is saved, to the caller"
    assert internals.waiting_without_form(client, in_process.suspended)


def test_a_run_created_running_is_suspended_from_outside_answered_once_and_its_answer_deleted(client: Any, deployment: UUID):
    """engine.start_suspended's way: a run created Running and suspended by proposing the state;
    the server refuses an answer until the form is saved (engine.resume waits), keeps the answer
    under the keyset's response (forget_answer deletes it), and refuses a key that has fired (the
    resumed flow's own suspend at that key gets the answer back)."""
    from prefect.flow_runs import resume_flow_run
    from prefect.states import Running

    run_id = running_run(client, deployment)
    keyset = internals.propose_suspended(client, run_id, "contract-0", timeout_seconds=600)
    assert keyset == internals.suspend_keyset("contract-0")
    state = client.read_flow_run(run_id).state
    assert (state.type.value, state.name) == ("PAUSED", internals.SUSPENDED)
    assert state.state_details.pause_key == "contract-0" and state.state_details.run_input_keyset == keyset

    assert internals.waiting_without_form(client, run_id)
    with pytest.raises(RuntimeError):  # refused while the form is missing
        resume_flow_run(run_id, run_input={"recorded_by": "Kim SPO"})
    assert client.read_flow_run(run_id).state.is_paused()

    Answer.with_initial_data(description="### contract").save(keyset, flow_run_id=run_id)
    assert not internals.waiting_without_form(client, run_id)
    form = resume_form(client, str(run_id), "contract-0")  # as the UI shows it, through suspend_keyset
    assert form is not None and form["description"] == "### contract" and "recorded_by" in form["properties"]
    engine.resume(str(run_id), {"recorded_by": "Kim SPO"}, timeout=5)
    state = client.read_flow_run(run_id).state
    assert (state.type.value, state.name) == ("SCHEDULED", "Resuming") and state.name in internals.NOT_RUNNING_STATE_NAMES

    assert json.loads(internals.read_input(client, run_id, keyset["response"]) or "null") == {"recorded_by": "Kim SPO"}
    # A second answer to the same wait: the server answers ABORT (HTTP 200), which Prefect's
    # resume_flow_run returns from quietly once its own look found the run paused (issue 31);
    # engine.resume says so, and the first answer is the one kept.
    from prefect.client.schemas.responses import SetStateStatus

    assert client.resume_flow_run(run_id, run_input={"recorded_by": "Ann Other"}).status == SetStateStatus.ABORT
    with pytest.raises(engine.AnswerTaken):
        engine.resume(str(run_id), {"recorded_by": "Ann Other"}, timeout=5)
    assert json.loads(internals.read_input(client, run_id, keyset["response"]) or "null") == {"recorded_by": "Kim SPO"}
    engine.forget_answer(str(run_id), "contract-0")
    assert internals.read_input(client, run_id, keyset["response"]) is None
    assert internals.read_input(client, run_id, keyset["schema"]) is not None  # the form stays

    client.set_flow_run_state(run_id, Running(), force=True)  # as a worker starts the resumed run
    assert internals.propose_suspended(client, run_id, "contract-0", timeout_seconds=600) is None
    assert client.read_flow_run(run_id).state.is_running()
    assert internals.propose_suspended(client, run_id, "contract-1", timeout_seconds=600) is not None
    engine.stop(str(run_id), "contract checked")


def test_a_run_input_key_is_taken_once_and_a_missing_one_reads_as_none(client: Any, deployment: UUID):
    """The answer claim rests on the server keeping one input per (run, key): the second sender
    is told who was first; a released claim may be taken again."""
    run_id = running_run(client, deployment)
    assert internals.read_input(client, run_id, "contract-none") is None
    assert internals.delete_input(client, run_id, "contract-none") is False
    assert internals.create_input_once(client, run_id, "contract-once", '"first"') is True
    assert internals.create_input_once(client, run_id, "contract-once", '"second"') is False
    assert internals.read_input(client, run_id, "contract-once") == '"first"'
    assert internals.delete_input(client, run_id, "contract-once") is True

    assert engine.claim_answer(str(run_id), "contract-0") is None
    assert isinstance(engine.claim_answer(str(run_id), "contract-0"), dt.datetime)  # taken: when
    engine.release_answer(str(run_id), "contract-0")
    assert engine.claim_answer(str(run_id), "contract-0") is None
    engine.stop(str(run_id), "contract checked")


def test_a_server_with_csrf_off_answers_the_token_endpoint_422_and_takes_changes_without_it(prefect_stack: Any):
    """prefect_runs/api.py's handshake with protection off (on: tests/integration/test_faults.py)."""
    from prefect_runs.api import api_client

    token = httpx.get(f"{prefect_stack.api_url}{internals.CSRF_TOKEN_PATH}", params={"client": "contract"}, timeout=30)
    assert token.status_code == 422, token.text
    with api_client(prefect_stack.api_url, "casetransfer:unused") as http:
        assert internals.CSRF_TOKEN_HEADER not in http.headers
        assert http.post("/flow_runs/filter", json={"limit": 1}).status_code == 200


def test_fresh_settings_reads_prefect_settings_from_the_environment_now(monkeypatch: pytest.MonkeyPatch):
    """What tests/support/cli.py runs each command in-process with."""
    from prefect.settings import get_current_settings

    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "7")
    with internals.fresh_settings():
        assert get_current_settings().client.max_retries == 7


def prefect_state_names() -> dict[str, str]:
    """Every name Prefect gives a state, with its type where it can be asked (a constructor in
    prefect.states, a type's own name); names set elsewhere (by the engines and the server) are
    found in Prefect's source, as a state constructor's name= or an assignment to a state's name."""
    import prefect
    import prefect.states
    from prefect.client.schemas.objects import StateType

    constructors = {
        name: fn for name, fn in vars(prefect.states).items()
        if name[:1].isupper() and inspect.isfunction(fn) and fn.__module__ == "prefect.states"
    }  # fmt: skip
    names = {prefect.states.State(type=t).name: t.value for t in StateType}
    names |= {(state := fn()).name: state.type.value for fn in constructors.values()}
    callers = {*constructors, "State", "cls", "_traced"}
    root = Path(prefect.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        if "ui" in path.relative_to(root).parts or not re.search(r'name\s*=\s*"[A-Z]', text):
            continue
        for node in ast.walk(ast.parse(text)):
            given: list[ast.expr] = []
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                given = [k.value for k in node.keywords if k.arg == "name" and called in callers]
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "name" for t in node.targets):
                given = [node.value]
            for value in given:
                if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value[:1].isupper():
                    names.setdefault(value.value, "?")
    return names


def test_the_state_names_the_automations_match_are_every_name_prefect_gives_a_state():
    running, not_running = set(internals.RUNNING_STATE_NAMES), set(internals.NOT_RUNNING_STATE_NAMES)
    assert not running & not_running
    names = prefect_state_names()
    assert {"Resuming", "Cached", "TimedOut"} <= set(names)  # set outside prefect.states: the search works
    assert sorted(set(names) - running - not_running) == [], "state names Prefect gives that internals does not list"
    assert sorted((running | not_running) - set(names)) == [], "state names internals lists that Prefect no longer gives"
    misfiled = [n for n, t in names.items() if t != "?" and (n in running) != (t in ("PENDING", "RUNNING"))]
    assert misfiled == [], "names filed on the wrong side of running / not running"


def test_the_events_name_the_run_its_deployment_and_its_heartbeat(client: Any, deployment: UUID, in_process: InProcess):
    """Last: the server saves events in batches (every 5 s). The heartbeat recover-transfers looks
    for (engine.heartbeat_within, through the events filter), and a state event as the dead-worker
    automations match it: the run as its resource, its deployment related in the role they name."""
    wait_for(
        lambda: engine.heartbeat_within(in_process.caller, 600),
        timeout=30,
        what=f"{internals.HEARTBEAT_EVENT} of {in_process.caller}",
    )
    suspended = internals.state_event(internals.SUSPENDED)
    events = wait_for(
        lambda: internals.flow_run_events(client, str(in_process.suspended), suspended, in_process.since),
        timeout=30,
        what=f"{suspended} of {in_process.suspended}",
    )
    assert events[0].resource.id == f"{internals.FLOW_RUN_RESOURCE}{in_process.suspended}"
    related = {(r.role, r.id) for r in events[0].related}
    assert (internals.DEPLOYMENT_ROLE, f"{internals.DEPLOYMENT_RESOURCE}{deployment}") in related


def test_a_run_stopped_while_awake_ends_without_overwriting_its_cancelled_state(prefect_stack: Any):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.exceptions import Abort
    from prefect.runtime import flow_run
    from prefect.states import Cancelled

    ran: list[str] = []

    @flow(name=f"{CONTRACT_FLOW}-stopped")
    def stopped_while_awake() -> None:
        ran.append(str(flow_run.id))
        with get_client(sync_client=True) as c:  # as engine.stop does for a withdrawal
            c.set_flow_run_state(UUID(ran[0]), Cancelled(message="withdrawn"), force=True)
        internals.end_as_stopped("withdrawn while awake")

    with prefect_api(prefect_stack), get_client(sync_client=True) as prefect_client:
        with pytest.raises(Abort):
            stopped_while_awake()
        state = prefect_client.read_flow_run(UUID(ran[0])).state
        prefect_client.delete_flow_run(UUID(ran[0]))
    # Prefect's server would let the run go from Cancelled to Failed or Completed: it stays Cancelled.
    assert state is not None and state.name == "Cancelled"


def test_the_server_s_scheduler_creates_the_runs_of_every_scheduled_deployment(prefect_stack: Any):
    """The nightly jobs, retention and the recover fallback run because Prefect's scheduler
    creates their runs ahead. With SQLAlchemy 2.1 it could not (pyproject.toml): nothing fired."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    with prefect_api(prefect_stack), get_client(sync_client=True) as client:
        scheduled = {d.id: d.name for d in client.read_deployments() if any(s.active for s in d.schedules)}
        assert {"nightly-tracker", "nightly-reminders", "prefect-retention"} <= set(scheduled.values())

        def without_runs() -> set[str]:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=list(scheduled))), limit=200
            )
            return set(scheduled.values()) - {scheduled[r.deployment_id] for r in runs if r.auto_scheduled}

        wait_for(lambda: not without_runs(), 120, "the scheduler to create the scheduled deployments' runs")
