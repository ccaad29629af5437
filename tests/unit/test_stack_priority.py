"""The stack's processes run at their niceness as processes and as scheduling groups, so that
under autogroup scheduling the API people use comes before the steps (ops.stack.set_group_nice)."""

import os
import sys
import time
from pathlib import Path

import pytest

from ops.stack import Stack, set_group_nice

AUTOGROUPS = Path("/proc/self/autogroup").exists()
needs_autogroups = pytest.mark.skipif(not AUTOGROUPS, reason="this kernel has no autogroups")
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def group_nice(pid: int) -> int:
    # "/autogroup-123 nice 10"
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def process_nice(pid: int, expected: int) -> int:
    """The process's nice value, once it is `expected` or after 5 s: Popen returns when the
    `nice` wrapper has started, a moment before it sets the value and runs the command."""
    deadline = time.monotonic() + 5
    while True:
        stat = Path(f"/proc/{pid}/stat").read_text()
        nice = int(stat[stat.rindex(")") + 2 :].split()[16])  # field 19 of proc(5)
        if nice == expected or time.monotonic() > deadline:
            return nice
        time.sleep(0.02)


@pytest.fixture
def stack(tmp_path):
    made = Stack(home=tmp_path / "prefect", port=0)
    started = []
    yield made, started
    Stack._stop(started)


@needs_autogroups
def test_a_process_started_at_a_niceness_gets_it_for_its_session_group_too(stack):
    made, started = stack
    proc = made._spawn(SLEEPER, dict(os.environ), "sleeper", nice=7)
    started.append(proc)
    assert process_nice(proc.pid, 7) == 7
    assert group_nice(proc.pid) == 7
    assert os.getsid(proc.pid) == proc.pid  # a session of its own, stopped with its children


@needs_autogroups
def test_a_process_started_without_niceness_keeps_the_default_group(stack):
    made, started = stack
    proc = made._spawn(SLEEPER, dict(os.environ), "sleeper")
    started.append(proc)
    assert process_nice(proc.pid, 0) == 0
    assert group_nice(proc.pid) == 0


@needs_autogroups
def test_a_workers_flow_runs_share_its_group_and_niceness(stack):
    made, started = stack
    # A stand-in for the worker: the same start, with a child as its flow run.
    parent = made._spawn(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)",
        ],
        dict(os.environ),
        "worker",
        9,
    )
    started.append(parent)
    children = []
    for _ in range(100):
        children = [int(p) for p in Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()]
        if children:
            break
        time.sleep(0.05)
    assert children, "the stand-in worker started no child"
    assert group_nice(children[0]) == 9
    assert (
        Path(f"/proc/{children[0]}/autogroup").read_text().split()[0]
        == Path(f"/proc/{parent.pid}/autogroup").read_text().split()[0]
    )


def test_no_group_is_changed_for_a_process_that_does_not_exist():
    assert set_group_nice(2**22 + 12345, 5) is False
