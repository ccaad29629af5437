"""bench/month.py's volume plan: a week's transfers close evenly and add up to the weekly figure, a
later period adds only the days since the one before, and each period leaves retention one day to
sweep tonight, the day after the retention window."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def month() -> Iterator[ModuleType]:
    path = list(sys.path)
    spec = importlib.util.spec_from_file_location("bench_month", ROOT / "bench" / "month.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]
    sys.path[:] = path  # the bench puts bench/ first on the path for its own imports: take it off again


def test_a_weeks_closures_add_up_to_the_weekly_figure_a_day_at_a_time(month: ModuleType) -> None:
    days = [month.closing_on(2000, d) for d in range(1, 8)]
    assert sum(days) == 2000
    assert max(days) - min(days) <= 1


def test_the_month_adds_only_the_days_after_the_week_and_each_period_sweeps_the_day_after_retention(month: ModuleType) -> None:
    week, whole_month = month.plan(2000, [7, 30], retention_days=30)
    assert [d for d, _ in week.added] == list(range(1, 8))
    assert [d for d, _ in whole_month.added] == list(range(8, 31))
    assert sum(n for _, n in week.added + whole_month.added) == 2000 * 30 // 7
    assert week.swept[0] == whole_month.swept[0] == 31
    assert (week.name, whole_month.name) == ("a week", "a month")


def test_periods_past_the_retention_window_or_out_of_order_are_refused_naming_the_option(month: ModuleType) -> None:
    with pytest.raises(ValueError, match="--periods"):
        month.plan(2000, [7, 31], retention_days=30)
    with pytest.raises(ValueError, match="--periods"):
        month.plan(2000, [30, 7], retention_days=30)
