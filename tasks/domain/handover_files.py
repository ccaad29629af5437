"""import-handovers: a prison's handover list read as the OMU keeps it (issue 27).

Headers are found as import-tracker finds them: each field's spellings (config/handovers.yaml
`import_columns`, with an office's own on top through --mapping), compared with case, spaces and
punctuation ignored. A CSV is read as UTF-8 (with or without Excel's byte-order mark), UTF-16 with
its mark, or Windows-1252 (Excel's "CSV" on Windows): whichever decodes it whole, in that order;
a file none of them decodes is refused with a clear error, never a traceback.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

from tasks.config_files import decode_csv as decode
from tasks.config_files import read_yaml
from tasks.domain.import_mapping import UnreadableTracker, norm
from tasks.settings import get_settings

Row = tuple[int, dict[str, Any]]


def load_columns(fields: tuple[str, ...], mapping: Path | None = None) -> dict[str, str]:
    """Normalised header -> field: each field's own name, the config's spellings, the office's file's."""
    from tasks.domain.import_mapping import header_list

    config = get_settings().config_dir / "handovers.yaml"
    spellings: dict[str, list[str]] = {f: [f] for f in fields}
    for f, value in ((read_yaml(config) or {}).get("import_columns") or {}).items():
        if f not in spellings:
            raise ValueError(f"{config.name}: import_columns: {f!r} is not a field; fields: {', '.join(fields)}")
        spellings[f] += header_list(f"{config.name}: import_columns.{f}", value)
    if mapping is not None:
        try:
            extra = read_yaml(mapping)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--mapping: {mapping.name}: {exc}") from None
        if not isinstance(extra, dict) or set(extra) - {"columns"} or not isinstance(extra.get("columns"), dict):
            raise ValueError(f"--mapping: {mapping.name}: give `columns:` with each field's header or headers (config/handovers.yaml import_columns)")
        for f, value in extra["columns"].items():
            if f not in spellings:
                raise ValueError(f"--mapping: {mapping.name}: columns: {f!r} is not a field; fields: {', '.join(fields)}")
            spellings[f] += header_list(f"--mapping: {mapping.name}: columns.{f}", value)
    table: dict[str, str] = {}
    for f, names in spellings.items():
        for n in names:
            other = table.setdefault(norm(n), f)
            if other != f:
                raise ValueError(f"header {n!r} names two fields: {other} and {f} (config/handovers.yaml import_columns, --mapping)")
    return table


def read_table(path: Path) -> list[list[Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        text = decode(path.read_bytes(), path.name)
        return list(csv.reader(io.StringIO(text, newline="")))
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        try:
            # data_only: a formula cell gives the value Excel last computed, never the formula itself.
            wb = load_workbook(path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
            raise ValueError(f"{path.name}: not a readable .xlsx workbook ({type(exc).__name__})") from None
        try:
            return [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
        finally:
            wb.close()
    raise ValueError(f"{path.name}: must be a .csv or .xlsx file")


def read_file(path: Path, fields: tuple[str, ...], optional: frozenset[str], mapping: Path | None = None) -> tuple[list[str], list[Row]]:
    """(the header row's problems, (spreadsheet row number, values by field) for each non-blank row).
    Rows are read even when the header has problems, so that every problem is said in one pass."""
    try:
        columns = load_columns(fields, mapping)
        table = read_table(path)
    except UnreadableTracker as exc:
        raise ValueError(str(exc)) from None
    if not table:
        return [f"{path.name}: the file is empty (a header row is required)"], []
    raw = ["" if h is None else str(h).strip() for h in table[0]]
    headers = [columns.get(norm(h)) for h in raw]
    problems = []
    unknown = [h for h, f in zip(raw, headers, strict=True) if h and f is None]
    if unknown:
        problems.append(
            f"{path.name} row 1: unknown columns {', '.join(unknown)}; the fields are {', '.join(fields)} "
            "(give an office's own headers with --mapping)"
        )
    missing = [f for f in fields if f not in headers and f not in optional]
    if missing:
        problems.append(f"{path.name} row 1: missing columns {', '.join(missing)}")
    dupes = sorted({f for f in headers if f and headers.count(f) > 1})
    if dupes:
        problems.append(f"{path.name} row 1: columns given twice: {', '.join(dupes)}")
    rows = []
    for number, cells in enumerate(table[1:], start=2):
        values = {f: v for f, v in zip(headers, cells, strict=False) if f}
        if all(v is None or str(v).strip() == "" for v in values.values()):
            continue  # a blank line between blocks is not a bad row
        rows.append((number, values))
    return problems, rows
