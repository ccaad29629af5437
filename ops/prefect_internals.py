"""What the warm-fork launcher (ops/launcher.py) and the frozen server start (ops/prefect_frozen.py)
rely on inside Prefect and CPython, and the Prefect versions they were tested with.

Both are opt-in speed-ups of the production profile. On any other Prefect version each says so in
one warning and the stack starts runs and the server Prefect's own way (ops/stack.py), so an
upgrade cannot break them silently. tests/unit/test_prefect_internals.py fails when the
installed Prefect is not one of these versions or no longer has what they use: re-run the
production tests (tests/integration/test_faults.py, bench/load.py) and add the version here.

Standard library only: the launcher's per-run side imports nothing else. What the transfers
themselves rely on inside Prefect (suspend keys, suspending a run from outside, run inputs,
events, state names) is listed in prefect_runs/internals.py and checked against a real server by
tests/integration/test_prefect_contract.py.
"""

from __future__ import annotations

import sys
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

TESTED_PREFECT_VERSIONS = ("3.8.8",)

# (module, attribute) each of them reads, replaces or calls; "" = the module itself.
LAUNCHER_NEEDS = [
    ("prefect.engine", ""),  # run as __main__ in the forked child
    ("prefect.context", "refresh_global_settings_context"),  # the child re-reads the run's settings
    ("prefect.client.orchestration", "ssl"),  # replaced by a module sharing one verified TLS context
    ("threading", "_shutdown"),  # the child ends as interpreter shutdown would, without freeing the heap
    ("atexit", "_run_exitfuncs"),
]
FROZEN_SERVER_NEEDS = [
    ("prefect.server.api.server", ""),  # imported before gc.freeze()
    ("prefect.cli", "app"),  # then `prefect ...` in the same process
]


def prefect_version() -> str:
    try:
        return version("prefect")
    except PackageNotFoundError:
        return "not installed"


def missing(needs: list[tuple[str, str]]) -> list[str]:
    """What of `needs` the installed packages lack, as module[.attribute] names."""
    gone = []
    for module, attribute in needs:
        try:
            found = import_module(module)
        except ImportError:
            gone.append(module)
            continue
        if attribute and not hasattr(found, attribute):
            gone.append(f"{module}.{attribute}")
    return gone


def tested(what: str) -> bool:
    """True on a tested Prefect version; otherwise one warning on stderr naming `what` falls back."""
    installed = prefect_version()
    if installed in TESTED_PREFECT_VERSIONS:
        return True
    print(
        f"warning: {what} was tested with Prefect {', '.join(TESTED_PREFECT_VERSIONS)}, not {installed}: "
        "using Prefect's own start instead (see ops/prefect_internals.py)",
        file=sys.stderr,
    )
    return False
