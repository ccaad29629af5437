"""Random command lines for the fuzz test of the `casetransfer` command (tests/integration/
test_cli_fuzz.py) and its longer run (bench/fuzz_cli.py): for each command that needs no Prefect
server, a Hypothesis strategy drawing a value for each of its options (random text, dates near and
far, numbers of any size, references that exist and that do not) and random bytes for its files.

The property, for every command line drawn: the exit code is 0, 1, 2 or 3; no Python traceback is
printed; the error log of unexpected errors does not grow; and a refusal (2 or 3) leaves the store
exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

TRACEBACK = "Traceback (most recent call last)"

# Text as people type it and worse: control characters, markup, quotes, very long, empty.
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "[/]", "[bold]x", "\x1b[31m", "\x00", "--help", "-", "NaN", "1e999", "../../etc/passwd"]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=4000, max_size=6000),
)
DAYS = st.one_of(
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)).map(dt.date.isoformat),
    st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2029, 12, 31)).map(dt.date.isoformat),
    st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-30", "20261221", "tomorrow", "", "-1", "2026-12-21T10:00"]),
    st.text(max_size=12),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=-3, max_value=30).map(str),
    st.sampled_from(["NaN", "inf", "-inf", "1e9", "1.5", "", "0x10", "99999999999999999999999"]),
)
# Counts that would do real work when valid are drawn outside their bounds or small, so the run
# stays bounded (a valid `seed --transfers 150000` is minutes of honest work, not a bug).
SMALL_OR_OUT = st.one_of(
    st.integers(min_value=0, max_value=2).map(str),
    st.integers(min_value=-(10**30), max_value=-1).map(str),
    st.integers(min_value=200_001, max_value=10**30).map(str),
    st.sampled_from(["NaN", "", "1.5", "x"]),
)


class Files:
    """Files a command is given: random bytes under a chosen name, a folder, or nothing at all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def prepare(self) -> Files:
        from openpyxl import Workbook

        (self.folder / "a-folder.xlsx").mkdir(parents=True, exist_ok=True)
        # One real workbook, so --mapping, --sheet and --region are reached past the file's own checks.
        wb = Workbook()
        wb.active.append(["CRN", "Name", "Date of birth", "Receiving PDU"])
        wb.active.append(["X123456", "Jo Smith", "1990-04-12", "Manchester"])
        wb.save(self.folder / "tracker.xlsx")
        return self

    def strategy(self, suffixes: list[str]) -> st.SearchStrategy[str]:
        made = st.builds(self._write, st.sampled_from(suffixes), st.binary(max_size=2000))
        texts = st.builds(self._write, st.sampled_from(suffixes), TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))
        return st.one_of(
            made,
            texts,
            st.just(str(self.folder / "a-folder.xlsx")),
            st.just(str(self.folder / "no-such-file.yaml")),
            st.just(str(self.folder / "tracker.xlsx")),
        )

    def _write(self, suffix: str, data: bytes) -> str:
        path = self.folder / f"f-{hashlib.sha1(data).hexdigest()[:12]}{suffix}"
        path.write_bytes(data)
        return str(path)


def _opt(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """An option given with a value, or left out."""
    return st.one_of(st.just([]), values.map(lambda v: [name, v]))


def _line(*parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
    return st.tuples(*parts).map(lambda chunks: [a for chunk in chunks for a in chunk])


def _fixed(*args: str) -> st.SearchStrategy[list[str]]:
    return st.just(list(args))


def commands(refs: list[str], files: Files) -> dict[str, st.SearchStrategy[list[str]]]:
    """A strategy of whole command lines for each command that needs no Prefect server."""
    ref = st.one_of(st.sampled_from(refs), TEXT)
    step = st.sampled_from(["allocation", "police_checks", "documents", "completion", "challenge-1", "dispute-1", "decision"]) | TEXT
    one = lambda s: s.map(lambda v: [v])  # noqa: E731 - a positional argument
    handover_opts = [
        _opt(o, TEXT) for o in ("--name", "--prison", "--pom-name", "--pom-email", "--com-name", "--com-email", "--omu-mailbox")
    ]
    return {
        "working-days": _line(_fixed("working-days"), one(DAYS), one(NUMBERS)),
        "status": _line(_fixed("status"), one(ref), st.sampled_from([[], ["--json"]]), _opt("--as", st.sampled_from(["lee.spo"]) | TEXT)),
        "grant": _line(_fixed("grant"), one(ref), _opt("--staff", st.sampled_from(["casey.practitioner", "lee.spo"]) | TEXT),
                       _opt("--reason", TEXT), _opt("--by", TEXT)),  # fmt: skip
        "access-log": _line(_fixed("access-log"), one(ref)),
        "locate": _line(_fixed("locate"), one(TEXT), st.sampled_from([[], ["--json"]])),
        "raise": _line(_fixed("raise"), one(files.strategy([".yaml", ".json", ".yml", ""]))),
        "action-done": _line(_fixed("action-done"), one(ref), one(step), _opt("--on", DAYS), _opt("--by", TEXT)),
        "correct": _line(_fixed("correct"), one(ref), one(step), _opt("--done-on", DAYS), _opt("--reason", TEXT)),
        "challenge": _line(_fixed("challenge"), one(ref), _opt("--concern", TEXT), _opt("--role", TEXT), _opt("--by", TEXT)),
        "dispute": _line(_fixed("dispute"), one(ref), _opt("--grounds", TEXT), _opt("--by", TEXT)),
        "record": _line(_fixed("record"), one(ref), one(step), st.lists(st.tuples(TEXT, TEXT), max_size=3).map(
            lambda pairs: [x for k, v in pairs for x in (f"--{k}", v)]), _fixed("--no-wait", "--timeout", "1")),  # fmt: skip
        "amend": _line(_fixed("amend"), one(ref), _opt("--reason", TEXT), _opt("--rosh", TEXT), _opt("--move-date", DAYS),
                       _opt("--mappa-level", NUMBERS), _opt("--on", DAYS)),
        "stop-clock": _line(_fixed("stop-clock"), one(ref), _opt("--reason", TEXT), _opt("--from", DAYS), _opt("--note", TEXT)),
        "restart-clock": _line(_fixed("restart-clock"), one(ref), _opt("--on", DAYS)),
        "absence": _line(_fixed("absence"), one(ref), _opt("--on", DAYS), _opt("--acceptable", st.sampled_from(["yes", "no"]) | TEXT),
                         _opt("--role", st.sampled_from(["receiving_pp", "admin"]) | TEXT), _opt("--notes", TEXT), _opt("--by", TEXT)),
        "contact": _line(_fixed("contact"), one(ref), _opt("--on", DAYS), _opt("--role", TEXT), _opt("--notes", TEXT), _opt("--by", TEXT)),
        "remind": _line(_fixed("remind", "--dry-run"), _opt("--as-of", DAYS)),
        "handovers": _line(_fixed("handovers"), _opt("--as-of", DAYS)),
        "handover-reminders": _line(_fixed("handover-reminders", "--dry-run"), _opt("--as-of", DAYS)),
        "seed": _line(_fixed("seed"), _opt("--transfers", SMALL_OR_OUT).filter(bool), _opt("--seed", NUMBERS), _opt("--as-of", DAYS)),
        "seed-handovers": _line(_fixed("seed-handovers"), _opt("--records", SMALL_OR_OUT).filter(bool), _opt("--seed", NUMBERS),
                                _opt("--as-of", DAYS)),  # fmt: skip
        "add-handover": _line(_fixed("add-handover"), _opt("--crn", st.sampled_from(["X100001", "X10000"]) | TEXT), *handover_opts,
                              _opt("--sentence-type", st.sampled_from(["SDS", "EDS"]) | TEXT), _opt("--sentence-months", NUMBERS),
                              _opt("--release-date", DAYS), _opt("--handover-date", DAYS)),  # fmt: skip
        "correct-handover": _line(_fixed("correct-handover"), one(st.sampled_from(["X100001"]) | TEXT),
                                  _opt("--sentence-months", NUMBERS), _opt("--release-date", DAYS), _opt("--handover-date", DAYS)),  # fmt: skip
        "record-handover-session": _line(_fixed("record-handover-session"), one(TEXT), _opt("--on", DAYS)),
        "import-handovers": _line(_fixed("import-handovers"), one(files.strategy([".csv", ".xlsx", ".txt"]))),
        "import-tracker": _line(_fixed("import-tracker"), one(files.strategy([".xlsx", ".csv"])),
                                _opt("--mapping", files.strategy([".yaml"])), _opt("--region", TEXT), _opt("--sheet", TEXT),
                                _fixed("--dry-run", "--no-start-runs")),  # fmt: skip
    }


def store_fingerprint() -> tuple[int, ...]:
    """Row counts of every table of the domain store (a refusal must leave them all as they were)."""
    from sqlalchemy import func, select

    from tasks.store.models import Base
    from tasks.store.unit_of_work import UnitOfWork

    with UnitOfWork() as uow:
        return tuple(uow.session.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables)


def error_log_size() -> int:
    from ops.boundary import error_log

    path = error_log()
    return path.stat().st_size if path.exists() else 0


def check_one(argv: list[str], cli: Callable[..., Any]) -> tuple[int, list[str]]:
    """Run one command line; returns its exit code and what broke the property (empty: nothing)."""
    before, log_before = store_fingerprint(), error_log_size()
    result = cli(*argv, check=False)
    broken = []
    if result.returncode not in (0, 1, 2, 3):
        broken.append(f"exit code {result.returncode}")
    if TRACEBACK in result.stdout + result.stderr:
        broken.append("a traceback was printed:\n" + (result.stdout + result.stderr)[-3000:])
    if error_log_size() != log_before:
        broken.append(f"an unexpected error was logged: {result.stderr.strip()[-500:]}")
    if result.returncode in (2, 3) and store_fingerprint() != before:
        broken.append("the store changed on a refusal")
    return result.returncode, broken
