"""The Prefect CLI with the server's modules frozen out of the garbage collector's full passes.

    python -m ops.prefect_frozen server start --host ... --port ...

Exactly `prefect server start`, in the same process, after importing the server's modules and
calling gc.freeze(). Why: the API server is one Python process, and a full (oldest-generation)
collection walks every object it holds, imported modules included. Listing a page of 200
suspended runs allocates enough to set one off every ~15 requests, and each stalled the API
for ~350 ms on this machine; with the modules frozen the pauses are ~160 ms (bench/load.py).
The production profile starts its server this way (ops.stack.Stack.server_gc_freeze).
"""

from __future__ import annotations

import gc

if __name__ == "__main__":
    from ops.prefect_internals import tested

    if tested("the frozen server start (ops.prefect_frozen)"):
        import prefect.server.api.server  # noqa: F401  (imported for its side effect: everything the server loads)

        gc.collect()
        gc.freeze()  # what is alive now lives as long as the process: never scan it again
    from prefect.cli import app

    app()
