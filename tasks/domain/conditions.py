"""What the transfer form says that drives the work (issue 26): a proposed address inside an
exclusion zone, a last OASys too old for the transfer, approved premises. Each is a condition of
the Action List (tasks/domain/actions.py CONDITIONS names them); the numbers are config/conditions.yaml's.

The exclusion zone check is made at raising (tasks/domain/transfers.py) and again whenever the
address changes (tasks/domain/changes.py amend_destination, which adds or reopens the action
"confirm the address is compatible with the licence conditions" and notes the flag).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dateutil.relativedelta import relativedelta
from pydantic import BaseModel

from tasks.config_files import read_yaml
from tasks.domain.form import AccommodationType, TransferForm
from tasks.domain.licence_conditions import ExclusionZone
from tasks.places.locator import LocatorError, get_locator
from tasks.settings import get_settings

CONDITIONS_CHECK = "conditions_check"  # the action a zone hit opens (config/timescales.yaml)
FLAGGED = "exclusion zone flagged"  # the history's event: what status, digests and the tracker read


class ConditionRules(BaseModel):
    oasys_max_age_months: int
    absence_recorders: list[str]
    contact_recorders: list[str]
    closed_on_imported_completion: list[str]


@lru_cache(maxsize=2)
def _rules(path: str) -> ConditionRules:
    return ConditionRules.model_validate(read_yaml(get_settings().config_dir / path))


def condition_rules() -> ConditionRules:
    return _rules("conditions.yaml")


def zone_containing(zones: list[ExclusionZone], postcode: str) -> ExclusionZone | None:
    """The first zone the postcode lies in. A district or sector is read from the postcode
    itself; a local authority or PDU asks the locator (a postcode it cannot place is in no named
    area, though its district or sector may still match)."""
    if not zones:
        return None
    district, inward = postcode.split(" ", 1)
    sector = f"{district} {inward[0]}"
    where: dict[str, str] | None = None
    for zone in zones:
        if zone.kind == "district" and zone.key == district:
            return zone
        if zone.kind == "sector" and zone.key == sector:
            return zone
        if zone.kind in ("local_authority", "pdu"):
            if where is None:
                try:
                    loc = get_locator().locate(postcode)
                    where = {"local_authority": loc.lad_code, "pdu": loc.pdu_code}
                except LocatorError:
                    where = {}
            if where.get(zone.kind or "") == zone.key:
                return zone
    return None


def address_in_exclusion_zone(form: TransferForm) -> ExclusionZone | None:
    return zone_containing(form.exclusion_zones, form.proposed_postcode)


def oasys_out_of_date(form: TransferForm) -> bool:
    """The last OASys is older than the limit on the day raised (today when not given). A form
    with no date is left alone: the profile says whether the date is required."""
    if form.last_oasys_date is None:
        return False
    day = form.raised_on or get_settings().current_date()
    return form.last_oasys_date < day - relativedelta(months=condition_rules().oasys_max_age_months)


def approved_premises(form: TransferForm) -> bool:
    return form.accommodation_type is AccommodationType.approved_premises


def flag_words(form: TransferForm, zone: ExclusionZone) -> str:
    return (
        f"the proposed address ({form.proposed_postcode}) is inside the exclusion zone {zone.words()}: "
        "the transferring practitioner confirms the address is compatible with the licence conditions"
    )


def conditions_words(form: dict[str, Any]) -> list[str]:
    """The structured restrictive conditions of a stored form, one line each (status, artifact)."""
    lines = [f"exclusion zone: {z['area']}" + (f" ({z['note']})" if z.get("note") else "") for z in form.get("exclusion_zones") or []]
    lines += [f"no contact with: {n['with_whom']}" + (f" ({n['note']})" if n.get("note") else "") for n in form.get("non_contact") or []]
    if curfew := form.get("curfew"):
        lines.append(f"curfew {str(curfew['start'])[:5]}-{str(curfew['end'])[:5]}" + (", electronically monitored" if curfew.get("electronically_monitored") else ""))
    return lines
