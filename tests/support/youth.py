"""Youth justice transfers in the store, for the tests of 004's rules (tests/integration/test_youth_*)."""

from __future__ import annotations

from typing import Any

from conftest import TODAY, demo_form

from tasks.domain import transfer_views, transfers
from tasks.domain.form import parse_form

YOUTH_FIELDS = {"saw_level": "Low", "gender_identity": "Boy or young man", "date_of_birth": "2010-05-17"}


def raise_youth(key: str = "y-1", **changes: Any) -> str:
    changes.setdefault("raised_on", TODAY.isoformat())
    form = parse_form(demo_form(**{**YOUTH_FIELDS, **changes}), "youth")
    return transfers.register_nsi(form, key, profile="youth")


def allocate(ref: str, case_manager: str = "CM201", done_on: str = "2026-12-22", **more: Any) -> str:
    answer = {"recorded_by": "Kim TM", "case_manager": case_manager, "team_code": "N50CAD", "done_on": done_on,
              "contact_frequency_weeks": 1}  # fmt: skip  (weekly suits every RoSH and SaW, 12.5)
    return transfers.apply_step(ref, "allocation", {**answer, **more})


def actions(ref: str) -> dict[str, Any]:
    return {a.code: a for a in transfer_views.status_of(ref).actions}


def history(ref: str) -> list[Any]:
    return transfer_views.status_of(ref).history


def opened(ref: str) -> dict[str, str]:
    """The waiting tasks the transfer's run would start now, and whom each waits for."""
    return {t.task: t.owner_role for t in transfers.progress(ref).to_start}


def everything_else(ref: str) -> None:
    """The tasks every youth transfer has before completion: checks, documents and their review,
    the supervision requirements, AssetPlus, the caretaking agreement, home visit, meeting, enforcement."""
    for code in ("police_checks", "safeguarding_checks", "documents", "enforcement_complete", "asset_plus_transfer_request",
                 "caretaking_agreement_host", "caretaking_agreement_home"):  # fmt: skip
        transfers.apply_step(ref, code, {"recorded_by": "Admin"})
    transfers.apply_step(ref, "information_review", {"recorded_by": "Kim TM", "outcome": "sufficient"})
    transfers.apply_step(ref, "supervision_requirements", {"recorded_by": "Kim TM"})
    transfers.apply_step(ref, "address_assessment", {"recorded_by": "Pat", "method": "home_visit", "suitable": True})
    transfers.apply_step(ref, "handover", {"recorded_by": "Sam", "held_on": "2027-01-04"})
