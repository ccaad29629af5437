"""Challenges about risk and disputes of a refusal (concurrent shape): how each changes a Transfer.

A challenge is raised by the receiving side before completion and settled by the receiving SPO
(its answer is a step: Transfer.answer); a refusal (an upheld challenge) may be disputed by the
transferring SPO within the period in config, and the head of the receiving PDU settles it.
"""

from __future__ import annotations

import datetime as dt

from tasks.calendar import get_calendar
from tasks.domain.form import NsiType
from tasks.domain.transfer import CHALLENGED, DISPUTED, StepRefused, Transfer, today
from tasks.settings import get_settings
from tasks.store.models import Challenge


def raise_challenge(t: Transfer, concern: str, by: str, role: str) -> tuple[int, int]:
    """A challenge about risk from the receiving side, before completion: a waiting task for the
    receiving SPO. At most one is open at a time. Returns (challenge number, wake-up sequence)."""
    nsi, policy = t.nsi, t.policy
    # The person's own mistake first (the role they gave), then the NSI's kind, state and shape:
    # each refusal names the one thing that is wrong.
    if role not in policy.challenge_raisers:
        raise StepRefused("role", f"{role!r} cannot raise a challenge; it is for: {', '.join(policy.challenge_raisers)}")
    if nsi.nsi_type != NsiType.case_transfer.value:
        raise StepRefused("nsi", f"{nsi.reference} is a Temporary Move: challenges about risk are raised on Case Transfers only")
    if t.closed:
        raise StepRefused("nsi", f"{nsi.reference} is {nsi.status}: a challenge can be raised only before completion")
    if nsi.shape_version < 2:
        raise StepRefused("nsi", f"{nsi.reference} follows the sequential shape: the receiving SPO answers its decision step")
    if (open_one := t.open_challenge()) is not None:
        raise StepRefused("nsi", f"challenge {open_one.seq} is already open for {nsi.reference}; one at a time")
    seq = len(nsi.challenges) + 1
    nsi.challenges.append(
        Challenge(seq=seq, concern=concern, raised_by=by, raised_role=role, raised_on=today(), status="open", reasons=[], evidence="")
    )
    nsi.status = CHALLENGED
    t.wake()
    t.note(f"challenge:{seq}", "challenge raised", f"challenge {seq} about risk: {concern}", by)
    return seq, nsi.wake_seq


def dispute_deadline(t: Transfer) -> dt.date | None:
    """The last day the latest refusal can be disputed, or None when nothing was refused."""
    upheld = [c for c in t.nsi.challenges if c.status == "upheld"]
    if not upheld or upheld[-1].settled_on is None:
        return None
    return get_calendar(get_settings().calendar).add_working_days(upheld[-1].settled_on, t.policy.dispute_working_days)


def raise_dispute(t: Transfer, grounds: str, by: str) -> int:
    """The transferring SPO disputes an upheld challenge (a refusal) within the period in config.
    Returns the challenge number; its dispute is a waiting task for the head of the receiving PDU."""
    nsi = t.nsi
    upheld = [c for c in nsi.challenges if c.status == "upheld"]
    if nsi.status == "refused" and not upheld:
        raise StepRefused(
            "nsi",
            f"{nsi.reference} was refused at its decision step (the sequential shape), which has no dispute: "
            "only a refusal that upheld a challenge about risk can be disputed",
        )
    if nsi.status != "refused":
        raise StepRefused("nsi", f"{nsi.reference} is {nsi.status}, not refused: only a refusal (an upheld challenge) can be disputed")
    challenge = upheld[-1]
    if challenge.dispute_status is not None:
        raise StepRefused("nsi", f"the refusal of {nsi.reference} was already disputed ({challenge.dispute_status})")
    deadline = dispute_deadline(t)
    if deadline is not None and today() > deadline:
        raise StepRefused(
            "nsi",
            f"the period to dispute the refusal ended on {deadline} ({t.policy.dispute_working_days} working days from "
            f"{challenge.settled_on})",
        )
    challenge.dispute_status, challenge.disputed_by, challenge.disputed_on, challenge.grounds = "open", by, today(), grounds
    nsi.status = DISPUTED
    nsi.closed_on = None
    t.wake()
    t.note(f"dispute:{challenge.seq}", "refusal disputed", f"dispute of the refusal: {grounds}", by)
    return challenge.seq
