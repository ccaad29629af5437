"""`casetransfer down` stops the background start of imported runs that `up`'s import began,
with real processes (the command is stood in for by a sleeping Python named like it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.cli_import import background_pid_file, background_start_running
from ops.demo import take_down
from tasks.settings import reset_settings

SLEEP = "import time; time.sleep(120)"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CASETRANSFER_DATA_DIR", str(tmp_path))
    reset_settings()
    background_pid_file().parent.mkdir(parents=True)
    (tmp_path / "stack.json").write_text(json.dumps({"server": None, "worker": None, "port": 4200}))
    return tmp_path


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def _start(processes: list[subprocess.Popen], *argv: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SLEEP, *argv], start_new_session=True)
    processes.append(proc)
    return proc


def _ended(proc: subprocess.Popen, within: float = 10.0) -> bool:
    try:
        proc.wait(timeout=within)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_down_stops_the_background_start_of_imported_runs_with_the_server(data_dir, processes):
    starter = _start(processes, "start-imported-runs")
    background_pid_file().write_text(str(starter.pid))
    said: list[str] = []
    take_down(said.append)
    assert _ended(starter)
    assert said == [f"stopped the start-imported-runs (pid {starter.pid})"]


def test_a_pid_since_given_to_another_program_is_not_stopped(data_dir, processes):
    other = _start(processes)
    background_pid_file().write_text(str(other.pid))
    assert background_start_running() is None
    assert not background_pid_file().exists()
    take_down(lambda _: None)
    assert not _ended(other, within=1.0)


def test_a_finished_start_leaves_nothing_to_stop(data_dir, processes):
    finished = subprocess.Popen([sys.executable, "-c", "pass", "start-imported-runs"])
    finished.wait()
    background_pid_file().write_text(str(finished.pid))
    assert background_start_running() is None
