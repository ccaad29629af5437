"""Hostile input at the command line (issue 32): each refused with exit 2 (3 for not found) naming
the option and the rule, nothing stored, no traceback; an unexpected error is one line and a log entry."""

from __future__ import annotations

import time

import pytest
import yaml
from conftest import DEMO_FORM, demo_form
from support.cli import cli
from support.fuzz import TRACEBACK, store_fingerprint

from tasks.domain import transfers
from tasks.domain.form import parse_form


@pytest.fixture
def data_dir(store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CASETRANSFER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CASETRANSFER_PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return tmp_path / "data"


def refused(*args: str, code: int = 2) -> str:
    before = store_fingerprint()
    result = cli(*args, check=False)
    assert TRACEBACK not in result.stdout + result.stderr
    assert result.returncode == code, result.stderr
    assert store_fingerprint() == before
    return result.stderr


@pytest.mark.parametrize("command", [["remind"], ["remind", "--dry-run"], ["tracker"], ["handovers"], ["handover-reminders"],
                                     ["seed", "--transfers", "1"], ["seed-handovers", "--records", "1"]])  # fmt: skip
@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2100-06-01"])
def test_an_as_of_at_the_edges_of_the_calendar_is_refused_naming_the_window(data_dir, command, day):
    message = refused(*command, "--as-of", day)
    assert f"--as-of: {day} is outside 2024-12-21 to 2028-12-21 (config/limits.yaml: dates.as_of)" in message


def test_a_remind_far_in_the_future_escalates_and_sends_nothing(data_dir, tmp_path):
    transfers.register_nsi(parse_form(demo_form()), "far-future")
    refused("remind", "--as-of", "2100-06-01")
    assert not (tmp_path / "outbox").exists() or not any((tmp_path / "outbox").iterdir())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["working-days", "2026-11-24", "99999999999999999999"], "days: 99999999999999999999 is outside -5000 to 5000"),
        (["working-days", "9999-12-31", "10"], "start: 9999-12-31 is outside"),
        (["seed", "--transfers", "100000000"], "--transfers: 100000000 is outside 0 to 200000"),
        (["seed", "--transfers", "1", "--seed", "-1"], "--seed: -1 is outside 0 to 2147483647"),
        (["seed-handovers", "--records", "99999999999999999999999"], "--records: 99999999999999999999999 is outside"),
    ],
)
def test_numbers_out_of_bounds_are_refused_at_once(data_dir, args, says):
    started = time.perf_counter()
    assert says in refused(*args)
    assert time.perf_counter() - started < 5


def test_huge_sentence_months_are_refused_naming_the_field(data_dir):
    message = refused("add-handover", "--crn", "X765432", "--name", "Jo", "--prison", "HMP Leeds", "--pom-name", "P",
                      "--pom-email", "p@x.gov.uk", "--com-name", "K", "--com-email", "k@x.gov.uk", "--omu-mailbox", "o@x.gov.uk",
                      "--sentence-type", "SDS", "--sentence-months", "99999999999999999999999", "--release-date", "2027-06-01",
                      "--handover-date", "2027-03-01")  # fmt: skip
    assert "sentence_length_months" in message and "counts.sentence_length_months" in message


def test_files_that_are_not_what_they_say_are_refused_for_what_they_are(data_dir, tmp_path):
    (tmp_path / "csv.xlsx").write_text("crn,name\nX123456,Jo\n")
    (tmp_path / "empty.xlsx").write_bytes(b"")
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "utf16.csv").write_bytes("crn\n".encode("utf-16"))
    (tmp_path / "a-file").write_text("x")
    assert "FILE: csv.xlsx is not an Excel workbook: it is text" in refused("import-tracker", str(tmp_path / "csv.xlsx"), "--dry-run")
    assert "FILE: empty.xlsx is empty" in refused("import-handovers", str(tmp_path / "empty.xlsx"))
    # A UTF-16 CSV (Excel's "Unicode text") is read (issue 27); this one lacks every column but one.
    assert "utf16.csv row 1: missing columns name" in refused("import-handovers", str(tmp_path / "utf16.csv"))
    assert "is a folder, not a file" in refused("raise", str(tmp_path / "folder.yaml"))
    assert "does not exist" in refused("raise", str(tmp_path / "none.yaml"), code=3)
    assert "--out: " in refused("tracker", "--out", str(tmp_path / "a-file"))


def test_a_mapping_alias_bomb_and_a_tag_are_refused_within_a_second(data_dir, tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["CRN"])
    wb.save(tmp_path / "t.xlsx")
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines))
    (tmp_path / "tag.yaml").write_text("columns: !!python/object/apply:os.getcwd []\n")
    started = time.perf_counter()
    assert "--mapping: bomb.yaml: more than" in refused("import-tracker", str(tmp_path / "t.xlsx"), "--mapping", str(tmp_path / "bomb.yaml"))
    assert time.perf_counter() - started < 2
    assert "YAML tags" in refused("import-tracker", str(tmp_path / "t.xlsx"), "--mapping", str(tmp_path / "tag.yaml"))
    assert "YAML tags" in refused("raise", str(tmp_path / "tag.yaml"))


def test_a_date_of_birth_written_as_a_number_is_called_a_number(data_dir, tmp_path):
    form = yaml.safe_load(DEMO_FORM.read_text())
    (tmp_path / "f.yaml").write_text(yaml.safe_dump({**form, "date_of_birth": 19900412, "raised_on": "1900-01-01"}))
    message = refused("raise", str(tmp_path / "f.yaml"))
    assert "date_of_birth: 19900412 is a number, not a date: write it YYYY-MM-DD" in message
    assert "raised_on: 1900-01-01 is outside" in message
    assert "zero time" not in message


def test_challenge_and_dispute_refusals_name_the_real_reason(data_dir, monkeypatch):
    temp = transfers.register_nsi(parse_form(yaml.safe_load((DEMO_FORM.parent / "leeds-to-sheffield-temporary-move.yaml").read_text())), "t")
    open_ct = transfers.register_nsi(parse_form(demo_form()), "open")
    assert "'admin' cannot raise a challenge" in refused("challenge", open_ct, "--concern", "c", "--role", "admin")
    assert f"{temp} is a Temporary Move" in refused("challenge", temp, "--concern", "c")
    monkeypatch.setenv("CASETRANSFER_SHAPE_VERSION", "1")
    from tasks.settings import reset_settings

    reset_settings()
    seq = transfers.register_nsi(parse_form(demo_form(crn="X999991")), "seq")
    transfers.apply_step(seq, "decision", {"recorded_by": "Kim", "outcome": "refuse", "evidence": "Victim nearby",
                                           "reasons": ["Risk of harm would increase and could not be managed at the new address"]})  # fmt: skip
    assert "refused at its decision step" in refused("dispute", seq, "--grounds", "g")
    done = transfers.register_nsi(parse_form(demo_form(crn="X999992")), "done")
    transfers.apply_step(done, "completion", {"recorded_by": "Kim", "responsible_officer": "Pat", "completed_on": None})
    assert f"{done} is completed: a challenge can be raised only before completion" in refused("challenge", done, "--concern", "c")


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_log(data_dir, monkeypatch):
    import tasks.calendar

    def broken(*args, **kwargs):
        raise RuntimeError("the calendar broke")

    monkeypatch.setattr(tasks.calendar, "get_calendar", broken)  # a fault injected below the command
    result = cli("working-days", "2026-11-24", "3", check=False)
    assert result.returncode == 1
    assert TRACEBACK not in result.stdout + result.stderr
    log = data_dir / "logs" / "cli-errors.log"
    assert result.stderr.strip() == (
        f"casetransfer: an unexpected error stopped the command (RuntimeError: the calendar broke); the details are in {log}"
    )
    assert "Traceback" in log.read_text() and "working-days 2026-11-24 3" in log.read_text()
