"""The POM-COM handover report outside email: the admins' tracker sheet's rows, the
handover-reminders flow's table artifact, and the lines `casetransfer handovers` prints.

Each handover is listed from its report day until its deadline (tasks/notify/handover_reminders.py:
in_report). Limited access cases are by CRN only (name and prison None) in the tracker's rows; the
artifact and the command's lines hold CRNs and dates only, never a name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from tasks.domain.handovers import load_rules
from tasks.notify.handover_reminders import Case, HandoverPlan, cases_around, in_report


def artifact_rows(plan: HandoverPlan) -> list[dict[str, str]]:
    """The Prefect table artifact: CRNs and dates only (the UI is not the place for names)."""
    return [
        {
            "crn": c.crn,
            "handover_by": c.deadline.isoformat(),
            "release_date": c.release_date.isoformat(),
            "report_on": c.schedule.report_on.isoformat(),
            **{f"{a.name}_alert_on": a.day.isoformat() for a in c.schedule.alerts},
            "last_in_person_session": c.last_session_on.isoformat() if c.last_session_on else "",
        }
        for c in plan.report
    ]


def report_records(as_of: dt.date, url: str | None = None) -> list[dict[str, Any]]:
    """The tracker's rows: every handover in its report window, LAO cases by CRN only (name None)."""
    rules = load_rules()
    out = []
    for c in (c.redacted() for c in cases_around(as_of, url, rules) if in_report(c, as_of)):
        out.append(
            {
                "region_code": c.com_region_code,
                "crn": c.crn,
                "name": c.name,
                "lao": c.lao,
                "prison": c.prison,
                "pom_name": c.pom_name,
                "pom_email": c.pom_email,
                "com_name": c.com_name,
                "com_email": c.com_email,
                "com_team_code": c.com_team_code,
                "com_pdu": c.com_pdu_name,
                "omu_mailbox": c.omu_mailbox,
                "sentence": c.sentence_type,
                "sentence_length_months": c.sentence_length_months,
                "release_date": c.release_date,
                "handover_by": c.deadline,
                "report_on": c.schedule.report_on,
                "alerts": {a.label: a.day for a in c.schedule.alerts},
                "qualifies": c.qualifies,
                "last_session_on": c.last_session_on,
                "session_missing": c.session_missing,
                "session_window_start": c.session_window_start,
            }
        )
    return out


def describe(cases: Sequence[Case]) -> list[str]:
    """One line per case for the CLI: CRN and dates (a terminal may be shared or logged)."""
    return [
        f"{c.crn}  handover by {c.deadline}  report {c.schedule.report_on}  "
        + "  ".join(f"{a.label} alert {a.day}" for a in c.schedule.alerts)
        + ("  NO IN-PERSON SESSION" if c.session_missing else "")
        for c in cases
    ]
