"""Where a transfer goes: the receiving PDU (the form's, or the locator's for the proposed
postcode), and the rules a placement must keep (no internal move raised as a transfer)."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.domain.form import FormError, NsiType, TransferForm
from tasks.domain.policy import Policy, get_policy
from tasks.places.estate import load_estate
from tasks.settings import get_settings


@dataclass(frozen=True)
class Placement:
    """Where a transfer goes: the locator's answer, or the PDU the form names."""

    receiving_pdu_code: str
    distance_km: float | None = None


def place(form: TransferForm) -> Placement:
    """The receiving PDU: the form's, or the PDU locator's for the proposed postcode."""
    from tasks.places.locator import LocatorError, get_locator  # the index loads only when needed

    locator = get_locator()
    distance = None
    try:
        distance = locator.distance_km(form.current_postcode, form.proposed_postcode)
    except LocatorError:
        distance = None
    if form.receiving_pdu_code:
        return Placement(form.receiving_pdu_code, distance)
    try:
        loc = locator.locate(form.proposed_postcode)
    except LocatorError as exc:
        raise FormError([("proposed_postcode", f"{exc}; name the receiving_pdu_code instead")]) from None
    return Placement(loc.pdu_code, distance)


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
