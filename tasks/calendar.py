"""Named working-day calendars: weekends, England & Wales bank holidays, local closures.

Day 0 is the day the clock starts; when that day is not a working day the count starts from
the next working day (DOMAIN.md). numpy's busday_offset with roll="forward" is exactly that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import holidays
import numpy as np

from tasks.config_files import read_yaml
from tasks.settings import CONFIG_DIR

FIRST_YEAR = 2000
LAST_YEAR = 2060


@dataclass(frozen=True)
class WorkingDayCalendar:
    name: str
    closures: frozenset[dt.date] = field(default_factory=frozenset)

    @property
    def _busdaycal(self) -> np.busdaycalendar:
        return _busdaycal(self.name, self.closures)

    def is_working_day(self, day: dt.date) -> bool:
        return bool(np.is_busday(np.datetime64(day, "D"), busdaycal=self._busdaycal))

    def add_working_days(self, start: dt.date, n: int) -> dt.date:
        """The working day n working days after start (day 0 rolls forward)."""
        out = np.busday_offset(np.datetime64(start, "D"), n, roll="forward", busdaycal=self._busdaycal)
        return out.astype(dt.date)

    def add_working_days_many(self, starts: np.ndarray, n: int | np.ndarray) -> np.ndarray:
        """Vectorised add_working_days over datetime64[D] arrays (trackers, benchmarks)."""
        return np.busday_offset(starts.astype("datetime64[D]"), n, roll="forward", busdaycal=self._busdaycal)

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days after start up to and including end (negative when end is earlier)."""
        if end >= start:
            return int(np.busday_count(np.datetime64(start, "D") + 1, np.datetime64(end, "D") + 1, busdaycal=self._busdaycal))
        return -self.working_days_between(end, start)

    def working_days_between_many(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        s = starts.astype("datetime64[D]") + np.timedelta64(1, "D")
        e = ends.astype("datetime64[D]") + np.timedelta64(1, "D")
        forward = e >= s
        lo = np.where(forward, s, e)
        hi = np.where(forward, e, s)
        counts = np.busday_count(lo, hi, busdaycal=self._busdaycal)
        return np.where(forward, counts, -counts)

    def next_working_day(self, day: dt.date) -> dt.date:
        return self.add_working_days(day, 0)


@lru_cache(maxsize=16)
def _busdaycal(name: str, closures: frozenset[dt.date]) -> np.busdaycalendar:
    days = set(bank_holidays(name)) | set(closures)
    return np.busdaycalendar(weekmask="1111100", holidays=sorted(np.datetime64(d, "D") for d in days))


def bank_holidays(name: str) -> Iterable[dt.date]:
    if name != "england-and-wales":
        raise ValueError(f"calendar: unknown calendar {name!r}; known: england-and-wales")
    # ENG and WLS are identical (NOTES.md); both are listed so a Welsh-only day would count.
    years = range(FIRST_YEAR, LAST_YEAR + 1)
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
