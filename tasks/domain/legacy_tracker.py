"""Go-live import: a region's legacy tracker read as it was typed. The header row found by its
spellings, each non-blank row below it as fields (with the raw cells kept for the report), and a
cell read as text or as a date however trackers write them."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.domain.import_mapping import REQUIRED, TrackerMapping, UnreadableTracker, norm
from tasks.settings import get_settings

EXCEL_EPOCH = dt.date(1899, 12, 30)


@dataclass
class RawRow:
    number: int  # the row number Excel shows
    values: dict[str, Any]  # field -> cell value
    raw: dict[str, Any]  # header as written -> cell value as typed, blank ones too (for the report)
    unmapped: dict[str, Any] = field(default_factory=dict)  # header -> non-blank cell of a column no field took


@dataclass
class HeaderRow:
    """Which header went to which field: what a dry run shows and --strict checks."""

    number: int  # the row number Excel shows
    mapped: list[tuple[str, str]]  # (header as written, field), in column order
    ignored: list[tuple[str, str | None]]  # (header, the closest field name, or why it was not taken)
    missing: list[str]  # fields no header named

    def header_of(self, name: str) -> str | None:
        """The header as written of a field."""
        return next((h for h, f in self.mapped if f == name), None)

    def lines(self) -> list[str]:
        out = [f"header row {self.number}:"]
        out += [f"  {h!r} -> {f}" for h, f in self.mapped]
        out += [f"  {h!r} ignored" + (f" ({hint})" if hint else "") for h, hint in self.ignored]
        if self.missing:
            out.append(f"  no header for: {', '.join(self.missing)}")
        return out


def closest_field(header: str, mapping: TrackerMapping) -> str | None:
    """The field a header most looks like (its name or one of its spellings), if any does."""
    import difflib

    key = norm(header)
    if not key:
        return None
    names = {norm(s): f for f, spellings in mapping.columns.items() for s in (f, *spellings)}
    near = difflib.get_close_matches(key, list(names), n=1, cutoff=0.75)
    if not near:
        near = [n for n in names if len(n) >= 4 and (n in key or key in n)][:1]
    return names[near[0]] if near else None


def cell_text(value: Any) -> str:
    """A cell as the text it shows: a date as ISO, a whole number without its ".0", blank as ""."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_sheet(path: Path, mapping: TrackerMapping, sheet: str | None = None) -> tuple[HeaderRow, list[RawRow]]:
    """(which header went to which field, the non-blank rows below the header row)."""
    from openpyxl import load_workbook

    # Not data_only: a cell holding a formula gives its text ("=HYPERLINK(...)"), stored as text.
    wb = load_workbook(path, read_only=True, data_only=False)
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise UnreadableTracker(f"--sheet: {path.name} has no sheet {sheet!r}; it has: {', '.join(wb.sheetnames)}")
        ws = wb[sheet] if sheet else wb.worksheets[0]
        table = [list(r) for r in ws.iter_rows(values_only=True)]
    finally:
        wb.close()
    header_at, columns = None, {}
    for i, row in enumerate(table[:50]):
        found = {c: mapping.spellings[norm(v)] for c, v in enumerate(row) if norm(v) in mapping.spellings}
        if len(set(found.values())) >= mapping.min_header_matches:
            header_at, columns = i, found
            break
    if header_at is None:
        raise UnreadableTracker(
            f"{path.name}: no header row: no row in the first 50 names {mapping.min_header_matches} known columns "
            "(config/import_mapping.yaml; give a region's own spellings with --mapping)"
        )
    headers = [cell_text(h) for h in table[header_at]]
    width = max([len(headers), *(len(r) for r in table[header_at + 1 :])])
    headers += [""] * (width - len(headers))
    names = [h or f"column {c + 1}" for c, h in enumerate(headers)]
    taken: dict[str, int] = {}
    ignored: list[tuple[str, str | None]] = []
    for c, f in sorted(columns.items()):
        if f in taken:  # the same field twice: the first column wins, the other is kept as history
            del columns[c]
            ignored.append((names[c], f"{f} is already {names[taken[f]]!r}"))
        else:
            taken[f] = c
    missing = [f for f in REQUIRED if f not in taken]
    if "name" not in taken and not {"first_name", "last_name"} <= set(taken):
        missing.append("name")
    if missing:
        raise UnreadableTracker(
            f"{path.name} row {header_at + 1}: no column for {', '.join(missing)} (config/import_mapping.yaml)"
        )
    spare = [c for c in range(width) if c not in columns and names[c] not in {h for h, _ in ignored}]
    for c in spare:
        if headers[c] or any(c < len(r) and cell_text(r[c]) != "" for r in table[header_at + 1 :]):
            hint = closest_field(headers[c], mapping)
            ignored.append((names[c], f"closest field: {hint}" if hint else None))
    ignored_names = {h for h, _ in ignored}
    header = HeaderRow(
        number=header_at + 1,
        mapped=[(names[c], f) for c, f in sorted(columns.items())],
        ignored=sorted(ignored, key=lambda x: names.index(x[0])),
        missing=[f for f in mapping.columns if f not in taken and f not in {"name", "first_name", "last_name"}],
    )
    rows = []
    for number, row in enumerate(table[header_at + 1 :], start=header_at + 2):
        if all(cell_text(v) == "" for v in row):
            continue  # blank rows between blocks are not bad rows
        row = row + [None] * (width - len(row))
        values = {f: row[c] for c, f in columns.items()}
        raw = {names[c]: row[c] for c in range(width) if headers[c] or cell_text(row[c]) != ""}
        unmapped = {names[c]: row[c] for c in range(width) if names[c] in ignored_names and cell_text(row[c]) != ""}
        rows.append(RawRow(number, values, raw, unmapped))
    return header, rows


def parse_date(value: Any, mapping: TrackerMapping) -> dt.date | None:
    """A date cell, an Excel serial, or text as trackers write it: 21/05/2026, 21/05/26, 23.06.26,
    2026-05-21, 21 May 2026, 21-May-26. Blank or "N/A" is None; anything else is ValueError."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 1 <= value < 2958466:  # Excel's serial range (to 9999-12-31)
            return EXCEL_EPOCH + dt.timedelta(days=int(value))
        raise ValueError(f"{value!r} is not a date")
    text = re.sub(r"\s+", " ", str(value or "")).strip()
    if norm(text) in mapping.not_applicable:
        return None
    if re.fullmatch(r"\d{5}", text):
        return EXCEL_EPOCH + dt.timedelta(days=int(text))
    for fmt in ("%d/%m/%Y", "%d/%m/%y", "%d.%m.%Y", "%d.%m.%y", "%d-%m-%Y", "%d-%m-%y", "%Y-%m-%d", "%d %B %Y", "%d %b %Y",
                "%d-%b-%y", "%d-%b-%Y", "%d %b %y"):  # fmt: skip
        try:
            day = dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if "%y" in fmt and day > get_settings().current_date() + dt.timedelta(days=366):
            day = day.replace(year=day.year - 100)  # 23.06.65 is a date of birth in 1965, not 2065
        return day
    raise ValueError(f"{text!r} is not a date (like 21/05/2026)")
