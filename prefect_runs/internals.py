"""Everything casetransfer relies on in Prefect beyond its documented public API, named once.

Each entry says what Prefect does that we depend on and why its public API does not do it for
us. Everything else goes through the public API (prefect.flow_runs, prefect.input, the client's
methods, the REST API). tests/integration/test_prefect_contract.py exercises every entry against
a real server (the state names against Prefect's own source too), so a Prefect upgrade that
changes one fails there, naming it, rather than in a transfer: change it here and every caller
(prefect_runs/engine.py, prefect_runs/api.py, flows/admin.py, ops/stack.py, tests/support/)
follows.

What the warm-fork launcher and the frozen server start lean on (Prefect's and CPython's private
modules, replaced or called in a forked child) is listed apart, in ops/prefect_internals.py: it
must import nothing but the standard library (the launcher's per-run side), and on an untested
Prefect version it falls back to Prefect's own start. Nothing here has a fallback: a transfer
cannot wait without these.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn
from uuid import UUID

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.events import ReceivedEvent
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.input import Keyset
    from prefect.states import State

# Prefect is imported inside each function, never when this module is: the stack (ops/stack.py)
# reads the names below before it sets PREFECT_API_URL, and Prefect reads its settings from the
# environment once, when first imported.

# --- A suspended run's form and answer -----------------------------------------------------------
# suspend_flow_run(wait_for_input=...) saves the Resume form (its schema and description) as run
# inputs, and the server saves the answer a resume carries as another, under keys Prefect derives
# from the state's name and the pause key ("suspended-allocation-0-response"). No public call
# names them for a given pause key: resume_flow_run writes the answer and the flow reads it, and
# nothing deletes it. We delete it once the store holds it (Prefect keeps no copy of what people
# typed), and the tests read the form the UI shows. Derived as suspend_flow_run derives them, from
# the state it proposes, so the prefix is Prefect's and not a copy of it.

SUSPENDED = "Suspended"  # the name of a suspended run's Paused state (a paused one is "Paused")


def suspended(pause_key: str, timeout_seconds: int | None = None) -> State:
    """The state suspend_flow_run proposes for a suspension at `pause_key`."""
    from prefect.states import Suspended

    return Suspended(timeout_seconds=timeout_seconds, pause_key=pause_key)


def suspend_keyset(pause_key: str) -> Keyset:
    """The run inputs of a run suspended at `pause_key`: "schema" and "description" (its Resume
    form, saved by the flow as it suspends) and "response" (the answer, saved by the resume)."""
    from prefect.input import keyset_from_paused_state

    return keyset_from_paused_state(suspended(pause_key))


# --- Suspending a run from outside it ------------------------------------------------------------
# A waiting task is created already suspended (engine.start_suspended): no process starts for it
# until it is answered. suspend_flow_run(flow_run_id=another run) would propose the state, but it
# saves the form to the *calling* run (the form's save is given no run id): called from the
# transfer's open-tasks task, onto the transfer's run. So the state is proposed as suspend_flow_run
# proposes it, through the client's public set_flow_run_state, and the form saved with the run's
# id. What we rely on is the server's: that it lets a run be created Running with no process
# behind it and suspended from outside, and that it refuses a suspension whose key has already
# fired, which is how the resumed flow's own suspend_flow_run at the same key gets the answer back.


def propose_suspended(client: SyncPrefectClient, flow_run_id: UUID, pause_key: str, timeout_seconds: int) -> Keyset | None:
    """Suspend a Running run at `pause_key` with a Resume form to come. Returns the keyset to save
    the form under, or None when the server refused (the run is not Running any more, or was
    suspended at this key before). Raises prefect.exceptions.Abort when the server aborts it, as
    Prefect's own proposal does."""
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.exceptions import Abort
    from prefect.input import keyset_from_paused_state

    proposed = suspended(pause_key, timeout_seconds)
    keyset = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = keyset
    result = client.set_flow_run_state(flow_run_id, proposed)
    while result.status == SetStateStatus.WAIT:  # the server asks to try again later
        time.sleep(getattr(result.details, "delay_seconds", 1))
        result = client.set_flow_run_state(flow_run_id, proposed)
    if result.status == SetStateStatus.ABORT:
        raise Abort(getattr(result.details, "reason", "the server aborted the suspension"))
    accepted = result.status == SetStateStatus.ACCEPT and result.state is not None and result.state.is_paused()
    return keyset if accepted else None


# --- Run inputs: a missing key, a taken key --------------------------------------------------------
# The client's run-input calls answer a missing key with a bare PrefectHTTPStatusError (404), not
# the ObjectNotFound its other reads raise, and a key already taken with 409: the server keeps one
# input per (run, key). Neither is documented. The answer claim (engine.claim_answer) depends on
# the 409 being atomic: two senders creating the same claim key, one wins.


def _missing(exc: PrefectHTTPStatusError) -> bool:
    return exc.response.status_code == 404


def read_input(client: SyncPrefectClient, flow_run_id: UUID, key: str) -> str | None:
    """A run input's value, or None when the run has no input under `key`."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    try:
        return client.read_flow_run_input(flow_run_id, key)
    except ObjectNotFound:
        return None
    except PrefectHTTPStatusError as exc:
        if _missing(exc):
            return None
        raise


def delete_input(client: SyncPrefectClient, flow_run_id: UUID, key: str) -> bool:
    """Delete a run input; False when there was none under `key`."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    try:
        client.delete_flow_run_input(flow_run_id, key)
    except ObjectNotFound:
        return False
    except PrefectHTTPStatusError as exc:
        if _missing(exc):
            return False
        raise
    return True


def create_input_once(client: SyncPrefectClient, flow_run_id: UUID, key: str, value: str) -> bool:
    """Create a run input; False, atomically, when the run already has one under `key`."""
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        client.create_flow_run_input(flow_run_id, key, value)
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code == 409:
            return False
        raise
    return True


# --- A resume before the form is saved -------------------------------------------------------------
# suspend_flow_run proposes the state first and saves the form after it, and the server refuses a
# resume while the form's schema is missing ("Run input schema not found", a RuntimeError from
# resume_flow_run with the reason as its only trace). An answer sent in that moment must wait for
# the form, not be reported as refused; a run whose process died in between waits with no form
# until `casetransfer recover` saves it (engine.reschedule_stale). Asked through the public API:
# the keyset the run's state names, and whether its schema is saved.


def waiting_without_form(client: SyncPrefectClient, flow_run_id: UUID) -> bool:
    """Is the run suspended for a form whose schema is not saved (yet)?"""
    from prefect.exceptions import ObjectNotFound

    try:
        state = client.read_flow_run(flow_run_id).state
    except ObjectNotFound:
        return False
    keyset = state.state_details.run_input_keyset if state is not None and state.is_paused() else None
    return bool(keyset) and read_input(client, flow_run_id, keyset["schema"]) is None


# --- Events: names and resource ids ----------------------------------------------------------------
# Prefect names the events it emits, and the resources they are about, by convention: its docs
# show them in examples, and no call or constant gives them. A run's heartbeat; each state it
# enters, by the state's name; "prefect.flow-run.<id>" for the run, and "prefect.deployment.<id>"
# in the role "deployment" among its related resources. recover-transfers looks for a run's
# heartbeats, and the dead-worker automations (ops/stack.py) match its state events and leave out
# recover-transfers' own runs by their deployment. The events are read through the client's public
# read_events.

HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
FLOW_RUN_RESOURCE = "prefect.flow-run."
DEPLOYMENT_RESOURCE = "prefect.deployment."
DEPLOYMENT_ROLE = "deployment"


def state_event(state_name: str) -> str:
    """The event a flow run emits on entering a state named `state_name`."""
    return f"{FLOW_RUN_RESOURCE}{state_name}"


def flow_run_events(client: SyncPrefectClient, flow_run_id: str, event: str, since: datetime, limit: int = 1) -> list[ReceivedEvent]:
    """The server's record of `event` for the flow run since `since`, newest first (events are
    saved in batches, a few seconds after they happen)."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    event_filter = EventFilter(
        event=EventNameFilter(name=[event]),
        resource=EventResourceFilter(id=[f"{FLOW_RUN_RESOURCE}{flow_run_id}"]),
        occurred=EventOccurredFilter(since=since),
    )
    return client.read_events(filter=event_filter, limit=limit).events


# --- State names -----------------------------------------------------------------------------------
# The dead-worker automations match state-change events by name (ops/stack.py): every name a
# flow run's state may have, split by whether a process is running it. Prefect has no list of
# the names its states, engines and server give: the contract test collects them.
RUNNING_STATE_NAMES = ("Pending", "Submitting", "InfrastructurePending", "NotReady", "Running", "Retrying")
NOT_RUNNING_STATE_NAMES = (
    *("Scheduled", "Late", "AwaitingRetry", "AwaitingConcurrencySlot", "Resuming", "Paused", SUSPENDED, "Cancelling"),
    *("Completed", "Cached", "RolledBack", "Failed", "Crashed", "Cancelled", "TimedOut"),
)

# --- CSRF, for the plain HTTP client (prefect_runs/api.py) --------------------------------------
# A server with CSRF protection on refuses a change without a token, which Prefect's own client
# fetches from this endpoint (for a client id of its choosing) and sends back in these headers.
# Our plain HTTP client (ops/stack.py's REST calls to the stack it starts) does the same. A
# server with protection off answers the endpoint 422 and takes changes without the headers: the
# contract test checks that; with protection on, the production stack's tests check it
# (tests/integration/test_faults.py, auth and CSRF on).
CSRF_TOKEN_PATH = "/csrf-token"
CSRF_TOKEN_HEADER = "Prefect-Csrf-Token"
CSRF_CLIENT_HEADER = "Prefect-Csrf-Client"

# --- A run stopped while it is awake --------------------------------------------------------------
# A withdrawal forces a transfer's run to Cancelled (engine.stop) even while it is awake, and the
# run's process carries on until it next speaks to the server. The server lets a Cancelled run
# become Completed or Failed, so a run that then returned, or failed to suspend, would overwrite
# the Cancelled the withdrawal set. Raising Prefect's Abort from the flow ends it without proposing
# any state (the engine takes it as the orchestrator's refusal). The public API has no "end this
# run as it stands".


def end_as_stopped(reason: str) -> NoReturn:
    """End the calling flow run leaving its state as it is (Cancelled by whoever stopped it)."""
    from prefect.exceptions import Abort

    raise Abort(reason)


# --- Test harness ------------------------------------------------------------------------------
# Used only by tests/support/, which run flows and the command line inside the test process.


def flush_event_and_log_workers() -> None:
    """Send what this process's Prefect event and log workers still hold, as Prefect's own test
    harness does. There is no public call: at exit they would retry a stopped server for a minute,
    and an event a test waits for would stay in this process."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for result in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    run_coro_as_sync(drain())


@contextmanager
def fresh_settings() -> Iterator[None]:
    """Prefect's settings as a new process would read them from the environment now. Prefect
    reads them once per process; a command run inside the test process needs the current ones."""
    from prefect.context import root_settings_context

    with root_settings_context():
        yield
