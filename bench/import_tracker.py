"""Go-live import: how long 5,000 legacy tracker rows take to be in the store (target: 60 s).

Writes an example messy tracker of N good rows (tasks/demo/legacy_trackers.py, deterministic), then
times `import_tracker` into a fresh store: reading and checking every row (a dry run), then the
real import (one transaction per row), then the same file again (every row recognised, nothing
stored). The baseline beside it is the one-at-a-time path the issue replaces: raising the same
rows' forms through transfers.register_nsi (the store half of `casetransfer raise`, no Prefect)
for a sample, scaled to N. Flow runs are not started: they follow in the background, at the
stack's rate (import_runs_per_minute).

    python bench/import_tracker.py --rows 5000 [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--baseline-sample", type=int, default=200)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    os.environ.setdefault("CASETRANSFER_TODAY", "2026-12-21")
    drop = None
    if args.store == "sqlite":
        url = f"sqlite:///{folder / 'store.sqlite'}"
    else:
        import psycopg

        name = f"bench_import_{uuid.uuid4().hex[:8]}"
        admin = psycopg.connect(args.pg.replace("+psycopg", ""), autocommit=True)
        admin.execute(f'CREATE DATABASE "{name}"')
        url, drop = args.pg.rsplit("/", 1)[0] + f"/{name}", (admin, name)
    os.environ["CASETRANSFER_DATABASE_URL"] = url

    from tasks.demo.legacy_trackers import write_example
    from tasks.domain import importer, transfers
    from tasks.domain.import_mapping import load_mapping
    from tasks.domain.import_rows import GoodRow, check_row
    from tasks.domain.legacy_tracker import read_sheet
    from tasks.places.placement import Placement
    from tasks.store.migrate import upgrade

    try:
        upgrade(url)
        t0 = time.perf_counter()
        example = write_example(folder / "tracker.xlsx", n=args.rows, seed=7, bad=False)
        written = time.perf_counter() - t0

        t0 = time.perf_counter()
        dry = importer.import_tracker(example.path, region="N07", dry_run=True)
        checked = time.perf_counter() - t0
        t0 = time.perf_counter()
        real = importer.import_tracker(example.path, region="N07")
        stored = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = importer.import_tracker(example.path, region="N07")
        repeated = time.perf_counter() - t0

        # Baseline: the same forms raised one at a time through the store's register_nsi.
        mapping = load_mapping()
        from tasks.places.estate import load_estate
        from tasks.settings import get_settings

        _, rows = read_sheet(example.path, mapping)
        today = get_settings().current_date()
        forms = [g.form for r in rows[: args.baseline_sample]
                 if isinstance(g := check_row(r, mapping, load_estate(), "N07", today), GoodRow)]  # fmt: skip
        t0 = time.perf_counter()
        for k, form in enumerate(forms):
            transfers.register_nsi(form, f"bench-baseline-{k}", placement=Placement(form.receiving_pdu_code or ""))
        per_raise = (time.perf_counter() - t0) / max(len(forms), 1)
    finally:
        if drop is not None:
            from tasks.store.session import get_engine

            get_engine.cache_clear()
            drop[0].execute(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)')

    n = len(real.created)
    print(f"store: {args.store}; {args.rows} rows written as a messy tracker in {written:.1f} s")
    print(f"read and check every row (dry run): {dry.rows} rows in {checked:.1f} s")
    print(f"import: {n} NSIs stored in {stored:.1f} s ({stored / max(n, 1) * 1000:.1f} ms a row), target 60 s: "
          f"{'met' if stored <= 60 else 'NOT met'}")  # fmt: skip
    print(f"the same file again: {len(again.created)} created, {len(again.skipped)} recognised in {repeated:.1f} s")
    print(f"baseline, register_nsi one at a time (no done work, no history of it): {per_raise * 1000:.1f} ms a row, "
          f"{per_raise * args.rows:.1f} s for {args.rows} (from {len(forms)})")  # fmt: skip


if __name__ == "__main__":
    main()
