"""Named working-day calendars: weekends, England & Wales bank holidays, local closures.

Day 0 is the day the clock starts; when that day is not a working day the count starts from
the next working day (DOMAIN.md). numpy's busday_offset with roll="forward" is exactly that.

One date at a time (a form, the CLI, a step's due date) is counted in plain Python over the
holidays of the years it crosses: importing numpy and building the 61-year calendar costs a
command line ~0.2 s. Arrays (the tracker) use numpy; a test checks both give the same days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from tasks.config_files import read_yaml
from tasks.settings import CONFIG_DIR

FIRST_YEAR = 2000
LAST_YEAR = 2060

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class WorkingDayCalendar:
    name: str
    closures: frozenset[dt.date] = field(default_factory=frozenset)

    @property
    def _busdaycal(self) -> np.busdaycalendar:
        return _busdaycal(self.name, self.closures)

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in _year_holidays(self.name, day.year) and day not in self.closures

    def add_working_days(self, start: dt.date, n: int) -> dt.date:
        """The working day n working days after start (day 0 rolls forward)."""
        day = start
        while not self.is_working_day(day):
            day += ONE_DAY
        step = ONE_DAY if n >= 0 else -ONE_DAY
        for _ in range(abs(n)):
            day += step
            while not self.is_working_day(day):
                day += step
        return day

    def add_working_days_many(self, starts: np.ndarray, n: int | np.ndarray) -> np.ndarray:
        """Vectorised add_working_days over datetime64[D] arrays (trackers, benchmarks)."""
        import numpy as np

        return np.busday_offset(starts.astype("datetime64[D]"), n, roll="forward", busdaycal=self._busdaycal)

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days after start up to and including end (negative when end is earlier)."""
        if end < start:
            return -self.working_days_between(end, start)
        count, day = 0, start
        while day < end:
            day += ONE_DAY
            count += self.is_working_day(day)
        return count

    def working_days_between_many(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        import numpy as np

        s = starts.astype("datetime64[D]") + np.timedelta64(1, "D")
        e = ends.astype("datetime64[D]") + np.timedelta64(1, "D")
        forward = e >= s
        lo = np.where(forward, s, e)
        hi = np.where(forward, e, s)
        counts = np.busday_count(lo, hi, busdaycal=self._busdaycal)
        return np.where(forward, counts, -counts)


ONE_DAY = dt.timedelta(days=1)


@lru_cache(maxsize=256)
def _year_holidays(name: str, year: int) -> frozenset[dt.date]:
    """One year's bank holidays (none outside FIRST_YEAR..LAST_YEAR, as in the numpy calendar)."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        if name != "england-and-wales":
            raise ValueError(f"calendar: unknown calendar {name!r}; known: england-and-wales")
        return frozenset()
    return frozenset(bank_holidays(name, range(year, year + 1)))


@lru_cache(maxsize=16)
def _busdaycal(name: str, closures: frozenset[dt.date]) -> np.busdaycalendar:
    import numpy as np

    days = set(bank_holidays(name)) | set(closures)
    return np.busdaycalendar(weekmask="1111100", holidays=sorted(np.datetime64(d, "D") for d in days))


def bank_holidays(name: str, years: range = range(FIRST_YEAR, LAST_YEAR + 1)) -> Iterable[dt.date]:
    if name != "england-and-wales":
        raise ValueError(f"calendar: unknown calendar {name!r}; known: england-and-wales")
    import holidays

    # ENG and WLS are identical (NOTES.md); both are listed so a Welsh-only day would count.
    eng = holidays.country_holidays("GB", subdiv="ENG", years=years)
    wls = holidays.country_holidays("GB", subdiv="WLS", years=years)
    return set(eng) | set(wls)


def load_closures(path=None) -> frozenset[dt.date]:  # type: ignore[no-untyped-def]
    """Extra non-working days (one-off bank holidays announced after the holidays release)."""
    path = path or CONFIG_DIR / "closures.yaml"
    if not path.exists():
        return frozenset()
    data = read_yaml(path) or {}
    return frozenset(dt.date.fromisoformat(str(d["date"])) for d in data.get("closures", []))


@lru_cache(maxsize=4)
def get_calendar(name: str = "england-and-wales") -> WorkingDayCalendar:
    return WorkingDayCalendar(name=name, closures=load_closures())
