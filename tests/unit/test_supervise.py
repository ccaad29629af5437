"""The worker supervisor (ops/supervise.py) with real child processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from ops.supervise import supervise


def test_a_command_that_keeps_exiting_is_started_again_until_the_burst_is_spent():
    said: list[str] = []
    code = supervise([sys.executable, "-c", "raise SystemExit(3)"], "w1", 0, 3, 60, said.append, lambda: False)
    assert code == 1
    assert sum("worker started" in s for s in said) == 3
    assert sum("exited with 3; starting it again" in s for s in said) == 3
    assert "giving up" in said[-1]


def test_starts_outside_the_window_do_not_count_towards_the_burst():
    said: list[str] = []
    starts = 0

    def stop_after_four() -> bool:
        return starts >= 4

    def start(command: list[str]) -> subprocess.Popen:
        nonlocal starts
        starts += 1
        return subprocess.Popen(command)

    # A window shorter than the 0.3 s between starts: the burst of 2 is never reached.
    code = supervise([sys.executable, "-c", "import time; time.sleep(0.3)"], "w1", 0, 2, 0.1, said.append, stop_after_four, start)
    assert code == 0 and starts == 4


def test_a_worker_killed_by_a_signal_is_said_so_and_started_again():
    said: list[str] = []
    started: list[subprocess.Popen] = []

    def start(command: list[str]) -> subprocess.Popen:
        child = subprocess.Popen(command)
        started.append(child)
        if len(started) == 1:
            time.sleep(0.2)
            child.send_signal(signal.SIGKILL)
        return child

    supervise([sys.executable, "-c", "import time; time.sleep(0.5)"], "w1", 0, 2, 60, said.append, lambda: len(started) >= 2, start)
    assert any("killed by signal 9; starting it again" in s for s in said)
    assert len(started) == 2


def test_the_supervisor_stops_with_its_group_and_does_not_start_the_worker_again():
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.supervise", "w1", "--delay", "0", "--burst", "5", "--window", "60", "--",
         sys.executable, "-c", "import time; time.sleep(30)"],
        start_new_session=True, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)
    import os

    os.killpg(proc.pid, signal.SIGTERM)  # as Stack.stop stops a worker
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert err.count("worker started") == 1 and "starting it again" not in err
