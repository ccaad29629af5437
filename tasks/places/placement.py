"""Where a transfer goes: the receiving PDU (the form's, or the locator's for the proposed
postcode), and the rules a placement must keep (no internal move raised as a transfer)."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.domain.form import FormError, NsiType, TransferForm
from tasks.domain.policy import Policy, get_policy
from tasks.places.cross_border import named_pdu_detail, named_pdu_problem
from tasks.places.estate import load_estate
from tasks.settings import get_settings


@dataclass(frozen=True)
class Placement:
    """Where a transfer goes: the locator's answer, or the PDU the form names."""

    receiving_pdu_code: str
    distance_km: float | None = None
    # The PDU the locator places the proposed postcode in, where the form names another (with a reason).
    located_pdu_code: str | None = None


def place(form: TransferForm) -> Placement:
    """The receiving PDU: the form's, or the PDU locator's for the proposed postcode.

    An address outside England and Wales is refused with the route that applies there
    (tasks/places/cross_border.py), whether or not a PDU is named; a named PDU other than the one
    the locator places the postcode in needs the form's receiving_pdu_reason."""
    from tasks.places.locator import LocatorError, OutsideEnglandAndWales, get_locator  # the index loads only when needed

    locator = get_locator()
    distance = None
    try:
        distance = locator.distance_km(form.current_postcode, form.proposed_postcode)
    except LocatorError:
        distance = None
    located = None
    try:
        located = locator.locate(form.proposed_postcode)
    except OutsideEnglandAndWales as exc:
        if form.receiving_pdu_code:
            raise FormError([("receiving_pdu_code", f"{form.receiving_pdu_code} is a PDU of England and Wales and cannot "
                              f"receive an address outside them: {exc}")]) from None  # fmt: skip
        raise FormError([("proposed_postcode", str(exc))]) from None
    except LocatorError as exc:
        if not form.receiving_pdu_code:
            raise FormError([("proposed_postcode", f"{exc}; name the receiving_pdu_code instead")]) from None
    if located is not None and not form.receiving_pdu_code:
        return Placement(located.pdu_code, distance)
    named, at = str(form.receiving_pdu_code), located.pdu_code if located is not None else None
    problem = named_pdu_problem(named, at, form.receiving_pdu_reason, located.pdu_name if located is not None else "")
    if problem is not None:
        raise FormError([problem])
    return Placement(named, distance, at if at != named else None)


def placement_detail(form: TransferForm, placement: Placement) -> str:
    """The raised history line's words about a named PDU the locator would not have chosen."""
    return named_pdu_detail(placement.receiving_pdu_code, placement.located_pdu_code, form.receiving_pdu_reason)


def check_placement(form: TransferForm, placement: Placement, policy: Policy | None = None) -> tuple[str, str, str]:
    """(transferring PDU, transferring region, receiving region), or FormError. A move inside
    the transferring PDU is an internal move, not a case transfer, unless the policy allows
    internal transfers and the form says it is one."""
    policy = policy or get_policy(get_settings().profile)
    estate = load_estate()
    team = estate.teams.get(form.transferring_team_code)
    if team is None:
        raise FormError([("transferring_team_code", f"{form.transferring_team_code!r} is not a team in the estate")])
    pdu = estate.pdus.get(placement.receiving_pdu_code)
    if pdu is None or not pdu.geographic:
        raise FormError([("receiving_pdu_code", f"{placement.receiving_pdu_code!r} is not a geographic PDU")])
    internal_allowed = form.internal_transfer and policy.internal_transfers
    if form.nsi_type is NsiType.case_transfer and pdu.code == team.pdu_code and not internal_allowed:
        why = " (internal transfers are not part of this service's policy)" if form.internal_transfer else ""
        raise FormError(
            [
                (
                    "proposed_postcode",
                    f"the proposed address is in the transferring PDU ({pdu.name}): this is an internal move "
                    f"between teams, not a case transfer{why}",
                )
            ]
        )
    if form.internal_transfer and pdu.code != team.pdu_code:
        raise FormError(
            [("internal_transfer", f"an internal transfer stays inside the transferring PDU; {pdu.name} is another PDU")]
        )
    return team.pdu_code, team.region_code, pdu.region_code
