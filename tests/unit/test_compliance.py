"""The inspection's measures as pure functions over the store's rows (tasks/reports/compliance.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from tasks.calendar import get_calendar
from tasks.reports.compliance import InspectionMeasure, inspection

AS_OF = dt.date(2026, 12, 21)
NAT = np.datetime64("NaT")


def d(text: str | None) -> np.datetime64:
    return np.datetime64(text, "D") if text else NAT


def nsis(*rows: dict) -> pd.DataFrame:
    base = {"nsi_type": "case_transfer", "status": "in_progress", "received_on": d("2026-11-02"), "move_on": NAT,
            "closed_on": NAT, "diversity_recorded": False, "rosh": "Low", "mappa_level": None, "imported_on": NAT}  # fmt: skip
    return pd.DataFrame([{**base, **r} for r in rows])


def actions(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["pos", "code", "due_on", "done_on", "state"])


def table(n: pd.DataFrame, a: pd.DataFrame, *measures: InspectionMeasure) -> dict[tuple[str, str], tuple[int, int]]:
    out = inspection(n, a, AS_OF, get_calendar("england-and-wales"), measures)
    return {(r.measure, r.group): (r.met, r.applicable) for r in out.itertuples()}


def test_completion_within_20_working_days_counts_transfers_completed_or_past_their_deadline() -> None:
    m = InspectionMeasure(measure="Completed", done="completion", clock="notified", working_days=20)
    n = nsis(
        {"status": "completed", "closed_on": d("2026-11-27")},  # 19 working days: met
        {"status": "completed", "closed_on": d("2026-12-18")},  # late
        {},  # open, past 30 November: applicable, not met
        {"received_on": d("2026-12-14")},  # open, not yet due: not applicable
        {"status": "withdrawn"},  # out
        {"nsi_type": "temporary_move"},  # not a transfer
    )
    assert table(n, actions(), m)[("Completed", "All")] == (1, 3)


def test_groups_split_transfers_from_temporary_moves_high_risk_from_the_rest_and_imported_from_raised_here() -> None:
    m = InspectionMeasure(measure="Plan", done="plan_review", clock="move", weeks=4)
    n = nsis(
        {"rosh": "High", "imported_on": d("2026-12-01")},
        {"nsi_type": "temporary_move", "mappa_level": 2.0},
        {},
    )
    a = actions(
        {"pos": 0, "code": "plan_review", "due_on": d("2026-11-30"), "done_on": d("2026-11-20"), "state": "done"},
        {"pos": 1, "code": "plan_review", "due_on": d("2026-11-30"), "done_on": NAT, "state": "open"},
        {"pos": 2, "code": "plan_review", "due_on": d("2026-11-30"), "done_on": NAT, "state": "cancelled"},
    )
    out = inspection(n, a, AS_OF, get_calendar("england-and-wales"), [m]).set_index("group")
    assert (out.loc["All", "met"], out.loc["All", "applicable"]) == (1, 2)
    assert (out.loc["Case transfers", "met"], out.loc["Case transfers", "applicable"]) == (1, 1)
    assert (out.loc["Temporary moves", "met"], out.loc["Temporary moves", "applicable"]) == (0, 1)
    assert out.loc["High RoSH or MAPPA", "applicable"] == 2 and out.loc["Not high RoSH or MAPPA", "applicable"] == 0
    assert (out.loc["All", "applicable_imported"], out.loc["All", "applicable_here"]) == (1, 1)
    assert out.loc["All", "share"] == 0.5


def test_work_done_in_time_is_not_met_when_the_nsi_is_flagged_by_the_measures_unless_column() -> None:
    m = InspectionMeasure(measure="Kept", done="first_appointment_kept", by_due=True, unless="first_appointment_missed")
    n = nsis({"first_appointment_missed": False}, {"first_appointment_missed": True}, {"first_appointment_missed": False})
    a = actions(
        {"pos": 0, "code": "first_appointment_kept", "due_on": d("2026-12-15"), "done_on": d("2026-12-10"), "state": "done"},
        {"pos": 1, "code": "first_appointment_kept", "due_on": d("2026-12-15"), "done_on": d("2026-12-10"), "state": "done"},
        {"pos": 2, "code": "first_appointment_kept", "due_on": d("2026-12-15"), "done_on": NAT, "state": "open"},
    )
    assert table(n, a, m)[("Kept", "All")] == (1, 3)
