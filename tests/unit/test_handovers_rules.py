"""POM-COM handovers without a store: when each send falls, which sentences qualify, what a bad row says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from tasks.calendar import get_calendar
from tasks.domain.handovers import FIELDS, HandoverInputError, check_rows, load_rules, read_rows
from tasks.notify.handover_reminders import schedule_for, working_day_on_or_before
from tasks.settings import CONFIG_DIR

CAL = get_calendar("england-and-wales")


def good(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "crn": "X123456",
        "name": "Pat Example",
        "prison": "HMP Manchester",
        "pom_name": "Pom Person",
        "pom_email": "pom@justice.test",
        "com_name": "Com Person",
        "com_email": "com@probation.test",
        "com_team_code": "N50CAD",
        "omu_mailbox": "omu.manchester@justice.test",
        "sentence_type": "SDS",
        "sentence_length_months": "24",
        "release_date": "2027-03-01",
        "handover_date": "2027-02-15",
        "lao": "no",
    }
    row.update(changes)
    return row


def test_the_28_day_point_on_christmas_day_is_reported_the_working_day_before() -> None:
    s = schedule_for(dt.date(2027, 1, 22), load_rules(), CAL)
    assert dt.date(2027, 1, 22) - dt.timedelta(days=28) == dt.date(2026, 12, 25)
    assert s.report_on == dt.date(2026, 12, 24)
    assert s.alert("one_month").day == dt.date(2026, 12, 22)
    assert s.alert("two_weeks").day == dt.date(2027, 1, 8)


def test_a_send_day_on_a_bank_holiday_monday_or_a_weekend_moves_back_never_forward() -> None:
    # 28 days before 28 June 2027 is the spring bank holiday, Monday 31 May: reported Friday 28 May.
    assert schedule_for(dt.date(2027, 6, 28), load_rules(), CAL).report_on == dt.date(2027, 5, 28)
    # Two weeks before Sunday 7 February is Sunday 24 January: alert on Friday 22 January.
    assert schedule_for(dt.date(2027, 2, 7), load_rules(), CAL).alert("two_weeks").day == dt.date(2027, 1, 22)
    # Over Christmas and the substitute Boxing Day (28 December 2026) back to Thursday 24th.
    assert working_day_on_or_before(dt.date(2026, 12, 28), CAL) == dt.date(2026, 12, 24)
    assert working_day_on_or_before(dt.date(2026, 12, 23), CAL) == dt.date(2026, 12, 23)


def test_every_number_comes_from_the_config_file(tmp_path: Path) -> None:
    cfg = yaml.safe_load((CONFIG_DIR / "handovers.yaml").read_text())
    cfg["report_days_before"] = 21
    cfg["alerts"] = [{"name": "six_weeks", "label": "six weeks", "weeks_before": 6}]
    cfg["qualifying"]["more_than_months"] = 12
    path = tmp_path / "handovers.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rules = load_rules(path)
    s = schedule_for(dt.date(2027, 3, 31), rules, CAL)  # a Wednesday
    assert s.report_on == dt.date(2027, 3, 10)
    assert [(a.name, a.day) for a in s.alerts] == [("six_weeks", dt.date(2027, 2, 17))]
    assert not rules.qualifies("SDS", 12) and rules.qualifies("SDS", 13)


def test_standard_determinate_sentences_of_more_than_10_months_qualify() -> None:
    rules = load_rules()
    assert rules.qualifies("SDS", 11)
    assert not rules.qualifies("SDS", 10)  # "more than 10 months"
    assert not rules.qualifies("EDS", 48)
    assert rules.session_window_start(dt.date(2027, 5, 31)) == dt.date(2027, 2, 28)


def test_a_bad_row_names_its_row_field_and_rule_and_every_bad_row_is_reported() -> None:
    rows = [
        (2, good()),
        (3, good(crn="X000001", handover_date="")),
        (4, good(crn="X000002", pom_email="not an email", sentence_type="XYZ")),
        (5, good(crn="X000003", handover_date="2027-04-01")),  # after release
        (6, good(crn="X000004", com_team_code="NOPE")),
        (7, good(crn="X000005", name="Two\nLines")),
        (8, good()),  # the same CRN as row 2
        (9, good(crn="12345")),
        (10, good(crn="X000006", sentence_length_months="ten", lao="maybe", release_date="31/02/2027")),
    ]
    with pytest.raises(HandoverInputError) as caught:
        check_rows(rows, "h.csv")
    errors = caught.value.errors
    assert "h.csv row 3: handover_date: is required" in errors
    assert "h.csv row 4: pom_email: 'not an email' is not an email address" in errors
    assert any(e.startswith("h.csv row 4: sentence_type: 'XYZ' is not a sentence type") for e in errors)
    assert any(e.startswith("h.csv row 5: handover_date: 2027-04-01 is after the release date 2027-03-01") for e in errors)
    assert any(e.startswith("h.csv row 6: com_team_code: 'NOPE' is not a team") for e in errors)
    assert any(e.startswith("h.csv row 7: name: must be one line") for e in errors)
    assert "h.csv row 8: crn: X123456 is also on row 2; one row per CRN" in errors
    assert any(e.startswith("h.csv row 9: crn: must be a CRN") for e in errors)
    row10 = [e for e in errors if e.startswith("h.csv row 10: ")]
    assert {e.split(": ")[1] for e in row10} == {"sentence_length_months", "lao", "release_date"}
    assert not any(e.startswith("h.csv row 2:") for e in errors)


def test_a_good_row_takes_its_pdu_and_region_from_the_team_and_uk_dates() -> None:
    (record,) = check_rows([(2, good(release_date="01/03/2027", lao="Yes", crn=" x123456 "))], "h.csv")
    assert record.crn == "X123456" and record.lao is True
    assert record.release_date == dt.date(2027, 3, 1)
    assert record.com_pdu_code == "N50GMS"  # team N50CAD is in Manchester South
    assert record.region_code == "N50"
    with pytest.raises(HandoverInputError, match="com_pdu_code: 'N07CAD' is not the PDU of team N50CAD"):
        check_rows([(2, good(com_pdu_code="N07CAD"))], "h.csv")


def test_an_import_file_with_unknown_or_missing_columns_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("crn,name,colour\nX123456,Pat,blue\n")
    with pytest.raises(HandoverInputError) as caught:
        read_rows(path)
    text = str(caught.value)
    assert "h.csv row 1: unknown columns colour" in text
    assert "missing columns prison, pom_name" in text
    with pytest.raises(HandoverInputError, match="must be a .csv or .xlsx file"):
        read_rows(tmp_path / "h.txt")
    assert len(FIELDS) == 16  # the sentence date (issue 27) is the 16th
