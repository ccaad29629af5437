"""The nightly MIS tracker, writing: an XlsxWriter workbook in constant_memory mode (the fastest
writer measured, shared/NOTES.md) with the tracker's formats, list sheets and summary blocks.

XlsxWriter writes every sheet's structure, formats, header and first data row; the other rows of
the long lists are generated as the same worksheet XML and spliced in (Book, fast_rows), which
makes a 100k-NSI night 3.3x faster end to end (bench/tracker_writer.py). constant_memory forbids
add_table, so the Excel tables are added to the finished file here too.

Safety: every piece of text is a string cell (XlsxWriter's write_string, or an inline string in
the generated rows, escaped by XlsxWriter's own functions), so a name like
'=HYPERLINK("http://x","y")' is stored as text, never as a formula."""

from __future__ import annotations

import html
import math
import os
import re
import textwrap
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xlsxwriter
from pydantic import BaseModel
from xlsxwriter.utility import _preserve_whitespace, _utf16_len, _utf16_truncate
from xlsxwriter.xmlwriter import XMLwriter

# --------------------------------------------------------------------------- writing

EXCEL_EPOCH = np.datetime64("1899-12-30", "D")


class Layout(BaseModel):
    max_column_width: int = 60
    date_format: str = "dd/mm/yyyy"
    overdue_fill: str = "#FFC7CE"
    overdue_font: str = "#9C0006"
    header_fill: str = "#1F4E78"
    lao_name: str = "Restricted (LAO)"


Kind = Literal["text", "date", "int", "num", "pct", "month"]


@dataclass
class Col:
    header: str
    kind: Kind
    values: list[Any]
    width: int = 0


def text_col(header: str, values: Any) -> Col:
    """Text values as a list of str or None (pandas 3 gives NaN for missing strings)."""
    arr = np.asarray(values, dtype=object)
    missing = pd.isna(arr)
    if missing.any():
        arr = np.where(missing, None, arr)
    return Col(header, "text", arr.tolist())


def date_col(header: str, values: Any, kind: Kind = "date") -> Col:
    """Dates as Excel serial numbers written with a date format (no per-cell datetime conversion)."""
    days = np.asarray(values).astype("datetime64[D]")
    serial = (days - EXCEL_EPOCH).astype(np.int64).astype(object)
    return Col(header, kind, np.where(np.isnat(days), None, serial).tolist())


def num_col(header: str, values: Any, kind: Kind = "int", blank_zero: bool = False) -> Col:
    """Numbers; NaN is a blank cell. blank_zero: 0 is blank too ('not overdue' reads better
    empty, and most actions are not overdue, so fewer cells to write)."""
    arr = np.asarray(values, dtype=float)
    if blank_zero:
        arr = np.where(arr == 0, np.nan, arr)
    if kind == "int":
        out = np.where(np.isnan(arr), None, np.nan_to_num(arr).astype(np.int64).astype(object))
    else:
        out = np.where(np.isnan(arr), None, arr.astype(object))
    return Col(header, kind, out.tolist())


@dataclass
class _Table:
    """A list sheet made an Excel table when the file is finished (see `_append_rows`)."""

    sheet: str
    headers: list[str]
    last_row: int  # 1-based: the header and every data row (at least one, as Excel requires)


TABLE_STYLE = "TableStyleMedium2"  # Excel's default: blue header, banded rows
TABLE_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/table"
TABLE_CONTENT = "application/vnd.openxmlformats-officedocument.spreadsheetml.table+xml"


def _table_xml(t: _Table, table_id: int) -> str:
    """The table part: a name Excel accepts, one column per header (names unique, as Excel needs)."""
    ref = f"A1:{_letter(len(t.headers) - 1)}{t.last_row}"
    seen: dict[str, int] = {}
    cols = []
    for i, h in enumerate(t.headers, start=1):
        seen[h] = seen.get(h, 0) + 1
        name = h if seen[h] == 1 else f"{h} {seen[h]}"
        cols.append(f'<tableColumn id="{i}" name="{html.escape(name, quote=True)}"/>')
    name = "T_" + re.sub(r"\W", "_", t.sheet)
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<table xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        f'id="{table_id}" name="{name}" displayName="{name}" ref="{ref}" totalsRowShown="0">'
        f'<autoFilter ref="{ref}"/><tableColumns count="{len(cols)}">{"".join(cols)}</tableColumns>'
        f'<tableStyleInfo name="{TABLE_STYLE}" showFirstColumn="0" showLastColumn="0" showRowStripes="1" showColumnStripes="0"/>'
        "</table>"
    )


def _with_table_part(xml_tail: str, rel_id: str) -> str:
    """The sheet's autofilter gives way to the table's (Excel reports overlapping ones as damage), and
    the table part is referenced where the schema puts it: last, before any extLst."""
    xml_tail = re.sub(r"<autoFilter [^>]*/>", "", xml_tail, count=1)
    part = f'<tableParts count="1"><tablePart r:id="{rel_id}"/></tableParts>'
    at = xml_tail.find("<extLst>")
    if at < 0:
        at = xml_tail.rindex("</worksheet>")
    return xml_tail[:at] + part + xml_tail[at:]


def _rels_path(sheet_part: str) -> str:
    folder, _, name = sheet_part.rpartition("/")
    return f"{folder}/_rels/{name}.rels"


@dataclass
class _Rows:
    """A list sheet's data rows after the first, appended to the finished file by `_append_rows`."""

    sheet: str
    cols: list[Col]
    n: int
    last_row: int  # 1-based, the sheet's last used row (a note sits below the list)


class Book:
    """An XlsxWriter workbook in constant_memory mode with the tracker's formats.

    fast_rows: XlsxWriter writes each list's header and first data row (so every cell format is
    registered and its style index is in the file), and the remaining rows are generated here as
    worksheet XML and spliced into the finished file. XlsxWriter spends ~4 microseconds a cell
    in Python; the generator ~0.5, which is most of a night's CPU at 100k NSIs. The cells are
    the ones XlsxWriter writes (inline strings, escaped the same way); a test checks that both
    ways give the same workbook cell for cell.
    """

    def __init__(self, path: Path, layout: Layout, fast_rows: bool = True):
        self.layout = layout
        self.path = path
        self.fast_rows = fast_rows
        self._pending: list[_Rows] = []
        self._tables: list[_Table] = []
        # strings_to_*: False so that even write() could never turn user text into a formula or link.
        self.wb = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "tmpdir": str(path.parent),
            },
        )
        wb = self.wb
        self.header = wb.add_format(
            {"bold": True, "font_color": "#FFFFFF", "bg_color": layout.header_fill, "text_wrap": True, "valign": "top"}
        )
        self.title = wb.add_format({"bold": True, "font_size": 14})
        self.bold = wb.add_format({"bold": True})
        self.note = wb.add_format({"italic": True, "font_color": "#595959"})
        self.formats: dict[Kind, Any] = {
            "text": None,
            "date": wb.add_format({"num_format": layout.date_format}),
            "month": wb.add_format({"num_format": "mmm yyyy"}),
            "int": None,
            "num": wb.add_format({"num_format": "0.0"}),
            "pct": wb.add_format({"num_format": "0.0%"}),
        }
        self.highlight = wb.add_format({"bg_color": layout.overdue_fill, "font_color": layout.overdue_font})

    def width(self, col: Col) -> int:
        if col.width:
            return col.width
        if col.kind in ("date", "month"):
            content = 11
        elif col.kind == "text":
            lengths = [len(v) for v in col.values if v is not None]
            content = max(lengths, default=0)
        else:
            content = max(
                (len(f"{v:,.1f}" if isinstance(v, float) else str(v)) for v in col.values[:5000] if v is not None), default=0
            )
        header = max((len(w) for w in col.header.split()), default=0)
        return max(8, min(self.layout.max_column_width, max(content, header) + 2))

    def list_sheet(
        self,
        name: str,
        cols: list[Col],
        highlight: tuple[str, str] | None = None,
        note: str | None = None,
        below: Sequence[Sequence[Any]] = (),
    ) -> None:
        """A list: header row frozen, autofilter, widths that fit, and one conditional-format
        rule for the whole range. `highlight` is (a column's header, a condition on its value),
        e.g. ("Days overdue (working)", ">0"): looked up by name, so adding a column moves it along."""
        ws = self.wb.add_worksheet(name)
        n = len(cols[0].values) if cols else 0
        widths = [self.width(col) for col in cols]
        # The header row is as tall as its most wrapped header: a viewer may grow it on opening, but
        # a printout or PDF (LibreOffice) keeps the default height and shows only a header's first line.
        lines = max((len(textwrap.wrap(col.header, max(w - 1, 1))) for col, w in zip(cols, widths, strict=True)), default=1)
        ws.set_row(0, 15 * max(lines, 1))
        for c, col in enumerate(cols):
            ws.set_column(c, c, widths[c])
            ws.write_string(0, c, col.header, self.header)
        writers = [
            (c, ws.write_string if col.kind == "text" else ws.write_number, col.values, self.formats[col.kind])
            for c, col in enumerate(cols)
        ]
        by_xlsxwriter = min(n, 1) if self.fast_rows else n
        for r in range(by_xlsxwriter):
            row = r + 1
            for c, write, values, fmt in writers:
                v = values[r]
                if v is not None and v != "":
                    write(row, c, v, fmt)
                elif fmt is not None and self.fast_rows:
                    ws.write_blank(row, c, None, fmt)  # registers the format: its style index is read back
        last = len(cols) - 1
        ws.freeze_panes(1, 1)
        # An Excel table (banded rows, its own filter buttons) is added when the file is finished:
        # XlsxWriter has no tables in constant_memory mode. The autofilter is its stand-in until then.
        ws.autofilter(0, 0, max(n, 1), last)
        self._tables.append(_Table(name, [c.header for c in cols], max(n, 1) + 1))
        page_setup(ws)
        if highlight and n:
            ws.conditional_format(
                1, 0, n, last, {"type": "formula", "criteria": highlight_formula(cols, *highlight), "format": self.highlight}
            )
        last_written = n  # 0-based
        if note:
            # Below the list, so that filtering and sorting the list leave it alone.
            last_written = n + 2
            ws.write_string(last_written, 0, note, self.note)
        for i, values in enumerate(below):
            # Rows under the list (e.g. a count by reason): a title row in bold, then values.
            last_written += 2 if i == 0 else 1
            for c, v in enumerate(values):
                if isinstance(v, str):
                    ws.write_string(last_written, c, v, self.bold if i == 0 else None)
                elif v is not None:
                    ws.write_number(last_written, c, v)
        if n > by_xlsxwriter:
            self._pending.append(_Rows(name, cols, n, last_written + 1))

    def close(self) -> None:
        self.wb.close()
        if self._pending or self._tables:
            _append_rows(self.path, self._pending, self._tables)


def highlight_formula(cols: Sequence[Col], header: str, condition: str) -> str:
    """The conditional format's formula for data row 2 of the column headed `header`."""
    headers = [c.header for c in cols]
    if headers.count(header) != 1:
        raise ValueError(f"highlight: no single column headed {header!r} (headers: {', '.join(headers)})")
    return f"=${_letter(headers.index(header))}2{condition}"


def page_setup(ws: Any, header_row: int = 0) -> None:
    """How every sheet prints (issue 16), set in this one place: landscape A4, every column on the
    page width (as many pages down as it takes), the header row on every page, the marking and
    page numbers in the footer. Without it a printout or PDF cut each sheet after a few columns."""
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(header_row)
    ws.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.6)
    ws.set_footer("&LOFFICIAL-SENSITIVE&C&A&RPage &P of &N")


# Cells as XlsxWriter writes inline strings (worksheet._write_cell in constant_memory mode): a
# string longer than Excel's 32,767 UTF-16 units is cut there (write_string), control characters
# become _xHHHH_ and a typed "_xHHHH_" is escaped as _x005F_xHHHH_ so that Excel shows it as typed,
# then &, < and > are escaped. XlsxWriter's own functions do it, so the two ways cannot drift apart
# for the version pinned in pyproject.toml (tests/unit/test_tracker_writer.py feeds both the same
# hostile strings). Most strings need none of it: one search decides.
XLSX_MAX_STRING = 32767  # Excel's cell limit; XlsxWriter's Worksheet.xls_strmax
_NEEDS_ESCAPE = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]|_x[0-9a-fA-F]{4}_")
_xml = XMLwriter()


def cell_text(text: str) -> str:
    """What XlsxWriter keeps of a string written to a cell: at most Excel's limit."""
    if len(text) > XLSX_MAX_STRING // 2 and _utf16_len(text) > XLSX_MAX_STRING:
        return _utf16_truncate(text, XLSX_MAX_STRING)
    return text


def _inline(text: str) -> str:
    """The <is> part of an inline string cell."""
    text = cell_text(text)
    if _NEEDS_ESCAPE.search(text):
        text = _xml._escape_data(XMLwriter._escape_control_characters(text))
    if _preserve_whitespace(text):
        return f'<is><t xml:space="preserve">{text}</t></is>'
    return f"<is><t>{text}</t></is>"


def _sheet_parts(z: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> its part in the package (from workbook.xml and its relationships)."""
    rels = {
        m.group("id"): m.group("target")
        for m in re.finditer(
            r'<Relationship Id="(?P<id>[^"]+)" Type="[^"]+/worksheet" Target="(?P<target>[^"]+)"',
            z.read("xl/_rels/workbook.xml.rels").decode(),
        )
    }
    parts = {}
    for m in re.finditer(r'<sheet name="(?P<name>[^"]+)" sheetId="\d+" r:id="(?P<id>[^"]+)"', z.read("xl/workbook.xml").decode()):
        target = rels[m.group("id")]
        parts[html.unescape(m.group("name"))] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return parts


def _row_xml(rows: _Rows, styles: dict[int, str], start: int, stop: int) -> str:
    """Rows start..stop-1 (0-based data rows) as worksheet XML, column by column then joined."""
    numbers = range(start + 2, stop + 2)
    columns = []
    for c, col in enumerate(rows.cols):
        letter = _letter(c)
        style = f' s="{styles[c]}"' if c in styles else ""
        values = col.values[start:stop]
        if col.kind == "text":
            cache: dict[str, str] = {}
            cells = []
            for rn, v in zip(numbers, values, strict=True):
                if v is None or v == "":
                    cells.append("")
                    continue
                inner = cache.get(v)
                if inner is None:
                    inner = cache[v] = _inline(v)
                cells.append(f'<c r="{letter}{rn}"{style} t="inlineStr">{inner}</c>')
        else:
            # %.16G: the digits XlsxWriter writes (Python's repr would give 17: 54.400000000000006).
            cells = [
                "" if v is None else f'<c r="{letter}{rn}"{style}><v>{v:.16G}</v></c>'
                for rn, v in zip(numbers, values, strict=True)
            ]
        columns.append(cells)
    return "".join(f'<row r="{rn}">{"".join(cells)}</row>' for rn, *cells in zip(numbers, *columns, strict=True))


ROWS_PER_CHUNK = 20_000  # of XML built at once: bounds a worker's memory on the biggest region


def _append_rows(path: Path, pending: list[_Rows], tables: Sequence[_Table] = ()) -> None:
    """Finish the file in one pass: splice each pending list's remaining rows into its sheet, after
    data row 1, and make each list sheet an Excel table (its part, relationship and content type)."""
    tmp = path.with_name(f"{path.name}.rows")
    with zipfile.ZipFile(path) as zin:
        parts = _sheet_parts(zin)
        todo = {parts[p.sheet]: p for p in pending}
        tabled = {parts[t.sheet]: (n, t) for n, t in enumerate(tables, start=1)}
        names = set(zin.namelist())
        rel_id = "rIdTable1"
        # Level 1: most of the file is these rows; 6 (XlsxWriter's) costs 3x the time for ~15% less.
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zout:

            def put(name: str, text: str) -> None:
                zout.writestr(name, text.encode("utf-8"), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)

            for info in zin.infolist():
                data = zin.read(info.filename)
                rows = todo.get(info.filename)
                table = tabled.get(info.filename)
                if info.filename == "[Content_Types].xml" and tables:
                    overrides = "".join(
                        f'<Override PartName="/xl/tables/table{n}.xml" ContentType="{TABLE_CONTENT}"/>'
                        for n in range(1, len(tables) + 1)
                    )
                    put(info.filename, data.decode("utf-8").replace("</Types>", overrides + "</Types>"))
                    continue
                if info.filename.endswith(".rels") and info.filename.startswith("xl/worksheets/_rels/"):
                    sheet = info.filename.replace("_rels/", "").removesuffix(".rels")
                    if sheet in tabled:
                        n, _ = tabled[sheet]
                        rel = f'<Relationship Id="{rel_id}" Type="{TABLE_TYPE}" Target="../tables/table{n}.xml"/>'
                        put(info.filename, data.decode("utf-8").replace("</Relationships>", rel + "</Relationships>"))
                        continue
                if rows is None and table is None:
                    zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
                    continue
                xml = data.decode("utf-8")
                if rows is None:
                    put(info.filename, _with_table_part(xml, rel_id) if table else xml)
                    continue
                first = xml.index('<row r="2"')
                cut = xml.index("</row>", first) + len("</row>")
                styles = {}
                for cell in re.finditer(r"<c ([^>]*?)/?>", xml[first:cut]):
                    ref = re.search(r'r="([A-Z]+)2"', cell.group(1))
                    style = re.search(r's="(\d+)"', cell.group(1))
                    if ref and style:
                        styles[_column_index(ref.group(1))] = style.group(1)
                last = _letter(len(rows.cols) - 1)
                head = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="A1:{last}{rows.last_row}"/>', xml[:cut], count=1)
                tail = _with_table_part(xml[cut:], rel_id) if table else xml[cut:]
                with zout.open(info.filename, "w", force_zip64=True) as fh:  # a name: the archive's compression applies
                    fh.write(head.encode("utf-8"))
                    for start in range(1, rows.n, ROWS_PER_CHUNK):
                        fh.write(_row_xml(rows, styles, start, min(rows.n, start + ROWS_PER_CHUNK)).encode("utf-8"))
                    fh.write(tail.encode("utf-8"))
            for sheet, (n, t) in tabled.items():
                put(f"xl/tables/table{n}.xml", _table_xml(t, n))
                rels = _rels_path(sheet)
                if rels not in names:
                    put(
                        rels,
                        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                        f'<Relationship Id="{rel_id}" Type="{TABLE_TYPE}" Target="../tables/table{n}.xml"/></Relationships>',
                    )
    os.replace(tmp, path)


def _column_index(letters: str) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + ord(ch) - 64
    return index - 1


def _letter(index: int) -> str:
    s = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        s = chr(65 + rem) + s
    return s


class SummaryWriter:
    """Blocks written top to bottom (constant_memory needs rows in order)."""

    def __init__(self, book: Book, name: str, widths: Sequence[int]):
        self.book = book
        self.ws = book.wb.add_worksheet(name)
        self.row = 0
        for c, w in enumerate(widths):
            self.ws.set_column(c, c, w)
        page_setup(self.ws)  # the title row repeats: a printed page says which workbook it is from

    def line(self, text: str, fmt: Any = None) -> None:
        self.ws.write_string(self.row, 0, text, fmt)
        self.row += 1

    def skip(self, rows: int = 1) -> None:
        self.row += rows

    def table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], kinds: Sequence[Kind]) -> tuple[int, int]:
        """Writes a titled block; returns (first data row, last data row), 0-based."""
        ws, book = self.ws, self.book
        ws.write_string(self.row, 0, title, book.bold)
        self.row += 1
        for c, h in enumerate(headers):
            ws.write_string(self.row, c, h, book.header)
        self.row += 1
        first = self.row
        for values in rows:
            for c, (v, kind) in enumerate(zip(values, kinds, strict=True)):
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    continue
                if kind == "text":
                    ws.write_string(self.row, c, str(v), book.bold if values[0] == "All" else None)
                else:
                    ws.write_number(self.row, c, v, book.formats[kind])
            self.row += 1
        return first, self.row - 1
