"""Transfers driven as people drive them: a form raised with `casetransfer raise`, the answers
each step asks for on the command line, and what "waiting at a step" looks like in the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from conftest import demo_form

from support.cli import cli
from tasks.domain import transfer_views

# The sequential shape (1): one step after another.
STEPS = [
    ("allocation", ["--practitioner", "Pat Receiver", "--team-code", "N50CAD", "--recorded-by", "Kim SPO"]),
    (
        "address_assessment",
        ["--method", "home_visit", "--suitable", "true", "--notes", "Room seen", "--recorded-by", "Pat Receiver"],
    ),
    ("police_checks", ["--returned-on", "2026-12-21", "--recorded-by", "Admin A"]),
    ("safeguarding_checks", ["--returned-on", "2026-12-21", "--recorded-by", "Admin A"]),
    ("handover", ["--held-on", "2026-12-21", "--recorded-by", "Sam Practitioner"]),
    ("decision", ["--outcome", "accept", "--recorded-by", "Kim SPO"]),
    ("completion", ["--responsible-officer", "Pat Receiver", "--recorded-by", "Kim SPO"]),
]

# The concurrent shape (2): after allocation the tasks wait at once; work is dated when done.
RAISED = "2026-12-14"  # a week before the pinned today, so work can be dated on the days it was done
ALLOCATION = ["--practitioner", "Pat Receiver", "--team-code", "N50CAD", "--recorded-by", "Kim SPO", "--done-on", "2026-12-15"]
AFTER_ALLOCATION = {
    "police_checks": ["--returned-on", "2026-12-16", "--recorded-by", "Admin A"],
    "address_assessment": ["--method", "home_visit", "--suitable", "true", "--recorded-by", "Pat Receiver", "--done-on", "2026-12-18"],
    "safeguarding_checks": ["--done-on", "2026-12-17", "--recorded-by", "Admin A"],
    "documents": ["--done-on", "2026-12-16", "--recorded-by", "Admin A"],
    "handover": ["--held-on", "2026-12-18", "--recorded-by", "Sam Practitioner"],
}
COMPLETION = ["--responsible-officer", "Pat Receiver", "--recorded-by", "Kim SPO", "--done-on", "2026-12-21"]


def raise_form(tmp_path: Path, **changes: Any) -> str:
    """`casetransfer raise` the demo form with `changes`; returns the reference it prints."""
    path = tmp_path / f"{changes.get('crn', 'form')}.yaml"
    path.write_text(yaml.safe_dump(demo_form(**changes)))
    return cli("raise", str(path)).stdout.strip()


def waiting_at(reference: str, step: str) -> Callable[[], bool]:
    """The sequential shape's transfer waits at `step`."""
    return lambda: transfer_views.nsi_status(reference) == (f"awaiting_{step}", step)
