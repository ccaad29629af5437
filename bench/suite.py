"""Where the test suite's time goes: the whole suite's wall time and the time of each group (unit,
store on SQLite, store on PostgreSQL, Prefect), for this checkout and a baseline measured in the
same run on the same machine.

    python bench/suite.py --baseline REV        # clone REV and this checkout's HEAD, run both suites
    python bench/suite.py --junit before.xml after.xml    # figures from two earlier runs

Each suite runs as CI runs it (`bash scripts/test.sh --junitxml=...` in a fresh clone, its own
.venv), one after the other so that they never share the two cores. A group's time is the sum of
its tests' times (set-up, call and tear-down; a session fixture's set-up, such as the Prefect
stack, counts in the first test that asks for it); the groups are read from the markers
(`-m prefect`, `-m postgres`) of the tree that ran. With --junit the groups come from this checkout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ("unit", "store SQLite", "store PostgreSQL", "Prefect")


@dataclass
class Suite:
    name: str
    wall: float | None = None
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0.0))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    failed: int = 0


def collected(tree: Path, marker: str) -> set[str]:
    """Node ids of the tests carrying `marker` in `tree`."""
    python = tree / ".venv" / "bin" / "python"
    done = subprocess.run(
        [str(python if python.exists() else sys.executable), "-m", "pytest", "--collect-only", "-q", "-m", marker,
         "-p", "no:cacheprovider"],
        cwd=tree, capture_output=True, text=True,
    )  # fmt: skip
    return {line.strip() for line in done.stdout.splitlines() if "::" in line}


def read_junit(path: Path, tree: Path, name: str, wall: float | None = None) -> Suite:
    prefect, postgres = collected(tree, "prefect"), collected(tree, "postgres")
    suite = Suite(name, wall)
    for case in ET.parse(path).getroot().iter("testcase"):
        # pytest-xdist names a grouped test "name@group".
        node = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "").split("@")[0]
        if node.startswith("tests/unit/"):
            group = "unit"
        elif node in prefect:
            group = "Prefect"
        elif node in postgres:
            group = "store PostgreSQL"
        else:
            group = "store SQLite"
        suite.seconds[group] += float(case.get("time", 0))
        suite.counts[group] += 1
        suite.failed += sum(1 for child in case if child.tag in ("failure", "error"))
    return suite


def run_suite(rev: str, work: Path, label: str) -> Suite:
    """Clone `rev` of this repository into `work`, run its test command, read its figures."""
    tree = work / label
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(tree)], check=True)
    subprocess.run(["git", "checkout", "--quiet", rev], cwd=tree, check=True)
    junit = work / f"{label}.xml"
    print(f"{label}: {rev} in {tree} ...", flush=True)
    started = time.monotonic()
    done = subprocess.run(["bash", "scripts/test.sh", f"--junitxml={junit}", "-p", "no:cacheprovider"], cwd=tree,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wall = time.monotonic() - started
    print(f"{label}: exit {done.returncode} after {wall / 60:.1f} min", flush=True)
    return read_junit(junit, tree, label, wall)


def report(before: Suite, after: Suite) -> None:
    def cell(suite: Suite, group: str) -> str:
        return f"{suite.seconds[group] / 60:6.1f} min ({suite.counts[group]:3d} tests)"

    print(f"{'group':18} {before.name:>22} {after.name:>22}")
    for group in GROUPS:
        print(f"{group:18} {cell(before, group):>22} {cell(after, group):>22}")
    total = [sum(s.seconds.values()) / 60 for s in (before, after)]
    print(f"{'sum of tests':18} {total[0]:10.1f} min {'':10} {total[1]:10.1f} min")
    if before.wall is not None and after.wall is not None:
        print(f"{'wall, whole run':18} {before.wall / 60:10.1f} min {'':10} {after.wall / 60:10.1f} min")
    print(f"{'tests / failed':18} {sum(before.counts.values()):>14} / {before.failed:<6} {sum(after.counts.values()):>14} / {after.failed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", metavar="REV", help="the revision to compare HEAD with")
    parser.add_argument("--junit", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="two JUnit XML reports")
    args = parser.parse_args()
    if args.junit:
        report(read_junit(args.junit[0], ROOT, "before"), read_junit(args.junit[1], ROOT, "after"))
        return
    if not args.baseline:
        parser.error("give --baseline REV or --junit BEFORE AFTER")
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
        before = run_suite(args.baseline, Path(tmp), "before")
        after = run_suite("HEAD", Path(tmp), "after")
        report(before, after)


if __name__ == "__main__":
    main()
