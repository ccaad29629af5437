"""Is the hand-written worksheet XML worth keeping? The whole nightly tracker run at 100k NSIs,
written with it (XlsxWriter writes each list's first row, the rest is spliced in) and with plain
XlsxWriter constant_memory, each in a fresh process, alternating, on the same seeded store.

    python bench/tracker_writer.py [--n 100000] [--repeat 2] [--as-of 2026-11-20]

The rule (issue 15): keep the splice only if the whole run is at least 1.5x faster with it.
Both runs use the configured worker processes; the plain runs' workers are told to write plainly by
a pool initializer (a spawned worker imports the tracker afresh, so a patch in the parent is lost).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tracker import SEED, child, timed_child  # noqa: E402

KEEP_IF_AT_LEAST = 1.5

RUN = """
import datetime as dt, json, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
import tasks.reports.tracker as tracker
url, out, as_of, writer = sys.argv[1], Path(sys.argv[2]), dt.date.fromisoformat(sys.argv[3]), sys.argv[4]
if writer == "plain":
    from tracker_writer import write_plainly
    write_plainly()
    tracker.make_pool = lambda workers: None if workers <= 1 else ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=write_plainly)
t = time.perf_counter()
run = tracker.run_tracker(as_of, out, url=url)
print(json.dumps({"seconds": time.perf_counter() - t, "region_cpu_seconds": sum(r.seconds for r in run.regions),
                  "bytes": sum(p.stat().st_size for p in run.folder.glob("*.xlsx"))}))
"""


def write_plainly() -> None:
    """Pool initializer: every region workbook written by XlsxWriter alone."""
    import tasks.reports.tracker as tracker

    tracker.write_region.__defaults__ = (False,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--as-of", default="2026-11-20")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}"}
    runs: dict[str, list[dict[str, float]]] = {"splice": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'store.sqlite'}"
        seeded = child(SEED, url, str(args.n), args.as_of, env=env)
        print(f"seeded {args.n} NSIs in {seeded['seconds']:.1f} s", flush=True)
        for i in range(args.repeat):
            for writer in ("splice", "plain"):
                r = timed_child(RUN, url, str(Path(tmp) / f"{writer}-{i}"), args.as_of, writer, env=env)
                runs[writer].append(r)
                print(
                    f"{writer:>6} run {i + 1}: {r['seconds']:.1f} s wall, {r['cpu']:.1f} s CPU, {r['bytes'] / 1e6:.0f} MB",
                    flush=True,
                )
    best = {w: min(rs, key=lambda r: r["seconds"]) for w, rs in runs.items()}
    wall = best["plain"]["seconds"] / best["splice"]["seconds"]
    cpu = best["plain"]["cpu"] / best["splice"]["cpu"]
    print()
    print(f"whole nightly run, {args.n} NSIs, fastest of {args.repeat}:")
    for w, r in best.items():
        print(f"  {w:>6}: {r['seconds']:.1f} s wall, {r['cpu']:.1f} s CPU (workers included)")
    print(
        f"splice gain: {wall:.2f}x wall, {cpu:.2f}x CPU; keep if >= {KEEP_IF_AT_LEAST}x: {'KEEP' if wall >= KEEP_IF_AT_LEAST else 'REMOVE'}"
    )


if __name__ == "__main__":
    main()
