"""Start each flow run by forking a warm interpreter instead of starting a cold one.

A transfer's flow run is a new process at every waiting step. In that process, starting Python
and importing Prefect and the flows costs about 1.5 s of CPU, most of what the step costs
(bench/load.py). The launcher imports them once, next to a worker, and forks a child per run.

    python -m ops.launcher serve SOCKET -- COMMAND...
        The warm parent: imports Prefect's engine and every flow in prefect.yaml, starts COMMAND
        (the worker) with CASETRANSFER_LAUNCHER_SOCKET=SOCKET, forks a child for each request on
        SOCKET, and exits as COMMAND exits. ops.stack.Stack.start_worker runs this when the
        stack's `prefork` is on (the production profile).

    python ops/launcher.py [ARGS...]
        The command a worker runs for each flow run (the pool's `command` job variable). It hands
        its environment, working directory and stdin/stdout/stderr to the warm parent, passes
        signals on to the child, and exits as the child did. When there is no parent to talk to
        (a worker started without one, on another host) it execs `python -m prefect.engine`, so
        one pool serves workers with and without a launcher.

Why a fork is safe here: before forking, the parent only imports modules and fills caches that
depend on nothing but files (config, the calendar, ORM mappers, pydantic schemas, a TLS context);
it starts no thread (checked in `serve`), opens no connection and reads no settings. The child
takes the run's environment, refreshes Prefect's settings and clears the project's caches, runs
`prefect.engine` as __main__, then waits for the run's threads and runs the exit handlers, so
Prefect still flushes the run's logs and events, and skips only the freeing of every object.

Only the standard library is imported at module level: the per-run command must start in
milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import NoReturn

SOCKET_ENV = "CASETRANSFER_LAUNCHER_SOCKET"
MAGIC = b"CTL1"


@dataclass
class Request:
    env: dict[str, str]
    cwd: str
    argv: list[str]
    fds: list[int]


# --- the per-run command ---------------------------------------------------------------------


def _exec_engine(argv: list[str]) -> NoReturn:
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *argv])


def client(argv: list[str]) -> NoReturn:
    path = os.environ.get(SOCKET_ENV)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if not path:
            raise OSError("no launcher")
        sock.connect(path)
    except OSError:
        sock.close()
        _exec_engine(argv)
    payload = json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "argv": argv}).encode()
    socket.send_fds(sock, [MAGIC + len(payload).to_bytes(4, "big")], [0, 1, 2])
    sock.sendall(payload)
    replies = sock.makefile("rb")
    first = replies.readline().split()
    if len(first) != 2 or first[0] != b"pid":
        print("ops.launcher: the launcher did not start the flow run", file=sys.stderr)
        sys.exit(1)
    child = int(first[1])

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signum)  # a cancellation (SIGTERM) reaches the engine as it would directly
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    last = replies.readline().split()
    if len(last) == 2 and last[0] == b"exit":
        sys.exit(int(last[1]))
    if len(last) == 2 and last[0] == b"signal":
        # Die of the same signal, so the worker sees what it would have seen (a crash, a kill).
        signum = int(last[1])
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    print("ops.launcher: lost the launcher while the flow run was running", file=sys.stderr)
    sys.exit(1)


# --- the warm parent -------------------------------------------------------------------------


def preload() -> list[str]:
    """Import the engine and every flow module the deployments name; returns what failed."""
    import importlib

    import yaml

    from tasks.settings import ROOT

    modules = [
        *("prefect.engine", "prefect.flow_engine", "prefect.task_engine", "prefect.flow_runs", "prefect.deployments.steps"),
        # What a run would otherwise import on its first use: the engine draws its graph, the
        # store picks its driver, Prefect loads its analytics (switched off, still imported).
        *("prefect.utilities.visualization", "prefect._internal.analytics"),
        *("psycopg", "sqlalchemy.dialects.postgresql.psycopg", "sqlalchemy.dialects.sqlite.pysqlite"),
    ]
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text()) or {}
    for deployment in spec.get("deployments") or []:
        path = str(deployment.get("entrypoint", "")).split(":")[0]
        if path:
            modules.append(path.removesuffix(".py").replace("/", "."))
    failed = []
    for name in dict.fromkeys(modules):
        try:
            importlib.import_module(name)
        except Exception:  # a broken flow module fails in its own runs, as it would without the launcher
            failed.append(name)
    try:
        warm()
    except Exception:  # a broken config file fails in the runs, with the runs' own message
        failed.append("config")
    return failed


# Caches that depend only on their arguments and the files they read, never on the environment,
# so a child may keep what the parent computed (every other project cache is cleared in the child).
PURE_CACHES = {("tasks.calendar", "_busdaycal"), ("tasks.calendar", "_year_holidays")}


def warm() -> None:
    """Do once, for every run to share, what each run would otherwise do on first use: parse the
    config files, build the working-day calendar, configure the ORM mappers, finish the pydantic
    models whose schemas are built lazily, and build the TLS context for API clients."""
    from sqlalchemy.orm import configure_mappers

    import tasks.store.models  # noqa: F401 (the mappers to configure)
    from tasks import config_files
    from tasks.calendar import FIRST_YEAR, LAST_YEAR, _busdaycal, _year_holidays, load_closures
    from tasks.settings import CONFIG_DIR

    config_files.preload(CONFIG_DIR)
    _busdaycal("england-and-wales", load_closures())
    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        _year_holidays("england-and-wales", year)
    configure_mappers()
    _complete_models()
    _share_tls_context()


def _complete_models() -> None:
    from pydantic import BaseModel

    seen: set[type] = set()
    todo: list[type] = [BaseModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub in seen:
                continue
            seen.add(sub)
            todo.append(sub)
            if not sub.__dict__.get("__pydantic_complete__", True):
                try:
                    sub.model_rebuild()
                except Exception:  # still incomplete: built on first use, as without the launcher
                    pass


def _share_tls_context() -> None:
    """Prefect builds a verified TLS context for every API client it makes (a few per run), and
    each parses the whole CA bundle (~40 ms of CPU). A verified context is never changed after it
    is made, so one per CA file serves them all. Only that call is shared; any other (an
    unverified context, which Prefect then alters) is made afresh as before."""
    import ssl
    import types

    import prefect.client.orchestration as orchestration

    made: dict[tuple[str, int], ssl.SSLContext] = {}

    def create_default_context(purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH, **where: object) -> ssl.SSLContext:
        cafile = where.get("cafile")
        if purpose is ssl.Purpose.SERVER_AUTH and isinstance(cafile, str) and set(where) == {"cafile"}:
            key = (cafile, os.stat(cafile).st_mtime_ns)
            if key not in made:
                made[key] = ssl.create_default_context(purpose, cafile=cafile)
            return made[key]
        return ssl.create_default_context(purpose, **where)  # type: ignore[arg-type]

    shared = types.ModuleType("ssl")
    shared.__dict__.update(vars(ssl))
    shared.create_default_context = create_default_context  # type: ignore[attr-defined]
    orchestration.ssl = shared  # type: ignore[attr-defined]
    certifi = getattr(orchestration, "certifi", None)
    if certifi is not None:
        create_default_context(cafile=certifi.where())


def _receive(conn: socket.socket) -> Request | None:
    conn.settimeout(10)
    try:
        header, fds, _, _ = socket.recv_fds(conn, 8, 3)
        if len(header) != 8 or header[:4] != MAGIC or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return None
        size, data = int.from_bytes(header[4:], "big"), b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
    except OSError:
        return None
    conn.settimeout(None)
    body = json.loads(data)
    return Request(env=body["env"], cwd=body["cwd"], argv=body["argv"], fds=fds)


def serve(path: str, command: list[str]) -> Request | int:
    """Run COMMAND and fork a child per request until COMMAND exits.

    Returns COMMAND's exit status in the parent, and the request in a forked child (the caller
    then runs the engine). Single-threaded on purpose: forking a process with other threads can
    copy a lock some thread was holding."""
    import gc
    import selectors
    import subprocess
    import threading

    from ops.prefect_internals import tested

    if not tested("the warm-fork launcher (ops.launcher)"):
        os.execvp(command[0], command)  # the worker alone: its runs start cold, Prefect's way
    # `-m` put the starting directory on sys.path as "": pin it, since children chdir elsewhere.
    sys.path[:] = [os.getcwd() if entry == "" else entry for entry in sys.path]
    failed = preload()
    if failed:
        print(f"ops.launcher: could not preload {', '.join(failed)}", file=sys.stderr)
    # Children share the parent's heap copy-on-write: keep the collector from walking (and so
    # copying) everything the parent made.
    gc.freeze()
    if threading.active_count() != 1:  # importing must not have started anything
        print("ops.launcher: threads after preloading; not forking, runs start cold", file=sys.stderr)
        os.execvp(command[0], command)
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(128)
    worker = subprocess.Popen(command, env={**os.environ, SOCKET_ENV: path})

    def stop(signum: int, _frame: object) -> None:
        worker.send_signal(signum)  # the worker shuts down; its runs' children get the same

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    children: dict[int, socket.socket] = {}
    while worker.poll() is None:
        for key, _ in sel.select(timeout=0.2):
            if key.data is None:
                conn, _ = listener.accept()
                request = _receive(conn)
                if request is None:
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    listener.close()
                    conn.close()
                    for other in children.values():
                        other.close()
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    return request
                for fd in request.fds:
                    os.close(fd)
                children[pid] = conn
                conn.sendall(f"pid {pid}\n".encode())
                sel.register(conn, selectors.EVENT_READ, pid)
            else:
                # The client never speaks after its request: readable means it has gone (killed,
                # or its worker died), and the run must not outlive it.
                conn, pid = key.fileobj, key.data
                sel.unregister(conn)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                continue
            conn = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            try:
                conn.sendall((f"signal {-code}\n" if code < 0 else f"exit {code}\n").encode())
            except OSError:
                pass
            try:
                sel.unregister(conn)
            except (KeyError, ValueError):
                pass  # already unregistered when its client went away
            conn.close()
    listener.close()
    os.unlink(path)
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return worker.returncode


def _clear_project_caches() -> None:
    """Forget anything the parent cached that could depend on its environment."""
    for name, module in list(sys.modules.items()):
        if not name.startswith(("tasks.", "flows.", "ops.")) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if (name, attr) in PURE_CACHES:
                continue
            if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == name:
                value.cache_clear()


def run_engine(request: Request) -> NoReturn:
    """In the forked child: become the flow run's process, then run the engine as __main__."""
    import runpy
    import traceback

    for target, fd in enumerate(request.fds):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update(request.env)
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()  # Prefect read its settings from the parent's environment
    _clear_project_caches()
    import prefect.engine

    sys.argv = [prefect.engine.__file__ or "prefect.engine", *request.argv]
    # run_path rather than run_module: the module is already imported (that is the point), and
    # run_module warns about re-running an imported module in every run's log.
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException:
        traceback.print_exc()
        status = 1
    _exit(status)


def _exit_status(code: object) -> int:
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
    return 1


def _exit(status: int) -> NoReturn:
    """End the run's process as interpreter shutdown would (wait for its threads, run the exit
    handlers that flush the run's logs and events), but without freeing every object: the child
    shares the warm parent's whole heap, and freeing it costs more CPU than the run did (measured
    0.6 s of 1.1 s per run, most of it copying pages that were shared)."""
    import atexit
    import threading

    threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter calls first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def main(argv: list[str]) -> int:
    if argv[:1] != ["serve"]:
        client(argv)
    if len(argv) < 4 or argv[2] != "--":
        print("usage: python -m ops.launcher serve SOCKET -- COMMAND...", file=sys.stderr)
        return 2
    outcome = serve(argv[1], argv[3:])
    if isinstance(outcome, Request):
        run_engine(outcome)  # a forked child; ends the process itself
    return outcome


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
