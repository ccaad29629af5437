"""The nightly MIS tracker: one Excel workbook per region and a national summary, the night as a
whole. Regions are written by a small process pool: the work is CPU-bound and the machine has two
cores. The night is run_tracker, for `casetransfer tracker` and the tests; the nightly-tracker
flow drives the same steps as Prefect tasks.

The parts, each its own module: tracker_read (configuration, reading the store, a region's
slice), tracker_figures (police checks, compliance, headline figures), region_workbook and
national_workbook (what each workbook holds, sheet by sheet), the sheets of their own
(timeliness_sheets, handover_sheet, outcome_sheets, youth_measures), tracker_words (codes in a
manager's words), workbook (the XlsxWriter writer and the spliced rows). The names callers use
are imported here, so `tasks.reports.tracker` stays the one door."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tasks.places.estate import load_estate
from tasks.reports.national_workbook import write_national
from tasks.reports.region_workbook import build_region_sheets
from tasks.reports.tracker_figures import RegionResult, headline
from tasks.reports.tracker_read import (
    RegionInput,
    TrackerConfig,
    TrackerData,
    _peak_rss_mb,
    load_data,
    load_tracker_config,
    region_input,
)
from tasks.reports.tracker_words import plain_words
from tasks.reports.workbook import Book
from tasks.settings import get_settings


def write_region(inp: RegionInput, path: Path, fast_rows: bool = True) -> RegionResult:
    """Build and write one region's workbook; atomic (written beside, then renamed), so a reader
    never opens a half-written file."""
    import time

    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".xlsx", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    book = Book(tmp, inp.config.layout, fast_rows=fast_rows)
    try:
        result = build_region_sheets(book, inp)
        book.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    result.path = str(path)
    result.seconds = time.perf_counter() - started
    result.peak_rss_mb = _peak_rss_mb()
    return result


# --------------------------------------------------------------------------- a whole night


@dataclass
class TrackerRun:
    as_of: dt.date
    folder: Path
    regions: list[RegionResult]
    national: Path
    seconds: float
    data: TrackerData | None = None  # what was read (the flow's artifact counts from it)


def output_folder(out_dir: Path | None, as_of: dt.date) -> Path:
    return Path(out_dir or get_settings().effective_tracker_dir) / as_of.isoformat()


def check_region(code: str | None) -> str | None:
    """The region code upper-cased, or ValueError naming the known codes."""
    if code is None:
        return None
    regions = load_estate().regions
    code = code.strip().upper()
    if code not in regions:
        raise ValueError(f"region: {code!r} is not a region; regions: {', '.join(sorted(regions))}")
    return code


def region_order(data: TrackerData, only: str | None = None) -> list[str]:
    """Largest first, so that the last region to finish is a small one (better packing)."""
    codes = [only] if only else sorted(data.regions)
    size = {c: int(((data.actions["t_region"] == c) | (data.actions["r_region"] == c)).sum()) for c in codes}
    return sorted(codes, key=lambda c: -size[c])


def _write_region_job(inp: RegionInput, path: str) -> RegionResult:
    return write_region(inp, Path(path))


def make_pool(workers: int) -> Executor | None:
    # spawn, not fork: the flow runs inside Prefect's threads, and forking a threaded process can
    # deadlock on a lock some other thread held. The region slices are pickled to the workers.
    if workers <= 1:
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


def submit_region(
    pool: Executor | None, data: TrackerData, code: str, folder: Path, config: TrackerConfig | None = None
) -> Future[RegionResult]:
    inp = region_input(data, code, config)
    path = folder / f"{code}.xlsx"
    if pool is None:
        fut: Future[RegionResult] = Future()
        try:
            fut.set_result(write_region(inp, path))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)
        return fut
    return pool.submit(_write_region_job, inp, str(path))


@dataclass(frozen=True)
class NightSteps:
    """The night's three steps. The nightly-tracker flow passes them wrapped as Prefect tasks
    (each shows in the UI, a region a task); `casetransfer tracker` and the tests take them as
    they are (direct_steps)."""

    read: Callable[[dt.date], TrackerData]
    # Writes the regions' workbooks (on the pool, if any) and yields each result as it is done.
    write_regions: Callable[[TrackerData, list[str], Path, Executor | None], Iterable[RegionResult]]
    write_national: Callable[[TrackerData, list[RegionResult], Path], Path]


def direct_steps(url: str | None = None, config: TrackerConfig | None = None, whole: Collection[int] = ()) -> NightSteps:
    cfg = config or load_tracker_config()

    def write_regions(data: TrackerData, codes: list[str], folder: Path, pool: Executor | None) -> Iterable[RegionResult]:
        futures = [submit_region(pool, data, code, folder, cfg) for code in codes]
        return (fut.result() for fut in as_completed(futures))

    return NightSteps(
        read=lambda day: load_data(day, url, cfg, whole),
        write_regions=write_regions,
        write_national=lambda data, results, path: write_national(data, results, path, cfg),
    )


def run_tracker(
    as_of: dt.date,
    out_dir: Path | None = None,
    region: str | None = None,
    url: str | None = None,
    workers: int | None = None,
    progress: Callable[[RegionResult], None] | None = None,
    on_loaded: Callable[[TrackerData, list[str]], None] | None = None,
    steps: NightSteps | None = None,
    whole: Collection[int] = (),
) -> TrackerRun:
    """The whole night: read, write every region's workbook, the national one. The one path of
    the nightly-tracker flow (which passes its tasks as `steps`), `casetransfer tracker` and the tests."""
    import time

    started = time.perf_counter()
    cfg = load_tracker_config()
    only = check_region(region)
    steps = steps or direct_steps(url, cfg, whole)
    data = steps.read(as_of)
    codes = region_order(data, only)
    if on_loaded is not None:
        on_loaded(data, codes)
    folder = output_folder(out_dir, as_of)
    folder.mkdir(parents=True, exist_ok=True)
    n_workers = min(workers or cfg.workers, os.cpu_count() or 1, len(codes))
    pool = make_pool(n_workers)
    results: list[RegionResult] = []
    try:
        for res in steps.write_regions(data, codes, folder, pool):
            results.append(res)
            if progress is not None:
                progress(res)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    results.sort(key=lambda r: r.region_code)
    national = steps.write_national(data, results, folder / f"{cfg.national_workbook}.xlsx")
    return TrackerRun(as_of, folder, results, national, time.perf_counter() - started, data)


def artifact_table(run_results: Sequence[RegionResult], national: Path, total_nsis: int) -> list[dict[str, Any]]:
    """Rows for the Prefect table artifact: counts per region with the workbook paths. A transfer
    between two regions is in both regions' rows, so the national row takes the distinct total."""
    rows = [
        {
            "region": f"{r.region_name} ({r.region_code})",
            "nsis": r.nsis,
            "open": r.open,
            "open_overdue": r.open_overdue,
            "overdue_actions": r.overdue_actions,
            "slow_police_pdus": ", ".join(r.slow_police_pdus),
            "workbook": r.path,
        }
        for r in run_results
    ]
    rows.append(
        {
            "region": "National summary",
            "nsis": total_nsis,
            "open": "",
            "open_overdue": "",
            "overdue_actions": "",
            "slow_police_pdus": "",
            "workbook": str(national),
        }
    )
    return rows


# With the names callers use from the parts: `tasks.reports.tracker` is the one door to the tracker.
__all__ = [
    "_peak_rss_mb",
    "artifact_table",
    "Book",
    "build_region_sheets",
    "check_region",
    "headline",
    "load_data",
    "load_tracker_config",
    "make_pool",
    "output_folder",
    "plain_words",
    "region_input",
    "region_order",
    "RegionResult",
    "run_tracker",
    "submit_region",
    "TrackerData",
    "TrackerRun",
    "write_national",
    "write_region",
]
