"""Go-live import: what one import of a tracker did (rows read, NSIs created, rows imported before,
bad rows), as a line for the command and the flow, and as the report workbook beside the input."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.domain.import_rows import BadRow
from tasks.domain.legacy_tracker import HeaderRow


@dataclass
class ImportResult:
    source: str
    rows: int = 0
    created: list[str] = field(default_factory=list)  # references
    skipped: list[str] = field(default_factory=list)  # references imported before
    bad: list[BadRow] = field(default_factory=list)
    report: Path | None = None
    seconds: float = 0.0
    dry_run: bool = False
    header: HeaderRow | None = None  # which header went to which field

    def at_fault(self, bad: BadRow) -> list[str]:
        """The columns at fault, by their headers as written (a field the file has no column for by name)."""
        fields = dict.fromkeys(r.split(":", 1)[0] for r in bad.reasons)
        return [(self.header.header_of(f) if self.header else None) or f for f in fields]

    def ignored_line(self) -> str | None:
        if self.header is None or not self.header.ignored:
            return None
        return "headers not imported as fields (their cells are kept as history lines): " + "; ".join(
            f"{h!r}" + (f" ({hint})" if hint else "") for h, hint in self.header.ignored
        )

    def line(self) -> str:
        verb = "would be created" if self.dry_run else "created"
        return (
            f"{self.source}: {self.rows} rows; {len(self.created)} NSIs {verb}, {len(self.skipped)} imported before "
            f"(skipped), {len(self.bad)} bad" + (f"; report: {self.report}" if self.report else "")
        )


def report_path(path: Path) -> Path:
    """Where the report goes when --report does not say: beside the input."""
    return path.with_name(f"{path.stem}.import-report.xlsx")


def write_report(out: Path, result: ImportResult) -> Path:
    """Every bad row (row number, CRN, reason, the columns at fault, then every cell as typed, a
    blank one blank), the mapping used, and a summary. Strings are written as strings: nothing a
    tracker held becomes a formula."""
    import xlsxwriter

    tmp = out.with_name(f".{out.stem}.tmp.xlsx")
    book = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False})
    bold = book.add_format({"bold": True})
    day = book.add_format({"num_format": "dd/mm/yyyy"})
    stamp = book.add_format({"num_format": "dd/mm/yyyy hh:mm"})
    ws = book.add_worksheet("Bad rows")
    raw_headers: list[str] = []
    for b in result.bad:
        raw_headers += [h for h in b.raw if h not in raw_headers]
    for c, h in enumerate(["Row", "CRN", "Reason", "Columns at fault", *raw_headers]):
        ws.write_string(0, c, h, bold)
    for r, b in enumerate(result.bad, start=1):
        ws.write_number(r, 0, b.number)
        ws.write_string(r, 1, b.crn)
        ws.write_string(r, 2, b.reason)
        ws.write_string(r, 3, ", ".join(result.at_fault(b)))
        for c, h in enumerate(raw_headers, start=4):
            _write_as_typed(ws, r, c, b.raw.get(h), day, stamp)
    ws.set_column(2, 2, 80)
    ws.set_column(3, 3, 30)
    ws.freeze_panes(1, 0)
    if result.header is not None:
        m = book.add_worksheet("Mapping")
        for c, h in enumerate(["Header", "Field", "Note"]):
            m.write_string(0, c, h, bold)
        lines = [(h, f, "") for h, f in result.header.mapped]
        lines += [(h, "", f"ignored: kept as history lines{'; ' + hint if hint else ''}") for h, hint in result.header.ignored]
        lines += [("", f, "no header") for f in result.header.missing]
        for r, line in enumerate(lines, start=1):
            for c, text in enumerate(line):
                m.write_string(r, c, text)
        m.set_column(0, 2, 40)
    s = book.add_worksheet("Summary")
    verb = "To create (dry run)" if result.dry_run else "Created"
    for r, (label, value) in enumerate(
        [
            ("File", result.source),
            ("Rows", result.rows),
            (verb, len(result.created)),
            ("Imported before (skipped)", len(result.skipped)),
            ("Bad", len(result.bad)),
            ("Headers ignored", len(result.header.ignored) if result.header else 0),
        ]  # fmt: skip
    ):
        s.write_string(r, 0, label, bold)
        s.write(r, 1, value) if isinstance(value, int) else s.write_string(r, 1, value)
    book.close()
    tmp.replace(out)
    return out


def _write_as_typed(ws: Any, r: int, c: int, value: Any, day: Any, stamp: Any) -> None:
    """The cell as the tracker held it: a date a date, a number a number, text as text, blank blank."""
    if value is None:
        return
    if isinstance(value, bool):
        ws.write_boolean(r, c, value)
    elif isinstance(value, dt.datetime):
        ws.write_datetime(r, c, value, day if value.time() == dt.time() else stamp)
    elif isinstance(value, dt.date):
        ws.write_datetime(r, c, dt.datetime(value.year, value.month, value.day), day)
    elif isinstance(value, int | float):
        ws.write_number(r, c, value)
    else:
        ws.write_string(r, c, str(value))
