"""The bounds every input is checked against before any work is done (config/limits.yaml): windows
of dates around today, counts and sizes, and what a file given to a command really is.

One boundary for every door: the command line (ops/boundary.py turns a refusal into exit 2 or 3),
forms (tasks/domain/form.py), spreadsheets to import and the deployments' parameters (the flows).
A refusal is OutOfBounds naming the field and the rule; nothing has been done when it is raised.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.config_files import YamlRefused, decode_csv, decode_text, load_yaml, read_yaml


class OutOfBounds(ValueError):
    """An input refused at the boundary: `field`, the `rule` it broke, and the exit code a
    command gives (2 bad input, 3 not found)."""

    def __init__(self, field: str, rule: str, code: int = 2) -> None:
        self.field, self.rule, self.code = field, rule, code
        super().__init__(f"{field}: {rule}")


def _limits() -> dict[str, Any]:
    from tasks.settings import get_settings

    return read_yaml(get_settings().config_dir / "limits.yaml")


def _today() -> dt.date:
    from tasks.settings import get_settings

    return get_settings().current_date()


def _years_from(day: dt.date, years: int) -> dt.date:
    """`day` moved by whole years (29 February lands on 28 February), clamped to what a date holds."""
    year = min(max(day.year + years, dt.MINYEAR), dt.MAXYEAR)
    return day.replace(year=year, day=28 if (day.month, day.day) == (2, 29) else day.day)


@dataclass(frozen=True)
class Window:
    name: str
    earliest: dt.date
    latest: dt.date

    def check(self, field: str, day: dt.date) -> dt.date:
        if not self.earliest <= day <= self.latest:
            raise OutOfBounds(field, f"{day} is outside {self.earliest} to {self.latest} (config/limits.yaml: dates.{self.name})")
        return day


def window(name: str, today: dt.date | None = None) -> Window:
    """The window of dates `name` (config/limits.yaml: dates.NAME) around `today` (default: today)."""
    spec = _limits()["dates"][name]
    today = today or _today()
    earliest = spec.get("earliest") or _years_from(today, -int(spec.get("years_before", 0)))
    latest = spec.get("latest") or _years_from(today, int(spec.get("years_after", 0)))
    if "years_before" in spec and "earliest" in spec:
        earliest = max(spec["earliest"], _years_from(today, -int(spec["years_before"])))
    return Window(name, earliest, latest)


def check_date(field: str, day: dt.date, name: str, today: dt.date | None = None) -> dt.date:
    """`day` if it lies in the window `name`; else OutOfBounds naming `field` and the window."""
    return window(name, today).check(field, day)


def parse_date(field: str, value: Any, name: str, today: dt.date | None = None) -> dt.date:
    """A date written YYYY-MM-DD (or already a date) inside the window `name`."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        try:
            value = dt.date.fromisoformat(str(value).strip())
        except ValueError:
            raise OutOfBounds(field, f"{str(value)[:40]!r} is not a date (YYYY-MM-DD)") from None
    return check_date(field, value, name, today)


def check_count(field: str, value: int, name: str) -> int:
    """`value` if it lies in the bounds `name` (config/limits.yaml: counts.NAME)."""
    spec = _limits()["counts"][name]
    low, high = spec.get("min"), spec.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        shown = str(value) if len(str(value)) <= 30 else f"{str(value)[:27]}..."
        bounds = f"{low} to {high}" if low is not None else f"at most {high}"
        raise OutOfBounds(field, f"{shown} is outside {bounds} (config/limits.yaml: counts.{name})")
    return value


def check_text(field: str, value: str) -> str:
    """Free text typed on the command line, at most counts.text_chars characters."""
    high = int(_limits()["counts"]["text_chars"]["max"])
    if len(value) > high:
        raise OutOfBounds(field, f"{len(value)} characters; at most {high} (config/limits.yaml: counts.text_chars)")
    return value


# --- files ----------------------------------------------------------------------------------------


def existing_file(field: str, path: Path, max_bytes_key: str) -> Path:
    """`path` if it is a readable file within the size bound: a missing file is "not found" (3); a
    folder, an unreadable or an oversized file is bad input (2)."""
    try:
        if not path.exists():
            raise OutOfBounds(field, f"{path} does not exist", 3)
        if path.is_dir():
            raise OutOfBounds(field, f"{path} is a folder, not a file")
        if not path.is_file():
            raise OutOfBounds(field, f"{path} is not a regular file")
        size = path.stat().st_size
    except OSError as exc:
        raise OutOfBounds(field, f"{path} cannot be read ({exc.strerror or exc})") from None
    high = int(_limits()["files"][max_bytes_key])
    if size > high:
        raise OutOfBounds(field, f"{path.name} is {size} bytes; at most {high} (config/limits.yaml: files.{max_bytes_key})")
    return path


def read_bytes(field: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise OutOfBounds(field, f"{path} cannot be read ({exc.strerror or exc})") from None


def text_file(field: str, path: Path) -> str:
    """The UTF-8 text of a form or mapping file, checked for what it is first."""
    existing_file(field, path, "text_max_bytes")
    try:
        return decode_text(read_bytes(field, path), path.name)
    except YamlRefused as exc:
        raise OutOfBounds(field, str(exc)) from None


def yaml_file(field: str, path: Path) -> Any:
    """The document in a YAML (or JSON) file a person gave, through the one bounded loader."""
    import json

    import yaml

    text = text_file(field, path)
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        return json.loads(text) if kind == "JSON" else load_yaml(text, path.name)
    except YamlRefused as exc:
        raise OutOfBounds(field, str(exc)) from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OutOfBounds(field, f"{path.name} is not valid {kind}: {first}") from None
    except RecursionError:
        raise OutOfBounds(field, f"{path.name}: nested too deeply") from None


def spreadsheet(field: str, path: Path, suffixes: tuple[str, ...] = (".xlsx",)) -> Path:
    """`path` if it is what its name says: an .xlsx that is an Excel workbook (a zip holding
    xl/workbook.xml), or a .csv of text in an encoding Excel saves. Checked before a row is read."""
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise OutOfBounds(field, f"{path.name} must be {' or '.join(suffixes)}")
    existing_file(field, path, "spreadsheet_max_bytes")
    if suffix == ".xlsx":
        head = read_bytes(field, path)[:8] if path.stat().st_size else b""
        if not head:
            raise OutOfBounds(field, f"{path.name} is empty, not an Excel workbook")
        if not head.startswith(b"PK"):
            looks = "text (a CSV renamed .xlsx?)" if _looks_like_text(read_bytes(field, path)[:4096]) else "not a zip file"
            raise OutOfBounds(field, f"{path.name} is not an Excel workbook: it is {looks}")
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
            raise OutOfBounds(field, f"{path.name} is not an Excel workbook: the file is truncated or damaged") from None
        if "xl/workbook.xml" not in names:
            raise OutOfBounds(field, f"{path.name} is a zip file but not an Excel workbook (no xl/workbook.xml)")
        if bad is not None:
            raise OutOfBounds(field, f"{path.name} is damaged ({bad} cannot be read)")
    elif suffix == ".csv":
        # The encodings a CSV saved by Excel comes in (UTF-8 with or without its mark, UTF-16,
        # Windows-1252): the same rule the handover list is read by, so the two never disagree.
        data = read_bytes(field, path)
        if b"\x00" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise OutOfBounds(field, f"{path.name}: the file is binary, not text")
        try:
            decode_csv(data, path.name)
        except ValueError as exc:
            raise OutOfBounds(field, str(exc)) from None
    return path


def _looks_like_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in data


def out_dir(field: str, path: Path) -> Path:
    """A folder to write into: made if missing; refused when it is a file or cannot be made."""
    if path.exists() and not path.is_dir():
        raise OutOfBounds(field, f"{path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutOfBounds(field, f"{path} cannot be made ({exc.strerror or exc})") from None
    return path
