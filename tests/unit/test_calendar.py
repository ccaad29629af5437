import datetime as dt

from tasks.calendar import WorkingDayCalendar, get_calendar

D = dt.date


def test_ten_working_days_from_a_plain_tuesday():
    assert get_calendar().add_working_days(D(2026, 11, 24), 10) == D(2026, 12, 8)


def test_christmas_and_new_year_bank_holidays_are_skipped():
    cal = get_calendar()
    assert cal.add_working_days(D(2026, 12, 21), 10) == D(2027, 1, 7)
    assert cal.add_working_days(D(2026, 12, 21), 20) == D(2027, 1, 21)


def test_boxing_day_on_a_saturday_gives_a_substitute_monday():
    cal = get_calendar()
    assert not cal.is_working_day(D(2026, 12, 28))
    assert cal.is_working_day(D(2026, 12, 29))


def test_a_clock_starting_on_a_weekend_counts_from_the_next_working_day():
    cal = get_calendar()
    assert cal.add_working_days(D(2026, 11, 28), 0) == D(2026, 11, 30)
    assert cal.add_working_days(D(2026, 11, 28), 1) == D(2026, 12, 1)


def test_a_closure_day_from_config_is_not_a_working_day():
    cal = WorkingDayCalendar("england-and-wales", closures=frozenset({D(2026, 11, 25)}))
    assert cal.add_working_days(D(2026, 11, 24), 1) == D(2026, 11, 26)


def test_working_days_between_counts_both_ways():
    cal = get_calendar()
    assert cal.working_days_between(D(2026, 12, 21), D(2027, 1, 7)) == 10
    assert cal.working_days_between(D(2027, 1, 7), D(2026, 12, 21)) == -10
    assert cal.working_days_between(D(2026, 12, 24), D(2026, 12, 29)) == 1


def test_the_cli_prints_only_the_due_date():
    from typer.testing import CliRunner

    from ops.cli import app

    result = CliRunner().invoke(app, ["working-days", "2026-11-24", "10"])
    assert result.exit_code == 0
    assert result.stdout == "2026-12-08\n"


def test_one_date_at_a_time_gives_the_days_the_numpy_calendar_gives():
    """The CLI and the forms count in plain Python; the tracker counts arrays with numpy."""
    import numpy as np

    cal = WorkingDayCalendar("england-and-wales", closures=frozenset({D(2026, 6, 15)}))
    starts = [D(2025, 12, 1) + dt.timedelta(days=i) for i in range(0, 500, 3)]
    arr = np.array(starts, dtype="datetime64[D]")
    for n in (-7, -1, 0, 1, 5, 10, 28, 90):
        vectorised = cal.add_working_days_many(arr, n).astype(dt.date).tolist()
        assert [cal.add_working_days(s, n) for s in starts] == vectorised, n
    ends = [s + dt.timedelta(days=(i * 37) % 200 - 60) for i, s in enumerate(starts)]
    counted = cal.working_days_between_many(arr, np.array(ends, dtype="datetime64[D]")).tolist()
    assert [cal.working_days_between(s, e) for s, e in zip(starts, ends, strict=True)] == counted
    busdays = np.is_busday(arr, busdaycal=cal._busdaycal).tolist()
    assert [cal.is_working_day(s) for s in starts] == busdays
    assert not cal.is_working_day(D(2026, 6, 15))  # the closure
