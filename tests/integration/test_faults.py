"""Faults on the production profile: Prefect on PostgreSQL, the store on PostgreSQL, two workers.

Each test breaks something real (a worker SIGKILLed mid-step, the Prefect server restarted, the
domain database cut off behind a TCP proxy, the same step recorded twice at once) and checks
that the transfers carry on and that the store holds every action and history entry once.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PG_ADMIN_URL, TODAY, demo_form
from support.cli import cli, cli_command
from support.production import Production, local_proxy, pointed_at, running_production
from support.transfers import AFTER_ALLOCATION, ALLOCATION, COMPLETION, RAISED
from support.waits import wait_for

from tasks.domain import transfer_views
from tasks.settings import ROOT

pytestmark = [pytest.mark.prefect, pytest.mark.postgres]

ARGS = {"allocation": ALLOCATION, **AFTER_ALLOCATION, "completion": COMPLETION}


@pytest.fixture(scope="module")
def production_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    """`casetransfer up-production` in miniature: its own PostgreSQL databases for Prefect and the
    store and its own Redis database, an API server for people and one for the workers, the
    services in their own process, the deployments from prefect.yaml, two process workers; and,
    where nginx is installed, the proxy in front with the people's API deciding who acts (issue
    28), so every fault below is survived with it there. Locked doors, as up-production runs it:
    auth and CSRF on."""
    base = tmp_path_factory.mktemp("production")
    env = {
        "CASETRANSFER_DATA_DIR": str(ROOT / ".data"),  # shares the built postcode index
        "CASETRANSFER_TODAY": TODAY.isoformat(),
        "CASETRANSFER_OUTBOX": str(base / "outbox"),
    }
    proxy = local_proxy(base / "prefect" / "proxy", {"kim.spo": uuid.uuid4().hex})
    with running_production(PG_ADMIN_URL, base, env, workers=2, proxy=proxy) as production:
        yield production


@pytest.fixture
def prod(production_stack: Production, monkeypatch: pytest.MonkeyPatch) -> Iterator[Production]:
    """Point this process (and the CLI subprocesses it starts) at the production stack for one test."""
    with pointed_at(production_stack, monkeypatch):
        yield production_stack
    while len(production_stack.stack.workers) < 2:  # leave two workers for the next test
        production_stack.stack.start_worker(f"worker-{uuid.uuid4().hex[:4]}")


def state_of(flow_run_id: str) -> str:
    from prefect_runs import engine

    return engine.run_state(flow_run_id)[0]


def task_run(reference: str, task: str) -> str | None:
    found = transfer_views.task_round(reference, task)
    return found[2] if found is not None and found[1] == "open" else None


def suspended_at(reference: str, task: str) -> Callable[[], bool]:
    """The task is open in the store and its run is Paused in Prefect: what an operator can answer."""
    return lambda: (run := task_run(reference, task)) is not None and state_of(run) == "PAUSED"


def caught_up(reference: str) -> bool:
    """The transfer's run has read every change and is suspended again."""
    wake, seen, run_id, _ = transfer_views.wake_state(reference)
    return seen >= wake and state_of(run_id or "") in ("PAUSED", "COMPLETED")


def raise_form(tmp_path: Path, crn: str) -> str:
    path = tmp_path / f"{crn}.yaml"
    path.write_text(yaml.safe_dump(demo_form(crn=crn, raised_on=RAISED)))
    return cli("raise", str(path)).stdout.strip()


def finish(reference: str, after: list[str]) -> None:
    """Record the after-allocation tasks named, then completion, and check the run completes."""
    for task in after:
        cli("record", reference, task, *ARGS[task])
    cli("record", reference, "completion", *ARGS["completion"])
    run_id = transfer_views.status_of(reference).flow_run_id or ""
    wait_for(lambda: state_of(run_id) == "COMPLETED", what="the transfer's run to complete")
    assert transfer_views.status_of(reference).status == "completed"


def assert_recorded_exactly_once(reference: str) -> None:
    """Every action, history entry, step record and waiting task stored once; every step in the
    history has its answer stored."""
    view = transfer_views.status_of(reference)
    codes = [a.code for a in view.actions]
    assert len(codes) == len(set(codes))
    events = [(h.event, h.detail) for h in view.history]
    assert len(events) == len(set(events)), events
    steps = [h.event for h in view.history if h.event in ARGS]
    assert len(steps) == len(set(steps)) and sorted(transfer_views.recorded_steps(reference)) == sorted(steps)


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def flow_run_processes(flow_run_id: str) -> list[int]:
    """Processes running this flow run (the worker passes the id in their environment)."""
    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and marker in _environ(int(p))]


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def descends_from(pid: int, ancestor: int) -> bool:
    """Is `ancestor` this process or one of its ancestors? (Under ops.launcher the worker is
    the launcher's child and runs its flow runs through a small client process.)"""
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = parent_of(pid)
        except OSError:
            return False
    return False


def test_a_worker_sigkilled_mid_step_is_recovered_by_the_other_worker_and_nothing_is_stored_twice(prod, tmp_path):
    from services import raise_transfer
    from tasks.domain.form import parse_form

    stack = prod.stack
    # This transfer's runs (its task runs too) hold each step's task for 4 s after committing,
    # so the kill lands mid-step: recorded, and the transfer not yet woken.
    reference, _ = raise_transfer(
        parse_form(demo_form(crn="F100001", raised_on=RAISED)), job_variables={"env": {"CASETRANSFER_FAULT_DELAY_SECONDS": "4"}}
    )
    cli("record", reference, "allocation", *ARGS["allocation"])
    wait_for(suspended_at(reference, "police_checks"), what="police checks", timeout=180)
    police_run = task_run(reference, "police_checks") or ""
    cli("record", reference, "police_checks", *ARGS["police_checks"], "--no-wait")
    wait_for(lambda: "police_checks" in transfer_views.recorded_steps(reference), what="the step to commit")

    runners = flow_run_processes(police_run)
    assert runners, "the task run's process should be holding the step"
    worker_pids = {w.pid for w in stack.workers}
    victim = next(w for w in stack.workers if any(descends_from(p, w.pid) for p in runners))
    os.killpg(victim.pid, signal.SIGKILL)  # the worker, its launcher and everything they started
    for pid in runners:  # in case the worker put its runs in their own session
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    victim.wait()
    stack.workers.remove(victim)
    assert len(worker_pids) == 2 and all(w.poll() is None for w in stack.workers), "the other worker keeps running"
    assert state_of(police_run) == "RUNNING"  # the server cannot know the process died
    assert not caught_up(reference)  # recorded, but the transfer was never woken

    # The recover-transfers deployment does this on its own (an automation, or every few
    # minutes); here, at once. The re-run finds the step recorded and only wakes the transfer.
    assert reference in cli("recover", "--stale-after", "0").stdout
    wait_for(lambda: state_of(police_run) == "COMPLETED", what="the recovered task run to finish", timeout=180)
    wait_for(lambda: caught_up(reference), what="the transfer to read the recorded step", timeout=180)
    finish(reference, [t for t in AFTER_ALLOCATION if t != "police_checks"])
    assert_recorded_exactly_once(reference)


def test_transfers_waiting_when_the_prefect_server_restarts_are_still_waiting_and_resumable(prod, tmp_path):
    stack = prod.stack
    references = [raise_form(tmp_path, crn) for crn in ("F100011", "F100012", "F100013")]
    for reference in references:
        wait_for(suspended_at(reference, "allocation"), what=f"{reference} to wait at allocation", timeout=180)

    # A hard stop of every server process (both API servers and the services), as a crash or a
    # host reboot would do: nothing is left to flush.
    servers = stack.server_processes
    assert len(servers) == 3
    for proc in servers:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stack.start_server(timeout=120)

    for reference in references:
        assert suspended_at(reference, "allocation")(), f"{reference} should still be waiting"
    for reference in references:
        cli("record", reference, "allocation", *ARGS["allocation"])
    for reference in references:
        for task in AFTER_ALLOCATION:
            wait_for(suspended_at(reference, task), what=f"{reference}: {task} to open", timeout=240)
        assert_recorded_exactly_once(reference)
    assert all(w.poll() is None for w in stack.workers), "workers ride out a server restart"
    for reference in references:
        cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")


class PgProxy:
    """A TCP proxy on loopback in front of PostgreSQL that can cut the database off.

    `cut_on(marker, seconds)`: when a client sends a message containing `marker` (SQL is plain
    text on the wire without TLS), that message is not forwarded, every connection is dropped
    and new ones are refused for `seconds`: the database vanishes in the middle of a statement.
    """

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down_until = 0.0
        self.marker: bytes | None = None
        self.outage = 0.0
        self.cuts = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_on(self, marker: bytes, seconds: float) -> None:
        self.marker, self.outage = marker, seconds

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self._drop_all()

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
            sock.close()
        except OSError:
            pass

    def _drop_all(self) -> None:
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            self._reset(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                self.refused += 1
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in sel.select(timeout=1):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is client and self.marker and self.marker in data:
                        self.marker = None
                        self.cuts += 1
                        self.down_until = time.monotonic() + self.outage
                        self._drop_all()
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for sock in (client, upstream):
                with self._lock:
                    self._sockets.discard(sock)
                self._reset(sock)


@pytest.fixture
def pg_proxy() -> Iterator[PgProxy]:
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN_URL)
    proxy = PgProxy((url.host or "127.0.0.1", url.port or 5432))
    yield proxy
    proxy.close()


def _task_runs(flow_run_id: str, name_prefix: str) -> list[Any]:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])))
    return [r for r in runs if r.name.startswith(name_prefix)]


def test_the_domain_database_vanishing_mid_step_is_retried_and_the_step_is_recorded_once(prod, pg_proxy, tmp_path):
    from sqlalchemy.engine import make_url

    from services import raise_transfer
    from tasks.domain.form import parse_form

    # This transfer's runs (its task runs get the same URL) reach the store through the proxy
    # (no TLS, so the proxy sees the SQL); the CLI and this test use the database directly.
    via_proxy = (
        make_url(prod.store_url).set(host="127.0.0.1", port=pg_proxy.port, query={"sslmode": "disable"})
    ).render_as_string(hide_password=False)
    reference, _ = raise_transfer(
        parse_form(demo_form(crn="F100021", raised_on=RAISED)), job_variables={"env": {"CASETRANSFER_DATABASE_URL": via_proxy}}
    )
    wait_for(suspended_at(reference, "allocation"), what="allocation", timeout=180)
    allocation_run = task_run(reference, "allocation") or ""
    # The first attempt to write the step dies with its connection; the database then refuses
    # connections for 5 s, longer than the task's first two retries (1 s, then 2 s) wait.
    pg_proxy.cut_on(b"INSERT INTO step_record ", seconds=5)
    started = time.monotonic()
    out = cli("record", reference, "allocation", *ARGS["allocation"]).stdout
    assert "allocation recorded" in out
    assert pg_proxy.cuts == 1 and pg_proxy.refused >= 1, "the outage should have happened during the step"
    assert time.monotonic() - started >= 5
    wait_for(suspended_at(reference, "address_assessment"), what="the tasks after allocation", timeout=180)

    record_step = [r for r in _task_runs(allocation_run, "record-") if r.state and r.state.is_completed()]
    assert len(record_step) == 1 and record_step[0].run_count >= 2, [(r.name, r.run_count) for r in record_step]
    assert_recorded_exactly_once(reference)
    assert transfer_views.recorded_steps(reference)["allocation"]["practitioner"] == "Pat Receiver"
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")


def test_the_same_step_recorded_twice_at_once_is_applied_once_and_the_second_is_refused_plainly(prod, tmp_path):
    reference = raise_form(tmp_path, "F100031")
    wait_for(suspended_at(reference, "allocation"), what="allocation", timeout=180)
    command = cli_command("record", reference, "allocation", *ARGS["allocation"])
    first, second = (
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        for _ in range(2)
    )
    results = [(p.wait(timeout=180), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    _, refused_out, refused_err = next(r for r in results if r[0] != 0)
    assert re.search(r"allocation .*already (recorded|answered)", refused_err) and "Traceback" not in refused_err, refused_err
    wait_for(suspended_at(reference, "address_assessment"), what="the tasks after allocation", timeout=180)
    assert_recorded_exactly_once(reference)
    assert [h.event for h in transfer_views.status_of(reference).history].count("allocation") == 1
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")


def test_a_transfer_left_waiting_without_its_form_is_given_it_back_by_recover(prod, tmp_path):
    from uuid import UUID

    from prefect.client.orchestration import get_client

    reference = raise_form(tmp_path, "F100041")
    wait_for(suspended_at(reference, "allocation"), what="allocation", timeout=180)
    flow_run_id = UUID(task_run(reference, "allocation") or "")
    # Prefect saves a step's form just after the run turns Paused: a process that died in between
    # leaves the run waiting with no form. Take the form away, as that death would have.
    with get_client(sync_client=True) as client:
        keyset = client.read_flow_run(flow_run_id).state.state_details.run_input_keyset
        for key in ("schema", "description"):  # saved together, after the state: neither is there
            client.delete_flow_run_input(flow_run_id, keyset[key])

    refused = cli("record", reference, "allocation", *ARGS["allocation"], check=False)
    assert refused.returncode == 1 and "casetransfer recover" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "allocation" not in transfer_views.recorded_steps(reference)

    assert reference in cli("recover", "--stale-after", "20").stdout  # the run has waited formless 30 s
    cli("record", reference, "allocation", *ARGS["allocation"])
    wait_for(suspended_at(reference, "address_assessment"), what="the tasks after allocation", timeout=180)
    assert_recorded_exactly_once(reference)
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")


def test_the_api_servers_answer_401_without_the_credential_and_never_write_it_down(prod):
    """Without the credential: 401 on a data endpoint (and on the CSRF token a client needs before
    any POST), on the API for people and on the workers' one; a POST without both is refused before
    it is read (CSRF answers 403 first). The health check is exempt; with the credential (and its
    CSRF token, as Prefect's client fetches it) answered. The credential is in no log and not in
    prefect.yaml, while the workers (which authenticate) ran every fault above."""
    import httpx

    from prefect_runs.api import api_client

    auth = prod.env["PREFECT_API_AUTH_STRING"]
    password = auth.split(":", 1)[1]
    for api in (prod.stack.api_url, prod.stack.engine_api_url):
        assert httpx.get(f"{api}/deployments/name/case-transfer/case-transfer", timeout=30).status_code == 401
        assert httpx.get(f"{api}/csrf-token", params={"client": "x"}, timeout=30).status_code == 401
        wrong = httpx.get(f"{api}/csrf-token", params={"client": "x"}, auth=("casetransfer", "guess"), timeout=30)
        assert wrong.status_code == 401
        assert httpx.post(f"{api}/flow_runs/filter", json={"limit": 1}, timeout=30).status_code in (401, 403)
        assert httpx.get(f"{api}/health", timeout=30).status_code == 200
        with api_client(api, auth) as http:
            assert http.post("/flow_runs/filter", json={"limit": 1}).status_code == 200
    logs = [p for p in (prod.stack.home / "logs").rglob("*") if p.is_file()]
    assert logs and not [p for p in logs if password in p.read_text(errors="replace")]
    assert password not in (ROOT / "prefect.yaml").read_text()
