"""The one boundary (issue 32): the bounded YAML loader and the windows and bounds of config/limits.yaml."""

from __future__ import annotations

import datetime as dt
import io
import resource
import time

import pytest
from openpyxl import Workbook

from tasks import limits
from tasks.config_files import YamlRefused, load_yaml
from tasks.settings import CONFIG_DIR


def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_in_milliseconds_and_without_memory_before_anything_is_built():
    grown_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(YamlRefused, match="values once its aliases are expanded"):
        load_yaml(_bomb(), "bomb.yaml")
    assert time.perf_counter() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - grown_before < 200 * 1024  # KB: under 200 MB


def test_a_few_aliases_still_load_as_before():
    assert load_yaml("a: &x [1, 2]\nb: [*x, *x]\n") == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


@pytest.mark.parametrize("text", ["crn: !!python/object/apply:os.getcwd []\n", "crn: !secret X1\n", "crn: ! x\n", "a: !!str 1\n"])
def test_any_yaml_tag_is_refused_naming_it(text):
    with pytest.raises(YamlRefused, match="YAML tags .* are not allowed"):
        load_yaml(text, "form.yaml")


def test_deep_nesting_is_refused_rather_than_exhausting_the_stack():
    with pytest.raises(YamlRefused, match="nested more than"):
        load_yaml("[" * 20000 + "]" * 20000)


def test_every_config_file_passes_the_bounded_loader():
    files = sorted(CONFIG_DIR.rglob("*.yaml"))
    assert len(files) > 10
    for path in files:
        load_yaml(path.read_text(encoding="utf-8"), str(path))


def test_as_of_may_be_two_years_either_side_of_today_and_no_further():
    today = dt.date(2026, 12, 21)
    assert limits.check_date("--as-of", dt.date(2028, 12, 21), "as_of", today) == dt.date(2028, 12, 21)
    with pytest.raises(limits.OutOfBounds, match=r"--as-of: 2100-06-01 is outside 2024-12-21 to 2028-12-21 .*dates.as_of"):
        limits.check_date("--as-of", dt.date(2100, 6, 1), "as_of", today)
    with pytest.raises(limits.OutOfBounds):
        limits.check_date("--as-of", dt.date(2024, 12, 20), "as_of", today)


def test_a_date_of_birth_runs_from_1900_to_five_years_after_today():
    w = limits.window("date_of_birth", dt.date(2026, 12, 21))
    assert (w.earliest, w.latest) == (dt.date(1900, 1, 1), dt.date(2031, 12, 21))


def test_a_window_at_the_ends_of_the_calendar_never_overflows():
    w = limits.window("sentence_day", dt.date(9990, 1, 1))
    assert w.latest == dt.date(9999, 1, 1)


def test_counts_are_bounded_and_the_message_names_the_option_and_the_key():
    assert limits.check_count("--transfers", 2000, "seed_transfers") == 2000
    with pytest.raises(limits.OutOfBounds, match=r"--transfers: 100000000 is outside 0 to 200000 \(config/limits.yaml: counts.seed_transfers\)"):
        limits.check_count("--transfers", 100_000_000, "seed_transfers")
    with pytest.raises(limits.OutOfBounds, match="--seed: -1 is outside"):
        limits.check_count("--seed", -1, "seed")


def _xlsx() -> bytes:
    buf = io.BytesIO()
    Workbook().save(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "rule"),
    [
        ("csv.xlsx", b"crn,name\nX123456,Jo\n", "it is text (a CSV renamed .xlsx?)"),
        ("empty.xlsx", b"", "is empty, not an Excel workbook"),
        ("cut.xlsx", None, "truncated or damaged"),
        ("rows.csv", b"crn\x00\x01\x02", "binary, not text"),
    ],
)
def test_a_spreadsheet_that_is_not_what_its_name_says_is_refused_for_what_it_is(tmp_path, name, data, rule):
    path = tmp_path / name
    path.write_bytes(_xlsx()[:300] if data is None else data)
    with pytest.raises(limits.OutOfBounds, match=rule.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")) as refused:
        limits.spreadsheet("FILE", path, (".csv", ".xlsx"))
    assert refused.value.code == 2


def test_a_folder_is_not_a_file_and_a_missing_file_is_not_found(tmp_path):
    (tmp_path / "d.xlsx").mkdir()
    with pytest.raises(limits.OutOfBounds, match="is a folder, not a file") as folder:
        limits.spreadsheet("FILE", tmp_path / "d.xlsx")
    with pytest.raises(limits.OutOfBounds, match="does not exist") as missing:
        limits.yaml_file("form", tmp_path / "none.yaml")
    assert (folder.value.code, missing.value.code) == (2, 3)


def test_an_out_folder_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(limits.OutOfBounds, match="is a file, not a folder"):
        limits.out_dir("--out", tmp_path / "f")
    with pytest.raises(limits.OutOfBounds, match="cannot be made"):
        limits.out_dir("--out", tmp_path / "f" / "sub")
