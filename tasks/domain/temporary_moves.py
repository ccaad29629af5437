"""Temporary Move rules (000_bfcbb998dd8c1214.txt, 001_9963dad67e8b87c1.txt; caretaking:
004_b0433574f6005d61.txt 12.1, 12.7, Appendix B).

The transferring practitioner stays responsible; the receiving team supports with a named
contact. A move ends one of three ways: the person returns (the case is reviewed), it becomes a
Case Transfer (a new NSI and flow run, linked to this one), or it ends. Pure functions here; the
store applies them (tasks/domain/transfers.py, tasks/domain/conversion.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dateutil.relativedelta import relativedelta

from tasks.domain.decisions import RuleBroken
from tasks.domain.form import NsiType, TransferForm
from tasks.domain.policy import Policy

# The outcome step's answer → the status the Temporary Move closes with. "converted" closes
# once the Case Transfer exists (tasks/domain/conversion.py); until then the NSI is "converting".
OUTCOMES = {"returned": "returned", "converted": "converted", "ended": "ended"}
CONVERTING = "converting"
SUPPORTING = "supporting"  # support contact allocated: the supporting period

AGREEMENT_FIELDS = ("caretaking_from", "receiving_responsibilities", "home_responsibilities", "review_date")


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def check_caretaking_agreement(policy: Policy, answer: dict[str, Any], today: dt.date) -> None:
    """The caretaking agreement on a support allocation: which side does what, and a review date
    no more than the caretaking limit after acceptance. Required where the policy says so;
    checked whenever given."""
    if policy.caretaking_agreement_required:
        for name in AGREEMENT_FIELDS:
            value = answer.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise RuleBroken(
                    name, "required: record the caretaking agreement (who does what, from when, and the review date)"
                )
    review = _date(answer.get("review_date"))
    if review is None:
        return
    accepted = _date(answer.get("caretaking_from")) or today
    limit = accepted + relativedelta(months=policy.caretaking_months)
    if review < accepted:
        raise RuleBroken("review_date", f"must not be before caretaking starts ({accepted:%d %B %Y})")
    if review > limit:
        raise RuleBroken(
            "review_date",
            f"must be no more than {policy.caretaking_months} months after acceptance ({accepted:%d %B %Y}): "
            f"{limit:%d %B %Y} at the latest",
        )


def agreement_detail(answer: dict[str, Any]) -> str:
    """One history line for a recorded caretaking agreement; empty when none was given."""
    if not answer.get("review_date") and not answer.get("receiving_responsibilities"):
        return ""
    parts = []
    if answer.get("caretaking_from"):
        parts.append(f"caretaking from {answer['caretaking_from']}")
    if answer.get("receiving_responsibilities"):
        parts.append(f"receiving side: {answer['receiving_responsibilities']}")
    if answer.get("home_responsibilities"):
        parts.append(f"home side: {answer['home_responsibilities']}")
    if answer.get("review_date"):
        parts.append(f"review by {answer['review_date']}")
    if answer.get("contact_frequency_weeks"):
        parts.append(f"the host's record of contacts every {answer['contact_frequency_weeks']} weeks")
    return "caretaking agreement: " + "; ".join(parts)


def conversion_form(form: dict[str, Any], on: dt.date, raised_by: str, receiving_pdu_code: str) -> TransferForm:
    """The Case Transfer a Temporary Move becomes: the same person, addresses and risk, raised on
    the day of the decision. The move date is that day too: the permanent move starts now, so the
    reassessment and plan review clocks start from it rather than from the temporary move."""
    data = dict(form)
    data.update(
        nsi_type=NsiType.case_transfer.value,
        temporary_reason=None,
        expected_return_date=None,
        raised_on=on.isoformat(),
        received_on=None,
        move_date=on.isoformat(),
        raised_by=raised_by,
        receiving_pdu_code=receiving_pdu_code,
        supersedes=None,  # the move it superseded (if any) is closed already; this continues the move
    )
    return TransferForm.model_validate(data)


def as_temporary_move(form: TransferForm) -> TransferForm:
    """The temporary-move flow raises Temporary Moves: a form left at the UI's default type is
    re-validated as one (so its temporary reason and return date are required)."""
    if form.nsi_type is NsiType.temporary_move:
        return form
    return TransferForm.model_validate({**form.model_dump(mode="json"), "nsi_type": NsiType.temporary_move.value})


def looked_after_as_caretaking(form: TransferForm, policy: Policy) -> TransferForm:
    """12.2: a looked-after child stays the home service's case: their Case Transfer request is
    raised as caretaking (a Temporary Move), expected to last to the end of the order."""
    if not (policy.looked_after_caretaking and form.looked_after and form.nsi_type is NsiType.case_transfer):
        return form
    data = form.model_dump(mode="json")
    data.update(
        nsi_type=NsiType.temporary_move.value,
        temporary_reason=data.get("temporary_reason") or "Looked-after child: caretaking, not a transfer (12.2)",
        expected_return_date=data.get("expected_return_date") or data["sentence_end_date"],
    )
    return TransferForm.model_validate(data)
