"""Benchmark the nightly MIS tracker against the naive baseline, at several store sizes.

    python bench/tracker.py [--sizes 10000,50000,100000] [--baseline-sizes 10000,50000,100000]
                            [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test] [--as-of 2026-11-20]

For each size: a fresh SQLite store in a temporary folder, seeded with tasks.demo.seed (that time is
reported too), then, each in a fresh child process so that imports and peak memory are its own:
- ours: tasks.reports.tracker.run_tracker, all 12 regional workbooks and the national summary, as
  `casetransfer tracker` runs it (reading the store included);
- baseline: the same sheets' frames (captured from the tracker's own sheet builder), written with
  pandas `DataFrame.to_excel(engine="openpyxl")`, one workbook per region, one call per sheet.
  Only the to_excel time counts: reading and computing are not charged to the baseline.
Peak memory: VmHWM of the tracker process and of each worker process, read inside them (a
spawned worker's wait4 figure would include its parent's memory at fork). The machine is shared
by other jobs: expect +-15% on wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 60.0  # all regional workbooks and the national summary, 100k NSIs
TARGET_MB = 1500.0
TARGET_SPEEDUP = 3.0

SEED = """
import datetime as dt, json, sys, time
from tasks.store.migrate import upgrade
from tasks.demo.seed import seed
from tasks.reports.tracker import _peak_rss_mb
url, n, as_of = sys.argv[1], int(sys.argv[2]), dt.date.fromisoformat(sys.argv[3])
upgrade(url)
t = time.perf_counter()
seed(n, seed=1, as_of=as_of, url=url)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": _peak_rss_mb()}))
"""

OURS = """
import datetime as dt, json, sys, time
from pathlib import Path
from tasks.reports.tracker import _peak_rss_mb, run_tracker
url, out, as_of = sys.argv[1], Path(sys.argv[2]), dt.date.fromisoformat(sys.argv[3])
marks = {}
t = time.perf_counter()
run = run_tracker(as_of, out, url=url, on_loaded=lambda data, codes: marks.update(load=time.perf_counter() - t, nsis=len(data.nsis), actions=len(data.actions)))
print(json.dumps({
    "seconds": time.perf_counter() - t,
    "load_seconds": marks["load"],
    "nsis": marks["nsis"],
    "actions": marks["actions"],
    "region_cpu_seconds": sum(r.seconds for r in run.regions),
    "peak_mb": _peak_rss_mb(),
    "worker_peak_mb": max(r.peak_rss_mb for r in run.regions),
    "workbooks": len(run.regions) + 1,
    "bytes": sum(p.stat().st_size for p in run.folder.glob("*.xlsx")),
}))
"""

# The baseline writes exactly the frames our list sheets hold: a Book that records each list
# sheet as a DataFrame (dates as datetimes) instead of writing it.
BASELINE = """
import datetime as dt, json, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from tasks.reports import tracker
from tasks.reports.tracker import _peak_rss_mb
url, out, as_of = sys.argv[1], Path(sys.argv[2]), dt.date.fromisoformat(sys.argv[3])

class RecordingBook(tracker.Book):
    def __init__(self, path, layout):
        super().__init__(path, layout)
        self.frames = {}

    def list_sheet(self, name, cols, highlight=None, note=None, below=()):
        data = {}
        for c in cols:
            if c.kind in ("date", "month"):
                serial = np.array([np.nan if v is None else v for v in c.values], dtype=float)
                data[c.header] = pd.to_datetime(serial, unit="D", origin="1899-12-30")
            elif c.kind == "text":
                data[c.header] = pd.Series(c.values, dtype=object)
            else:
                data[c.header] = pd.Series([np.nan if v is None else v for v in c.values], dtype=float)
        self.frames[name] = pd.DataFrame(data)

data = tracker.load_data(as_of, url)
cfg = tracker.load_tracker_config()
frames = {}
scratch = Path(tempfile.mkdtemp())
for code in sorted(data.regions):
    book = RecordingBook(scratch / f"{code}.xlsx", cfg.layout)
    tracker.build_region_sheets(book, tracker.region_input(data, code, cfg))
    book.close()
    frames[code] = book.frames
del data
cells = sum(f.shape[0] * f.shape[1] for sheets in frames.values() for f in sheets.values())
out.mkdir(parents=True, exist_ok=True)
t = time.perf_counter()
for code, sheets in frames.items():
    with pd.ExcelWriter(out / f"{code}.xlsx", engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
print(json.dumps({"seconds": time.perf_counter() - t, "cells": cells, "peak_mb": _peak_rss_mb()}))
"""


def child(code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a snippet in a fresh interpreter; its JSON result, plus wall time and CPU seconds
    (wait4: the child's and its reaped descendants', so the worker processes count)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    stdout, stderr = proc.communicate()
    # communicate() reaped it; its rusage is in RUSAGE_CHILDREN, so measure the difference.
    if proc.returncode != 0:
        sys.exit(f"child failed ({proc.returncode}):\n{stderr[-4000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started  # including interpreter start and imports
    return result


def timed_child(code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = child(code, *args, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def median_run(code: str, repeat: int, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The run with the median time of `repeat` (the machine is shared: one run can be unlucky)."""
    runs = sorted((timed_child(code, *args, env=env) for _ in range(repeat)), key=lambda r: r["seconds"])
    result = runs[len(runs) // 2]
    result["all_seconds"] = [r["seconds"] for r in runs]
    return result


def pg_database(admin_url: str, name: str) -> str:
    import psycopg

    admin = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--baseline-sizes", default="10000,50000,100000", help="'' to skip the (slow) baseline")
    parser.add_argument("--as-of", default="2026-11-20")
    parser.add_argument("--pg", default="", help="also run the largest size on PostgreSQL (admin URL)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours per size; the median is reported")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    baseline_sizes = {int(s) for s in args.baseline_sizes.split(",") if s}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tracker-") as tmp:
        for n in sizes:
            db = Path(tmp) / f"store-{n}.sqlite"
            url = f"sqlite:///{db}"
            seeded = child(SEED, url, str(n), args.as_of, env=env)
            ours = median_run(OURS, args.repeat, url, str(Path(tmp) / f"ours-{n}"), args.as_of, env=env)
            base = timed_child(BASELINE, url, str(Path(tmp) / f"base-{n}"), args.as_of, env=env) if n in baseline_sizes else None
            rows.append({"n": n, "db": "sqlite", "seed": seeded, "ours": ours, "base": base})
            print(
                f"{n:>7} NSIs: seed {seeded['seconds']:.1f} s; tracker {ours['seconds']:.1f} s "
                f"(read {ours['load_seconds']:.1f} s, {ours['actions']} actions); "
                + (f"baseline to_excel {base['seconds']:.1f} s" if base else "baseline skipped"),
                flush=True,
            )
            db.unlink()
        if args.pg and sizes:
            n = max(sizes)
            url = pg_database(args.pg, "casetransfer_bench")
            seeded = child(SEED, url, str(n), args.as_of, env=env)
            ours = median_run(OURS, args.repeat, url, str(Path(tmp) / f"ours-pg-{n}"), args.as_of, env=env)
            rows.append({"n": n, "db": "postgresql", "seed": seeded, "ours": ours, "base": None})
            print(f"{n:>7} NSIs on PostgreSQL: seed {seeded['seconds']:.1f} s; tracker {ours['seconds']:.1f} s", flush=True)

    print()
    print("MIS tracker: 12 regional workbooks + national summary (median of the runs; seconds, peak RSS MB)")
    print(
        f"{'NSIs':>8} {'store':>10} {'seed s':>7} {'read s':>7} {'ours s':>7} {'runs s':>18} {'cpu s':>6} {'cpu/10k':>7} "
        f"{'main MB':>8} {'worker MB':>9} {'sum MB':>7} {'base s':>7} {'base MB':>8} {'speedup':>8}"
    )
    for r in rows:
        o, b = r["ours"], r["base"]
        total_mb = o["peak_mb"] + 2 * o["worker_peak_mb"]
        runs = "/".join(f"{x:.1f}" for x in o["all_seconds"])
        base = (
            f"{b['seconds']:>7.1f} {b['peak_mb']:>8.0f} {b['seconds'] / o['seconds']:>7.1f}x"
            if b
            else f"{'-':>7} {'-':>8} {'-':>8}"
        )
        print(
            f"{r['n']:>8} {r['db']:>10} {r['seed']['seconds']:>7.1f} {o['load_seconds']:>7.1f} {o['seconds']:>7.1f} {runs:>18} "
            f"{o['cpu']:>6.1f} {o['cpu'] / r['n'] * 10_000:>7.2f} {o['peak_mb']:>8.0f} {o['worker_peak_mb']:>9.0f} {total_mb:>7.0f} {base}"
        )
    print("ours s: run_tracker in its process (reading the store included), median run; runs s: every run, fastest first.")
    print("cpu s: user+system seconds of that run, workers included: the machine is shared, so wall time varies, CPU less.")
    print("sum MB: main + two workers' peaks (VmHWM), an upper bound on the memory in use at once.")
    print(
        "base s: pandas to_excel(engine='openpyxl'), one call per sheet, on the same frames; reading and computing not counted."
    )

    sqlite = [r for r in rows if r["db"] == "sqlite"]
    if not sqlite:
        return
    big = max(sqlite, key=lambda r: r["n"])
    o = big["ours"]
    total_mb = o["peak_mb"] + 2 * o["worker_peak_mb"]
    print()
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    print(f"target: {big['n']} NSIs in under {TARGET_S:.0f} s: {o['seconds']:.1f} s {verdict(o['seconds'] < TARGET_S)}")
    print(f"target: peak memory under {TARGET_MB:.0f} MB: {total_mb:.0f} MB {verdict(total_mb < TARGET_MB)}")
    if big["base"]:
        speedup = big["base"]["seconds"] / o["seconds"]
        print(f"target: at least {TARGET_SPEEDUP:.0f}x the baseline: {speedup:.1f}x {verdict(speedup >= TARGET_SPEEDUP)}")
    if len(sqlite) > 1:
        small = min(sqlite, key=lambda r: r["n"])
        ratio_n = big["n"] / small["n"]
        print(
            f"linear: {ratio_n:.0f}x the NSIs took {o['seconds'] / small['ours']['seconds']:.1f}x the time and "
            f"{o['cpu'] / small['ours']['cpu']:.1f}x the CPU (a fixed start-up cost, worker processes and the national "
            "summary, makes small runs dearer per NSI)"
        )
        xs = np.array([r["n"] for r in sqlite], dtype=float)
        ys = np.array([r["ours"]["cpu"] for r in sqlite])
        slope, intercept = np.polyfit(xs, ys, 1)
        worst = max(abs(y - (slope * x + intercept)) / y for x, y in zip(xs, ys, strict=True))
        print(
            f"linear fit of CPU: {intercept:.1f} s + {slope * 10_000:.2f} s per 10k NSIs; worst point off the line by {worst:.0%}"
        )


if __name__ == "__main__":
    main()
