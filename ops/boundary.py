"""The command line's side of the one boundary (tasks/limits.py, config/limits.yaml): each option,
argument and file checked before a command does any work; a refusal ends the command with exit 2
(3 for "not found") naming the option and the rule. And the last resort: an unexpected error is
one line for the person and its traceback in a log file, never a traceback on their terminal.
"""

from __future__ import annotations

import datetime as dt
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from ops.console import fail


@contextmanager
def refusals() -> Iterator[None]:
    """Turn an OutOfBounds raised inside into the command's exit."""
    from tasks.limits import OutOfBounds

    try:
        yield
    except OutOfBounds as exc:
        fail(str(exc), exc.code)


def as_of(value: str | None, option: str = "--as-of") -> dt.date:
    """The day a job runs for: today when not given, else a date inside dates.as_of."""
    from tasks.limits import parse_date
    from tasks.settings import get_settings

    if value is None:
        return get_settings().current_date()
    with refusals():
        return parse_date(option, value, "as_of")
    raise AssertionError  # pragma: no cover - refusals() ends the command


def day(value: str, option: str, window: str = "transfer_day") -> dt.date:
    """A date typed as an option, inside the window `window` of config/limits.yaml."""
    from tasks.limits import parse_date

    with refusals():
        return parse_date(option, value, window)
    raise AssertionError  # pragma: no cover


def count(value: int, option: str, name: str) -> int:
    from tasks.limits import check_count

    with refusals():
        return check_count(option, value, name)
    raise AssertionError  # pragma: no cover


def text(value: str | None, option: str) -> str | None:
    """Free text typed as an option, within counts.text_chars (None passes: the option was left out)."""
    from tasks.limits import check_text

    if value is None:
        return None
    with refusals():
        return check_text(option, value)
    raise AssertionError  # pragma: no cover


def yaml_file(path: Path, option: str) -> Any:
    from tasks.limits import yaml_file as read

    with refusals():
        return read(option, path)
    raise AssertionError  # pragma: no cover


def spreadsheet(path: Path, option: str, suffixes: tuple[str, ...] = (".xlsx",)) -> Path:
    from tasks.limits import spreadsheet as check

    with refusals():
        return check(option, path, suffixes)
    raise AssertionError  # pragma: no cover


def out_dir(path: Path | None, option: str = "--out") -> Path | None:
    from tasks.limits import out_dir as check

    if path is None:
        return None
    with refusals():
        return check(option, path)
    raise AssertionError  # pragma: no cover


def error_log() -> Path:
    from tasks.settings import get_settings

    settings = get_settings()
    return settings.cli_error_log or settings.data_dir / "logs" / "cli-errors.log"


def unexpected(exc: BaseException) -> NoReturn:
    """One line for the person, the traceback in the error log (settings: cli_error_log), exit 1."""
    import datetime as dt
    import os

    where = "(no log)"
    try:
        log = error_log()
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            fh.write(f"--- {stamp} pid {os.getpid()}: casetransfer {' '.join(sys.argv[1:])[:2000]}\n")
            fh.write("".join(traceback.format_exception(exc)))
        where = str(log)
    except Exception as log_failed:  # noqa: BLE001 - the person still gets their one line
        where = f"(the log could not be written: {type(log_failed).__name__})"
    summary = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    print(
        f"casetransfer: an unexpected error stopped the command ({type(exc).__name__}{': ' + summary if summary else ''}); "
        f"the details are in {where}",
        file=sys.stderr,
    )
    raise SystemExit(1)
