"""Check that the tracker writes the same workbooks as before a change, cell by cell.

    python bench/tracker_same_cells.py --before DIR --store sqlite:////path/store.sqlite [--as-of 2026-11-20]

DIR holds the workbooks an earlier version wrote from the same store for the same day
(DIR/<region>.xlsx and national.xlsx). This writes them again into a temporary folder and compares
each sheet's cells (value, type, number format), merged ranges, conditional formats (ranges and
formulas), column widths, frozen panes and filters, read back with openpyxl. When the file was
written (the workbook's properties) is not compared. Exits 1 naming the first differences.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import openpyxl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sheet_facts(ws: Any) -> dict[str, Any]:
    return {
        "cells": [
            [(c.value, c.data_type, c.number_format if c.value is not None else None) for c in row] for row in ws.iter_rows()
        ],
        "merged": sorted(str(r) for r in ws.merged_cells.ranges),
        "conditional": sorted(
            (str(cf.sqref), tuple(tuple(r.formula or ()) for r in cf.rules)) for cf in ws.conditional_formatting
        ),
        "widths": {k: d.width for k, d in ws.column_dimensions.items()},
        "frozen": ws.freeze_panes,
        "filter": ws.auto_filter.ref,
    }


def differences(before: Path, after: Path) -> list[str]:
    found: list[str] = []
    names = sorted(p.name for p in before.glob("*.xlsx"))
    if names != sorted(p.name for p in after.glob("*.xlsx")):
        return [f"workbooks differ: {names} vs {sorted(p.name for p in after.glob('*.xlsx'))}"]
    for name in names:
        a, b = openpyxl.load_workbook(before / name), openpyxl.load_workbook(after / name)
        if a.sheetnames != b.sheetnames:
            found.append(f"{name}: sheets {a.sheetnames} vs {b.sheetnames}")
            continue
        for sheet in a.sheetnames:
            fa, fb = sheet_facts(a[sheet]), sheet_facts(b[sheet])
            for key in fa:
                if fa[key] != fb[key]:
                    found.append(f"{name} {sheet!r}: {key} differ")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--as-of", default="2026-11-20")
    args = parser.parse_args()
    from tasks.reports.tracker import run_tracker

    with tempfile.TemporaryDirectory(prefix="tracker-after-") as tmp:
        run = run_tracker(dt.date.fromisoformat(args.as_of), Path(tmp), url=args.store, workers=1)
        found = differences(args.before, run.folder)
        n = len(list(run.folder.glob("*.xlsx")))
    if found:
        print("\n".join(found))
        sys.exit(1)
    print(f"{n} workbooks: the same cells, formats, conditional formats, widths, panes and filters as {args.before}")


if __name__ == "__main__":
    main()
