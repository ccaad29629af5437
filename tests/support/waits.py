"""Waits that poll for the state a test needs (never a fixed sleep), and the stack's Prefect API:
the state of a run, the Resume form the UI shows, a worker killed as a lost machine would be."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

POLL_SECONDS = 0.25


def wait_for(
    predicate: Callable[[], object], timeout: float = 90.0, what: str = "condition", show: Callable[[], object] | None = None
) -> Any:
    """Poll `predicate` until it returns something true, and return that. On a time-out the
    message includes what `show()` says then (the state the test was waiting on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    seen = f"; last seen: {show()}" if show is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")


@contextmanager
def prefect_api(stack: Any) -> Iterator[None]:
    """Prefect's client in this process talks to `stack`'s API."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: stack.api_url}):
        yield


def state_of(stack: Any, flow_run_id: str) -> str:
    """The state type of a flow run on `stack` (COMPLETED, PAUSED, ...)."""
    from prefect_runs import engine

    with prefect_api(stack):
        return engine.run_state(flow_run_id)[0]


def resume_form(client: Any, flow_run_id: str, key: str) -> dict | None:
    """The Resume form the UI shows for a run waiting at `key`: the schema, with the description
    saved beside it; None until both are saved."""
    from prefect_runs.internals import read_input, suspend_keyset

    keyset = suspend_keyset(key)
    try:
        schema, description = (read_input(client, UUID(flow_run_id), keyset[part]) for part in ("schema", "description"))
        if schema is None or description is None:
            return None
        return {**json.loads(schema), "description": json.loads(description)}
    except Exception:  # polled while the run suspends: anything unfinished is "not yet"
        return None


def kill_worker_and_its_runs(stack: Any, flow_run_id: str) -> None:
    """SIGKILL every worker and the flow run's processes, as a lost machine would: nobody gets to
    tell the server. A worker's process group holds its warm launcher and every run it forked."""
    for worker in stack.workers:
        os.killpg(worker.pid, signal.SIGKILL)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode() in environ:
            os.kill(int(pid), signal.SIGKILL)
    for worker in stack.workers:
        worker.wait()
    stack.workers.clear()


def drain_prefect_workers() -> None:
    """Send what this process's Prefect log and event workers still hold (flows run in the test
    process) while the server is up: at exit they would otherwise retry a stopped server for a minute."""
    from prefect_runs.internals import flush_event_and_log_workers

    flush_event_and_log_workers()
