"""How fast the `casetransfer` command starts: each command as a new process, timed from spawn to
exit, the fastest of several runs, beside `python -c pass` measured in the same run.

    python bench/cli_startup.py [--runs 7]

Targets (issue 15): `--help`, `working-days` and `locate` under 0.6 s each, `status` under 1 s.
A temporary data folder holds a small seeded store (for `status`) and the locator's index, both
made before timing starts, so the project's own .data is left alone. No Prefect server is needed:
none of these commands talks to one. The machine is shared: the fastest run is the figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("casetransfer"))
AS_OF = "2026-11-20"
QUERY = """
from sqlalchemy import select
from tasks.store.models import Nsi
from tasks.store.unit_of_work import UnitOfWork
with UnitOfWork() as uow:
    print(uow.session.scalars(select(Nsi.reference).order_by(Nsi.reference).limit(1)).one())
"""


def fastest(argv: list[str], env: dict[str, str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        # A port nothing listens on: the start-up check for a local Prefect server is refused at once.
        env = {**os.environ, "CASETRANSFER_DATA_DIR": tmp, "CASETRANSFER_PREFECT_API_URL": "http://127.0.0.1:9/api"}
        env.pop("PREFECT_API_URL", None)
        subprocess.run(
            [CLI, "seed", "--transfers", "20", "--seed", "1", "--as-of", AS_OF], env=env, check=True, capture_output=True
        )
        subprocess.run([CLI, "locate", "LS1 4AP"], env=env, check=True, capture_output=True)  # builds the index
        reference = (
            subprocess.run(
                [sys.executable, "-c", QUERY],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            or "CT000001"
        )
        rows = [
            ("python -c pass", [sys.executable, "-c", "pass"], None),
            ("casetransfer --help", [CLI, "--help"], 0.6),
            ("casetransfer working-days 2026-12-01 5", [CLI, "working-days", "2026-12-01", "5"], 0.6),
            ("casetransfer locate LS1 4AP", [CLI, "locate", "LS1", "4AP"], 0.6),
            (f"casetransfer status {reference}", [CLI, "status", reference], 1.0),
        ]
        results = [(label, fastest(argv, env, args.runs), target) for label, argv, target in rows]
    base = results[0][1]
    print(f"CLI start-up, fastest of {args.runs} runs each (seconds; a new process every run)")
    for label, seconds, target in results:
        verdict = "" if target is None else f"target < {target:.1f} s: {'PASS' if seconds < target else 'FAIL'}"
        print(f"  {label:<42} {seconds:6.3f} s  ({seconds - base:+.3f} s over python -c pass)  {verdict}")
    if any(target is not None and seconds >= target for _, seconds, target in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
