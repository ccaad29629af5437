"""Keep a worker running: start it again when it exits without being asked to.

    python -m ops.supervise NAME --delay SECONDS --burst N --window SECONDS -- COMMAND...

Prefect 3.8.8's worker can exit on its own (the Paused/Pending race, seen under load), and a
worker killed outright takes nobody with it to say so. On the embedded and test stacks nothing
else would start it again; under systemd (`up-production --systemd`) `Restart=on-failure` does
this job instead. Like systemd, it gives up after `burst` starts within `window` seconds, so a
worker that cannot start (a broken config) fails visibly rather than looping.

The supervisor and COMMAND share one process group: stopping the stack (a signal to the group)
stops both, and a whole machine lost (SIGKILL to the group) loses both, as it would in life.
Only the standard library is imported: it sits beside every worker for the stack's lifetime.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable


def describe_exit(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exited with {code}"


def supervise(
    command: list[str],
    name: str,
    delay: float,
    burst: int,
    window: float,
    log: Callable[[str], None],
    stopping: Callable[[], bool],
    start: Callable[[list[str]], subprocess.Popen] = subprocess.Popen,
) -> int:
    """Run `command` until asked to stop; start it again after `delay` s whenever it exits.
    Returns the last exit code (0 when stopped on request, 1 after too many starts)."""
    starts: deque[float] = deque()
    while True:
        now = time.monotonic()
        while starts and now - starts[0] > window:
            starts.popleft()
        if len(starts) >= burst:
            log(f"{name}: started {burst} times within {window:.0f} s; giving up (see the worker's log above)")
            return 1
        starts.append(now)
        child = start(command)
        log(f"{name}: worker started (pid {child.pid})")
        code = child.wait()
        if stopping():
            return 0
        log(f"{name}: worker {describe_exit(code)}; starting it again in {delay:.0f} s")
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if stopping():
                return 0
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.supervise", description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("--delay", type=float, required=True, help="seconds before starting an exited worker again")
    parser.add_argument("--burst", type=int, required=True, help="give up after this many starts ...")
    parser.add_argument("--window", type=float, required=True, help="... within this many seconds")
    argv = sys.argv[1:] if argv is None else argv
    ours, command = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = parser.parse_args(ours)
    if not command:
        parser.error("command: give the worker's command after --")
    stop_requested = False

    def stop(signum: int, _frame: object) -> None:
        # The group got the same signal: the worker is shutting down; do not start it again.
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def log(message: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} ops.supervise: {message}", file=sys.stderr, flush=True)

    return supervise(command, args.name, args.delay, args.burst, args.window, log, lambda: stop_requested)


if __name__ == "__main__":
    sys.exit(main())
