"""`casetransfer ...` as a person types it.

`cli` runs the command in this process: the same `ops.cli.main` the console script calls, with the
same arguments, environment, exit codes, stdout and stderr, without paying a new interpreter and
its imports (about 1.6 s) for every step. `cli_process` starts the installed command as a real
subprocess, for the few tests that prove the command itself works or that need two commands at once.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import traceback

from tasks.settings import ROOT

# One command at a time: sys.argv, sys.stdout and os.environ are the process's own.
_LOCK = threading.Lock()


def _fresh_state() -> None:
    """What a new process would start with: settings and the policy read from the environment
    now (a test may have pinned today or a shape since the last command)."""
    from tasks.domain.policy import get_policy
    from tasks.settings import reset_settings

    reset_settings()
    get_policy.cache_clear()


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `casetransfer ARGS` in this process; returns what a subprocess run would."""
    from ops import cli as command
    from prefect_runs.internals import fresh_settings

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with _LOCK:
        saved_env, saved_argv = dict(os.environ), sys.argv
        sys.argv = ["casetransfer", *args]
        _fresh_state()
        try:
            # Prefect reads its settings once per process: give the command the ones the
            # environment says now, as a new process would read them.
            with (
                fresh_settings(),
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
            ):
                try:
                    command.main()
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                    if isinstance(exc.code, str):
                        print(exc.code, file=sys.stderr)
                except Exception:  # what the interpreter would print before exiting 1
                    traceback.print_exc()
                    code = 1
        finally:
            sys.argv = saved_argv
            os.environ.clear()
            os.environ.update(saved_env)
            _fresh_state()
    result = subprocess.CompletedProcess(["casetransfer", *args], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"casetransfer {' '.join(args)} exited {code}:\n{result.stdout}\n{result.stderr}")
    return result


def cli_command(*args: str) -> list[str]:
    """The installed `casetransfer` command line for a subprocess."""
    return [sys.executable, "-m", "ops.cli", *args]


def cli_process(*args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run `casetransfer ARGS` as a new process with this process's environment."""
    result = subprocess.run(cli_command(*args), cwd=ROOT, capture_output=True, text=True, env=dict(os.environ), timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"casetransfer {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result
