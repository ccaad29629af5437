"""Start the pieces a transfer needs to run: a Prefect server, the deployments, workers.

Used by `casetransfer up` (the embedded default) and by the integration tests, so the tests
run the same deployments from prefect.yaml that operations staff run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ops.prefect_internals import tested
from ops.proxy import Proxy
from prefect_runs.api import RECOVER_DEPLOYMENT, api_client
from prefect_runs.internals import (
    DEPLOYMENT_RESOURCE,
    DEPLOYMENT_ROLE,
    FLOW_RUN_RESOURCE,
    NOT_RUNNING_STATE_NAMES,
    RUNNING_STATE_NAMES,
    state_event,
)
from tasks.settings import ROOT, get_settings

POOL = "casetransfer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_alive(pid: int | None) -> bool:
    """Is a process we started (its pid saved in a state file) still running?"""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def stop_started(state_file: Path, started: list[tuple[str, int | None]], say: Callable[[str], None]) -> None:
    """Stop what `up` or `up-production` started (named pids from its state file), then forget it."""
    for name, pid in started:
        if process_alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)  # each was started in its own session: its flow runs go too
            except OSError:
                os.kill(pid, signal.SIGTERM)
            say(f"stopped the {name} (pid {pid})")
    state_file.unlink()


def prefect_cmd() -> list[str]:
    return [sys.executable, "-m", "prefect"]


def set_group_nice(pid: int, nice: int) -> bool:
    """Give the scheduling group of `pid`'s session the niceness `nice`. False where the kernel
    has no such groups (autogroup off, not Linux) or refuses.

    Why a process's nice is not enough: with autogroup scheduling (on by default in many Linux
    kernels: /proc/sys/kernel/sched_autogroup_enabled), the CPU is shared out between sessions
    first, and a process's own nice value only counts against others of its session. Every
    process of the stack leads a session of its own, and so does every PostgreSQL backend: with
    `nice -n 10` alone a worker and all its flow runs still had the same share of the CPU as the
    API people use, and a list of 200 suspended transfers spent two thirds of its time waiting
    for a core (bench/load.py). Raising a group's niceness needs no privilege."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")
    except OSError:
        return False
    return True


@dataclass
class Stack:
    """A Prefect server and the workers serving casetransfer's deployments."""

    home: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    # Only for the server process, e.g. PREFECT_SERVER_DATABASE_CONNECTION_URL for PostgreSQL
    # (the production profile); workers and flow runs never open the server's database.
    server_env: dict[str, str] = field(default_factory=dict)
    # The command a worker runs for each flow run (the pool's `command` job variable). None
    # keeps Prefect's default, which starts a workspace-supervisor interpreter that then starts
    # the engine interpreter: two Prefect imports per run. A transfer runs one process per step,
    # so the production profile names the engine directly (see ops.production).
    engine_command: str | None = None
    # Start each worker under ops.launcher, which forks flow runs from a warm interpreter
    # (engine_command must then be `python -m ops.launcher`).
    prefork: bool = False
    # Run workers and their flow runs at this niceness (as processes and as a scheduling group,
    # see set_group_nice): when the CPU is short, people using the API and UI (and the server's
    # own bookkeeping) come before background steps.
    worker_nice: int = 0
    # Start the server through ops.prefect_frozen (gc.freeze() after import): shorter API pauses.
    server_gc_freeze: bool = False
    # Prefect's multi-server layout (docs.prefect.io/v3/advanced/self-hosted): API servers that
    # only answer the API, the server's services (event persister, task-run recorder, late runs,
    # pause expiry...) in a process of their own, and Redis carrying events and background work
    # between them. With `redis_url` set the stack runs that way (the server's database must be
    # PostgreSQL); with `engine_port` as well, the workers and their flow runs get an API server
    # of their own on that port, so a step's calls never queue in front of what people ask in the
    # UI or the CLI (`port`).
    redis_url: str | None = None
    engine_port: int | None = None
    # Run the workers' API server and the services at this niceness: between people (the API on
    # `port`, nice 0) and the steps themselves (`worker_nice`). When the CPU is short, a person
    # listing transfers in the UI is answered first, the bookkeeping of steps next.
    engine_nice: int = 0
    # Basic auth ("user:password") on every API server, with CSRF protection on; every child
    # (deploy, workers, their flow runs) authenticates with it. Never logged or written to a file here.
    auth_string: str | None = field(default=None, repr=False)
    # Run each worker under ops.supervise, which starts it again if it exits on its own. Off where
    # something else supervises it (systemd, `up-production --systemd`) or a test wants a worker
    # that stays dead.
    supervise: bool = True
    # nginx in front of the people's API and UI (auth_mode local or sso; ops/proxy.py): the people's
    # server then runs inside ops.people_api, refusing what does not come through nginx, and
    # `auth_string` becomes the stack's own service identity there.
    proxy: Proxy | None = None
    server: subprocess.Popen | None = None
    proxy_process: subprocess.Popen | None = None
    engine_server: subprocess.Popen | None = None
    services: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    log_dir: Path | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def engine_api_url(self) -> str:
        """The API the workers and flow runs use."""
        return f"http://127.0.0.1:{self.engine_port or self.port}/api"

    @property
    def server_processes(self) -> list[subprocess.Popen]:
        return [p for p in (self.server, self.engine_server, self.services) if p is not None]

    def messaging_env(self) -> dict[str, str]:
        """Prefect's settings for sharing events, leases and background work through Redis."""
        if not self.redis_url:
            return {}
        return {
            "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
            "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
            "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
            "PREFECT_REDIS_MESSAGING_URL": self.redis_url,
            "PREFECT_SERVER_DOCKET_URL": self.redis_url,
        }

    def child_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_URL": f"http://127.0.0.1:{self.port}",
                "PREFECT_WORKER_QUERY_SECONDS": "2",
                "PREFECT_RUNNER_POLL_FREQUENCY": "2",
                "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
                "PREFECT_LOGGING_LEVEL": "INFO",
                # Every flow run a worker starts says it is alive this often (dead_worker_automations).
                "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(get_settings().run_heartbeat_seconds),
                "PWD": str(ROOT),
            }
        )
        if self.proxy is not None:  # the links in notices and digests: where people sign in
            env["PREFECT_UI_URL"] = env["CASETRANSFER_UI_URL"] = self.proxy.url
        else:  # the UI this stack serves, unless the service names its own address (a reverse proxy's)
            env.setdefault("CASETRANSFER_UI_URL", env["PREFECT_UI_URL"])
        env.update(self.env)
        if self.auth_string:
            env["PREFECT_API_AUTH_STRING"] = self.auth_string
        env.update(extra or {})
        return env

    def auth_server_env(self) -> dict[str, str]:
        """The servers' side of auth: the credential, and CSRF protection for the UI's session."""
        if not self.auth_string:
            return {}
        return {"PREFECT_SERVER_API_AUTH_STRING": self.auth_string, "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true"}

    def _log(self, name: str):  # type: ignore[no-untyped-def]
        log_dir = self.log_dir or self.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        return open(log_dir / f"{name}.log", "ab")

    def start_server(self, timeout: float = 90.0) -> None:
        """Start the server (in the multi-server layout: the API servers and the services)."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.child_env({**self.server_env, **self.messaging_env(), **self.auth_server_env()})
        split = self.redis_url is not None
        # The first API server migrates a new database; the others start once it answers.
        if self.proxy is None:
            self.server = self._start_prefect("server", env, "server", "start", *self._api_args(self.port, split))
        else:
            self.server = self._start_people_api(env, split)
        self._wait_until_answering(self.server, self.api_url, "server", timeout)
        if self.proxy is not None and (self.proxy_process is None or self.proxy_process.poll() is not None):
            self.start_proxy()  # nginx outlives a restart of the servers behind it
        if not split:
            return
        self.services = self._start_prefect("services", env, "server", "services", "start", nice=self.engine_nice)
        if self.engine_port:
            args = self._api_args(self.engine_port, True)
            self.engine_server = self._start_prefect("engine-server", env, "server", "start", *args, nice=self.engine_nice)
            self._wait_until_answering(self.engine_server, self.engine_api_url, "engine-server", timeout)
        time.sleep(1)
        if self.services.poll() is not None:
            raise RuntimeError(f"Prefect services exited with {self.services.returncode}; see {self.home}/logs/services.log")

    def _start_people_api(self, env: dict[str, str], split: bool) -> subprocess.Popen:
        """The people's server inside ops.people_api: the proxy's secret or the service credential."""
        from ops.proxy import ensure_secret

        if not self.auth_string or self.proxy is None:
            raise ValueError("a proxy in front needs the stack's credential (auth_string): it is the service identity")
        ensure_secret(self.proxy.secret_file)
        env = {k: v for k, v in env.items() if k != "PREFECT_SERVER_API_AUTH_STRING"}
        env.update(
            {
                "CASETRANSFER_SERVICE_AUTH_STRING": self.auth_string,
                "CASETRANSFER_PROXY_SECRET_FILE": str(self.proxy.secret_file),
                "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true",
                "PREFECT_UI_API_URL": "/api",  # the browser calls the API through the proxy, never its port
            }
        )
        frozen = self.server_gc_freeze and tested("the frozen server start (ops.prefect_frozen)")
        args = [*self._api_args(self.port, split), *(["--gc-freeze"] if frozen else [])]
        return self._spawn([sys.executable, "-m", "ops.people_api", *args], env, "server")

    def start_proxy(self) -> None:
        """nginx in front of the people's server (ops/proxy.py), stopped with the stack."""
        from ops.proxy import check_conf, nginx_command, wait_until_listening, write_conf

        assert self.proxy is not None
        conf = write_conf(self.proxy, self.port)
        check_conf(conf)
        self.proxy_process = self._spawn(nginx_command(conf), dict(os.environ), "proxy")
        wait_until_listening(self.proxy, self.proxy_process)

    @staticmethod
    def _api_args(port: int, api_only: bool) -> list[str]:
        return ["--host", "127.0.0.1", "--port", str(port), *(["--no-services"] if api_only else [])]

    def _start_prefect(self, log: str, env: dict[str, str], *args: str, nice: int = 0) -> subprocess.Popen:
        frozen = self.server_gc_freeze and tested("the frozen server start (ops.prefect_frozen)")
        command = [*([sys.executable, "-m", "ops.prefect_frozen"] if frozen else prefect_cmd()), *args]
        return self._spawn(command, env, log, nice)

    def _spawn(self, command: list[str], env: dict[str, str], log: str, nice: int = 0) -> subprocess.Popen:
        """Start a process of the stack in a session of its own (so it stops with its children),
        at niceness `nice` both as a process and as a scheduling group (set_group_nice)."""
        proc = subprocess.Popen(
            ["nice", "-n", str(nice), *command] if nice else command,
            env=env,
            cwd=ROOT,
            stdout=self._log(log),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if nice:
            # Popen returns once the child has exec'd, so its new session (and group) exists.
            set_group_nice(proc.pid, nice)
        return proc

    def _wait_until_answering(self, proc: subprocess.Popen, api_url: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"Prefect {name} exited with {proc.returncode}; see {self.home}/logs/{name}.log")
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"Prefect {name} did not answer on {api_url} within {timeout:.0f} s")

    def run_prefect(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefect_cmd(), *args], env=self.child_env(), cwd=ROOT, capture_output=True, text=True, check=check
        )

    def deploy(self) -> None:
        """Create the process work pool and register every deployment in prefect.yaml."""
        # `inspect` answers by exit code; `ls` prints a table whose columns wrap the name.
        if self.run_prefect("work-pool", "inspect", POOL, check=False).returncode != 0:
            self.run_prefect("work-pool", "create", POOL, "--type", "process")
        if self.engine_command:
            self._set_engine_command(self.engine_command)
        result = self.run_prefect("--no-prompt", "deploy", "--all", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"prefect deploy failed:\n{result.stdout}\n{result.stderr}")
        ensure_automations(self.api_url, self.auth_string)

    def _set_engine_command(self, command: str) -> None:
        from prefect.workers.process import ProcessWorker

        template = ProcessWorker.get_default_base_job_template()
        template["variables"]["properties"]["command"]["default"] = command
        with api_client(self.api_url, self.auth_string) as http:
            _send(http, "PATCH", f"/work_pools/{POOL}", json={"base_job_template": template})

    def worker_command(self, name: str, pool: str = POOL) -> list[str]:
        """The command that runs a worker for `pool` (under the warm-fork launcher with `prefork`)."""
        command = [*prefect_cmd(), "worker", "start", "--pool", pool, "--type", "process", "--name", name]
        if self.prefork and tested("the warm-fork launcher (ops.launcher)"):
            # A worker without the launcher still serves a pool whose command is the launcher's:
            # with no parent to talk to, it execs `python -m prefect.engine` (ops.launcher.client).
            # A short path: Unix socket paths are limited to about 100 bytes.
            sock = Path(tempfile.gettempdir()) / f"ctl-{uuid.uuid4().hex[:12]}.sock"
            command = [sys.executable, "-m", "ops.launcher", "serve", str(sock), "--", *command]
        if self.supervise:
            settings = get_settings()
            command = [
                sys.executable, "-m", "ops.supervise", name,
                "--delay", str(settings.worker_restart_delay_seconds),
                "--burst", str(settings.worker_restart_burst),
                "--window", str(settings.worker_restart_window_seconds),
                "--", *command,
            ]  # fmt: skip
        return command

    def worker_env(self) -> dict[str, str]:
        return self.child_env({"PREFECT_API_URL": self.engine_api_url})

    def start_worker(self, name: str | None = None) -> subprocess.Popen:
        name = name or f"worker-{len(self.workers) + 1}"
        # Its flow runs stay in its session (forked by the launcher or started by the worker), so
        # they share the worker's group and its niceness.
        worker = self._spawn(self.worker_command(name), self.worker_env(), name, self.worker_nice)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        self._stop([*self.workers, *([self.proxy_process] if self.proxy_process else []), *self.server_processes])
        self.workers.clear()
        self.server = self.engine_server = self.services = self.proxy_process = None

    @staticmethod
    def _stop(procs: list[subprocess.Popen]) -> None:
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    pass
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


# Dead-worker detection. A worker killed outright (SIGKILL, a lost machine) takes its flow runs'
# processes with it and tells nobody: the server keeps those runs Running for ever. Two
# automations, evaluated by the server's triggers service, start a recover-transfers run for one
# flow run (flows.admin.recover_now decides, and reschedules only an open transfer's run):
#   - a run still pending or running `run_check_seconds` after its last state change. A live run
#     sends Prefect's heartbeat event every `run_heartbeat_seconds` (child_env); recover-transfers
#     reschedules the run if none came for `run_heartbeat_timeout_seconds`, and looks again later
#     if one did (a long step).
#   - a run that crashed (its process died under a live worker, which reports it) or failed (an
#     exception, such as the store unreachable for a moment; rescheduled a few times at most).
# Why not Prefect's own recipe (docs.prefect.io/v3/advanced/detect-zombie-flows: no heartbeat for
# a while after a heartbeat, mark the run Crashed): a run's first heartbeat goes out as its flow
# starts, over a websocket the process has yet to open, while its state changes are recorded by
# the server at once. A run that suspends or finishes within a second (most of a transfer's runs)
# has its heartbeat arrive after its last state: the trigger then saw silence, and fired, for half
# of them (measured with 3.8.8), which would crash waiting transfers. State changes are emitted by
# the server in order, so the trigger below waits on them alone.
# recover-transfers' own runs are left out, so a broken worker cannot start a chain of them.
CHECK_AUTOMATION = "casetransfer: check runs that stay running"
CRASHED_AUTOMATION = "casetransfer: reschedule crashed runs"
# The state names, and the events' names and resources, are Prefect's: prefect_runs/internals.py.


def dead_worker_automations(recover_deployment_id: str) -> list[dict]:
    """The automations (as the API takes them) that start recover-transfers for a lost run."""
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    settings = get_settings()
    not_recover = {"prefect.resource.role": DEPLOYMENT_ROLE, "prefect.resource.id": f"!{DEPLOYMENT_RESOURCE}{recover_deployment_id}"}
    recover = RunDeployment(
        source="selected", deployment_id=recover_deployment_id, parameters={"flow_run_id": "{{ event.resource.id }}"}
    )
    common = dict(
        match={"prefect.resource.id": f"{FLOW_RUN_RESOURCE}*"}, match_related=not_recover, for_each={"prefect.resource.id"}
    )
    check = AutomationCore(
        name=CHECK_AUTOMATION,
        description=(
            f"A flow run pending or running {settings.run_check_seconds:.0f} s after its last state change: recover-transfers "
            f"reschedules it if it is a transfer's and sent no heartbeat for {settings.run_heartbeat_timeout_seconds:.0f} s."
        ),
        trigger=EventTrigger(
            # Each of these (re)starts the wait; any other state ends it; the full wait fires.
            after={state_event(name) for name in RUNNING_STATE_NAMES},
            expect={state_event(name) for name in (*RUNNING_STATE_NAMES, *NOT_RUNNING_STATE_NAMES)},
            posture=Posture.Proactive,
            threshold=1,
            within=settings.run_check_seconds,
            **common,
        ),
        actions=[recover],
    )
    crashed = AutomationCore(
        name=CRASHED_AUTOMATION,
        description=(
            "A flow run crashed or failed: recover-transfers reschedules it if it is an open transfer's "
            f"(a failed one at most {settings.failed_run_reschedules} times)."
        ),
        trigger=EventTrigger(
            expect={state_event("Crashed"), state_event("Failed")}, posture=Posture.Reactive, threshold=1, within=0, **common
        ),
        actions=[recover],
    )
    # owner_resource: not accepted by the update (PUT) endpoint, and ours have none.
    return [a.model_dump(mode="json", exclude={"owner_resource"}) for a in (check, crashed)]


def _send(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One API request, tried again while the server answers 503 (the embedded server's SQLite
    database locked by its own services), as Prefect's own client does."""
    for attempt in range(6):
        response = http.request(method, url, **kwargs)
        if response.status_code not in (429, 503) or attempt == 5:
            response.raise_for_status()
            return response
        time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def ensure_automations(api_url: str, auth_string: str | None = None) -> list[str]:
    """Create or update (by name) the dead-worker automations; returns their ids. Needs the
    recover-transfers deployment, so it runs after the deployments are registered."""
    with api_client(api_url, auth_string) as http:
        response = _send(http, "GET", f"/deployments/name/{RECOVER_DEPLOYMENT}")
        ids = []
        for automation in dead_worker_automations(response.json()["id"]):
            found = _send(http, "POST", "/automations/filter", json={"automations": {"name": {"any_": [automation["name"]]}}})
            existing = [a["id"] for a in found.json()]
            if existing:
                _send(http, "PUT", f"/automations/{existing[0]}", json=automation)
                for extra in existing[1:]:  # two `up`s at once: keep one
                    _send(http, "DELETE", f"/automations/{extra}")
                ids.append(existing[0])
            else:
                ids.append(_send(http, "POST", "/automations/", json=automation).json()["id"])
    return ids
