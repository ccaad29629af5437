"""Go-live import: what one import of a tracker did (rows read, NSIs created, rows imported before,
bad rows), as a line for the command and the flow, and as the report workbook beside the input."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tasks.domain.import_rows import BadRow
from tasks.domain.legacy_tracker import cell_text


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

    def line(self) -> str:
        verb = "would be created" if self.dry_run else "created"
        return (
            f"{self.source}: {self.rows} rows; {len(self.created)} NSIs {verb}, {len(self.skipped)} imported before "
            f"(skipped), {len(self.bad)} bad" + (f"; report: {self.report}" if self.report else "")
        )


def report_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.import-report.xlsx")


def write_report(path: Path, result: ImportResult) -> Path:
    """Beside the input: every bad row (row number, CRN, reason, the raw values), and a summary.
    Written with strings kept as strings: nothing a tracker held becomes a formula."""
    import xlsxwriter

    out = report_path(path)
    tmp = out.with_suffix(".tmp.xlsx")
    book = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False})
    bold = book.add_format({"bold": True})
    ws = book.add_worksheet("Bad rows")
    raw_headers: list[str] = []
    for b in result.bad:
        raw_headers += [h for h in b.raw if h not in raw_headers]
    for c, h in enumerate(["Row", "CRN", "Reason", *raw_headers]):
        ws.write_string(0, c, h, bold)
    for r, b in enumerate(result.bad, start=1):
        ws.write_number(r, 0, b.number)
        ws.write_string(r, 1, b.crn)
        ws.write_string(r, 2, b.reason)
        for c, h in enumerate(raw_headers, start=3):
            if h in b.raw:
                ws.write_string(r, c, cell_text(b.raw[h]))
    ws.set_column(2, 2, 80)
    ws.freeze_panes(1, 0)
    s = book.add_worksheet("Summary")
    verb = "To create (dry run)" if result.dry_run else "Created"
    for r, (label, value) in enumerate(
        [
            ("File", result.source),
            ("Rows", result.rows),
            (verb, len(result.created)),
            ("Imported before (skipped)", len(result.skipped)),
            ("Bad", len(result.bad)),
        ]  # fmt: skip
    ):
        s.write_string(r, 0, label, bold)
        s.write(r, 1, value) if isinstance(value, int) else s.write_string(r, 1, value)
    book.close()
    tmp.replace(out)
    return out
