"""The tracker's two ways of writing a list's rows (XlsxWriter alone, and XlsxWriter for the first
row with the rest spliced in as generated XML) give the same cells for hostile text, read back
with openpyxl; and the highlight rule follows its column by header."""

from __future__ import annotations

import re
from pathlib import Path

import openpyxl
import pytest

from tasks.reports.workbook import XLSX_MAX_STRING, Book, Layout, highlight_formula, num_col, text_col

HOSTILE = [
    "Smith_x0041_",  # Excel would show "SmithA" unless the underscore is escaped
    "_x005F_x0041_",
    "bell\x07 and nul\x00 and tab\t",
    "x" * 40_000,  # over Excel's 32,767-character cell limit
    "=cmd|' /C calc'!A0",
    "+SUM(A1:A2)",
    '@HYPERLINK("http://example.com")',
    "Ada \U0001f600 Lovelace \U0001f469\u200d\U0001f4bb",
    "\U0001f600" * 20_000,  # 40,000 UTF-16 units: cut without splitting an emoji
    "<b>bold</b> & 'quotes' \"double\"",
    "  leading and trailing spaces  ",
    "line\nbreak",
    "\ufffe\uffff",
]


def as_excel_shows(text: str) -> str:
    """Excel decodes each _xHHHH_ in a cell's text, left to right (openpyxl leaves them as stored)."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def written(tmp_path: Path, fast_rows: bool, values: list[str]) -> list[tuple[object, str]]:
    """The list's text cells as openpyxl reads them back: (value, data type)."""
    path = tmp_path / f"{'fast' if fast_rows else 'plain'}.xlsx"
    book = Book(path, Layout(), fast_rows=fast_rows)
    book.list_sheet("Names", [text_col("Name", values), num_col("Row", list(range(len(values))))])
    book.close()
    ws = openpyxl.load_workbook(path)["Names"]
    return [(c.value, c.data_type) for (c,) in ws.iter_rows(min_row=2, max_col=1)]


@pytest.mark.parametrize("first", [0, 1], ids=["hostile-in-the-first-row", "hostile-only-in-spliced-rows"])
def test_both_writers_give_the_same_cells_for_hostile_text(tmp_path: Path, first: int) -> None:
    # Data row 1 is always XlsxWriter's; the splice writes rows 2 on, so each string is in both.
    values = ["plain"] * first + HOSTILE + HOSTILE
    assert written(tmp_path, True, values) == written(tmp_path, False, values)


def test_hostile_text_shows_in_excel_as_typed_within_excels_limit(tmp_path: Path) -> None:
    cells = written(tmp_path, True, ["plain", *HOSTILE])[1:]
    assert all(kind == "s" for _, kind in cells)  # text, never a formula ("=cmd|' /C calc'!A0" included)
    shown = dict(zip(HOSTILE, (as_excel_shows(str(value)) for value, _ in cells), strict=True))
    for typed in HOSTILE:
        # XlsxWriter escapes only the first of two escapes that share an underscore, so Excel shows
        # "_x005F_x0041_" as "_x005FA"; both writers agree (above), and no real name looks like it.
        if len(typed.encode("utf-16-le")) // 2 <= XLSX_MAX_STRING and typed != "_x005F_x0041_":
            assert shown[typed] == typed, typed
    assert shown["Smith_x0041_"] == "Smith_x0041_"  # not "SmithA"
    assert shown["x" * 40_000] == "x" * XLSX_MAX_STRING
    assert shown["\U0001f600" * 20_000] == "\U0001f600" * (XLSX_MAX_STRING // 2)


def test_the_highlight_rule_names_its_column_by_header() -> None:
    cols = [text_col("Reference", ["a"]), text_col("Name", ["b"]), num_col("Days overdue (working)", [3])]
    assert highlight_formula(cols, "Days overdue (working)", ">0") == "=$C2>0"
    # A column added in front moves the rule along with its column.
    assert highlight_formula([text_col("CRN", ["x"]), *cols], "Days overdue (working)", ">0") == "=$D2>0"
    with pytest.raises(ValueError, match="highlight: no single column headed 'Overdue'"):
        highlight_formula(cols, "Overdue", ">0")
