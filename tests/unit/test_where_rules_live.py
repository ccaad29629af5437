"""docs/where-rules-live.md sends a newcomer from a rule of DOMAIN.md to its code, config and test:
every pointer on it must still lead to something that exists, or the page is worse than none."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "where-rules-live.md"
HEADER = ("Rule", "Applied by", "Config", "Test")
POINTER = re.compile(r"`([\w./-]+\.(?:py|yaml)): ([\w.]+)`")
# A cell with nothing to point at must say why in these words, so a gap reads as a gap, not an oversight.
MARKERS = {"Applied by": ("not built",), "Config": ("none", "not built"), "Test": ("no test",)}
CODE_FOLDERS = ("tasks/", "flows/", "services/", "prefect_runs/", "ops/")


@dataclass(frozen=True)
class Pointer:
    line: int  # on the page, for the failure message
    column: str
    path: str
    name: str

    def __str__(self) -> str:
        return f"docs/where-rules-live.md line {self.line}, {self.column}: `{self.path}: {self.name}`"


@dataclass(frozen=True)
class Row:
    line: int
    cells: dict[str, str]


def table_rows(text: str) -> list[Row]:
    """The data rows of every table whose header is HEADER; other tables and prose are skipped."""
    rows: list[Row] = []
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("|"):
            in_table = False
            continue
        cells = tuple(c.strip() for c in line.strip().strip("|").split("|"))
        if cells == HEADER:
            in_table = True
        elif in_table and not set("".join(cells)) <= set("-: "):
            assert len(cells) == len(HEADER), f"docs/where-rules-live.md line {number}: {len(cells)} cells, not {len(HEADER)}"
            rows.append(Row(number, dict(zip(HEADER, cells, strict=True))))
    return rows


ROWS = table_rows(PAGE.read_text(encoding="utf-8"))
POINTERS = [
    Pointer(row.line, column, path, name)
    for row in ROWS
    for column in HEADER[1:]
    for path, name in POINTER.findall(row.cells[column])
]


def by_kind(prefixes: tuple[str, ...]) -> list[Pointer]:
    return [p for p in POINTERS if p.path.startswith(prefixes)]


@cache
def source(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def defines(text: str, name: str) -> bool:
    """A `def NAME` or `class NAME` anywhere in the file (a method is indented, so any indent)."""
    return re.search(rf"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+{re.escape(name)}\b", text, re.MULTILINE) is not None


def has_key(data: Any, dotted: str) -> bool:
    """Whether the dotted key leads somewhere; a list item (an action) is named by its `code`."""
    for part in dotted.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list):
            data = next((item for item in data if isinstance(item, dict) and item.get("code") == part), None)
            if data is None:
                return False
        else:
            return False
    return True


def test_the_page_has_its_tables_and_every_row_names_a_rule() -> None:
    assert len(ROWS) >= 50, "the tables were not found: is the header still | Rule | Applied by | Config | Test |?"
    assert all(row.cells["Rule"] for row in ROWS)


def test_every_cell_points_somewhere_or_says_plainly_why_not() -> None:
    silent = [
        f"line {row.line}, {column}: {row.cells[column]!r}"
        for row in ROWS
        for column, words in MARKERS.items()
        if not POINTER.search(row.cells[column]) and not row.cells[column].lower().startswith(words)
    ]
    assert silent == []


def test_each_column_points_at_its_own_kind_of_file() -> None:
    wanted = {"Applied by": CODE_FOLDERS, "Config": ("config/",), "Test": ("tests/",)}
    assert [str(p) for p in POINTERS if not p.path.startswith(wanted[p.column])] == []


@pytest.mark.parametrize("pointer", by_kind(CODE_FOLDERS), ids=str)
def test_every_cited_module_exists_and_defines_the_cited_function(pointer: Pointer) -> None:
    assert pointer.path.endswith(".py") and (ROOT / pointer.path).is_file(), f"{pointer}: no such module"
    # Class.method: each part must be defined here; which class holds the method is not checked.
    missing = [part for part in pointer.name.split(".") if not defines(source(pointer.path), part)]
    assert missing == [], f"{pointer}: {', '.join(missing)} not defined in {pointer.path}"


@pytest.mark.parametrize("pointer", by_kind(("config/",)), ids=str)
def test_every_cited_config_file_exists_and_holds_the_cited_key(pointer: Pointer) -> None:
    path = ROOT / pointer.path
    assert path.is_file(), f"{pointer}: no such config file"
    assert has_key(yaml.safe_load(path.read_text(encoding="utf-8")), pointer.name), f"{pointer}: no such key"


@pytest.mark.parametrize("pointer", by_kind(("tests/",)), ids=str)
def test_every_cited_test_exists_in_the_cited_test_file(pointer: Pointer) -> None:
    assert (ROOT / pointer.path).is_file(), f"{pointer}: no such test file"
    assert pointer.name.startswith("test_"), f"{pointer}: not a test function's name"
    assert defines(source(pointer.path), pointer.name), f"{pointer}: no such test in {pointer.path}"


def test_a_stale_pointer_of_each_kind_is_caught() -> None:
    # The checks above pass vacuously if they cannot fail: show each one failing on a broken pointer.
    assert not defines(source("tasks/domain/actions.py"), "plan_actions_renamed")
    assert not has_key({"actions": [{"code": "allocate", "working_days": 2}]}, "actions.allocate.days")
    assert not has_key({"actions": [{"code": "allocate"}]}, "actions.allocation")
    assert has_key({"actions": [{"code": "allocate", "working_days": 2}]}, "actions.allocate.working_days")
    assert not defines(source("tests/unit/test_actions.py"), "test_every_action_has_an_owner")
