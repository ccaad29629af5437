"""The 2004 inspection's measures (002 App. 2) over the store's rows: pure functions, no I/O.

Each measure (config/tracker.yaml `inspection`) reports, per group of NSIs, the applicable
cases, the number met and the share, for every NSI, for those raised here and for those imported
from a legacy tracker, so a region can compare before and after go-live. The tracker writes
the table under the policy's timescales on its Compliance sheet (tasks/reports/timeliness_sheets.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, model_validator

from tasks.calendar import WorkingDayCalendar
from tasks.config_files import read_yaml
from tasks.domain.document_config import item_measures
from tasks.settings import get_settings

HIGH_ROSH = ("High", "Very High")
COLUMNS = [
    "measure", "group", "applicable", "met", "share",
    "applicable_here", "met_here", "share_here", "applicable_imported", "met_imported", "share_imported",
]  # fmt: skip


class InspectionMeasure(BaseModel):
    measure: str
    done: str  # an action code, "completion" or "diversity"
    clock: Literal["notified", "move", "caretaking"] | None = None
    days: int | None = None
    working_days: int | None = None
    weeks: int | None = None
    by_due: bool = False
    # A column of the NSI rows that, when true, makes the work done not met: the first appointment
    # recorded but missed (`first_appointment_missed`, set by tasks/reports/tracker_read.py).
    unless: str | None = None

    @model_validator(mode="after")
    def _one_deadline(self) -> InspectionMeasure:
        limits = sum(x is not None for x in (self.days, self.working_days, self.weeks))
        if self.done == "diversity":
            return self
        if self.by_due == (limits == 1) or (limits == 1 and self.clock is None):
            raise ValueError(f"inspection: {self.measure!r} needs a clock and one of days, working_days, weeks; or by_due")
        return self


@lru_cache(maxsize=2)
def load_measures(path: Path | None = None) -> tuple[InspectionMeasure, ...]:
    raw = read_yaml(path or get_settings().config_dir / "tracker.yaml")
    # Then the documents received item by item (config/documents.yaml), beside the inspection's table.
    return tuple(InspectionMeasure.model_validate(m) for m in [*(raw.get("inspection") or []), *item_measures()])


def _deadline(m: InspectionMeasure, start: np.ndarray, calendar: WorkingDayCalendar) -> np.ndarray:
    if m.working_days is not None:
        out = np.full(len(start), np.datetime64("NaT"), dtype="datetime64[D]")
        ok = ~np.isnat(start)
        if ok.any():
            out[ok] = calendar.add_working_days_many(start[ok], m.working_days)
        return out
    return start + np.timedelta64(m.days if m.days is not None else 7 * (m.weeks or 0), "D")


def groups(nsis: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """All; by kind (transfer vs temporary move); by high RoSH or MAPPA."""
    is_ct = (nsis["nsi_type"].astype(str) == "case_transfer").to_numpy()
    high = np.isin(nsis["rosh"].astype(str).to_numpy(), HIGH_ROSH) | nsis["mappa_level"].notna().to_numpy()
    return [
        ("All", np.ones(len(nsis), dtype=bool)),
        ("Case transfers", is_ct),
        ("Temporary moves", ~is_ct),
        ("High RoSH or MAPPA", high),
        ("Not high RoSH or MAPPA", ~high),
    ]


def inspection(
    nsis: pd.DataFrame,
    actions: pd.DataFrame,
    as_of: dt.date,
    calendar: WorkingDayCalendar,
    measures: Sequence[InspectionMeasure] | None = None,
) -> pd.DataFrame:
    """One row per measure and group: applicable, met and share, overall, raised here, imported.

    nsis: one row per NSI with nsi_type, status, received_on, move_on, closed_on (datetime64),
    diversity_recorded, rosh, mappa_level, imported_on (and any `unless` column). actions: pos (row in nsis), code,
    due_on, done_on (datetime64) and state (open, done, cancelled on the as-of day)."""
    measures = load_measures() if measures is None else measures
    today = np.datetime64(as_of, "D")
    n = len(nsis)
    is_tm = (nsis["nsi_type"].astype(str) == "temporary_move").to_numpy()
    received = nsis["received_on"].to_numpy(dtype="datetime64[D]")
    move = nsis["move_on"].to_numpy(dtype="datetime64[D]")
    move = np.where(np.isnat(move), received, move)
    clocks = {"notified": received, "move": move, "caretaking": np.where(is_tm, move, received)}
    imported = ~nsis["imported_on"].isna().to_numpy()
    status = nsis["status"].astype(str).to_numpy()
    closed = nsis["closed_on"].to_numpy(dtype="datetime64[D]")
    pos = actions["pos"].to_numpy()
    code = actions["code"].astype(str).to_numpy()
    state = actions["state"].astype(str).to_numpy()
    a_done = actions["done_on"].to_numpy(dtype="datetime64[D]")
    a_due = actions["due_on"].to_numpy(dtype="datetime64[D]")
    split = groups(nsis)
    rows = []
    for m in measures:
        applicable = np.zeros(n, dtype=bool)
        met = np.zeros(n, dtype=bool)
        if m.done == "diversity":
            applicable[:] = True
            met = nsis["diversity_recorded"].to_numpy(dtype=bool)
        elif m.done == "completion":
            done_on = np.where(status == "completed", closed, np.datetime64("NaT"))
            deadline = _deadline(m, clocks[m.clock or "notified"], calendar)
            live = ~is_tm & ~np.isin(status, ["refused", "withdrawn", "superseded"])
            applicable = live & (~np.isnat(done_on) | (deadline <= today))
            met = applicable & ~np.isnat(done_on) & (done_on <= deadline)
        else:
            sel = (code == m.done) & (state != "cancelled")
            p = pos[sel]
            done_on = np.where(state[sel] == "done", a_done[sel], np.datetime64("NaT"))
            deadline = a_due[sel] if m.by_due else _deadline(m, clocks[m.clock or "notified"][p], calendar)
            counted = ~np.isnat(done_on) | (deadline <= today)
            applicable[p[counted]] = True
            met[p[counted & ~np.isnat(done_on) & (done_on <= deadline)]] = True
            if m.unless is not None:
                met &= ~nsis[m.unless].to_numpy(dtype=bool)
        for label, mask in split:
            row: dict[str, object] = {"measure": m.measure, "group": label}
            for suffix, part in (("", mask), ("_here", mask & ~imported), ("_imported", mask & imported)):
                a, k = int((applicable & part).sum()), int((met & part).sum())
                row[f"applicable{suffix}"], row[f"met{suffix}"] = a, k
                row[f"share{suffix}"] = k / a if a else None
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
