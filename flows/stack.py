"""Start the pieces a transfer needs to run: a Prefect server, the deployments, workers.

Used by `casetransfer up` (the embedded default) and by the integration tests, so the tests
run the same deployments from prefect.yaml that operations staff run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tasks.settings import ROOT

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


def prefect_cmd() -> list[str]:
    return [sys.executable, "-m", "prefect"]


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
    # so the production profile names the engine directly (see flows.production).
    engine_command: str | None = None
    # Start each worker under flows.launcher, which forks flow runs from a warm interpreter
    # (engine_command must then be `python -m flows.launcher`).
    prefork: bool = False
    # Run workers and their flow runs at this niceness: when the CPU is short, people using the
    # API and UI (and the server's own bookkeeping) come before background steps.
    worker_nice: int = 0
    # Start the server through flows.prefect_frozen (gc.freeze() after import): shorter API pauses.
    server_gc_freeze: bool = False
    server: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    log_dir: Path | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

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
                "PWD": str(ROOT),
            }
        )
        env.update(self.env)
        env.update(extra or {})
        return env

    def _log(self, name: str):  # type: ignore[no-untyped-def]
        log_dir = self.log_dir or self.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        return open(log_dir / f"{name}.log", "ab")

    def start_server(self, timeout: float = 90.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.server = subprocess.Popen(
            [
                *([sys.executable, "-m", "flows.prefect_frozen"] if self.server_gc_freeze else prefect_cmd()),
                *("server", "start", "--host", "127.0.0.1", "--port", str(self.port)),
            ],
            env=self.child_env(self.server_env),
            cwd=ROOT,
            stdout=self._log("server"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"Prefect server exited with {self.server.returncode}; see {self.home}/logs/server.log")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"Prefect server did not answer on {self.api_url} within {timeout:.0f} s")

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

    def _set_engine_command(self, command: str) -> None:
        from prefect.workers.process import ProcessWorker

        template = ProcessWorker.get_default_base_job_template()
        template["variables"]["properties"]["command"]["default"] = command
        httpx.patch(f"{self.api_url}/work_pools/{POOL}", json={"base_job_template": template}, timeout=30).raise_for_status()

    def start_worker(self, name: str | None = None) -> subprocess.Popen:
        name = name or f"worker-{len(self.workers) + 1}"
        command = [*prefect_cmd(), "worker", "start", "--pool", POOL, "--type", "process", "--name", name]
        if self.prefork:
            # A short path: Unix socket paths are limited to about 100 bytes.
            sock = Path(tempfile.gettempdir()) / f"ctl-{uuid.uuid4().hex[:12]}.sock"
            command = [sys.executable, "-m", "flows.launcher", "serve", str(sock), "--", *command]
        if self.worker_nice:
            command = ["nice", "-n", str(self.worker_nice), *command]
        worker = subprocess.Popen(
            command,
            env=self.child_env(),
            cwd=ROOT,
            stdout=self._log(name),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for proc in [*self.workers, self.server]:
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    pass
        for proc in [*self.workers, self.server]:
            if proc is not None:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
        self.workers.clear()
